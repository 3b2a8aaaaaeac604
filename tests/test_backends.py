"""The equilibrium-backend seam: every backend gives the same physics, budgets its memory first.

* Gradients (nudged and exact linear response) agree between the dense, sparse and matrix-free
  backends on real and complex Hamiltonians, pure and degenerate ground states and excited
  levels; matrix-free linear response agrees with finite differences.
* ``auto`` picks by size, a nudged solve stays on its free state's backend, threads change nothing.
* Memory is estimated before anything is allocated: a problem too large for a backend is refused
  in one line naming the backend that would fit, also under an address-space limit, and a
  30-qubit problem is refused within seconds.
* Degeneracy is decided relative to the energy scale: an exactly degenerate manifold at a huge
  coupling is still a manifold.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ProgressRecorder, random_system
from qeprop import MeanSquaredError, ParametrisedHamiltonian, PauliSum, QEPSystem
from qeprop import solvers as solvers_mod
from qeprop.errors import ProblemTooLargeError
from qeprop.gradients import estimate_gradient, shot_tolerance
from qeprop.solvers import BACKENDS, StateSpec, choose_backend, estimate_memory, solve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from chain_sensor_problem import chain_sensor_problem  # noqa: E402

BACKEND_NAMES = ("dense", "sparse", "matrix-free")


def _spec(method: str, **kw: object) -> StateSpec:
    # dense_max_dim=2 makes sparse and matrix-free run their Lanczos solvers even at 8 qubits
    return StateSpec(method=method, dense_max_dim=2, **kw)  # type: ignore[arg-type]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("letters", ["XZ", "IXYZ"])  # real, then complex (odd-Y) Hamiltonians
@pytest.mark.parametrize("estimator", ["centered", "positive", "linear_response"])
def test_backends_agree_on_gradients(letters: str, estimator: str) -> None:
    """Same gradient to 1e-8 relative from all three backends (solver tolerance 1e-12, gaps of
    order 0.1-1 put the eigenvector error near 1e-11)."""
    system, values = random_system(8, 14, 4, seed=3, letters=letters)
    loss = MeanSquaredError([0.2, -0.1])
    grads = {}
    for name in BACKEND_NAMES:
        # the one-sided estimate at this nudge is ~15 % from the derivative (and warns); the
        # backends must agree on it all the same
        rec = estimate_gradient(
            system, values, loss, estimator=estimator, nudge=0.05, state=_spec(name),
            warn_window=estimator == "centered",
        )  # fmt: skip
        assert rec.backend == name
        grads[name] = rec.gradient
    for name in ("sparse", "matrix-free"):
        assert _rel(grads[name], grads["dense"]) < 1e-8, name


def test_matrix_free_linear_response_matches_finite_differences() -> None:
    """Exact response by MINRES on the matrix-free operator vs central differences (h = 1e-4,
    truncation error h² ~ 1e-8 times the third derivative; 1e-6 leaves room)."""
    system, values = random_system(9, 16, 4, seed=7)
    loss = MeanSquaredError([0.4, 0.3])
    spec = _spec("matrix-free", tol=1e-13)
    lr = estimate_gradient(system, values, loss, estimator="linear_response", state=spec)
    fd = estimate_gradient(system, values, loss, estimator="finite_difference", state=spec)
    np.testing.assert_allclose(lr.gradient, fd.gradient, atol=1e-6)


def _open_cluster(n: int) -> QEPSystem:
    """``g Σ Z_{j-1} X_j Z_{j+1}`` on an open chain plus small sensor-like couplings: the edge
    modes make the ground level exactly 4-fold degenerate whatever ``g``."""
    terms = [(1.0, f"Z{j - 1} X{j} Z{j + 1}", "g") for j in range(1, n - 1)]
    terms += [(0.3, f"Z{n // 2}", "w")]
    ham = ParametrisedHamiltonian(n, terms)
    return QEPSystem(ham, outputs={"z": PauliSum.from_terms([(1.0, f"Z{n // 2}")])})


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_degenerate_manifold_at_any_scale(name: str) -> None:
    """The 4-fold edge manifold of the open cluster chain is one manifold at g = 1 and at
    g = 3e7, where rounding splits it by ~1e-8 (above the absolute degeneracy_tol 1e-8): the
    threshold scales with ||H||, so outputs and gradients stay right."""
    system = _open_cluster(7)
    loss = MeanSquaredError([0.5])
    for g in (1.0, 3e7):
        values = {"g": g, "w": 0.1 * g}
        spec = _spec(name)
        st = solve(system.full, system.full_values(values), spec)
        assert st.degeneracy == 4, (name, g)
        ce = estimate_gradient(
            system, values, loss, estimator="centered", nudge=1e-3 * g, state=spec
        )
        lr = estimate_gradient(system, values, loss, estimator="linear_response", state=spec)
        fd = estimate_gradient(
            system, values, loss, estimator="finite_difference", fd_step=1e-4 * g, state=spec
        )
        scale = np.max(np.abs(lr.gradient))
        assert scale > 0
        # centred O(β²) and finite differences O(h²) at relative steps 1e-3 and 1e-4
        np.testing.assert_allclose(ce.gradient, lr.gradient, atol=1e-4 * scale)
        np.testing.assert_allclose(fd.gradient, lr.gradient, atol=1e-4 * scale)


@pytest.mark.parametrize("name", ["sparse", "matrix-free"])
def test_excited_level_agrees_with_dense(name: str) -> None:
    system, values = random_system(7, 12, 3, seed=11)
    loss = MeanSquaredError([0.1, 0.2])
    dense = estimate_gradient(
        system, values, loss, estimator="centered", nudge=1e-3,
        state=StateSpec(kind="eigenstate", level=1, method="dense"),
    )  # fmt: skip
    other = estimate_gradient(
        system, values, loss, estimator="centered", nudge=1e-3,
        state=_spec(name, kind="eigenstate", level=1),
    )  # fmt: skip
    assert _rel(other.gradient, dense.gradient) < 1e-7


def test_auto_picks_by_size_and_nudged_solves_stay_on_their_backend(monkeypatch) -> None:
    system, values = random_system(8, 12, 3, seed=5)
    h, v = system.full, system.full_values(values)
    assert choose_backend(h, StateSpec(dense_max_dim=256)) == "dense"
    assert choose_backend(h, StateSpec(dense_max_dim=16)) == "sparse"
    monkeypatch.setattr(solvers_mod, "AUTO_SPARSE_MAX_QUBITS", 6)
    assert choose_backend(h, StateSpec(dense_max_dim=16)) == "matrix-free"
    free = solve(h, v, StateSpec(dense_max_dim=16))
    assert free.backend == "matrix-free"
    monkeypatch.undo()
    nudged = solve(h, v * 1.001, StateSpec(dense_max_dim=16), guess=free.warm)
    assert nudged.backend == "matrix-free"
    # thermal states are dense whatever the size; other backends refuse them in one line
    assert choose_backend(h, StateSpec(kind="thermal", temperature=1.0)) == "dense"
    with pytest.raises(Exception, match="whole spectrum"):
        StateSpec(kind="thermal", temperature=1.0, method="matrix-free")


def test_threads_change_nothing() -> None:
    system, values = random_system(10, 16, 3, seed=8)
    loss = MeanSquaredError([0.3, 0.1])
    one = estimate_gradient(system, values, loss, state=_spec("matrix-free"))
    two = estimate_gradient(system, values, loss, state=_spec("matrix-free", threads=2))
    np.testing.assert_allclose(two.gradient, one.gradient, rtol=1e-9, atol=1e-12)


def test_memory_refusal_names_a_backend_that_fits() -> None:
    prob = chain_sensor_problem(14)  # 16 qubits
    from qeprop.problem import parse_problem

    h = parse_problem(prob).system.full
    spec = StateSpec(method="sparse")
    need_sparse = estimate_memory(h, spec, "sparse")
    need_mf = estimate_memory(h, spec, "matrix-free")
    assert need_mf < need_sparse  # the structure stores every string's elements
    budget = int((need_mf + need_sparse) / 2)
    with pytest.raises(ProblemTooLargeError, match=r"matrix-free backend would fit"):
        choose_backend(h, spec, budget=budget)
    assert choose_backend(h, StateSpec(), budget=budget) == "matrix-free"  # auto falls back
    with pytest.raises(ProblemTooLargeError, match="no exact backend fits"):
        choose_backend(h, StateSpec(method="matrix-free"), budget=int(need_mf / 2))
    # dmrg: by name only; gaussian: oscillator modes only
    assert set(BACKENDS) == {"dense", "sparse", "matrix-free", "dmrg", "gaussian"}


def _cli(path: Path, *args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    exe = Path(sys.executable).with_name("qeprop")
    return subprocess.run(
        [str(exe), "gradient", str(path), "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=limit,
    )


def test_thirty_qubits_refused_in_one_line_within_seconds(tmp_path: Path) -> None:
    path = tmp_path / "p30.json"
    path.write_text(json.dumps(chain_sensor_problem(28)), encoding="utf-8")
    t = time.perf_counter()
    out = _cli(path)
    assert time.perf_counter() - t < 30  # start-up and parsing only: nothing is allocated
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "30 qubits" in out.stderr and "GiB" in out.stderr


def test_no_size_gets_killed_under_an_address_space_limit(tmp_path: Path) -> None:
    """Under ``ulimit -v`` of 2.5 GiB, a 20-qubit problem on the sparse backend (a ~13 GiB
    structure) is refused in one line with exit status 2, not killed or a MemoryError trace."""
    path = tmp_path / "p20.json"
    path.write_text(json.dumps(chain_sensor_problem(18, "sparse")), encoding="utf-8")
    out = _cli(path, limit_bytes=int(2.5 * 2**30))
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "sparse backend" in out.stderr and "matrix-free backend would fit" in out.stderr


def test_gradient_command_reports_its_backend(tmp_path: Path) -> None:
    path = tmp_path / "p10.json"
    path.write_text(json.dumps(chain_sensor_problem(8)), encoding="utf-8")
    out = _cli(path, "--method", "matrix-free")
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert obj["backend"] == "matrix-free"
    ref = _cli(path, "--method", "dense")
    np.testing.assert_allclose(
        list(obj["gradient"].values()),
        list(json.loads(ref.stdout)["gradient"].values()),
        rtol=1e-8,
        atol=1e-12,
    )
    bad = _cli(path, "--method", "quantum")
    assert bad.returncode == 2 and "--method" in bad.stderr


def test_shot_limited_nudged_solves_use_the_tolerance_their_shots_need() -> None:
    """With M shots the nudged solves run to ``min(1e-6, 0.005 δ / (√M max(1,|E|)))``; the
    estimate stays within its shot noise of the exact centred gradient (seeded, 5 σ)."""
    system, values = random_system(9, 16, 4, seed=2)
    spec = _spec("matrix-free")
    free = solve(system.full, system.full_values(values), spec)
    loose = shot_tolerance(spec, 10_000, [free])
    expected = min(1e-6, 0.005 * free.gap / (100 * max(1.0, abs(free.energy))))
    assert loose.tol == pytest.approx(expected) and loose.tol > spec.tol
    assert shot_tolerance(spec, None, [free]) is spec
    assert shot_tolerance(spec.with_(tol=1e-3), 10_000, [free]).tol == 1e-3  # never tighter
    loss = MeanSquaredError([0.3, 0.2])
    exact = estimate_gradient(system, values, loss, nudge=0.05, state=spec)
    noisy = estimate_gradient(system, values, loss, nudge=0.05, state=spec, shots=10_000, seed=4)
    assert np.all(np.abs(noisy.gradient - exact.gradient) <= 5 * noisy.stderr + 1e-9)


@pytest.mark.parametrize("case", ["chain-sensor", "random"])
def test_nudge_warning_fires_where_the_estimate_is_off_by_ten_percent(case: str) -> None:
    """Exact nudged estimates warn when they are off: every estimate more than 12 % from linear
    response (relative to the gradient's norm) warned, none within 1 % did (the centred
    estimate's a-posteriori error bound overestimates by 3-10x, hence no tighter lower bound).
    The random case has a small gradient next to a large curvature, where one-sided estimates
    are off by 50 % at β = 0.01 although the nudge is tiny compared with the gap."""
    import warnings

    from qeprop.errors import NudgeWindowWarning
    from qeprop.problem import parse_problem

    if case == "chain-sensor":
        prob = parse_problem(chain_sensor_problem(8))
        system, values, loss = prob.system, prob.values, prob.loss
    else:
        system, values = random_system(9, 16, 4, seed=2)
        loss = MeanSquaredError([0.3, 0.2])
    spec = StateSpec(method="dense")
    lr = estimate_gradient(system, values, loss, estimator="linear_response", state=spec)
    norm = np.linalg.norm(lr.gradient)
    seen = {"warned": 0, "quiet": 0}
    for est in ("positive", "negative", "centered"):
        for beta in (1e-4, 0.001, 0.01, 0.05, 0.4, 1.5):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rec = estimate_gradient(system, values, loss, estimator=est, nudge=beta, state=spec)
            warned = any(issubclass(w.category, NudgeWindowWarning) for w in caught)
            err = np.linalg.norm(rec.gradient - lr.gradient) / norm
            if err > 0.12:
                assert warned, (est, beta, err)
                seen["warned"] += 1
            elif err < 0.01:
                assert not warned, (est, beta, err)
                seen["quiet"] += 1
    assert seen["warned"] >= 1 and seen["quiet"] >= 4  # both sides of the threshold were probed


def test_progress_observer_sees_every_solve_and_lanczos_step() -> None:
    """A centred gradient is three solves (free, +β, −β); the matrix-free Lanczos solver reports
    each step with the products of its level so far (1, 2, ... from each level's start; the
    explicit residual check between restarts is a product too) and the residual estimate against
    its target; the last step of each level reaches its target. Outside the ``with`` block and
    in another thread nothing is reported."""
    import threading

    system, values = random_system(8, 14, 4, seed=3)
    loss = MeanSquaredError([0.2, -0.1])
    seen = ProgressRecorder()
    with solvers_mod.observe_progress(seen):
        rec = estimate_gradient(
            system, values, loss, estimator="centered", nudge=0.05,
            state=_spec("matrix-free"), warn_window=False,
        )  # fmt: skip
        before = len(seen.events)
        t = threading.Thread(target=lambda: solve(system.full, system.full_values(values)))
        t.start()
        t.join()
        assert len(seen.events) == before  # another thread has its own (empty) context
    starts = [e for e in seen.events if e[0] == "solve"]
    assert starts == [("solve", "matrix-free", "ground", 1)] * 3
    steps = [e for e in seen.events if e[0] == "step"]
    assert len(steps) >= rec.preparations  # at least one step per solve
    # per solve: levels in order, products increasing within a level, last step on target
    runs: list[list[tuple]] = []
    for e in seen.events:
        if e[0] == "solve":
            runs.append([])
        else:
            runs[-1].append(e)
    for run in runs:
        assert run, "a matrix-free solve reports its steps"
        levels = [e[1] for e in run]
        assert levels == sorted(levels)
        for lev in set(levels):
            prods = [e[2] for e in run if e[1] == lev]
            assert prods == sorted(prods) and prods[0] == 1
        assert all(np.isfinite(e[3]) and e[4] > 0 for e in run)
        assert run[-1][3] <= run[-1][4] or run[-1][3] < 1e-10
    n = len(seen.events)
    solve(system.full, system.full_values(values), _spec("matrix-free"))
    assert len(seen.events) == n  # no observer outside the block


def test_progress_observer_sees_solves_of_every_backend() -> None:
    """Backends without a step-wise solver still report each solve at the seam."""
    system, values = random_system(6, 10, 3, seed=5)
    for name in ("dense", "sparse"):
        seen = ProgressRecorder()
        with solvers_mod.observe_progress(seen):
            solve(system.full, system.full_values(values), _spec(name))
        assert seen.events[0] == ("solve", name, "ground", 1)
