"""Sphinx configuration of the docs site (MyST Markdown pages, sphinx-click, autodoc).

`make docs` builds it with warnings as errors; the figures are read from
``examples/figures`` and ``benchmarks/figures`` in place (relative image paths)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's packages, as PYTHONPATH=$PWD does

project = "hybrid"
author = "the hybrid-snn-video developers"
copyright = "2026, " + author

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinx_click",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}  # rst: autosummary's pages
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: one page per module, generated from the docstrings at build time
# (docs/api/generated/, ignored by git) by autosummary's recursive walk of the packages.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "ignore-module-all": True,  # ann.layers re-exports its blocks: document them once
}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # shapes and units are in the docstrings; signatures stay short
autodoc_inherit_docstrings = False  # torch's own forward/backward texts are not ours

html_theme = "alabaster"
html_title = "hybrid: spiking + dense action recognition on compressed video"
html_static_path = ["_static"]
html_theme_options = {
    "description": "Spiking + dense action recognition on compressed video",
    "page_width": "1240px",
    "sidebar_width": "220px",
    "body_max_width": "none",
    "fixed_sidebar": False,
    "show_relbars": True,
}
autodoc_class_signature = "separated"  # dataclass signatures keep quoted annotations otherwise

# -n: every cross-reference must resolve. The build runs offline (CI reaches no docs
# site), so there is no intersphinx inventory for the libraries our classes derive
# from; references into them are the only ones let through, named here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|lava|click|numpy|np|h5py|av|onnxruntime|nir|sanafe)(\..*)?"),
]
smartquotes = False  # keep `--option` as typed (the CLI help would show en dashes)
