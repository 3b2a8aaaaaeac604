"""Expectation values and shot noise against dense matrices: ``Tr(ρA)``, ``Tr(ρA²) - Tr(ρA)²``.

Statistical checks are seeded (deterministic) and use bounds of 5 standard errors: for a correct
implementation a |z| > 5 has probability ~6e-7 per check, so a failure means a bias (wrong basis
rotation, wrong sign, wrong variance), not bad luck with the seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import kron_string, random_hamiltonian
from qeprop import (
    Equilibrium,
    ParametrisedHamiltonian,
    PauliSum,
    ProblemError,
    StateSpec,
    measure,
    solve,
)
from qeprop.measurement import expectations, string_expectations, variances
from qeprop.pauli import qubitwise_commute_groups

EXACT_TOL = 1e-10  # exact expectations: contractions of normalised vectors, rounding only
Z_BOUND = 5.0  # |estimate - exact| <= 5 standard errors (see the module docstring)

OBSERVABLES = {
    "y0": PauliSum.from_terms([(1.0, "Y0")]),
    "x1y2": PauliSum.from_terms([(-0.8, "X1 Y2")]),
    "zxy": PauliSum.from_terms([(1.0, "Z0 X1 Y3")]),
    "proj": PauliSum.projector({0: 0, 2: 1}),
    "mixed": PauliSum.from_terms([(0.2, ""), (0.5, "X0 X1"), (-0.3, "Y0 Z2"), (0.7, "Z3")]),
}


def dense_operator(op: PauliSum, n: int) -> np.ndarray:
    """Independent dense rendering of a Pauli sum (Kronecker products, qubit 0 leftmost)."""
    out = np.zeros((1 << n, 1 << n), dtype=complex)
    for p, c in op.items():
        out += c * kron_string(p.dense_label(n))
    return out


def with_observables(
    ham: ParametrisedHamiltonian, ops: dict[str, PauliSum]
) -> tuple[ParametrisedHamiltonian, np.ndarray, np.ndarray]:
    """``ham`` with the observables' strings added to its basis, and ``(ident, coef)``."""
    strings = {p for op in ops.values() for p, _ in op.items() if not p.is_identity()}
    full = ParametrisedHamiltonian(
        ham.n_qubits, ham.terms, params=ham.params, extra_strings=sorted(strings)
    )
    rows = [full.coefficients_of(op) for op in ops.values()]
    return full, np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def pure_state(psi: np.ndarray) -> Equilibrium:
    psi = psi / np.linalg.norm(psi)
    return Equilibrium(psi[:, None], np.ones(1), np.zeros(1), gap=float("inf"))


def random_state(n: int, seed: int, rank: int = 1) -> Equilibrium:
    """A random pure state (rank 1) or a random mixture of ``rank`` orthonormal states."""
    rng = np.random.default_rng(seed)
    d = 1 << n
    m = rng.standard_normal((d, rank)) + 1j * rng.standard_normal((d, rank))
    q, _ = np.linalg.qr(m)
    w = rng.uniform(0.2, 1.0, size=rank)
    return Equilibrium(q, w / w.sum(), np.zeros(rank), gap=float("inf"))


def states_under_test() -> dict[str, tuple[ParametrisedHamiltonian, Equilibrium]]:
    """Pure ground state, exact 2-fold mixture and Gibbs state of random 4-qubit Hamiltonians."""
    ham, v = random_hamiltonian(4, 10, 3, seed=21)
    small, vs = random_hamiltonian(3, 8, 3, seed=22)
    degenerate = ParametrisedHamiltonian(4, small.terms, params=small.params)  # qubit 3 idle
    return {
        "pure": (ham, solve(ham, v)),
        "mixture": (degenerate, solve(degenerate, vs)),
        "thermal": (ham, solve(ham, v, StateSpec(kind="thermal", temperature=0.7))),
    }


