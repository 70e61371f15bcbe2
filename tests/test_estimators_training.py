"""Training options shared by the neural estimators: keyword-only parameters, declared constraints, optimizer,
learning-rate schedule, weight decay and epoch selection."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from toy_data import local_sample

from skminer.estimators import (
    ALICES,
    CARL,
    CASCAL,
    NDE,
    RASCAL,
    SALLINO,
    SALLY,
    SCANDAL,
    DoubleALICES,
    DoubleCARL,
    NeuralEstimatorBase,
)
from skminer.estimators._training import LR_SCHEDULES, lr_scheduler

ESTIMATORS = [SALLY, SALLINO, CARL, CASCAL, RASCAL, ALICES, DoubleCARL, DoubleALICES, NDE, SCANDAL]
SMALL = dict(hidden_layer_sizes=(8,), batch_size=128, random_state=0)


@pytest.fixture(scope="module")
def local():
    return local_sample(2000, seed=0)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_init_is_keyword_only_and_constraints_cover_every_parameter(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params and all(p.kind is p.KEYWORD_ONLY for p in params), cls
    with pytest.raises(TypeError):
        cls((8,))
    assert set(cls._parameter_constraints) == {p.name for p in params}
    # the training options are the same everywhere
    base = set(inspect.signature(NeuralEstimatorBase.__init__).parameters) - {"self"}
    assert base <= set(cls().get_params())


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_lr_schedule_runs_from_lr_to_lr_final(local, schedule):
    X, t = local
    est = SALLY(**SMALL, max_epochs=5, lr=1e-2, lr_final=1e-4, lr_schedule=schedule, early_stopping=False).fit(X, t)
    lrs = np.asarray(est.net_.history[:, "event_lr"]) if schedule != "constant" else None
    if schedule == "constant":
        assert "event_lr" not in est.net_.history[-1]
        assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-2)
        return
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] == pytest.approx(1e-4)
    assert np.all(np.diff(lrs) < 0)
    if schedule == "exponential":  # MadMiner: lr (lr_final / lr)^(e / (max_epochs - 1))
        np.testing.assert_allclose(lrs, 1e-2 * (1e-2) ** (np.arange(5) / 4), rtol=1e-6)
    sim = lr_scheduler(schedule, 1e-2, 1e-4, 5).simulate(5, 1e-2)
    np.testing.assert_allclose(sim, lrs, rtol=1e-6)


@pytest.mark.parametrize(("optimizer", "expected"), [("adam", (torch.optim.Adam, {"amsgrad": False})),
                                                     ("amsgrad", (torch.optim.Adam, {"amsgrad": True})),
                                                     ("sgd", (torch.optim.SGD, {"momentum": 0.5}))])
def test_optimizer_and_weight_decay_reach_torch(local, optimizer, expected):
    X, t = local
    est = SALLY(**SMALL, max_epochs=1, optimizer=optimizer, momentum=0.5, weight_decay=1e-3).fit(X, t)
    opt = est.net_.optimizer_
    cls, settings = expected
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["weight_decay"] == pytest.approx(1e-3)
    for k, v in settings.items():
        assert group[k] == v


def test_weight_decay_shrinks_the_weights(local):
    X, t = local
    norms = []
    for wd in (0.0, 0.5):
        est = SALLY(**SMALL, max_epochs=5, lr=1e-2, lr_schedule="constant", weight_decay=wd,
                    early_stopping=False).fit(X, t)
        norms.append(sum(float(p.detach().pow(2).sum()) for p in est.module_.mlp.parameters()))
    assert norms[1] < 0.8 * norms[0], norms


def test_ema_returns_averaged_weights_that_differ_from_the_raw_ones(local):
    X, t = local
    kw = dict(**SMALL, max_epochs=4, lr_schedule="constant", lr=1e-2, early_stopping=False)
    raw = SALLY(**kw, epoch_selection="last").fit(X, t)
    ema = SALLY(**kw, epoch_selection="ema").fit(X, t)
    # same seeds, same optimisation path: only the returned weights differ
    np.testing.assert_allclose(ema.loss_curve_, raw.loss_curve_, rtol=1e-6)
    w_raw = torch.cat([p.flatten() for p in raw.module_.parameters()])
    w_ema = torch.cat([p.flatten() for p in ema.module_.parameters()])
    assert not torch.allclose(w_raw, w_ema)
    # the average lies between the recent raw iterates: closer to the final weights than the initial ones
    first = SALLY(**{**kw, "max_epochs": 1, "lr": 1e-12}, epoch_selection="last").fit(X, t)
    init = torch.cat([p.flatten() for p in first.module_.parameters()])
    assert (w_ema - w_raw).norm() < (init - w_raw).norm()


@pytest.mark.parametrize("selection", ["ema", "smoothed", "best", "last"])
def test_epoch_selection_with_validation(local, selection):
    X, t = local
    est = SALLY(**SMALL, max_epochs=6, patience=2, lr=0.05, lr_schedule="constant",
                epoch_selection=selection).fit(X, t)
    assert len(est.validation_loss_curve_) == est.n_epochs_
    history = est.net_.history
    if selection == "smoothed":
        smooth = np.asarray(history[:, "valid_loss_smooth"])
        assert est.best_epoch_ == int(np.argmin(smooth)) + 1
        raw = np.asarray(est.validation_loss_curve_)
        np.testing.assert_allclose(smooth[1], 0.3 * raw[1] + 0.7 * raw[0], rtol=1e-6)
    elif selection == "best":
        assert est.best_epoch_ == int(np.argmin(est.validation_loss_curve_)) + 1
    elif selection == "ema":  # the final weights unless the lowest-validation epoch is significantly better
        selector = dict(est.net_.callbacks_)["epoch_selection"]
        lowest = int(np.argmin(est.validation_loss_curve_)) + 1
        if selector.restored_:
            assert est.best_epoch_ == lowest < est.n_epochs_ and selector.z_ > selector.z
        else:
            assert est.best_epoch_ == est.n_epochs_
            assert lowest == est.n_epochs_ or selector.z_ <= selector.z
    else:
        assert est.best_epoch_ == est.n_epochs_


def _record_validation_epoch(history, epoch, batch_losses):
    """Append an epoch to a skorch History as the net records it: one validation batch of 16 rows per loss."""
    history.new_epoch()
    history.record("epoch", epoch)
    for loss in batch_losses:
        history.new_batch()
        history.record_batch("valid_loss", float(loss))
        history.record_batch("valid_batch_size", 16)
    history.record("valid_loss", float(np.mean(batch_losses)))


def _selection_run(final_offsets, sink=None):
    """FinalUnlessWorse over three fake epochs of a tiny module: epoch 1 validates lowest (batch losses 1.0),
    epoch 2 higher, epoch 3 (the final) has batch losses ``1 + final_offsets``. Returns the callback and whether
    the module holds epoch 1's weights at the end."""
    from types import SimpleNamespace

    from skorch.history import History

    from skminer.estimators._training import FinalUnlessWorse

    module = torch.nn.Linear(2, 1)
    net = SimpleNamespace(module_=module, history=History())
    callback = FinalUnlessWorse(sink=sink).initialize()
    for epoch, batch_losses in enumerate([np.ones(40), np.full(40, 2.0), 1.0 + np.asarray(final_offsets)], 1):
        with torch.no_grad():
            module.weight.fill_(float(epoch))
        _record_validation_epoch(net.history, epoch, batch_losses)
        callback.on_epoch_end(net)
    callback.on_train_end(net)
    return callback, bool(torch.all(module.weight == 1.0))


