"""The user-facing layer: compressed-video reader, datasets, the composed model,
training and evaluation, and the ``hybrid`` CLI. Imports everything below it;
nothing imports ``hybrid``."""