# ------------------------------------------------------------------------------- exact values
@pytest.mark.parametrize("which", ["pure", "mixture", "thermal"])
def test_exact_expectations_match_dense_traces(which):
    ham, state = states_under_test()[which]
    if which == "mixture":
        assert state.degeneracy == 2  # precondition: the idle qubit makes the ground pair
    full, ident, coef = with_observables(ham, OBSERVABLES)
    rho = state.density_matrix()
    n = ham.n_qubits
    exact = [np.trace(rho @ dense_operator(op, n)).real for op in OBSERVABLES.values()]
    est = measure(full, state, ident, coef)
    np.testing.assert_allclose(est.mean, exact, atol=EXACT_TOL)
    np.testing.assert_array_equal(est.stderr, 0.0)
    assert (est.shots, est.preparations) == (0, 1)
    np.testing.assert_allclose(expectations(full, state, ident, coef), exact, atol=EXACT_TOL)
    # every string of the basis, including the Hamiltonian's own terms
    per_string = [np.trace(rho @ kron_string(p.dense_label(n))).real for p in full.strings]
    np.testing.assert_allclose(string_expectations(full, state), per_string, atol=EXACT_TOL)


def test_variances_match_dense():
    ham, state = states_under_test()["thermal"]
    full, _, coef = with_observables(ham, OBSERVABLES)
    rho = state.density_matrix()
    for row, op in zip(coef, OBSERVABLES.values(), strict=True):
        a = dense_operator(op, ham.n_qubits)
        var = np.trace(rho @ a @ a).real - np.trace(rho @ a).real ** 2
        # the identity part of an observable does not change its variance
        assert variances(full, state, row[None, :])[0] == pytest.approx(var, abs=EXACT_TOL)


# ------------------------------------------------------------------------------- gaussian model
@pytest.mark.parametrize("which", ["pure", "mixture", "thermal"])
def test_gaussian_model(which):
    ham, state = states_under_test()[which]
    full, ident, coef = with_observables(ham, OBSERVABLES)
    n, m = ham.n_qubits, 1000
    rho = state.density_matrix()
    dense = [dense_operator(op, n) for op in OBSERVABLES.values()]
    exact = np.array([np.trace(rho @ a).real for a in dense])
    # each observable's part in each measurement setting is measured M times, independently:
    # σ² = Σ_g Var(A_g), built here from dense matrices of the settings' strings
    groups = qubitwise_commute_groups(
        [p for op in OBSERVABLES.values() for p, _ in op.items() if not p.is_identity()]
    )
    var = np.zeros(len(OBSERVABLES))
    for group in groups:
        for i, op in enumerate(OBSERVABLES.values()):
            part = PauliSum({p: c for p, c in op.items() if p in group})
            if len(part):
                a = dense_operator(part, n)
                var[i] += np.trace(rho @ a @ a).real - np.trace(rho @ a).real ** 2
    est = measure(full, state, ident, coef, shots=m, model="gaussian", rng=np.random.default_rng(3))
    # stderr = sqrt(σ² / M) is computed, not sampled: only rounding separates it from dense
    np.testing.assert_allclose(est.stderr, np.sqrt(var / m), rtol=1e-8, atol=1e-12)
    assert np.all(est.stderr > 0)
    assert np.all(np.abs(est.mean - exact) <= Z_BOUND * est.stderr)
    # M per measurement setting, not per observable: 3 settings serve the 5 observables
    assert len(est.settings) == len(groups) == 3
    assert est.shots == est.preparations == m * len(groups)


def test_gaussian_model_single_setting_observable_keeps_its_variance():
    # Z0, Z1 and Z0 Z1 share one setting: each has its full variance, and M shots in all
    ham, state = states_under_test()["pure"]
    ops = {
        "a": PauliSum.from_terms([(1.0, "Z0"), (0.5, "Z0 Z1")]),
        "b": PauliSum.from_terms([(1.0, "Z1")]),
    }
    full, ident, coef = with_observables(ham, ops)
    rho = state.density_matrix()
    a = dense_operator(ops["a"], ham.n_qubits)
    var = np.trace(rho @ a @ a).real - np.trace(rho @ a).real ** 2
    est = measure(full, state, ident, coef, shots=100, rng=np.random.default_rng(0))
    np.testing.assert_allclose(est.stderr[0], np.sqrt(var / 100), rtol=1e-10)
    assert est.shots == 100 and len(est.settings) == 1
    assert est.settings[0].basis == "Z0 Z1" and est.settings[0].rows == (0, 1)


