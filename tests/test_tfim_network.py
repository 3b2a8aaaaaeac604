"""Transverse-field Ising networks (Scellier 2024, Sec. 4.1), the spin cost and tfim-network."""

from __future__ import annotations

import json
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qeprop import ProblemError
from qeprop.experiments import get_experiment
from qeprop.experiments.tfim_network import (
    TFIMNetworkExperiment,
    load_dataset,
    spin_cost,
    targets,
)
from qeprop.gradients import GradientOptions, batch_mean_gradient, estimate_gradient
from qeprop.losses import LOSSES, MeanSquaredError, SpinCost, make_loss
from qeprop.models.tfim_network import build_network, graph_edges, parse_edges
from qeprop.pauli import PauliSum
from qeprop.runs import RunInterrupted, load_checkpoint, resume_run, start_run
from qeprop.solvers import StateSpec
from qeprop.system import QEPSystem

I2 = np.eye(2)
X = np.array([[0.0, 1.0], [1.0, 0.0]])
Z = np.diag([1.0, -1.0])
SPEC = StateSpec(tol=1e-12, gap_tol=1e-10)
#: a fast run: one shifted input spin per feature, no hidden layer (4 + 3 = 7 qubits)
SMALL_RUN = {
    "steps": 4, "eval_every": 2, "checkpoint_every": 2, "batch_size": 4,
    "thresholds": [0.3], "shots": 1000,
}  # fmt: skip


def op(n: int, **at: np.ndarray) -> np.ndarray:
    """Kronecker product with the given single-qubit matrices (``q3=Z``), qubit 0 leftmost."""
    return reduce(np.kron, [at.get(f"q{k}", I2) for k in range(n)])


