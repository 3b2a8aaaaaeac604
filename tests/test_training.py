"""Batched solver and gradients, the sensor model, optimisers and the phase-recognition task."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_hamiltonian
from qeprop import MeanSquaredError, ProblemError, QEPSystem, StateSpec, estimate_gradient, solve
from qeprop.experiments import TrainState, get_experiment
from qeprop.gradients import GradientOptions, batch_nudged_gradients
from qeprop.models.sensor import sensor_layout
from qeprop.optim import adam, inverse_time_decay, normalised_sgd, sgd
from qeprop.pauli import PauliSum
from qeprop.solvers.batch import solve_ground_batch

SMALL = {"chain_length": 4, "steps": 4, "batch_size": 3, "test_size": 6, "eval_every": 2,
         "map_resolution": 3}  # fmt: skip


@pytest.mark.parametrize("letters", ["IXZ", "IXYZ"])
def test_batch_solver_matches_reference_solver(letters: str) -> None:
    ham, v = random_hamiltonian(7, 24, 3, seed=4, letters=letters)
    rng = np.random.default_rng(0)
    values = v + 0.3 * rng.standard_normal((5, len(v)))
    spec = StateSpec(tol=1e-10, gap_tol=1e-6)
    states = solve_ground_batch(ham, values, spec)
    for st, val in zip(states, values, strict=True):
        ref = solve(ham, val, StateSpec(method="dense"))
        # the energy error is quadratic in the residual (tol 1e-10 relative): 1e-9 is generous
        assert abs(st.energies[0] - ref.energies[0]) < 1e-9
        assert abs(abs(np.vdot(st.vectors[:, 0], ref.vectors[:, 0])) - 1) < 1e-8
        # second Ritz value at residual 1e-6: its error is ~1e-12 ||H||^2 / gap
        assert abs(st.gap - ref.gap) < 1e-6


def test_batch_solver_warm_start_uses_fewer_steps() -> None:
    ham, v = random_hamiltonian(8, 30, 2, seed=5)
    values = np.array([v, v + 0.1])
    cold = solve_ground_batch(ham, values, StateSpec(tol=1e-8))
    warm = solve_ground_batch(ham, values + 1e-3, StateSpec(tol=1e-8), guesses=cold)
    again = solve_ground_batch(ham, values + 1e-3, StateSpec(tol=1e-8))
    assert sum(s.matvecs for s in warm) < sum(s.matvecs for s in again)


def test_batch_gradients_match_single_estimates() -> None:
    ham, v = random_hamiltonian(6, 18, 3, seed=6)
    system = QEPSystem(ham, {"p": PauliSum.projector({0: 0, 1: 1}), "z": "Z2"})
    rng = np.random.default_rng(1)
    values = v + 0.2 * rng.standard_normal((4, len(v)))
    losses = [MeanSquaredError(rng.uniform(0, 1, 2)) for _ in values]
    opts = GradientOptions(nudge=0.05, state=StateSpec(tol=1e-11))
    recs = batch_nudged_gradients(system, values, losses, options=opts)
    for rec, val, loss in zip(recs, values, losses, strict=True):
        ref = estimate_gradient(system, val, loss, estimator="centered", options=opts)
        # both solve to relative residual 1e-11; ⟨A⟩ differences divided by 2β = 0.1
        np.testing.assert_allclose(rec.gradient, ref.gradient, atol=1e-7)
        assert rec.preparations == ref.preparations == 3
        assert rec.loss == pytest.approx(ref.loss, abs=1e-9)


def test_batch_gradients_shot_counts_follow_single_estimates() -> None:
    ham, v = random_hamiltonian(5, 12, 2, seed=7)
    system = QEPSystem(ham, {"z": "Z0"})
    opts = GradientOptions(nudge=0.1, shots=20)
    recs = batch_nudged_gradients(
        system, np.array([v, v]), [MeanSquaredError([0.5])] * 2, options=opts,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    ref = estimate_gradient(system, v, MeanSquaredError([0.5]), options=opts, seed=0)
    assert [r.shots for r in recs] == [ref.shots] * 2
    assert np.all(recs[0].stderr > 0)


def test_sensor_layout_counts_and_init() -> None:
    lay = sensor_layout((8, 9), (0, 1), "xyz")
    assert len(lay.names) == 51 and lay.system_sensor.sum() == 36
    assert len(sensor_layout((8, 9), (0, 1), "xz").names) == 16 + 15
    assert len(sensor_layout((8, 9), (0, 1), "zz").names) == 4 + 15
    theta = lay.init_params(np.random.default_rng(0))
    assert np.all(np.abs(theta[lay.system_sensor]) <= 0.1)
    assert np.std(theta[~lay.system_sensor]) > 0.3  # standard normal sensor terms
    p = lay.outputs["ferromagnet"].to_dense(10)
    assert np.allclose(p @ p, p) and np.trace(p).real == pytest.approx(256)
    with pytest.raises(ProblemError):
        sensor_layout((8, 9), (0, 1), "xy")


def test_optimisers() -> None:
    target = np.array([1.0, -2.0, 3.0])

    def grad(x: np.ndarray) -> np.ndarray:
        return 2 * (x - target)

    for opt, steps in ((adam(0.1), 400), (sgd(0.1), 200)):
        x = np.zeros(3)
        st = opt.init(x)
        for _ in range(steps):
            x, st = opt.update(x, grad(x), st)
        np.testing.assert_allclose(x, target, atol=1e-2)
    # Adam's first step has length lr in every coordinate (bias correction)
    x1, _ = adam(0.01).update(np.zeros(3), grad(np.zeros(3)), adam(0.01).init(np.zeros(3)))
    np.testing.assert_allclose(np.abs(x1), 0.01, rtol=1e-6)
    x2, _ = normalised_sgd(0.5).update(np.zeros(3), grad(np.zeros(3)), {})
    assert np.linalg.norm(x2) == pytest.approx(0.5)


def test_inverse_time_decay_shrinks_normalised_steps_and_resumes() -> None:
    """Step t has length η/(1 + decay·t); the counter lives in the (checkpointed) state."""
    opt = inverse_time_decay(normalised_sgd, 0.1, 0.5)
    x, state = np.zeros(2), opt.init(np.zeros(2))
    lengths = []
    for _ in range(3):
        new, state = opt.update(x, np.array([3.0, 4.0]), state)
        lengths.append(float(np.linalg.norm(new - x)))
        x = new
    np.testing.assert_allclose(lengths, [0.1, 0.1 / 1.5, 0.1 / 2.0])
    assert state["schedule_t"] == 3
    # a fresh optimiser continued from the saved state takes the fourth step
    again, _ = inverse_time_decay(normalised_sgd, 0.1, 0.5).update(x, np.ones(2), dict(state))
    assert np.linalg.norm(again - x) == pytest.approx(0.1 / 2.5)
    # Adam's moments pass through the wrapper; decay 0 is the constant rate
    a = inverse_time_decay(adam, 0.01, 0.0)
    y, st = a.update(np.zeros(3), np.ones(3), a.init(np.zeros(3)))
    np.testing.assert_allclose(y, -0.01, rtol=1e-6)
    assert st["t"] == 1 and a.name == "adam"
    with pytest.raises(ValueError, match="decay"):
        inverse_time_decay(sgd, 0.1, -1.0)


def test_phase_recognition_config_is_validated() -> None:
    exp = get_experiment("phase-recognition")
    cfg = exp.resolve({})
    assert cfg["nudge"] == 0.4 and cfg["shots"] == 10 and cfg["batch_size"] == 10
    assert cfg["boundary"] == "periodic" and cfg["chain_length"] == 8
    for bad in ({"couplings": "xy"}, {"steps": -1}, {"nudge": -1.0}, {"bogus": 1}):
        with pytest.raises(ProblemError):
            exp.resolve(bad)


def _train(exp, cfg: dict, state: TrainState, steps: int) -> TrainState:
    for _ in range(steps):
        state = exp.step(cfg, state)
    return state


def test_phase_recognition_is_deterministic_and_resumable() -> None:
    exp = get_experiment("phase-recognition")
    cfg = exp.resolve(SMALL)
    a = _train(exp, cfg, exp.init(cfg), 4)
    half = _train(exp, cfg, exp.init(cfg), 2)
    # a checkpoint keeps arrays and JSON-able meta only: rebuild the state from copies
    copied = TrainState(half.step, {k: v.copy() for k, v in half.arrays.items()}, dict(half.meta))
    b = _train(exp, cfg, copied, 2)
    np.testing.assert_array_equal(a.arrays["params"], b.arrays["params"])
    metrics = exp.evaluate(cfg, a)
    assert 0 <= metrics["max_choice_accuracy"] <= 1
    assert 0 <= metrics["single_shot_accuracy"] <= 1
    summary, arrays = exp.finish(cfg, a)
    assert arrays["grid_probs"].shape == (len(arrays["grid_points"]), 3)
    assert arrays["params"].shape == (51,) and summary["label"] == "xyz/full"


def test_gradient_quality_small_nudge_overlap_is_high() -> None:
    exp = get_experiment("gradient-quality")
    cfg = exp.resolve({"chain_length": 4, "batches": 1, "batch_size": 2, "nudges": [0.01, 1.0],
                       "shots": [10], "shot_nudges": [0.1, 0.4]})  # fmt: skip
    st = exp.step(cfg, exp.init(cfg))
    over = st.arrays["overlap_vs_nudge"][:, 0]
    # centred nudging has an O(β²) bias: at β = 0.01 the overlap is 1 to ~1e-6
    assert over[0] > 0.9999
    assert np.all(np.abs(st.arrays["overlap_vs_shots"]) <= 1)


def test_batch_solver_hands_degenerate_levels_to_the_reference_solver() -> None:
    # the last qubit is untouched: every level is exactly two-fold degenerate
    ham, v = random_hamiltonian(6, 20, 2, seed=8, letters="IXZ")
    terms = [t for t in ham.terms if t.pauli.max_qubit < 5]
    from qeprop import ParametrisedHamiltonian

    h = ParametrisedHamiltonian(6, terms, params=ham.params)
    mixed = solve_ground_batch(h, np.array([v]), StateSpec(tol=1e-10))
    assert mixed[0].degeneracy == 2 and mixed[0].method != "batch-lanczos"
    with pytest.raises(Exception, match="degenerate"):
        solve_ground_batch(h, np.array([v]), StateSpec(tol=1e-10, degeneracy="error"))


@pytest.mark.parametrize("letters", ["IXZ", "IXYZ"])
def test_mask_data_and_many_expectations_match_dense_operators(letters: str) -> None:
    """The compiled flip-pattern data and string expectations against dense matrices."""
    from qeprop.measurement import string_expectations_many
    from qeprop.states import Equilibrium

    ham, v = random_hamiltonian(6, 20, 3, seed=9, letters=letters)
    rng = np.random.default_rng(2)
    values = v + 0.3 * rng.standard_normal((3, len(v)))
    st = ham.structure
    masks = st.mask_layout[0]
    data = st.mask_data(ham.string_coefficients(values))
    assert data.dtype == st.dtype and data.shape == (3, len(masks), ham.dim)
    rows = np.arange(ham.dim)
    for vals, dk in zip(values, data, strict=True):
        dense = ham.sparse(vals).toarray()
        for k, m in enumerate(masks):
            # H[r, r ^ m] = D[k, r]: the same few ±1 / ±i multiples of the coefficients, summed
            # in another order (rounding only)
            np.testing.assert_allclose(dk[k], dense[rows, rows ^ m], rtol=0, atol=1e-13)
    with pytest.raises(ProblemError, match="coefficients"):
        st.mask_data(np.ones((2, len(ham.strings) + 1)))
    states = solve_ground_batch(ham, values, StateSpec(tol=1e-10))
    # a mixed state goes one by one; a pure state of no engine joins the compiled pass
    q, _ = np.linalg.qr(rng.standard_normal((ham.dim, 2)) + 1j * rng.standard_normal((ham.dim, 2)))
    mixed = Equilibrium(vectors=q, weights=np.array([0.3, 0.7]), energies=np.zeros(2), gap=1.0)
    plain = Equilibrium(vectors=q[:, :1], weights=np.ones(1), energies=np.zeros(1), gap=1.0)
    states += [mixed, plain]
    got = string_expectations_many(ham, states)
    for row, state in zip(got, states, strict=True):
        rho = state.density_matrix()
        ref = [np.trace(rho @ p.to_sparse(ham.n_qubits).toarray()).real for p in ham.strings]
        # sums of 64 products of unit-norm amplitudes with ±1: rounding at 1e-15
        np.testing.assert_allclose(row, ref, rtol=0, atol=1e-12)


def test_batch_solver_is_independent_of_the_thread_count() -> None:
    """Each element is solved by one thread from its own inputs: bit-identical results."""
    import numba

    from qeprop.solvers.matrix_free import numba_threads

    ham, v = random_hamiltonian(7, 24, 3, seed=4, letters="IXYZ")
    values = v + 0.3 * np.random.default_rng(0).standard_normal((5, len(v)))
    spec = StateSpec(tol=1e-8, gap_tol=1e-5)
    runs = []
    for threads in sorted({1, min(2, int(numba.config.NUMBA_NUM_THREADS))}):  # type: ignore[attr-defined]
        with numba_threads(threads):
            cold = solve_ground_batch(ham, values, spec)
            warm = solve_ground_batch(ham, values + 1e-2, spec, guesses=cold)
        runs.append(cold + warm)
    for a, b in zip(runs[0], runs[-1], strict=True):
        np.testing.assert_array_equal(a.vectors, b.vectors)
        np.testing.assert_array_equal(a.energies, b.energies)
        assert a.matvecs == b.matvecs
        assert a.gap == b.gap or (np.isnan(a.gap) and np.isnan(b.gap))


def test_batch_solver_lowest_ritz_value_matches_lapack() -> None:
    """Laguerre's iteration on the Lanczos tridiagonal matrix against LAPACK."""
    from scipy.linalg import eigvalsh_tridiagonal

    from qeprop.solvers._lanczos_kernels import lowest_eigenvalue

    rng = np.random.default_rng(7)
    cases = [(rng.standard_normal(m), np.abs(rng.standard_normal(m))) for m in (1, 2, 3, 17, 60)]
    # a tiny coupling between two blocks with equal lowest levels: a near-double lowest root
    a = np.tile(rng.standard_normal(10), 2)
    b = np.tile(np.abs(rng.standard_normal(10)), 2)
    b[9] = 1e-9
    cases += [(a, b), (1e6 * rng.standard_normal(30), 1e6 * np.abs(rng.standard_normal(30)))]
    for alpha, beta in cases:
        m = len(alpha)
        ref = eigvalsh_tridiagonal(alpha, beta[: m - 1])[0]
        scale = np.abs(alpha).max() + 2 * np.abs(beta).max()
        # both are backward stable: agreement to a few ulps of the matrix norm
        assert abs(lowest_eigenvalue(alpha, beta, m) - ref) <= 1e-13 * scale


