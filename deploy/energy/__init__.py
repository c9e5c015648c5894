"""The energy profiler: spike-driven ACs against dense MACs per layer, costed under a preset."""
