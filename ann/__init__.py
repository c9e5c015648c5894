"""The dense partition: patch embeddings, unified transformer, multi-modal mixer, RRDB,
classifier. Imports torch only (never ``neuro``, ``deploy`` or ``hybrid``)."""