def test_final_weights_kept_unless_significantly_worse():
    rng = np.random.default_rng(0)
    # the final epoch is higher on average but within the batch-to-batch noise: keep it
    noisy = rng.normal(0.0, 1.0, 40)
    noisy += 0.1 - noisy.mean()
    callback, restored = _selection_run(noisy)
    assert not restored and not callback.restored_ and callback.best_epoch_ == 3
    assert callback.z_ == pytest.approx(0.1 / (noisy.std(ddof=1) / np.sqrt(40)), rel=1e-9)
    assert 0.0 < callback.z_ < callback.z
    # consistently worse in every batch: restore the lowest-validation epoch's weights
    callback, restored = _selection_run(0.05 + rng.normal(0.0, 0.01, 40))
    assert restored and callback.restored_ and callback.best_epoch_ == 1 and callback.z_ > 20
    # final epoch lowest: the final weights stay, z against itself is 0
    callback, restored = _selection_run(np.full(40, -0.1))
    assert not restored and callback.best_epoch_ == 3 and callback.z_ == 0.0


def test_paired_z_edge_cases():
    from skminer.estimators._training import paired_z

    sizes = np.full(5, 10.0)
    assert paired_z(np.full(5, 2.0), np.ones(5), sizes) == np.inf
    assert paired_z(np.ones(5), np.ones(5), sizes) == 0.0
    assert np.isnan(paired_z(np.ones(2), np.zeros(2), np.ones(2)))


