"""Running an artifact: the Lava STMs, the bridge and onnxruntime per video (``engine``),
spread over worker processes (``pool``, ``worker``)."""
