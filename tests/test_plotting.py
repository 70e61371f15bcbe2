"""Tests of skminer.plotting: every plot writes a non-empty image and rejects bad arguments clearly."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from skminer import plotting
from skminer.inference import AsymptoticLimits, FisherInformation, theta_grid
from skminer.simulation.toy import ToySimulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
THETA = np.array([0.0, 0.0])


class ExactScore:
    """The toy's exact score through the inference protocol (the ``"score"`` capability)."""

    capabilities = frozenset({"score"})

    def __init__(self, toy: ToySimulator, theta: np.ndarray) -> None:
        self.toy, self.theta = toy, theta

    def score_at(self, X: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        return self.toy.score(X, self.theta)


def _check_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(path.parent.glob(f".{path.name}.*"))  # no temporary file left behind


@pytest.fixture(scope="module")
def toy() -> ToySimulator:
    return ToySimulator()


@pytest.fixture(scope="module")
def events(toy):
    return toy.simulate(5000, random_state=31)


@pytest.fixture(scope="module")
def infos(toy, events) -> dict[str, np.ndarray]:
    fi = FisherInformation(events)
    return {"rate": fi.rate_information(THETA, 10.0),
            "histogram x1": fi.histogram_information(THETA, 10.0, "x1", bins=10),
            "full": fi.full_information(THETA, ExactScore(toy, THETA), 10.0),
            "truth": fi.truth_information(THETA, 10.0)}


def test_fisher_contours(tmp_path, infos):
    path = tmp_path / "contours.png"
    fig = plotting.plot_fisher_contours(infos, theta_ref=THETA, parameter_names=["theta1", "theta2"], cl=[0.68, 0.95],
                                        path=path)
    assert isinstance(fig, Figure)
    _check_png(path)
    legend = fig.axes[0].get_legend()  # the line styles and d are explained
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[-2:] == ["d = 1.51 (68% CL, 2 dof)", "d = 2.45 (95% CL, 2 dof)"]
    assert "Fisher distance" in legend.get_title().get_text()
    # a 3x3 information is profiled to the shown pair; a single matrix is accepted; pdf output
    big = np.array([[4.0, 1.0, 0.5], [1.0, 2.0, 0.3], [0.5, 0.3, 1.0]])
    pdf = tmp_path / "one.pdf"
    plotting.plot_fisher_contours(big, indices=(0, 2), marginalize="project", distance=1.0, path=pdf)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
    # one parameter: parabolas of the Fisher distance
    one = tmp_path / "one_param.png"
    plotting.plot_fisher_contours({"a": [[2.0]], "b": [[0.5]]}, theta_ref=[0.1], cl=0.68, path=one)
    _check_png(one)
    with pytest.raises(ValueError, match="non-negative"):
        plotting.plot_fisher_contours({"a": [[-2.0]]})
    with pytest.raises(ValueError, match="unsupported figure format"):
        plotting.plot_fisher_contours(infos, path=tmp_path / "x.jpgx")
    with pytest.raises(ValueError, match="square"):
        plotting.plot_fisher_contours({"bad": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="marginalize"):
        plotting.plot_fisher_contours(big, marginalize="average")
    with pytest.raises(ValueError, match="indices"):
        plotting.plot_fisher_contours(big, indices=(1, 1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plotting.plot_fisher_contours(infos, path=tmp_path / "missing" / "x.png")


def test_fisher_ensemble(tmp_path, infos):
    members = np.stack([infos["full"] * f for f in (0.8, 0.9, 1.0, 1.1, 1.2)])
    path = tmp_path / "ensemble.png"
    fig = plotting.plot_fisher_ensemble({"SALLY": members, "histogram": members * 0.5}, theta_ref=THETA, path=path)
    assert isinstance(fig, Figure)
    _check_png(path)
    mean = members.mean(axis=0)
    cov = np.cov(members.reshape(5, -1), rowvar=False).reshape(2, 2, 2, 2)
    path2 = tmp_path / "ensemble_cov.png"
    plotting.plot_fisher_ensemble(mean, covariance=cov, n_samples=50, path=path2)
    _check_png(path2)
    with pytest.raises(ValueError, match="n_members"):
        plotting.plot_fisher_ensemble(mean)
    with pytest.raises(ValueError, match="band"):
        plotting.plot_fisher_ensemble(members, band=(90, 10))


def test_pvalues(tmp_path, toy, events):
    grid = theta_grid([[-1.0, 1.0], [-1.0, 1.0]], 11)
    limits = AsymptoticLimits(events, 30.0)
    res = {"x1": limits.expected_limits(THETA, grid, mode="histogram", observables=["x1"], bins=10),
           "x1 x2": limits.expected_limits(THETA, grid, mode="histogram", observables=["x1", "x2"], bins=5)}
    path = tmp_path / "pvalues.png"
    fig = plotting.plot_pvalues(grid, {k: v.p_values for k, v in res.items()}, parameter_names=["a", "b"],
                                luminosity=30.0, observed=False, path=path)
    assert isinstance(fig, Figure)
    _check_png(path)
    legend = fig.axes[0].get_legend()
    assert "expected" in legend.get_title().get_text() and "30" in legend.get_title().get_text()
    assert [t.get_text() for t in legend.get_texts()] == ["x1", "x1 x2", "68% CL", "95% CL"]
    # contours on the refined grid: many more vertices than the 11x11 evaluation grid could give
    segs = [p for c in fig.axes[0].collections for p in getattr(c, "get_paths", lambda: [])()]
    assert max(len(p.vertices) for p in segs) > 40
    single = tmp_path / "pvalue_map.png"
    plotting.plot_pvalues(grid, res["x1"].p_values, path=single)
    _check_png(single)
    grid1 = np.linspace(-1, 1, 21)[:, None]
    one_d = tmp_path / "pvalues_1d.png"
    fig1 = plotting.plot_pvalues(grid1, np.exp(-grid1[:, 0] ** 2 * 50), observed=True, path=one_d)
    _check_png(one_d)
    assert fig1.axes[0].get_ylim()[0] == pytest.approx(0.005)  # not down to the smallest p-value (~1e-22)
    assert fig1.axes[0].get_legend().get_title().get_text() == "observed"
    with pytest.raises(ValueError, match="not a regular product grid"):
        plotting.plot_pvalues(grid[:-1], res["x1"].p_values[:-1])
    with pytest.raises(ValueError, match="entries for a grid"):
        plotting.plot_pvalues(grid, res["x1"].p_values[:5])
    with pytest.raises(ValueError, match="cls"):
        plotting.plot_pvalues(grid, res["x1"].p_values, cls=[68])


def test_distributions(tmp_path, events):
    thetas = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0]])
    path = tmp_path / "dist.png"
    fig = plotting.plot_distributions(events, thetas, labels=["SM", "t1", "t2"], path=path)
    assert isinstance(fig, Figure)
    _check_png(path)
    norm = tmp_path / "dist_norm.png"
    plotting.plot_distributions(events, thetas, observables=["x2"], normalize=True, log=True, path=norm)
    _check_png(norm)
    with pytest.raises(ValueError, match="thetas"):
        plotting.plot_distributions(events, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not in the event set"):
        plotting.plot_distributions(events, thetas, observables=["pt"])
    with pytest.raises(ValueError, match="labels"):
        plotting.plot_distributions(events, thetas, labels=["a"])


def test_morphing_basis(tmp_path, events):
    path = tmp_path / "morphing.png"
    fig = plotting.plot_morphing_basis(events, path=path)
    assert isinstance(fig, Figure)
    _check_png(path)
    from skminer.morphing import Morpher

    m1 = Morpher([2]).set_basis(np.array([[-1.0], [0.0], [1.0]]))
    path1 = tmp_path / "morphing_1d.png"
    plotting.plot_morphing_basis(m1, [[-2.0, 2.0]], path=path1)
    _check_png(path1)
    with pytest.raises(ValueError, match="basis"):
        plotting.plot_morphing_basis(Morpher([2]), [[-1.0, 1.0]])
    with pytest.raises(ValueError, match="ranges"):
        plotting.plot_morphing_basis(m1, [[1.0, -1.0]])


def test_information_distribution_plot(tmp_path, toy, events):
    fi = FisherInformation(events)
    dist = fi.information_distribution(THETA, 10.0, "x1", bins=12, estimator=ExactScore(toy, THETA))
    path = tmp_path / "info_dist.png"
    fig = plotting.plot_information_distribution(dist, parameter_names=["theta1", "theta2"], path=path)
    assert isinstance(fig, Figure)
    _check_png(path)
    for quantity in ("trace", "determinant"):
        p = tmp_path / f"info_{quantity}.png"
        plotting.plot_information_distribution(fi.information_distribution(THETA, 10.0, 1, bins=8), quantity=quantity,
                                               path=p)
        _check_png(p)
    with pytest.raises(ValueError, match="quantity"):
        plotting.plot_information_distribution(dist, quantity="eigen")
    with pytest.raises(TypeError, match="InformationDistribution"):
        plotting.plot_information_distribution({"edges": [0, 1]})