def test_gridsearch_tunes_the_training_options(local):
    X, t = local
    grid = {"optimizer": ["adam", "sgd"], "lr_schedule": ["exponential", "cosine"], "weight_decay": [0.0, 1e-4]}
    search = GridSearchCV(SALLY(**SMALL, max_epochs=2), grid, cv=2).fit(X, t)
    assert len(search.cv_results_["params"]) == 8
    assert set(search.best_params_) == set(grid)


def test_diverged_training_is_refused_instead_of_returning_a_nan_model():
    """A learning rate that blows the weights up used to return a model predicting NaN (issue 11)."""
    from skminer import SALLY

    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    with pytest.warns(RuntimeWarning, match="non-finite"), pytest.raises(ValueError, match="training diverged"):
        SALLY(hidden_layer_sizes=(8,), lr=1e30, max_epochs=3, early_stopping=False, random_state=0).fit(X, t)


@pytest.mark.parametrize("optimizer, lr", [("adam", 1e38), ("sgd", 1e39)])
def test_an_overflowing_learning_rate_is_named_not_torchs_raw_error(optimizer, lr):
    """Adam's first step is 10 lr: lr = 1e38 overflows float32 inside torch (a bare RuntimeError before)."""
    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    with pytest.raises(ValueError, match="training diverged: an optimizer step overflowed float32 .*lower lr "
                                         + re.escape(f"(now {lr!r})")):
        SALLY(hidden_layer_sizes=(4,), optimizer=optimizer, lr=lr, max_epochs=1, random_state=0).fit(X, t)


@pytest.mark.parametrize("cls, lr", [(SALLY, 10.0), (CARL, 1e6), (NDE, 1e4)])
def test_finite_but_diverged_training_warns_naming_lr_and_the_losses(cls, lr):
    """A learning rate far too large ran the weights away to huge finite values (NDE: training loss 6.7e19 ->
    8.5e19, CARL: log r of +-3e6) and the model was returned without a word; the same fit at the default lr
    says nothing."""
    import warnings

    from toy_data import ratio_sample

    d = ratio_sample(600, seed=1)
    X, t = local_sample(600, seed=1)
    args, kwargs = {SALLY: ((X, t), {}), CARL: ((d["X"], d["y"]), {"theta": d["theta"]}),
                    NDE: ((d["X"],), {"theta": d["theta"]})}[cls]
    with pytest.warns(RuntimeWarning, match=rf"{cls.__name__}: training diverged: the training loss of the kept "
                                            rf"epoch \d is .*untrained network's loss .*use a smaller lr "
                                            + re.escape(f"(now {lr!r})")) as record:
        est = cls(**SMALL, max_epochs=2, lr=lr).fit(*args, **kwargs)
    assert {w.filename for w in record if "diverged" in str(w.message)} == {__file__}  # the user's call
    assert est.loss_curve_[est.best_epoch_ - 1] > 10 * est.initial_loss_
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        est = cls(**SMALL, max_epochs=3).fit(*args, **kwargs)
    assert np.isfinite(est.initial_loss_) and est.loss_curve_[-1] < 2 * abs(est.initial_loss_)


