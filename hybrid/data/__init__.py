"""Datasets of compressed video: splits (UCF-101, HMDB-51, folder-per-class), transforms,
the HDF5 cache made by ``hybrid prepare``, and the torch Dataset."""
