"""The user guide's Python examples run as written (they train small models: ~15 s in all)."""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import pytest
import sklearn

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["quickstart.md", "tutorial.md", "howto/model-selection.md", "howto/compare-methods.md", "howto/ensembles.md",
         "howto/persistence.md", "howto/threads.md", "howto/training.md", "howto/out-of-core.md"]
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks(page: str) -> list[str]:
    """The page's python blocks, without those that connect to a dask cluster (``Client(...)``), and without any
    that use dask where it is not installed."""
    blocks = [b for b in _BLOCK.findall((DOCS / page).read_text()) if "Client(" not in b]
    if importlib.util.find_spec("dask") is None:
        blocks = [b for b in blocks if "dask" not in b]
    return blocks


def test_pages_have_examples():
    for page in PAGES:
        assert _blocks(page), page


def _unweighting_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "skminer.augmentation.unweighting" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, tmp_path, monkeypatch, caplog):
    # the examples do not trigger warnings that the text does not explain (drawing more events than the weighted
    # sample effectively holds repeats events)
    caplog.set_level(logging.WARNING, logger="skminer")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with sklearn.config_context():  # a page may switch metadata routing on; later tests must not inherit it
        for i, block in enumerate(_blocks(page)):
            code = compile(block, f"{page}[block {i}]", "exec")
            exec(code, namespace)  # noqa: S102 - our own documentation, not user input
    assert not _unweighting_warnings(caplog), page


def test_readme_example_samples_cleanly(caplog):
    """README's minimal example up to the training sample (the training itself is the quickstart's)."""
    block = _BLOCK.findall((DOCS.parent / "README.md").read_text())[0]
    data_part = block[:block.index("sally = ")]
    caplog.set_level(logging.WARNING, logger="skminer")
    exec(compile(data_part, "README.md", "exec"), {"__name__": "__docs__"})  # noqa: S102 - our own README
    assert not _unweighting_warnings(caplog)


# blocks that need a MadGraph / Pythia installation, or are fragments continuing the text
_EXTERNAL = ("MadGraph(", "shower_lhe", "events_with_nuisances")
REAL_FILES = {"unweighted_events.lhe.gz": "mg5_vbfh_ewdim6/unweighted_events.lhe.gz",
              "delphes.root": "delphes/vbfh_ewdim6_delphes.root",
              "pp_to_jj.lhe.gz": "skhep_testdata_lhe/pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz",
              "tth.hepmc.gz": "hepmc/tth_pythia8_20ev.hepmc.gz"}


def test_real_events_examples_run(shared_data, tmp_path, monkeypatch):
    """docs/real-events.md on the shared MG5 / Delphes files, linked under the names the page uses."""
    for name, rel in REAL_FILES.items():
        if not (shared_data / rel).is_file():
            pytest.skip(f"{shared_data / rel} missing")
        (tmp_path / name).symlink_to(shared_data / rel)
    monkeypatch.chdir(tmp_path)
    blocks = [b for b in _blocks("real-events.md") if not any(key in b for key in _EXTERNAL)]
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"real-events.md[block {i}]", "exec"), namespace)  # noqa: S102 - our own docs
    assert len(namespace["events"]) > 0
    assert namespace["tth_events"].n_events > 0