def test_the_divergence_criterion_is_relative_to_the_untrained_loss():
    from skminer.estimators._divergence import DIVERGENCE_FACTOR, training_divergence

    noisy = 1.0 + 0.3 * np.random.default_rng(0).normal(size=50)  # noisy, but never far above the start
    assert training_divergence(noisy, 1.0, 50) is None
    assert training_divergence([5e3, 4e3], 1e3, 2) is None  # same scale in other units: no divergence
    assert training_divergence([5.0, 4e3], 1.0, 1) is None  # the kept epoch is fine
    assert "kept epoch 2 is 4e+03" in training_divergence([5.0, 4e3], 1.0, 2)
    assert training_divergence([-1.0, -3.0], -2.0, 2) is None  # negative log-likelihoods
    assert training_divergence([-1.0, 2 * DIVERGENCE_FACTOR], -2.0, 2) is not None
    assert training_divergence([1e30], float("nan"), 1) is None  # reference unknown: only the non-finite check
    assert "non-finite in epoch 2 of 3" in training_divergence([1.0, np.inf, 1.0], 1.0, 1)


@pytest.mark.parametrize("optimizer", ["adam", "amsgrad", "sgd"])
def test_cpu_optimizers_run_foreach_with_the_weights_of_the_single_tensor_loop(local, monkeypatch, optimizer):
    """The multi-tensor optimizers are a speed-up only: a fit gives the same weights, bit for bit."""
    from skminer.estimators import base

    X, t = local
    params = dict(SMALL, max_epochs=2, optimizer=optimizer, weight_decay=1e-3)
    fast = SALLY(**params).fit(X, t)
    assert fast.net_.optimizer_.defaults["foreach"] is True
    settings = base.optimizer_settings

    def single_tensor(*args, **kwargs):
        cls, kw = settings(*args, **kwargs)
        return cls, {k: v for k, v in kw.items() if k != "optimizer__foreach"}

    monkeypatch.setattr(base, "optimizer_settings", single_tensor)
    slow = SALLY(**params).fit(X, t)
    assert slow.net_.optimizer_.defaults["foreach"] is None
    np.testing.assert_array_equal(fast.predict(X), slow.predict(X))


def test_weight_ema_updates_every_k_batches_with_the_matching_decay():
    from types import SimpleNamespace

    from skminer.estimators._training import WeightEMA

    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.zero_()
    n_batches = 3 * WeightEMA.UPDATES + 5  # stride 3
    net = SimpleNamespace(module_=module, batch_size=1)
    ema = WeightEMA(horizon=1.0).initialize()
    ema.on_train_begin(net)
    ema.on_epoch_begin(net, dataset_train=range(n_batches))
    assert ema.stride_ == 3
    expected, d = 0.0, 1.0 - 1.0 / n_batches
    for i in range(1, n_batches + 1):
        with torch.no_grad():
            module.weight.fill_(float(i))
        ema.on_batch_end(net, training=True)
        if i % 3 == 0:  # the per-batch average sampled every third batch, decay d^3 per update
            expected = d**3 * expected + (1.0 - d**3) * i
    assert float(ema.ema_[0]) == pytest.approx(expected, rel=1e-5)
    # a per-batch average of the same iterates differs by much less than the spread of the iterates
    per_batch = 0.0
    for i in range(1, n_batches + 1):
        per_batch = d * per_batch + (1.0 - d) * i
    assert abs(expected - per_batch) < 2.0


