"""The Kitaev honeycomb model, its phase sensor, the kitaev-sensor experiment and Adamax."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from qeprop import MeanSquaredError, ProblemError
from qeprop.experiments import TrainState, get_experiment
from qeprop.experiments.classification import classification_metrics
from qeprop.gradients import GradientOptions, batch_nudged_gradients, estimate_gradient
from qeprop.models import kitaev
from qeprop.optim import adamax
from qeprop.solvers import StateSpec

#: 8 lattice spins + 2 sensor qubits: the authors' sensor on the smallest honeycomb torus
SMALL = {"nx": 4, "steps": 2, "eval_every": 1, "map_resolution": 2, "shots": 10000}


# ------------------------------------------------------------------------------ lattice and model
def test_authors_lattice_has_one_bond_of_each_type_per_site() -> None:
    lat = kitaev.lattice(8, 2, 0)
    assert {k: len(v) for k, v in lat.bonds.items()} == {"x": 8, "y": 8, "z": 8}
    assert all(sorted(nb) == ["x", "y", "z"] for nb in lat.neighbours())
    # on the 8x2 torus the z-bonds join the two rows: qubit i with i + 8
    assert sorted(tuple(sorted(b)) for b in lat.bonds["z"]) == [(i, i + 8) for i in range(8)]
    # the sensor's bond operators are bonds of the lattice of their type
    names = [name for name, _ in kitaev.sensor_bonds(8)]
    assert names == ["Z0Z8", "X0X1", "Y1Y2"]
    assert (0, 1) in lat.bonds["x"] and (1, 2) in lat.bonds["y"] and (0, 8) in lat.bonds["z"]
    assert len(kitaev.hamiltonian_terms()) == 24


def test_bad_lattices_raise() -> None:
    for nx, ny, twist in ((3, 2, 0), (8, 3, 0), (8, 2, 1), (2, 2, 0)):
        with pytest.raises(ProblemError):
            kitaev.lattice(nx, ny, twist)


def test_sensor_has_33_couplings_and_complementary_readouts() -> None:
    layout = kitaev.sensor_layout(8, 2)
    assert len(layout.names) == 33 and int(layout.system_sensor.sum()) == 18
    assert layout.names[0] == "v[Z0Z8,X16]" and layout.names[17] == "v[Y1Y2,Z17]"
    assert layout.names[18:24] == ("h[X16]", "h[Y16]", "h[Z16]", "h[X17]", "h[Y17]", "h[Z17]")
    assert layout.names[-1] == "j[Z16,Z17]"
    # P(A) + P(B) = 1: the two projectors sum to the identity string
    s = layout.outputs["A"] + layout.outputs["B"]
    assert len(s) == 1 and s.coefficient("") == pytest.approx(1.0)


def test_sensor_hamiltonian_is_hermitian_and_complex() -> None:
    exp = get_experiment("kitaev-sensor")
    cfg = exp.resolve({"nx": 4})
    model = exp.model(cfg)
    h = model.system.hamiltonian
    assert h.n_qubits == 10 and len(h.params) == 3 + 33
    vals = model.values([0.2, 0.3, 0.5], np.random.default_rng(3).standard_normal(33))
    dense = h.dense(vals)
    assert np.iscomplexobj(dense) and np.abs(dense.imag).max() > 0  # sensor Y terms
    np.testing.assert_allclose(dense, dense.conj().T, atol=1e-14)


@pytest.mark.parametrize("corner", [0, 1, 2])
def test_single_coupling_limit_is_decoupled_dimers(corner: int) -> None:
    """At J_a = 1 the model is 8 decoupled σ^a σ^a dimers: ground energy exactly -8."""
    j = np.zeros(3)
    j[corner] = 1.0
    h = kitaev.hamiltonian(8, 2, 0).sparse(j)
    # Lanczos on 2^16: the eigenvalue is converged far below 1e-8
    e = sla.eigsh(h, k=1, which="SA", tol=1e-10, v0=np.ones(h.shape[0]))[0][0]
    assert e == pytest.approx(-8.0, abs=1e-8)


def test_plaquettes_commute_with_h_and_the_ground_state_is_flux_free() -> None:
    ws = kitaev.plaquettes(8, 2, 0)
    assert len(ws) == 8 and all(w.weight == 6 for w in ws)
    ham = kitaev.hamiltonian(8, 2, 0)
    rng = np.random.default_rng(0)
    mats = [w.to_sparse(16) for w in ws]
    for j in rng.dirichlet(np.ones(3), size=2):
        h = ham.sparse(j)
        for w in mats:
            assert abs(h @ w - w @ h).max() == 0.0  # exact: the products are ±1 entries
    for i, wi in enumerate(ws):  # mutually commuting, and Π_p W_p = ±1 on the torus
        assert all(wi.commutes(wj) for wj in ws[i + 1 :])
    h = ham.sparse(np.full(3, 1 / 3))
    _, v = sla.eigsh(h, k=1, which="SA", tol=1e-10, v0=np.ones(h.shape[0]))
    # Lieb's theorem: the ground state lies in the flux-free sector (⟨W_p⟩ = +1 with these signs)
    flux = [np.vdot(v[:, 0], w @ v[:, 0]).real for w in mats]
    np.testing.assert_allclose(flux, 1.0, atol=1e-6)


# ------------------------------------------------------------------------------ labels and data
def test_label_rule() -> None:
    np.testing.assert_array_equal(kitaev.phase_labels(kitaev.TEST_POINTS), kitaev.TEST_LABELS)
    assert kitaev.TEST_POINTS.shape == (18, 3) and np.sum(kitaev.TEST_LABELS == 0) == 9
    pts = [[1, 0, 0], [0.5, 0.5, 0], [0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.45, 0.3, 0.25]]
    np.testing.assert_array_equal(kitaev.phase_labels(pts), [0, 0, 0, 1, 1])
    # scale invariant (four of the authors' test points have J_x + J_y + J_z = 14/15)
    np.testing.assert_array_equal(kitaev.phase_labels(np.array(pts) * 0.7), [0, 0, 0, 1, 1])
    with pytest.raises(ProblemError):
        kitaev.phase_labels([[0.1, 0.2]])


def test_sampler_is_balanced_and_on_the_triangle() -> None:
    x, labels = kitaev.sample_batch(60, np.random.default_rng(5))
    assert x.shape == (60, 3)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(x >= 0)
    np.testing.assert_array_equal(labels, kitaev.phase_labels(x))
    np.testing.assert_array_equal(labels[:6], [0, 0, 0, 1, 1, 1])
    # one point of each A phase per group: A_x, A_y, A_z in order
    np.testing.assert_array_equal(np.argmax(x[0:3], axis=1), [0, 1, 2])
    y, _ = kitaev.sample_batch(60, np.random.default_rng(5))
    np.testing.assert_array_equal(x, y)
    for bad in (0, 5, 7, 6.0):
        with pytest.raises(ProblemError):
            kitaev.sample_batch(bad, np.random.default_rng(0))  # type: ignore[arg-type]


def test_triangle_grid_and_coordinates() -> None:
    g = kitaev.triangle_grid(4)
    assert g.shape == (15, 3)
    np.testing.assert_allclose(g.sum(axis=1), 1.0)
    xy = kitaev.triangle_coordinates(np.eye(3))
    np.testing.assert_allclose(xy, [[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]], atol=1e-15)


def test_classification_metrics() -> None:
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    m = classification_metrics(probs, np.array([0, 1, 1]))
    assert m["max_choice_accuracy"] == pytest.approx(2 / 3) and m["n_correct"] == 2
    assert m["single_shot_accuracy"] == pytest.approx((0.9 + 0.6 + 0.3) / 3)
    assert m["loss"] == pytest.approx((0.02 + 0.32 + 0.98) / 3)


# ------------------------------------------------------------------------------ Adamax
def test_adamax_matches_a_hand_computation() -> None:
    opt = adamax(0.1)
    p = np.array([1.0, -1.0])
    st = opt.init(p)
    g1, g2 = np.array([0.5, -2.0]), np.array([-1.0, 1.0])
    p1, st = opt.update(p, g1, st)
    # step 1: m = 0.1 g, u = |g| + 1e-8, m / (1 - 0.9) = g, so θ moves by 0.1 sign(g)
    np.testing.assert_allclose(p1, p - 0.1 * g1 / (np.abs(g1) + 1e-8), rtol=1e-12)
    p2, st = opt.update(p1, g2, st)
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    u = np.maximum(0.999 * (np.abs(g1) + 1e-8), np.abs(g2) + 1e-8)
    np.testing.assert_allclose(p2, p1 - 0.1 * m / ((1 - 0.9**2) * u), rtol=1e-12)
    assert st["t"] == 2
    # it minimises a quadratic
    target = np.array([1.0, -2.0, 3.0])
    x, s = np.zeros(3), opt.init(np.zeros(3))
    for _ in range(600):
        x, s = opt.update(x, 2 * (x - target), s)
    np.testing.assert_allclose(x, target, atol=2e-2)


# ------------------------------------------------------------------------------ experiment
def test_defaults_are_the_authors_settings_and_are_validated() -> None:
    exp = get_experiment("kitaev-sensor")
    cfg = exp.resolve({})
    authors = {"steps": 400, "batch_size": 6, "shots": 10000, "nudge": 0.05,
               "learning_rate": 0.01, "optimiser": "adamax", "estimator": "centered",
               "nx": 8, "ny": 2, "hamiltonian": "kitaev"}  # fmt: skip
    assert {k: cfg[k] for k in authors} == authors
    assert exp.model(cfg).system.hamiltonian.n_qubits == 18
    for key, value in (("batch_size", 7), ("nx", 5), ("nx", 10), ("shots", 0),
                       ("optimiser", "sgd"), ("threads", 0), ("bogus", 1)):  # fmt: skip
        with pytest.raises(ProblemError) as e:
            exp.resolve({key: value})
        assert e.value.where == key or key == "nx"


def test_configuration_is_typed_with_cross_field_rules() -> None:
    from qeprop.experiments.kitaev_sensor import KitaevSensorConfig

    exp = get_experiment("kitaev-sensor")
    cfg = exp.resolve({"nx": 4, "ny": 4, "optimiser": "adam"})
    assert isinstance(cfg, KitaevSensorConfig) and cfg.label == "kitaev/adam"
    assert exp.resolve({"label": "mine"}).label == "mine"
    assert exp.resolve({"nx": 6}).nx == 6  # 6x2 = 12 spins
    # linear_response is exact: it needs shots = none, and takes it
    assert exp.resolve({"estimator": "linear_response", "shots": "none"}).shots is None
    for bad, key in (({"estimator": "linear_response"}, "shots"),  # default shots = 10000
                     ({"nx": 6, "ny": 4}, "nx"),  # 24 spins > 16
                     ({"ny": 3}, "ny"), ({"map_resolution": 0}, "map_resolution"),
                     ({"solver_tol": 0.0}, "solver_tol"), ({"nudge": float("nan")}, "nudge"),
                     ({"steps": 10**8}, "steps"), ({"seed": -1}, "seed")):  # fmt: skip
        with pytest.raises(ProblemError) as e:
            exp.resolve(bad)
        assert e.value.where == key, (bad, e.value)


def test_published_hamiltonian_is_the_cluster_ising_chain() -> None:
    exp = get_experiment("kitaev-sensor")
    h = exp.model(exp.resolve({"nx": 4, "hamiltonian": "published"})).system.hamiltonian
    zxz = [t for t in h.terms if t.param == "J_x"]
    assert len(zxz) == 8 and all(t.pauli.weight == 3 and t.coeff == 1.0 for t in zxz)
    assert all(t.coeff == -1.0 for t in h.terms if t.param in ("J_y", "J_z"))


def _train(exp, cfg, state: TrainState, n: int) -> TrainState:  # type: ignore[no-untyped-def]
    for _ in range(n):
        state = exp.step(cfg, state)
    return state


def test_small_run_is_deterministic_and_resumable() -> None:
    exp = get_experiment("kitaev-sensor")
    cfg = exp.resolve(SMALL)
    a = _train(exp, cfg, exp.init(cfg), 2)
    half = _train(exp, cfg, exp.init(cfg), 1)
    copied = TrainState(half.step, {k: v.copy() for k, v in half.arrays.items()}, dict(half.meta))
    b = _train(exp, cfg, copied, 1)
    np.testing.assert_array_equal(a.arrays["params"], b.arrays["params"])
    # the optimiser state is one value of the shared training loop (Adamax: m, u, t)
    np.testing.assert_array_equal(a.arrays["optimiser"]["u"], b.arrays["optimiser"]["u"])
    assert a.arrays["optimiser"]["t"] == b.arrays["optimiser"]["t"] == 2
    assert a.meta["rng"] == b.meta["rng"] and a.meta["train_loss"] == b.meta["train_loss"]
    # Adamax moves every coupling by at most lr per step (bias-corrected m / u <= 1)
    step = np.abs(a.arrays["params"] - exp.init(cfg).arrays["params"])
    assert step.max() <= 2 * cfg["learning_rate"] * (1 + 1e-9)


@pytest.mark.slow
def test_small_run_evaluates_independently_of_history_and_finishes() -> None:
    exp = get_experiment("kitaev-sensor")
    cfg = exp.resolve(SMALL)
    state = _train(exp, cfg, exp.init(cfg), 1)
    m1 = exp.evaluate(cfg, state)
    exp.evaluate(cfg, exp.init(cfg))  # other couplings in between
    assert exp.evaluate(cfg, state) == m1  # no cache: the same numbers
    assert 0 <= m1["max_choice_accuracy"] <= 1 and m1["n_correct"] <= 18
    summary, arrays = exp.finish(cfg, state)
    assert arrays["grid_probs"].shape == (6, 2) and arrays["test_probs"].shape == (18, 2)
    np.testing.assert_allclose(arrays["grid_probs"].sum(axis=1), 1.0, atol=1e-8)
    assert summary["n_test"] == 18 and summary["label"] == "kitaev/adamax"


@pytest.mark.parametrize("point", [0, 9, 12])
def test_centred_qep_gradient_agrees_with_linear_response(point: int) -> None:
    """Centred nudging has an O(β²) bias: halving β divides the error by 4."""
    exp = get_experiment("kitaev-sensor")
    cfg = exp.resolve({"nx": 4})
    model = exp.model(cfg)
    theta = exp.init(cfg).arrays["params"]
    values = model.values(kitaev.TEST_POINTS[point], theta)
    loss = MeanSquaredError(np.eye(2)[kitaev.TEST_LABELS[point]])
    spec = StateSpec(tol=1e-10, gap_tol=1e-10)
    opts = GradientOptions(state=spec, warn_window=False)
    ref = estimate_gradient(
        model.system, values, loss, estimator="linear_response", options=opts
    ).gradient
    errors = []
    for beta in (0.05, 0.025):
        opts = GradientOptions(nudge=beta, state=spec, warn_window=False)
        rec = batch_nudged_gradients(model.system, values[None], [loss], options=opts)[0]
        errors.append(np.linalg.norm(rec.gradient - ref))
    # the authors' β = 0.05 leaves an error of < 1 % of the gradient at these points
    assert errors[0] < 1e-2 * np.linalg.norm(ref)
    # β² scaling: ratio 4 up to O(β⁴) and the solver's 1e-10 residual
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.01)


def test_a_stalled_solve_repeats_the_step_with_the_same_draws(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A ConvergenceError at solver_tol repeats the step at 10x the tolerance, same batch."""
    from qeprop.errors import ConvergenceError
    from qeprop.experiments.kitaev_sensor import KitaevSensor

    exp = KitaevSensor()
    cfg = exp.resolve(SMALL)
    calls: list[tuple[float, np.ndarray]] = []
    original = KitaevSensor.batch_gradient

    def flaky(self, config, theta, x, labels, rng, relax=1.0):  # type: ignore[no-untyped-def]
        calls.append((relax, x.copy()))
        if relax == 1.0:
            rng.standard_normal(3)  # draws made before the failure must be replayed
            raise ConvergenceError("stalled")
        return original(self, config, theta, x, labels, rng, relax)

    monkeypatch.setattr(KitaevSensor, "batch_gradient", flaky)
    state = exp.step(cfg, exp.init(cfg))
    assert [c[0] for c in calls] == [1.0, 10.0]
    np.testing.assert_array_equal(calls[0][1], calls[1][1])
    assert state.meta["relaxed_steps"] == 1 and state.step == 1


