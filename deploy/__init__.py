"""Partitioned artifacts, the SNN->ANN bridge, the hybrid-chip runtime and the energy
profiler. Imports ``ann`` and ``neuro``; never ``hybrid``."""