def test_batch_solver_rejects_bad_values_naming_the_parameter() -> None:
    ham, v = random_hamiltonian(5, 12, 2, seed=7)
    bad = np.array([v, v])
    bad[1, 1] = np.nan
    with pytest.raises(ProblemError, match="t1"):
        solve_ground_batch(ham, bad)
    with pytest.raises(ProblemError, match="parameter values"):
        solve_ground_batch(ham, np.ones((2, len(v) + 1)))


def test_phase_recognition_killed_and_resumed_equals_uninterrupted(tmp_path) -> None:
    """SIGKILL a real ``qeprop run phase-recognition`` (and then its resume) at steps drawn from a
    seeded schedule, resume to the end, compare with an uninterrupted run byte for byte."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from qeprop.runs import load_checkpoint, resume_run, start_run

    small = {"chain_length": 4, "steps": 60, "batch_size": 3, "test_size": 6, "eval_every": 5,
             "checkpoint_every": 3, "map_resolution": 3}  # fmt: skip
    ref = start_run("phase-recognition", small, tmp_path / "ref", progress=False)
    d = tmp_path / "killed"
    sets = [a for k, v in small.items() for a in ("--set", f"{k}={v}")]
    argv = [sys.executable, "-m", "qeprop.cli", "run", "phase-recognition", "--out", str(d),
            "--no-progress", *sets]  # fmt: skip
    rng = np.random.default_rng(60)
    schedule = sorted(rng.choice(np.arange(3, 45), size=2, replace=False).tolist())
    resumed = []
    for target in schedule:
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if json.loads((d / "checkpoint.json").read_text())["step"] >= target:
                        break
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.005)
            time.sleep(float(rng.uniform(0, 0.05)))  # somewhere inside the next step
            proc.kill()
        finally:
            proc.communicate(timeout=60)
        # killed at a checkpoint between steps 3 and 45 of 60, never after the end
        assert proc.returncode == -signal.SIGKILL
        assert not (d / "summary.json").exists()
        resumed.append(load_checkpoint(d).step)
        argv = [sys.executable, "-m", "qeprop.cli", "run", "--resume", str(d), "--no-progress"]
    resume_run(d, progress=False)
    assert json.loads((d / "provenance.json").read_text())["resumed_at"] == resumed
    a, b = np.load(ref / "results.npz"), np.load(d / "results.npz")
    # the same couplings: a lost or repeated step would differ by ~1e-3
    np.testing.assert_allclose(a["params"], b["params"], rtol=1e-12, atol=1e-14)
    metrics = [ln for ln in (d / "metrics.jsonl").read_text().splitlines() if ln]
    assert [json.loads(m)["step"] for m in metrics] == list(range(0, 61, 5))
    # and byte for byte: every step, evaluation and result as in the uninterrupted run
    assert a.files == b.files
    for k in a.files:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    for name in ("metrics.jsonl", "summary.json", "config.toml"):
        assert (d / name).read_bytes() == (ref / name).read_bytes(), name
