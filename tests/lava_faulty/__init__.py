"""A Lava ProcessModel that fails on purpose, in a package of its own (Lava's compiler
executes every .py file beside a custom model's module)."""