def test_gaussian_model_two_settings_for_x_plus_z():
    # X0 + 0.7 Z0 needs two settings (X and Z on qubit 0): 2M shots, σ² = Var(X0) + 0.49 Var(Z0)
    ham, state = states_under_test()["pure"]
    ops = {"xz": PauliSum.from_terms([(1.0, "X0"), (0.7, "Z0")])}
    full, ident, coef = with_observables(ham, ops)
    rho = state.density_matrix()
    n = ham.n_qubits
    x0 = dense_operator(PauliSum.from_terms([(1.0, "X0")]), n)
    z0 = dense_operator(PauliSum.from_terms([(1.0, "Z0")]), n)
    var = (1 - np.trace(rho @ x0).real ** 2) + 0.49 * (1 - np.trace(rho @ z0).real ** 2)
    est = measure(full, state, ident, coef, shots=30, rng=np.random.default_rng(0))
    np.testing.assert_allclose(est.stderr[0], np.sqrt(var / 30), rtol=1e-10)
    assert est.shots == est.preparations == 60
    assert sorted(s.basis for s in est.settings) == ["X0", "Z0"]


def test_gaussian_identity_only_observable_is_free_and_exact():
    ham, state = states_under_test()["pure"]
    ops = {"one": PauliSum.from_terms([(0.75, "")]), "z": PauliSum.from_terms([(1.0, "Z0")])}
    full, ident, coef = with_observables(ham, ops)
    est = measure(full, state, ident, coef, shots=50, rng=np.random.default_rng(0))
    assert est.mean[0] == 0.75 and est.stderr[0] == 0.0
    assert est.shots == est.preparations == 50  # only the Z0 observable costs shots


# ------------------------------------------------------------------------------- sampled model
def test_sampled_eigenstates_are_measured_exactly():
    # |+> ⊗ |+i> ⊗ |1>: eigenstate of X0, Y1, Z2 (and their products) with known eigenvalues.
    # Every shot gives the same outcome, so the estimates are exact and stderr is zero. A wrong
    # basis rotation (e.g. S instead of S† for Y) would flip a sign here.
    plus = np.array([1, 1]) / np.sqrt(2)
    plus_i = np.array([1, 1j]) / np.sqrt(2)
    one = np.array([0, 1])
    state = pure_state(np.kron(np.kron(plus, plus_i), one))
    ops = {
        "X0": (PauliSum.from_terms([(1.0, "X0")]), 1.0),
        "Y1": (PauliSum.from_terms([(1.0, "Y1")]), 1.0),
        "Z2": (PauliSum.from_terms([(1.0, "Z2")]), -1.0),
        "X0Y1Z2": (PauliSum.from_terms([(2.0, "X0 Y1 Z2")]), -2.0),
        "Y0": (PauliSum.from_terms([(1.0, "Y0")]), None),  # not an eigenstate: 0 on average
    }
    full, ident, coef = with_observables(
        ParametrisedHamiltonian(3, []), {k: op for k, (op, _) in ops.items()}
    )
    est = measure(
        full, state, ident, coef, shots=400, model="sampled", rng=np.random.default_rng(1)
    )
    for i, (_, value) in enumerate(ops.values()):
        if value is not None:
            assert est.mean[i] == value
            assert est.stderr[i] == 0.0
    # Y0 on |+>: ±1 with probability 1/2 each, stderr ~ 1/sqrt(400) = 0.05
    assert abs(est.mean[-1]) <= Z_BOUND * est.stderr[-1]
    assert est.stderr[-1] == pytest.approx(0.05, rel=0.05)  # sample std of ±1 coin flips ≈ 1