@pytest.mark.parametrize("restored", [True, False])
def test_training_ended_by_a_callback_returns_the_snapshot_or_the_average_never_the_raw_weights(restored):
    """Early stopping raises in on_epoch_end while the averaged weights are swapped in for validation; the raw
    weights that WeightEMA holds aside must not be copied back over a restored snapshot (nor over the average)."""
    from types import SimpleNamespace

    from skminer.estimators._training import WeightEMA

    module = torch.nn.Linear(1, 1, bias=False)
    selector = SimpleNamespace(restored_=restored)
    net = SimpleNamespace(module_=module, batch_size=1, callbacks_=[("epoch_selection", selector)])
    ema = WeightEMA().initialize()
    ema.on_train_begin(net)
    ema.ema_[0].fill_(2.0)
    with torch.no_grad():
        module.weight.fill_(5.0)  # raw weights
    ema.on_batch_begin(net, training=False)  # validation: the average (2) is swapped in, raw (5) held aside
    assert float(module.weight.detach()) == 2.0
    if restored:  # the selector loads its snapshot, then training ends without WeightEMA.on_epoch_end
        with torch.no_grad():
            module.weight.fill_(7.0)
    ema.on_train_end(net)
    assert float(module.weight.detach()) == (7.0 if restored else 2.0)


def test_early_stopping_ends_training_after_patience_significantly_worse_epochs():
    from types import SimpleNamespace

    from skorch.history import History

    from skminer.estimators._training import FinalUnlessWorse

    net = SimpleNamespace(module_=torch.nn.Linear(1, 1), history=History())
    stopper = FinalUnlessWorse(patience=2).initialize()
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.01, 40)
    within_noise = 1.0 + noise - noise.mean() + 0.001  # higher than epoch 1 by a fraction of a standard error
    epochs = [np.ones(40), within_noise, 1.5 + rng.normal(0, 0.01, 40), 1.5 + rng.normal(0, 0.01, 40)]
    stopped_at = None
    for epoch, batch_losses in enumerate(epochs, 1):
        _record_validation_epoch(net.history, epoch, batch_losses)
        try:
            stopper.on_epoch_end(net)
        except KeyboardInterrupt:
            stopped_at = epoch
            break
    # epoch 2 is within noise of epoch 1 (the count stays 0), epochs 3 and 4 are clearly worse: stop at 4
    assert stopped_at == 4 and stopper.best_epoch_ == 1


def test_non_finite_epochs_count_as_worse_and_never_replace_a_finite_snapshot():
    callback, restored = _selection_run(np.full(40, np.nan))  # the final epoch diverged
    assert restored and callback.best_epoch_ == 1 and callback.z_ == np.inf


def test_a_fit_diverging_from_the_first_epoch_reports_the_divergence(local):
    X, t = local
    with pytest.raises(ValueError, match="training diverged"), pytest.warns(RuntimeWarning, match="non-finite"):
        SALLY(hidden_layer_sizes=(16,), max_epochs=3, lr=10.0, optimizer="sgd", random_state=0).fit(X, t)


def test_the_selection_says_which_weights_it_returns(local):
    from skminer.estimators._net import LogSink

    messages: list[str] = []
    _, restored = _selection_run(0.05 + np.zeros(40), sink=messages.append)
    assert restored and messages == [messages[-1]] and messages[-1].startswith("Restoring epoch 1: the final epoch 3")
    noise = np.random.default_rng(0).normal(0.0, 1.0, 40)
    _, restored = _selection_run(noise - noise.mean() + 0.1, sink=messages.append)
    assert not restored and messages[-1].startswith("Keeping the final weights (epoch 3)")
    X, t = local
    est = SALLY(**SMALL, max_epochs=2, verbose=1).fit(X, t)
    sink = dict(est.net_.callbacks_)["epoch_selection"].sink
    assert isinstance(sink, LogSink) and sink.verbose == 1  # INFO lines with verbose, as skorch's own


