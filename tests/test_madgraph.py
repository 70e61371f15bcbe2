"""Tests of the MG5 wrapper with a fake mg5_aMC executable, and of the card writers against real MG5 cards."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from skminer.parameters import ParameterSpace
from skminer.simulation.madgraph import (
    MadGraph,
    MadGraphError,
    edit_run_card,
    write_param_card,
    write_reweight_card,
)

POINTS = {"sm": (0.0, 0.0), "w": (15.2, 0.1), "neg_w": (-15.4, 0.2), "ww": (0.3, 15.1), "neg_ww": (0.2, -15.3),
          "w_ww": (15.0, 15.0), "val_1": (5.0, -5.0), "val_2": (-10.0, 10.0)}


def space() -> ParameterSpace:
    s = ParameterSpace().add_parameter("CWL2", "dim6", 2, 2, (-20, 20)).add_parameter("CPWL2", "dim6", 5, 2, (-20, 20))
    for k, v in POINTS.items():
        s.add_benchmark(k, v)
    return s


@pytest.fixture
def cards(shared_data):
    d = shared_data / "mg5_vbfh_ewdim6" / "cards"
    if not d.is_dir():
        pytest.skip("MG5 cards missing")
    return d


def test_reweight_card_matches_real_card(cards, tmp_path):
    out = write_reweight_card(tmp_path / "reweight_card.dat", space())
    assert out.read_text().split() == (cards / "reweight_card.dat").read_text().split()


def test_param_card_and_run_card(cards, tmp_path):
    pc = write_param_card(cards / "param_card.dat", tmp_path / "pc.dat", space(), "neg_w")
    text = pc.read_text()
    block = text[text.upper().index("BLOCK DIM6"):].splitlines()[1:9]
    vals = {int(ln.split()[0]): float(ln.split()[1]) for ln in block}
    assert vals == {1: 0.0, 2: -15.4, 3: 0.0, 4: 0.0, 5: 0.2, 6: 0.0, 7: 0.0, 8: 0.0}
    assert "# cwl2" in text and len(text.splitlines()) == len((cards / "param_card.dat").read_text().splitlines())
    rc = edit_run_card(cards / "run_card.dat", tmp_path / "rc.dat", {"nevents": 123, "iseed": 7, "use_syst": True})
    lines = rc.read_text().splitlines()
    assert any(ln.split() == ["123", "=", "nevents", "!", "Number", "of", "unweighted", "events", "requested"]
               for ln in lines)
    assert any(ln.split()[:3] == ["7", "=", "iseed"] for ln in lines)
    assert any(ln.split()[:3] == ["True", "=", "use_syst"] for ln in lines)
    with pytest.raises(ValueError, match="no entry '= nosuchkey'"):
        edit_run_card(cards / "run_card.dat", tmp_path / "x.dat", {"nosuchkey": 1})
    bad = ParameterSpace().add_parameter("c", "nosuchblock", 1).add_benchmark("b", [1.0])
    with pytest.raises(ValueError, match="no entry 1 in BLOCK nosuchblock"):
        write_param_card(cards / "param_card.dat", tmp_path / "y.dat", bad, "b")
    assert not (tmp_path / "y.dat").exists()


FAKE_MG5 = textwrap.dedent('''
    import gzip, json, os, re, sys
    from pathlib import Path
    script = Path(sys.argv[1]).read_text().splitlines()
    record = Path(os.environ["FAKE_MG5_RECORD"])
    calls = json.loads(record.read_text()) if record.exists() else []
    calls.append({"script": script, "cwd": os.getcwd()})
    record.write_text(json.dumps(calls))
    mode = os.environ.get("FAKE_MG5_MODE", "ok")
    if mode == "crash":
        print("INFO: starting"); print("ERROR: something broke in the matrix element"); sys.exit(3)
    first = script[0].split()
    if first[0] == "launch":
        pdir = Path(first[1]); run = first[first.index("-n") + 1]
        names = []
        for line in script:
            if line.endswith("reweight_card.dat") and mode != "norwgt":
                names = re.findall(r"--rwgt_name=(\\S+)", Path(line).read_text())
        ev = Path(os.environ["FAKE_MG5_LHE"]).read_text()
        init = ""
        if names:
            ws = "".join(f"<weight id='{n}'>x</weight>" for n in names)
            init = f"<initrwgt><weightgroup name='mg_reweighting'>{ws}</weightgroup></initrwgt>"
        ev = ev.replace("<header>", "<header>" + init)
        out = pdir / "Events" / run
        out.mkdir(parents=True, exist_ok=True)
        with gzip.open(out / "unweighted_events.lhe.gz", "wt") as f:
            f.write(ev)
    else:
        for line in script:
            if line.startswith("output"):
                d = Path(line.split()[1]); (d / "Cards").mkdir(parents=True, exist_ok=True)
    print("done")
''')

SMALL_LHE = """<LesHouchesEvents version="3.0">
<header>
</header>
<init>
2212 2212 6.5e+03 6.5e+03 0 0 247000 247000 -4 1
1.0e+00 1.0e-02 1.0e+00 1
</init>
<event>
 3 1 +1.0e+00 1.0e+02 7.8e-03 1.4e-01
 21 -1 0 0 501 502 0 0 100 100 0 0 9
 21 -1 0 0 502 501 0 0 -100 100 0 0 9
 25 1 1 2 0 0 0 0 0 200 125 0 9
