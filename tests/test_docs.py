"""The user guide's Python examples run as written (they train small models: ~15 s in all)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["quickstart.md", "tutorial.md", "howto/model-selection.md", "howto/ensembles.md", "howto/persistence.md"]
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks(page: str) -> list[str]:
    """The page's python blocks, without those that need a dask cluster (not installed in the test env)."""
    return [b for b in _BLOCK.findall((DOCS / page).read_text()) if "dask" not in b]


def test_pages_have_examples():
    for page in PAGES:
        assert _blocks(page), page


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(_blocks(page)):
        code = compile(block, f"{page}[block {i}]", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation, not user input
