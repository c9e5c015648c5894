"""Explaining the model: heat maps per modality and segment (``maps``, ``plot``) and the STM's
noise filtering (``denoise``)."""
