"""The oscillator network (Scellier eqs. 41-42), its classical twin, and the experiment.

Physics checks: the classical twin's adjoint gradient against finite differences of its loss,
classical EP against it (centred O(β²), one-sided O(β), fitted); the quantum network's outputs
and QEP gradients against the classical ones as ħ → 0 (zero-point motion adds O(ħ)), and the
zero-point part against the normal-mode formula ``Var(r_a - r_b) = (ħ/2) dᵀ (mK)^{-1/2} d``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import sqrtm

from qeprop import estimate_gradient
from qeprop.errors import ConvergenceError, ProblemError
from qeprop.experiments import get_experiment
from qeprop.losses import MeanSquaredError
from qeprop.measurement import expectations
from qeprop.models import oscillator_network as osc
from qeprop.runs import load_checkpoint, save_checkpoint, start_run
from qeprop.solvers import StateSpec, solve


@pytest.fixture(scope="module")
def case():
    net = osc.random_network(8, 5, 2, 2, seed=0)
    twin = osc.ClassicalNetwork(net)
    rng = np.random.default_rng(1)
    k = rng.uniform(0.5, 2.0, len(net.edges))
    f = rng.standard_normal(2)
    t = twin.outputs(k, f) + np.array([0.3, -0.2])
    return net, twin, k, f, t


def test_network_is_connected_pinned_and_stable(case) -> None:
    net, _, k, _, _ = case
    assert len(net.edges) == 7 + 5 and net.pinned and len(net.outputs) == 2
    assert np.all(np.linalg.eigvalsh(net.stiffness(k)) > 0)
    with pytest.raises(ProblemError, match="zero mode"):
        osc.ElasticNetwork(3, ((0, 1), (1, 2)), (), (0,), ((1, 2),))
    with pytest.raises(ProblemError, match="need at least"):
        osc.random_network(4, 0, 2, 2, 0)


def test_classical_adjoint_gradient_matches_finite_differences(case) -> None:
    _, twin, k, f, t = case
    g = twin.exact_gradient(k, f, t)
    h = 1e-6
    fd = [
        (twin.loss(k + h * e, f, t) - twin.loss(k - h * e, f, t)) / (2 * h) for e in np.eye(len(k))
    ]
    # central differences: truncation O(h²) ~ 1e-12, rounding ~ 1e-16 |L| / h ~ 1e-10
    np.testing.assert_allclose(fd, g, rtol=1e-6, atol=1e-8)


def test_classical_ep_converges_at_its_order(case) -> None:
    _, twin, k, f, t = case
    g = twin.exact_gradient(k, f, t)
    betas = np.array([4e-3, 2e-3, 1e-3])
    for variant, order in (("positive", 1), ("negative", 1), ("centered", 2)):
        err = [np.linalg.norm(twin.ep_gradient(k, f, t, b, variant) - g) for b in betas]
        slope = np.polyfit(np.log(betas), np.log(err), 1)[0]
        # fitted order of the error: within 0.15 of 1 (one-sided) or 2 (centred)
        assert abs(slope - order) < 0.15, (variant, slope)


def test_classical_nudge_without_a_minimum_is_refused(case) -> None:
    # a strongly negative nudge of the quartic cost makes E + βC lose its local minimum
    _, twin, k, f, t = case
    with pytest.raises(ConvergenceError, match="no minimum near the free state"):
        twin.equilibrium(k, f, -50.0, t)


def test_quantum_outputs_add_zero_point_motion(case) -> None:
    net, twin, k, f, _ = case
    hbar = 0.4
    system = osc.quantum_system(net, hbar)
    h = system.full
    vals = system.full_values(np.concatenate([f, k]))
    st = solve(h, vals, StateSpec(method="gaussian"))
    ident, coef = system.output_coefficients
    y = expectations(h, st, ident, coef)
    # V_rr = (ħ/2) (m K)^{-1/2} for H = p²/2m + rᵀKr/2 (normal modes)
    vrr = 0.5 * hbar * np.linalg.inv(sqrtm(net.mass * net.stiffness(k)).real)
    d = net.readout
    expected = twin.outputs(k, f) + np.einsum("oi,ij,oj->o", d, vrr, d)
    np.testing.assert_allclose(y, expected, rtol=1e-10)


@pytest.mark.parametrize("estimator", ["linear_response", "centered"])
def test_quantum_gradient_tends_to_the_classical_one(case, estimator: str) -> None:
    net, twin, k, f, t = case
    g = twin.exact_gradient(k, f, t)
    errs = []
    hbars = np.array([1e-2, 1e-4, 1e-6])
    for hbar in hbars:
        system = osc.quantum_system(net, hbar)
        rec = estimate_gradient(
            system, np.concatenate([f, k]), MeanSquaredError(t), estimator=estimator,
            nudge=1e-4, state=StateSpec(method="gaussian"), warn_window=False,
        )  # fmt: skip
        errs.append(np.linalg.norm(rec.gradient - g) / np.linalg.norm(g))
    # zero-point motion shifts every output by O(ħ), hence the error signal and the gradient:
    # the difference is linear in ħ (fitted slope 1; the centred estimate's own O(β²) ~ 1e-8
    # relative error is far below it) and vanishes with ħ
    slope = np.polyfit(np.log(hbars), np.log(errs), 1)[0]
    assert abs(slope - 1) < 0.02, slope
    assert errs[-1] < 1e-4


def test_experiment_trains_both_twins_and_resumes(tmp_path) -> None:
    overrides = {"steps": 6, "eval_every": 3, "checkpoint_every": 2, "nodes": 6,
                 "extra_edges": 3, "n_train": 8, "n_test": 6, "batch_size": 2,
                 "learning_rate": 0.05}  # fmt: skip
    full = start_run("oscillator-network", overrides, tmp_path / "full", progress=False)
    summary = json.loads((full / "summary.json").read_text())
    final = summary["final"]
    for key in ("test_loss", "twin_test_loss", "initial_test_loss", "test_loss_reduction",
                "zero_point", "spring_difference"):  # fmt: skip
        assert key in final and np.isfinite(final[key]), key
    assert final["zero_point"] > 0  # ħ = 0.3 by default
    # stepping in process, through a checkpoint written and read back at step 3, ends with the
    # run's springs bit for bit (the RNG state and both optimisers live in the checkpoint)
    exp = get_experiment("oscillator-network")
    cfg = exp.resolve(overrides)
    state = exp.init(cfg)
    for _ in range(3):
        state = exp.step(cfg, state)
    save_checkpoint(tmp_path, state)
    state = load_checkpoint(tmp_path)
    for _ in range(3):
        state = exp.step(cfg, state)
    saved = np.load(full / "results.npz")
    np.testing.assert_array_equal(saved["params"], state.arrays["params"])
    np.testing.assert_array_equal(saved["twin_params"], state.arrays["twin_params"])
    assert not np.array_equal(saved["params"], saved["twin_params"])  # ħ > 0: they differ

    from qeprop.plotting import plot_runs

    written = plot_runs([full], tmp_path / "plots")  # what `qeprop plot` draws for the run
    assert [p.name for p in written] == ["oscillator_curves.png", "oscillator_springs.png"]
    assert all(p.stat().st_size > 10_000 for p in written)


def test_bad_configurations_are_refused() -> None:
    exp = get_experiment("oscillator-network")
    for bad, where in (
        ({"batch_size": 50, "n_train": 10}, "batch_size"),
        ({"estimator": "linear_response", "shots": 10}, "shots"),
        ({"hbar": 0}, "hbar"),
        ({"hbar": float("nan")}, "hbar"),
        ({"nodes": 5, "extra_edges": 100}, "extra_edges"),
        ({"estimator": "bogus"}, "estimator"),
    ):
        with pytest.raises(ProblemError) as info:
            exp.resolve(bad)
        assert where in str(info.value), (bad, str(info.value))