def test_validation_split_warnings_point_at_the_users_call_and_a_tiny_split_warns():
    """The empty-split warning pointed at sklearn/base.py (a fixed stacklevel, off by scikit-learn's _fit_context);
    a split of one validation row (4 rows at 0.25) let one event choose the epoch without a word."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skminer.estimators._training import MIN_PAIRED_BATCHES

    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(160, 2)), rng.normal(size=(160, 2))
    kw = dict(hidden_layer_sizes=(4,), max_epochs=2, random_state=0)
    for fit in (lambda: SALLY(**kw, validation_fraction=0.1).fit(X[:3], t[:3]),
                lambda: make_pipeline(StandardScaler(), SALLY(**kw, validation_fraction=0.1)).fit(X[:3], t[:3]),
                lambda: GridSearchCV(SALLY(**kw, validation_fraction=0.1), {"lr": [1e-3]}, cv=KFold(2),
                                             refit=False).fit(X[:6], t[:6])):
        with pytest.warns(UserWarning, match="rounds to an empty validation") as record:
            fit()
        assert {w.filename for w in record} == {__file__}
    with pytest.warns(UserWarning, match=r"validation_fraction=0\.25 of 4 training rows leaves 1 validation row \(1 "
                                         rf"validation batch, fewer than the {MIN_PAIRED_BATCHES} .* rest on the "
                                         r"losses of 1 row;") as record:
        SALLY(**kw).fit(X[:4], t[:4])
    assert {w.filename for w in record} == {__file__}
    with pytest.warns(UserWarning, match=r"leaves 32 validation rows \(2 validation batches"):
        SALLY(**kw).fit(X[:128], t[:128])
    with warnings.catch_warnings():  # 40 validation rows: 3 batches, the paired test runs
        warnings.simplefilter("error")
        # (pure noise, 2 epochs: the validation loss may still fall, by a hair, below the untrained network's on
        # the same rows: a ConvergenceWarning is not what this test is about)
        warnings.simplefilter("ignore", ConvergenceWarning)
        SALLY(**kw).fit(X, t)
    # the final epoch is the lowest: z is 0 (the final epoch against itself), not nan
    decreasing = SALLY(**{**kw, "max_epochs": 3}, lr=1e-2).fit(X, t)
    assert int(np.argmin(decreasing.validation_loss_curve_)) + 1 == decreasing.n_epochs_
    assert decreasing.selection_z_ == 0.0 and not decreasing.selection_restored_


def test_a_requested_validation_split_that_is_empty_says_what_it_disables():
    import warnings

    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    kw = dict(hidden_layer_sizes=(4,), max_epochs=2, random_state=0)
    with pytest.warns(UserWarning, match=r"validation_fraction=0\.1 of 3 training rows .* early stopping and epoch "
                                         r"selection \(epoch_selection='ema'\) are disabled"):
        est = SALLY(**kw, validation_fraction=0.1).fit(X, t)
    assert est.validation_loss_curve_ is None and est.best_epoch_ == est.n_epochs_ == 2
    with pytest.warns(UserWarning, match=r"no validation split is made: early stopping is disabled and the final"):
        SALLY(**kw, validation_fraction=0.1, epoch_selection="last").fit(X, t)  # 'last' selects nothing anyway
    with warnings.catch_warnings():  # no split asked for: nothing to say about it (two epochs do not converge)
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        SALLY(**kw, validation_fraction=0.0).fit(X, t)
        SALLY(**kw, validation_fraction=0.1, early_stopping=False).fit(X, t)


#: Every integer count of the estimators (verbose is excluded: verbose=True is documented).
_COUNTS = ("batch_size", "max_epochs", "patience", "n_threads")
_COUNTS_OF = {NDE: ("transforms", "bins"), SCANDAL: ("transforms", "bins"), SALLINO: ("n_bins",)}
#: Every real-valued hyperparameter of the estimators.
_REALS = ("lr", "lr_final", "momentum", "weight_decay", "validation_fraction")
_REALS_OF = {CARL: ("log_r_clip",), DoubleCARL: ("log_r_clip",), ALICES: ("log_r_clip", "alpha"),
             SCANDAL: ("alpha",), SALLINO: ("min_probability",)}


@pytest.mark.parametrize("cls", [SALLY, SALLINO, CARL, ALICES, NDE, SCANDAL, DoubleCARL])
@pytest.mark.parametrize("value", [True, False, np.True_])
def test_a_bool_is_not_a_number(cls, value):
    """bool is an Integral and a Real in Python, and scikit-learn's Interval(Integral / Real, ...) takes True as 1
    (lr=True trained at lr 1, log_r_clip=True clipped log r at 1)."""
    from sklearn.utils._param_validation import InvalidParameterError

    X = np.random.default_rng(0).normal(size=(20, 1))
    counts = _COUNTS + _COUNTS_OF.get(cls, ())
    for name in counts + _REALS + _REALS_OF.get(cls, ()):
        est = cls(**{name: value})
        assert name in est.get_params()
        kind = "an int" if name in counts else "a float"
        with pytest.raises(InvalidParameterError, match=rf"'{name}' parameter of {cls.__name__} must be {kind} "
                                                        rf"\(not a bool\).* Got {value!r} instead"):
            est.fit(X, X[:, 0])  # refused by the parameter validation, before the data are looked at


def test_ensemble_counts_refuse_bools():
    from sklearn.utils._param_validation import InvalidParameterError

    from skminer.estimators import Ensemble

    X = np.random.default_rng(0).normal(size=(20, 1))
    for params in ({"n_estimators": True}, {"n_jobs": True}, {"n_jobs": False}):
        with pytest.raises(InvalidParameterError, match=rf"'{next(iter(params))}' parameter of Ensemble"):
            Ensemble(SALLY(max_epochs=1), **params).fit(X, X[:, 0])


class _BatchRecorder(Callback):
    """Records into the current batch row from both batch hooks (as skorch callbacks may)."""

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        net.history.record_batch("seen_at_begin", len(net.history[-1]["batches"]))

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        net.history.record_batch("loss_at_end", kwargs["loss"].item())
        net.history.record_batch("training", bool(training))


@pytest.mark.parametrize("plain_history", [True, False])
def test_net_records_every_batch_and_calls_the_batch_hooks_as_skorch(plain_history):
    """One history row per batch, written before the callbacks' on_batch_begin, with the loss and batch size;
    a history that is not skorch's plain ``History`` gets the same rows through its own ``record_batch``."""
    from skorch.history import History

    from skminer.estimators._net import RandomValidSplit, SkminerNet, TensorBatchIterator, TensorDictDataset
    from skminer.estimators.losses import ScoreCriterion

    class OwnHistory(History):
        pass

    gen = torch.Generator().manual_seed(0)
    data = TensorDictDataset({"input": torch.randn(100, 2, generator=gen)},
                             {"t_xz": torch.randn(100, 1, generator=gen)})
    net = SkminerNet(module=torch.nn.Linear, module__in_features=2, module__out_features=1,
                     criterion=ScoreCriterion, optimizer=torch.optim.SGD, lr=0.1, max_epochs=2, batch_size=32,
                     train_split=RandomValidSplit(0.2, 0), iterator_train=TensorBatchIterator,
                     iterator_valid=TensorBatchIterator, iterator_valid__batch_size=16,
                     callbacks=[("recorder", _BatchRecorder())], verbose=0)
    net.initialize()
    if not plain_history:
        net.history_ = OwnHistory()
    net.partial_fit(data, None)
    assert type(net.history) is (History if plain_history else OwnHistory)
    for epoch in net.history:
        train = [b for b in epoch["batches"] if "train_loss" in b]
        valid = [b for b in epoch["batches"] if "valid_loss" in b]
        assert [b["train_batch_size"] for b in train] == [32, 32, 16]  # 80 training rows
        assert [b["valid_batch_size"] for b in valid] == [16, 4]
        assert len(train) + len(valid) == len(epoch["batches"])
        assert [b["seen_at_begin"] for b in epoch["batches"]] == list(range(1, 6))  # the row exists already
        assert all(b["loss_at_end"] == b.get("train_loss", b.get("valid_loss")) for b in epoch["batches"])
        assert [b["training"] for b in epoch["batches"]] == [True] * 3 + [False] * 2
        assert epoch["train_batch_count"] == 3 and epoch["valid_batch_count"] == 2
        assert epoch["train_loss"] == pytest.approx(np.average([b["train_loss"] for b in train], weights=[32, 32, 16]))