@pytest.mark.parametrize(("seed", "rank"), [(0, 1), (1, 1), (2, 3)])
def test_sampled_estimates_are_unbiased(seed, rank):
    n = 4
    state = random_state(n, seed, rank)
    full, ident, coef = with_observables(ParametrisedHamiltonian(n, []), OBSERVABLES)
    rho = state.density_matrix()
    exact = np.array([np.trace(rho @ dense_operator(op, n)).real for op in OBSERVABLES.values()])
    # precondition: the Y-containing observables are far from 0, so a sign error in the Y
    # rotation (estimate ≈ -exact) would miss by 2|exact| >> 5 stderr ~ 0.04
    has_y = [i for i, op in enumerate(OBSERVABLES.values()) if any(p.n_y for p, _ in op.items())]
    m = 20000
    est = measure(
        full, state, ident, coef, shots=m, model="sampled", rng=np.random.default_rng(seed)
    )
    assert np.all(est.stderr > 0)
    z = (est.mean - exact) / est.stderr
    assert np.all(np.abs(z) <= Z_BOUND), z
    # the sign check is only sharp where |exact| is large; require at least one such Y string
    assert max(abs(exact[i]) for i in has_y) > 10 * est.stderr.max()
    # the estimated standard errors agree with the true sqrt(Var/M) to sampling accuracy (~1 %)
    var = np.array(
        [
            np.trace(rho @ a @ a).real - e**2
            for a, e in zip(
                (dense_operator(op, n) for op in OBSERVABLES.values()), exact, strict=True
            )
        ]
    )
    # strings in one group are measured on the same shots, so the per-observable variance of the
    # sampled model equals Var(A) only when all of A's strings share a group; otherwise it is
    # the sum of the group variances. Only single-group observables are compared here.
    strings_of = [[p for p, _ in op.items() if not p.is_identity()] for op in OBSERVABLES.values()]
    for i, strings in enumerate(strings_of):
        if len(qubitwise_commute_groups(strings)) == 1:
            assert est.stderr[i] == pytest.approx(np.sqrt(var[i] / m), rel=0.05)


def test_sampled_shots_count_commuting_groups():
    n = 4
    state = random_state(n, 5)
    same_group = {
        "a": PauliSum.from_terms([(1.0, "Z0")]),
        "b": PauliSum.from_terms([(1.0, "Z1 Z3")]),
        "c": PauliSum.projector({0: 1, 1: 0}),
        "d": PauliSum.from_terms([(1.0, "Z0 X2")]),
    }
    full, ident, coef = with_observables(ParametrisedHamiltonian(n, []), same_group)
    est = measure(
        full, state, ident, coef, shots=300, model="sampled", rng=np.random.default_rng(0)
    )
    assert est.shots == est.preparations == 300  # one group: all strings share the shots

    full, ident, coef = with_observables(ParametrisedHamiltonian(n, []), OBSERVABLES)
    strings = [p for p in full.strings if np.any(coef[:, full.string_index[p]])]
    n_groups = len(qubitwise_commute_groups(strings))
    assert n_groups > 1
    est = measure(
        full, state, ident, coef, shots=300, model="sampled", rng=np.random.default_rng(0)
    )
    assert est.shots == est.preparations == 300 * n_groups


def test_sampled_stderr_scales_as_inverse_sqrt_shots():
    n = 4
    state = random_state(n, 7)
    full, ident, coef = with_observables(ParametrisedHamiltonian(n, []), OBSERVABLES)
    small = measure(
        full, state, ident, coef, shots=400, model="sampled", rng=np.random.default_rng(1)
    )
    large = measure(
        full, state, ident, coef, shots=1600, model="sampled", rng=np.random.default_rng(2)
    )
    # the sample std of ±1 outcomes has relative error ~1/sqrt(2M) (3.5 % at M = 400), so the
    # ratio of the two stderrs is 2 within ~4 %; 15 % is a > 3.5 sigma bound
    np.testing.assert_allclose(small.stderr / large.stderr, 2.0, rtol=0.15)


@pytest.mark.parametrize("model", ["gaussian", "sampled"])
def test_same_seed_same_result(model):
    ham, state = states_under_test()["pure"]
    full, ident, coef = with_observables(ham, OBSERVABLES)
    a = measure(full, state, ident, coef, shots=100, model=model, rng=np.random.default_rng(9))
    b = measure(full, state, ident, coef, shots=100, model=model, rng=np.random.default_rng(9))
    c = measure(full, state, ident, coef, shots=100, model=model, rng=np.random.default_rng(10))
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert not np.array_equal(a.mean, c.mean)  # the seed does matter