def ground_z(net: Any, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """⟨Z_o⟩ of the output spins in the ground state of the dense matrix."""
    h = net.dense(x, theta)
    _, vecs = np.linalg.eigh(h)
    psi = vecs[:, 0]
    n = net.n_spins
    return np.array([psi @ op(n, **{f"q{o}": Z}) @ psi for o in net.output_spins])


# ------------------------------------------------------------------------------ the model
def test_hamiltonian_matches_a_hand_built_matrix() -> None:
    """Inputs 0, 1, bias 2, hidden 3, output 4: H = -Σ J ZZ - Σ h X - Σ x Z (eqs. 33, 38)."""
    net = build_network(2, 1, (1,), bias="spin", bias_field=0.7)
    assert net.input_spins == (0, 1) and net.bias_spin == 2
    assert net.hidden_spins == (3,) and net.output_spins == (4,)
    assert net.edges == ((0, 3), (1, 3), (2, 3), (3, 4))
    assert net.system.hamiltonian.params[:3] == ("x[0]", "x[1]", "x[bias]")
    assert net.trainable == (
        "J[0,3]", "J[1,3]", "J[2,3]", "J[3,4]", "h[0]", "h[1]", "h[2]", "h[3]", "h[4]",
    )  # fmt: skip
    assert net.system.output_names == ("Z4",)
    rng = np.random.default_rng(1)
    theta = rng.standard_normal(len(net.trainable))
    x = np.array([0.4, -1.3])
    n = 5
    ref = np.zeros((32, 32))
    for (j, k), jv in zip(net.edges, theta[:4], strict=True):
        ref -= jv * op(n, **{f"q{j}": Z, f"q{k}": Z})
    for k in range(n):
        ref -= theta[4 + k] * op(n, **{f"q{k}": X})
    for q, v in ((0, 0.4), (1, -1.3), (2, 0.7)):
        ref -= v * op(n, **{f"q{q}": Z})
    np.testing.assert_allclose(net.dense(x, theta), ref, atol=1e-14)
    # a batch of inputs gives a batch of parameter vectors
    vals = net.values(np.stack([x, -x]), theta)
    assert vals.shape == (2, 3 + len(theta)) and np.all(vals[:, 2] == 0.7)


def test_graphs_and_their_names() -> None:
    net = build_network(3, 2, (2, 2), graph="layered", bias="none")
    assert len(net.edges) == 3 * 2 + 2 * 2 + 2 * 2 and net.n_spins == 9
    full = build_network(3, 2, (2, 2), graph="all-to-all", bias="none")
    assert len(full.edges) == 9 * 8 // 2
    fields = build_network(2, 2, (2,), bias="fields")
    assert fields.bias_names == ("g[2]", "g[3]", "g[4]", "g[5]") and fields.bias_spin is None
    own = build_network(2, 1, (1,), graph="edges", edges=("0-3", "1-3", "2-4", "3-4"))
    assert own.edges == ((0, 3), (1, 3), (2, 4), (3, 4))
    assert "J[2,4]" in own.trainable
    assert parse_edges([(4, 1), "2-3"], 5) == [(1, 4), (2, 3)]
    assert graph_edges("all-to-all", [[0], [1, 2]]) == [(0, 1), (0, 2), (1, 2)]


def test_bad_networks_name_the_culprit() -> None:
    cases = [
        (dict(hidden=(0,)), "hidden[0]"),
        (dict(hidden=(-2,)), "hidden[0]"),
        (dict(graph="ring"), "graph"),
        (dict(bias="both"), "bias"),
        (dict(graph="edges", edges=("0-99",)), "edges[0]"),
        (dict(graph="edges", edges=("1-1",)), "edges[0]"),
        (dict(graph="edges", edges=("0-4", "4-0")), "edges[1]"),
        (dict(graph="edges", edges=("a-b",)), "edges[0]"),
        (dict(graph="edges", edges=("0-1",)), "edges"),  # the output is cut off
        (dict(edges=("0-4",)), "edges"),  # an edge list needs graph = edges
        (dict(hidden=(30,)), "hidden"),  # beyond MAX_SPINS
    ]
    for kwargs, where in cases:
        with pytest.raises(ProblemError) as e:
            build_network(2, 1, **{"hidden": (1,), **kwargs})  # type: ignore[arg-type]
        assert e.value.where == where, (kwargs, e.value)


def test_spin_flip_symmetry_makes_outputs_odd_without_a_bias() -> None:
    """P = Π X commutes with eq. 33 and maps H(x) to H(-x): ⟨Z_o⟩(-x) = -⟨Z_o⟩(x) there;
    a bias spin (or field) breaks it, and at x = 0 the outputs of eq. 33 vanish."""
    rng = np.random.default_rng(2)
    x = np.array([0.8, -0.3])
    plain = build_network(2, 2, (1,), bias="none")
    theta = plain.init_params(rng)
    z, z_flip = ground_z(plain, x, theta), ground_z(plain, -x, theta)
    np.testing.assert_allclose(z_flip, -z, atol=1e-10)
    assert np.max(np.abs(z)) > 0.05
    np.testing.assert_allclose(ground_z(plain, np.zeros(2), theta), 0.0, atol=1e-10)
    biased = build_network(2, 2, (1,), bias="spin")
    theta = biased.init_params(np.random.default_rng(2))
    z, z_flip = ground_z(biased, x, theta), ground_z(biased, -x, theta)
    assert np.max(np.abs(z_flip + z)) > 1e-3


# ------------------------------------------------------------------------------ the spin cost
def test_spin_cost_value_error_signal_and_checks() -> None:
    t = np.array([1.0, -1.0, -1.0])
    loss = SpinCost(t)
    y = np.array([0.2, -0.5, 0.9])
    val, eps = loss(y)
    assert val == pytest.approx(np.sum(1 + t * t - 2 * t * y))
    np.testing.assert_array_equal(eps, -2 * t)
    # ⟨C⟩ exceeds Σ (y - t)² by the variances Σ (1 - y²) of the ±1 outputs
    assert val == pytest.approx(MeanSquaredError(t)(y)[0] + np.sum(1 - y**2))
    assert LOSSES["spin_cost"] is SpinCost
    z = {f"z{k}": PauliSum.from_terms([(1.0, f"Z{k}")]) for k in range(3)}
    assert isinstance(make_loss("spin_cost", t, 3, outputs=z), SpinCost)
    proj = {"p": PauliSum.projector({0: 0})}
    with pytest.raises(ProblemError) as e:
        make_loss("spin_cost", [1.0], 1, outputs=proj)
    assert e.value.where == "loss.kind" and "square to the identity" in e.value.message
    np.testing.assert_allclose(spin_cost(np.array([[0.2, -0.5, 0.9]]), np.array([0])), [val])
    np.testing.assert_array_equal(targets(np.array([2, 0]), 3), [[-1, -1, 1], [1, -1, -1]])


def _cost_twins(beta: float) -> tuple[Any, QEPSystem, np.ndarray, np.ndarray]:
    """A network, the same network with C = Σ_o (1 + t² - 2 t Z_o) as its cost observable, the
    parameter values and the target."""
    net = build_network(2, 2, (2,), bias="spin")
    t = np.array([1.0, -1.0])
    c = PauliSum.from_terms(
        [(float(np.sum(1 + t * t)), "")]
        + [(-2 * ti, f"Z{o}") for ti, o in zip(t, net.output_spins, strict=True)]
    )
    with_cost = QEPSystem(net.system.hamiltonian, trainable=net.trainable, cost=c)
    theta = net.init_params(np.random.default_rng(4))
    return net, with_cost, net.values(np.array([0.6, -0.9]), theta), t


def test_output_nudge_with_the_spin_cost_is_h_plus_beta_c() -> None:
    """ν = β ε with ε = -2t on the outputs is H + βC up to the constant β Σ (1 + t²)."""
    beta = 0.37
    net, with_cost, values, t = _cost_twins(beta)
    _, eps = SpinCost(t)(np.zeros(2))
    nudged = net.system.full.dense(
        net.system.full_values(
            values, {f"nu[Z{o}]": beta * e for o, e in zip(net.output_spins, eps, strict=True)}
        )
    )
    h_plus_c = with_cost.full.dense(with_cost.full_values(values, {"nu[cost]": beta}))
    const = beta * float(np.sum(1 + t * t))
    np.testing.assert_allclose(nudged + const * np.eye(len(nudged)), h_plus_c, atol=1e-13)


@pytest.mark.parametrize("variant", ["positive", "negative", "centered"])
def test_spin_cost_gradient_is_the_cost_observable_gradient(variant: str) -> None:
    beta = 0.2
    net, with_cost, values, t = _cost_twins(beta)
    opts = GradientOptions(nudge=beta, state=SPEC, variant=variant, warn_window=False)
    out = estimate_gradient(net.system, values, SpinCost(t), estimator=variant, options=opts)
    cost = estimate_gradient(with_cost, values, None, estimator="cost_observable", options=opts)
    np.testing.assert_allclose(out.gradient, cost.gradient, atol=1e-9)
    assert out.loss == pytest.approx(cost.loss, abs=1e-10)


# ------------------------------------------------------------------------------ gradients
def test_qep_gradient_against_linear_response_and_finite_differences() -> None:
    """Three routes to ∂⟨C⟩/∂θ; the nudged ones converge as O(β) (one-sided), O(β²) (centred)."""
    net, _, values, t = _cost_twins(0.1)
    loss = SpinCost(t)
    opts = GradientOptions(state=SPEC, warn_window=False, fd_step=1e-4)
    exact = estimate_gradient(net.system, values, loss, estimator="linear_response", options=opts)
    fd = estimate_gradient(net.system, values, loss, estimator="finite_difference", options=opts)
    g = exact.gradient
    assert np.linalg.norm(g) > 0.1
    np.testing.assert_allclose(fd.gradient, g, atol=1e-6)
    for variant, order in (("positive", 1), ("negative", 1), ("centered", 2)):
        errs = []
        for beta in (0.02, 0.01):
            o = GradientOptions(nudge=beta, state=SPEC, warn_window=False)
            rec = estimate_gradient(net.system, values, loss, estimator=variant, options=o)
            errs.append(np.linalg.norm(rec.gradient - g))
        assert errs[0] < 0.05 * np.linalg.norm(g)
        assert np.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.15), variant


