"""Sphinx configuration of the skminer documentation.

Build with ``sphinx-build -b html docs docs/_build/html`` (needs the ``docs`` extra: sphinx, myst-parser, numpydoc).
Pages are Markdown (MyST); the API reference is generated from the numpydoc docstrings.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

project = "skminer"
author = "the skminer developers"
copyright = "the skminer developers"  # noqa: A001 - Sphinx option name
try:
    release = version("skminer")
except PackageNotFoundError:  # building from a source tree without installing
    release = "0.0.0+unknown"
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# internal notes of the project, not part of the user documentation
exclude_patterns = ["_build", "helper-brief.md", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

autosummary_generate = True
# scikit-learn generates set_*_request methods whose docstrings link into scikit-learn's own glossary
_SKLEARN_GENERATED = ["set_fit_request", "set_score_request", "set_predict_request", "set_predict_proba_request",
                      "set_transform_request", "get_metadata_routing"]
# Inherited members are listed (every estimator page shows its prediction methods: predict_log_ratio, score_at,
# log_likelihood, predict_proba, score ...), except those of the third-party / builtin bases named here.
_FOREIGN_BASES = ["object", "BaseEstimator", "RegressorMixin", "Module", "NeuralNet", "Pipeline", "BaseException",
                  "Exception", "ValueError", "Protocol", "dict", "tuple", "Generic"]
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource",
                           "inherited-members": ",".join(_FOREIGN_BASES),
                           "exclude-members": ",".join(_SKLEARN_GENERATED)}
autodoc_typehints = "none"  # the numpydoc parameter sections document the types
# optional heavy dependencies: document the modules even where they are not installed
autodoc_mock_imports = ["pylhe", "uproot", "awkward", "vector", "pythia8mc", "pythia8", "pyhepmc"]

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"skminer {release}"
html_static_path: list[str] = []
