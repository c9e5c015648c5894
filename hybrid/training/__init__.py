"""Training and evaluation of the hybrid model: the loop, multi-view evaluation, the
checkpoint format and the published recipes (``--preset``)."""
