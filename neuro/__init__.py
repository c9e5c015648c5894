"""The spiking partition: STM neuron and blocks, HDF5 export, Lava processes and runner.

Importing ``neuro`` applies :mod:`neuro.compat` first, so lava-nc and lava-dl import on
Python >= 3.11 without torchvision. Never imports ``ann`` or ``hybrid``.
"""
from neuro import compat

compat.apply()