def test_qeprop_plot_draws_the_kitaev_figures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``plot_runs`` dispatches a kitaev-sensor run to its curves and its map (saved files only)."""
    import json

    from qeprop.plotting import plot_runs
    from qeprop.runs import dump_toml

    d = tmp_path / "run"
    d.mkdir()
    (d / "config.toml").write_text(dump_toml({"experiment": "kitaev-sensor", "label": "k"}))
    rows = [{"step": s, "max_choice_accuracy": 0.5 + s / 100, "single_shot_accuracy": 0.5,
             "loss": 0.6 - s / 100, "n_correct": 9} for s in (0, 10, 20)]  # fmt: skip
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    grid = kitaev.triangle_grid(4)
    p_a = 1.0 - kitaev.phase_labels(grid).astype(float)
    np.savez(d / "results.npz", grid_points=grid, grid_probs=np.column_stack([p_a, 1 - p_a]),
             test_points=kitaev.TEST_POINTS, test_labels=kitaev.TEST_LABELS,
             test_probs=np.eye(2)[kitaev.TEST_LABELS])  # fmt: skip
    summary = {"experiment": "kitaev-sensor", "steps": 20, "final": {"max_choice_accuracy": 1.0}}
    (d / "summary.json").write_text(json.dumps(summary))
    written = plot_runs([d], tmp_path / "plots")
    assert sorted(p.name for p in written) == ["kitaev_curves.png", "kitaev_map.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