</event>
</LesHouchesEvents>
"""


@pytest.fixture
def fake_mg5(tmp_path, monkeypatch):
    mg = tmp_path / "MG5" / "bin"
    mg.mkdir(parents=True)
    exe = mg / "mg5_aMC"
    exe.write_text(FAKE_MG5)
    lhe = tmp_path / "small.lhe"
    lhe.write_text(SMALL_LHE)
    monkeypatch.setenv("FAKE_MG5_RECORD", str(tmp_path / "calls.json"))
    monkeypatch.setenv("FAKE_MG5_LHE", str(lhe))
    return MadGraph(tmp_path / "MG5", python=sys.executable, timeout=60)


def test_generate_launch_and_multiple_runs(fake_mg5, tmp_path, cards):
    pdir = fake_mg5.generate(["import model EWdim6-full", "generate u d > u d h", "output ignored"], tmp_path / "proc")
    calls = json.loads((tmp_path / "calls.json").read_text())
    assert calls[0]["script"] == ["import model EWdim6-full", "generate u d > u d h", f"output {pdir} -f"]
    s = space()
    rw = write_reweight_card(tmp_path / "reweight_card.dat", s)
    lhe = fake_mg5.launch(pdir, run_name="run_01", reweight_card=rw, run_settings={"nevents": 10, "iseed": 3})
    assert lhe == pdir / "Events" / "run_01" / "unweighted_events.lhe.gz" and lhe.exists()
    script = json.loads((tmp_path / "calls.json").read_text())[1]["script"]
    assert script[:6] == [f"launch {pdir} -n run_01", "shower=OFF", "detector=OFF", "analysis=OFF", "reweight=ON",
                          "done"]
    assert "set nevents 10" in script and "set iseed 3" in script and script[-1] == "done"
    assert str(rw.resolve()) in script
    paths = fake_mg5.run_benchmarks(pdir, s, ["sm", "w"], param_card_template=cards / "param_card.dat",
                                    run_card=cards / "run_card.dat",
                                    run_settings=[{"iseed": 1}, {"iseed": 2}], reweight_benchmarks=["sm", "w"])
    assert list(paths) == ["sm", "w"] and all(p.exists() for p in paths.values())
    calls = json.loads((tmp_path / "calls.json").read_text())
    assert "set iseed 2" in calls[-1]["script"]
    pc = [ln for ln in calls[-1]["script"] if ln.endswith("param_card_w.dat")][0]
    assert "1.520000000e+01" in open(pc).read()


def test_failures_are_clear(fake_mg5, tmp_path, monkeypatch):
    pdir = fake_mg5.generate("generate p p > h", tmp_path / "proc")
    monkeypatch.setenv("FAKE_MG5_MODE", "crash")
    with pytest.raises(MadGraphError, match=r"exit code 3(.|\n)*something broke"):
        fake_mg5.launch(pdir)
    monkeypatch.setenv("FAKE_MG5_MODE", "norwgt")
    rw = write_reweight_card(tmp_path / "reweight_card.dat", space(), ["sm", "w"])
    with pytest.raises(MadGraphError, match=r"reweighting produced no weights \['sm', 'w'\]"):
        fake_mg5.launch(pdir, reweight_card=rw)
    with pytest.raises(FileNotFoundError, match="MG5 executable not found"):
        MadGraph(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="not an MG5 process directory"):
        fake_mg5.launch(tmp_path)
