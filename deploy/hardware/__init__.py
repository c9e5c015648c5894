"""Hardware estimates of the hybrid chip.

- ``neurocores/``: the spiking partition on neurocores: layers onto cores (``mapping``),
  the SANA-FE simulation (``simulation``, ``loihi_arch``), the first layer's time
  (``layer1``);
- ``dense/``: the dense partition: a roofline on a named accelerator (``roofline``),
  onnxruntime on this host (``onhost``), and the report's dense stage (``stage``);
- here: targets and boards, links, the host, the Tianjic hybrid chip, intervals, the
  per-video report (``report``, ``render``) and the design-space sweep."""
