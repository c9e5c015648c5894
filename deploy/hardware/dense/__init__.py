"""The dense partition's cost: a per-layer roofline on a named accelerator
(``roofline``), onnxruntime on this host's CPU (``onhost``), and the report's dense stage
that picks between them (``stage``)."""
