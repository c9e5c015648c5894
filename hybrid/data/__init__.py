"""Datasets of compressed video: splits (UCF-101, HMDB-51, folder-per-class), transforms,
the stores made by ``hybrid prepare`` (video cache, HDF5 array cache), and the torch Dataset."""