def test_one_sided_biases_have_opposite_signs() -> None:
    """(⟨A⟩_{+β} - ⟨A⟩_0)/β and (⟨A⟩_0 - ⟨A⟩_{-β})/β straddle the exact gradient: their mean
    is the centred estimate, their difference β ⟨A⟩'' (Scellier eq. 13 in the small-β limit)."""
    net, _, values, t = _cost_twins(0.1)
    loss = SpinCost(t)
    o = GradientOptions(nudge=0.05, state=SPEC, warn_window=False)
    grads = {
        v: estimate_gradient(net.system, values, loss, estimator=v, options=o).gradient
        for v in ("positive", "negative", "centered")
    }
    np.testing.assert_allclose(
        0.5 * (grads["positive"] + grads["negative"]), grads["centered"], atol=1e-9
    )


def test_experiment_exact_gradient_is_linear_response() -> None:
    exp = get_experiment("tfim-network")
    cfg = exp.resolve({**SMALL_RUN, "shots": None, "nudge": 0.01})
    data, model = exp.data(cfg), exp.model(cfg)
    theta = exp.init(cfg).arrays["params"]
    idx = np.array([0, 17, 33, 60, 88])
    g, loss = exp.exact_gradient(cfg, theta, data.x_train[idx], data.y_train[idx])
    losses = [SpinCost(t) for t in targets(data.y_train[idx], 3)]
    ref, ref_loss = batch_mean_gradient(
        model.system, model.values(data.x_train[idx], theta), losses,
        estimator="linear_response", options=exp.options(cfg), rng=None,
    )  # fmt: skip
    np.testing.assert_allclose(g, ref, atol=1e-7)
    assert loss == pytest.approx(ref_loss, abs=1e-7)
    qep, _ = exp.qep_gradient(cfg, theta, data.x_train[idx], data.y_train[idx], None)
    np.testing.assert_allclose(qep, g, atol=1e-3 * np.linalg.norm(g))


