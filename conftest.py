# Root conftest: makes this folder pytest's rootdir, so the project's tests/ are the ones
# collected. lava-nc and lava-dl install a top-level `tests` package into site-packages;
# the project's tests never `import tests` (checked in tests/test_foundation.py) and are
# collected with --import-mode=importlib (pyproject.toml), so that package cannot shadow them.
