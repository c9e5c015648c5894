"""Custom Lava Processes and ProcessModels, in a package of their own (Lava's compiler
executes every ``.py`` file beside a Process's module). Import ``neuro`` first."""