# ------------------------------------------------------------------------------ data and config
def test_dataset_split_is_stratified_seeded_and_standardised() -> None:
    d = load_dataset("iris", 0.4, 0, 3.0, None, (-0.5, 0.5))
    assert d.x_train.shape == (90, 8) and d.x_test.shape == (60, 8)
    assert np.bincount(d.y_test).tolist() == [20, 20, 20]
    assert sorted([*d.train_index, *d.test_index]) == list(range(150))
    # training-set statistics: the shifted columns have mean -input_scale c and sd input_scale
    np.testing.assert_allclose(d.x_train.mean(axis=0), [1.5] * 4 + [-1.5] * 4, atol=1e-12)
    np.testing.assert_allclose(d.x_train.std(axis=0), 3.0, rtol=1e-12)
    again = load_dataset.__wrapped__("iris", 0.4, 0, 3.0, None, (-0.5, 0.5))
    np.testing.assert_array_equal(again.x_test, d.x_test)
    other = load_dataset("iris", 0.4, 1, 3.0, None, (-0.5, 0.5))
    assert not np.array_equal(other.test_index, d.test_index)
    pcs = load_dataset("wine", 0.4, 0, 1.0, 3)
    assert pcs.x_train.shape == (106, 3) and pcs.feature_names == ("PC1", "PC2", "PC3")
    np.testing.assert_allclose(pcs.x_train.std(axis=0), 1.0, rtol=1e-12)


def test_defaults_and_bad_configuration_values() -> None:
    exp = get_experiment("tfim-network")
    cfg = exp.resolve({})
    assert isinstance(exp, TFIMNetworkExperiment)
    assert exp.model(cfg).n_spins == 11 and cfg.variant == "centered" and cfg.noisy_outputs
    assert cfg.label == "centered β=0.1 M=1000"
    assert exp.resolve({"components": 3, "dataset": "wine"}).components == 3
    bad = [
        ({"hidden": [-1]}, "hidden[0]"),
        ({"hidden": [0]}, "hidden[0]"),
        ({"hidden": [6]}, "hidden"),  # 8 + 6 + 3 = 17 qubits
        ({"graph": "ring"}, "graph"),
        ({"graph": "edges"}, "edges"),  # no edge list
        ({"graph": "edges", "edges": ["0-50"]}, "edges[0]"),
        ({"nudge": 0}, "nudge"),
        ({"nudge": -0.1}, "nudge"),
        ({"nudge": float("nan")}, "nudge"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"input_scale": float("nan")}, "input_scale"),
        ({"variant": "both"}, "variant"),
        ({"shots": 0}, "shots"),
        ({"batch_size": 91}, "batch_size"),
        ({"dataset": "mnist"}, "dataset"),
        ({"dataset": "wine"}, "hidden"),  # 26 input spins
        ({"components": 5}, "components"),  # iris has 4 features
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"thresholds": []}, "thresholds"),
        ({"min_field": -1}, "min_field"),
        ({"widths": [3]}, "widths"),
    ]
    for values, where in bad:
        with pytest.raises(ProblemError) as e:
            exp.resolve(values)
        assert e.value.where == where, (values, e.value)


# ------------------------------------------------------------------------------ runs
def _same(a: Path, b: Path) -> None:
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa == sb
    with np.load(a / "results.npz") as za, np.load(b / "results.npz") as zb:
        assert za.files == zb.files
        for k in za.files:
            np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


def test_short_run_summary_resume_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = start_run("tfim-network", SMALL_RUN, tmp_path / "ref", progress=False)
    final = json.loads((ref / "summary.json").read_text())["final"]
    for key in ("test_accuracy", "exact_twin_test_accuracy", "train_accuracy",
                "exact_twin_train_accuracy", "shots", "nudge", "variant"):  # fmt: skip
        assert key in final
    assert final["shots"] == 1000 and final["nudge"] == 0.1 and final["variant"] == "centered"
    assert 0 <= final["test_accuracy"] <= 1 and final["n_test"] == 60
    records = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2, 4]
    # the twins start together and part (shot noise, finite nudge)
    assert records[0]["twin_distance"] == 0 and records[-1]["twin_distance"] > 0
    with np.load(ref / "results.npz") as z:
        assert z["test_outputs"].shape == (60, 3) and z["params"].shape == z["twin_params"].shape

    # interrupted inside step 3 (after the checkpoint of step 2), then resumed: the same run
    calls = {"n": 0}
    original = TFIMNetworkExperiment.step

    def interrupted(self: Any, config: Any, state: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, config, state)

    monkeypatch.setattr(TFIMNetworkExperiment, "step", interrupted)
    d = tmp_path / "resumed"
    with pytest.raises(RunInterrupted):
        start_run("tfim-network", SMALL_RUN, d, progress=False)
    monkeypatch.undo()
    assert load_checkpoint(d).step == 2
    resume_run(d, progress=False)
    _same(d, ref)

    from qeprop.plotting import plot_runs

    written = plot_runs([ref, d], tmp_path / "plots")
    assert [p.name for p in written] == ["tfim_curves.png"]
    assert written[0].stat().st_size > 10_000