@pytest.mark.parametrize("model", ["gaussian", "sampled"])
def test_memoised_settings_change_nothing(model):
    """The settings plan is built once per Hamiltonian and coefficient matrix: a repeat call, a
    call after the memo is emptied and a call with the matrix changed in place agree with
    fresh grouping, bit for bit."""
    from qeprop import measurement

    ham, state = states_under_test()["pure"]
    full, ident, coef = with_observables(ham, OBSERVABLES)

    def run(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        est = measure(full, state, ident, c, shots=50, model=model, rng=np.random.default_rng(3))
        return est.mean, est.stderr, est.settings

    measurement._PLANS.clear()
    fresh = run(coef)
    again = run(coef)
    measurement._PLANS.clear()
    rebuilt = run(coef)
    for a, b in ((fresh, again), (fresh, rebuilt)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2] == b[2]
    # the memo is keyed by the values, not the array: a matrix changed in place is new
    work = coef.copy()
    run(work)
    work[0] = 0.0
    measurement._PLANS.clear()
    expected = run(work.copy())
    measurement._PLANS.clear()
    run(coef)
    got = run(work)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[2] == expected[2] and len(got[2]) <= len(fresh[2])
    plan = measurement._plan(full, coef)
    assert not plan.parts.flags.writeable and not plan.owner.flags.writeable


def test_memoised_settings_under_threads():
    """Threads filling and evicting one Hamiltonian's memo at once get the right plans."""
    from concurrent.futures import ThreadPoolExecutor

    from qeprop import measurement

    ham, _ = states_under_test()["pure"]
    full, _, coef = with_observables(ham, OBSERVABLES)
    # more distinct matrices than the memo keeps per Hamiltonian, so entries are evicted too
    variants = [coef * (1.0 + 0.1 * k) for k in range(3 * measurement._PLANS_PER_HAMILTONIAN)]
    expected = [
        measurement._setting_rows(measurement.measurement_settings(full, c), c) for c in variants
    ]
    measurement._PLANS.clear()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda k: measurement._plan(full, variants[k % len(variants)]).rows,
                            range(400)))  # fmt: skip
    assert all(g == expected[k % len(variants)] for k, g in enumerate(got))
    assert len(measurement._PLANS[full]) <= measurement._PLANS_PER_HAMILTONIAN


# ------------------------------------------------------------------------------- bad input
def test_measure_argument_errors():
    ham, state = states_under_test()["pure"]
    full, ident, coef = with_observables(ham, OBSERVABLES)
    with pytest.raises(ProblemError, match="random generator"):
        measure(full, state, ident, coef, shots=10)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ProblemError, match="shots must be a positive integer"):
            measure(full, state, ident, coef, shots=bad, rng=np.random.default_rng(0))
    with pytest.raises(ProblemError, match="unknown shot model"):
        measure(full, state, ident, coef, shots=10, model="poisson", rng=np.random.default_rng(0))


# ------------------------------------------------------------------------------- calibration
@pytest.mark.slow
@pytest.mark.parametrize("model", ["gaussian", "sampled"])
def test_shot_noise_is_calibrated(model):
    """Over 300 seeds, z = (estimate - exact) / stderr has mean 0 and standard deviation 1.

    With 300 independent z-scores the sample mean has standard error 1/sqrt(300) = 0.058 and the
    sample std about 1/sqrt(2 * 300) = 0.041 (a bit more for the t-like z of the sampled model,
    whose stderr is itself estimated from 200 shots): |mean| < 0.25 and |std - 1| < 0.15 are
    ~4 sigma bounds, far tighter than e.g. a factor-sqrt(2) error in the stderr.
    """
    n, m, seeds = 4, 200, 300
    state = random_state(n, 11, rank=2)
    ops = {k: OBSERVABLES[k] for k in ("y0", "zxy", "proj", "mixed")}
    full, ident, coef = with_observables(ParametrisedHamiltonian(n, []), ops)
    rho = state.density_matrix()
    exact = np.array([np.trace(rho @ dense_operator(op, n)).real for op in ops.values()])
    z = np.empty((seeds, len(ops)))
    for s in range(seeds):
        est = measure(full, state, ident, coef, shots=m, model=model, rng=np.random.default_rng(s))
        z[s] = (est.mean - exact) / est.stderr
    assert np.all(np.abs(z.mean(axis=0)) < 0.25), z.mean(axis=0)
    assert np.all(np.abs(z.std(axis=0, ddof=1) - 1.0) < 0.15), z.std(axis=0, ddof=1)


def test_single_shot_sampled_stderr_is_undefined():
    # one shot estimates the mean but not the spread: the standard error must not claim zero
    n = 4
    full, ident, coef = with_observables(ParametrisedHamiltonian(n, []), OBSERVABLES)
    est = measure(
        full,
        random_state(n, 3),
        ident,
        coef,
        shots=1,
        model="sampled",
        rng=np.random.default_rng(0),
    )
    assert np.all(np.isfinite(est.mean))
    assert np.all(np.isnan(est.stderr[np.any(coef != 0, axis=1)]))
