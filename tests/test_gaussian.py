"""The ``gaussian`` backend: quantum harmonic oscillator networks (Scellier eqs. 41-42).

Independent routes are compared:

* exact diagonalisation in a truncated Fock basis (1, 2 and 3 modes, ground and thermal, the
  truncation checked converged by a smaller basis) against the closed forms of
  :mod:`qeprop.solvers.gaussian`: energies, free energies, every monomial (``r p`` cross terms
  included), variances (with the ``ħ²`` commutator term), linear response against finite
  differences of Fock expectation values;
* linear response against central differences of the closed form (random networks up to 200
  modes);
* every estimator through :func:`qeprop.estimate_gradient` against linear response, with fitted
  orders; finite-β estimators against differences of exact nudged solves;
* the sampled shot model against exact values and the exact per-setting variances;
* the classical limit ``ħ → 0``;
* one-line errors for bad input, in Python and through ``qeprop gradient`` (exit status 2).

Everything is seeded and deterministic.
"""

from __future__ import annotations

import json
import math
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.linalg as la
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from qeprop import (
    MeanSquaredError,
    ModeHamiltonian,
    ModeTerm,
    PauliSum,
    ProblemError,
    QEPSystem,
    QuadString,
    QuadSum,
    StateSpec,
    estimate_gradient,
    solve,
)
from qeprop.cli import main
from qeprop.measurement import measure, string_expectations, variances
from qeprop.problem import load_problem
from qeprop.quadratures import as_quad_sum, quad_measurement_settings, quad_settings
from qeprop.solvers import linear_response
from qeprop.solvers.gaussian import decompose, state_from_form

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ test networks
def all_monomials(n: int) -> list[QuadString]:
    """Every quadrature string of degree 1 and 2 on ``n`` modes (``r p`` cross terms included)."""
    xi = [("r", i) for i in range(n)] + [("p", i) for i in range(n)]
    out = []
    for a in range(2 * n):
        out.append(QuadString((xi[a],)))
        out += [QuadString((xi[a], xi[b])) for b in range(a, 2 * n)]
    return out


def network(n: int, seed: int, *, hbar: float = 1.0, extra: bool = True) -> ModeHamiltonian:
    """A random positive-definite network on ``n`` modes (``ħ = hbar``).

    Kinetic terms ``p_i²/2m_i``, a pinning ``r_i²`` on every mode, springs ``½k(r_i - r_j)²``
    along a chain plus random further pairs (each spring one parameter ``k_ij`` on three terms),
    weak ``r_i p_i`` and ``r_i p_j`` cross terms, and forces ``F_i r_i`` and ``G p_0`` as inputs
    (parameters). Couplings are kept weak enough that ``M`` stays diagonally dominant.
    """
    rng = np.random.default_rng(seed)
    terms: list[tuple] = []
    for i in range(n):
        terms.append((0.5 / rng.uniform(0.7, 1.4), f"p{i} p{i}"))
        terms.append((0.5 * rng.uniform(0.6, 1.2), f"r{i} r{i}"))
    pairs = [(i, i + 1) for i in range(n - 1)]
    if n > 2:
        for _ in range(n // 2):
            i, j = sorted(rng.choice(n, 2, replace=False))
            if (i, j) not in pairs:
                pairs.append((int(i), int(j)))
    for i, j in pairs:
        k = f"k{i}_{j}"
        terms += [(0.5, f"r{i} r{i}", k), (0.5, f"r{j} r{j}", k), (-1.0, f"r{i} r{j}", k)]
    for i in range(n):
        terms.append((rng.uniform(-0.1, 0.1), f"r{i} p{i}"))
        terms.append((1.0, f"r{i}", f"F{i}"))
    if n > 1:
        terms.append((0.05, f"r0 p{n - 1}"))
    terms.append((1.0, "p0", "G"))
    return ModeHamiltonian(n, terms, hbar=hbar, extra_strings=all_monomials(n) if extra else ())


def network_values(ham: ModeHamiltonian, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    vals = {}
    for p in ham.params:
        vals[p] = rng.uniform(0.3, 0.9) if p.startswith("k") else rng.uniform(-0.2, 0.2)
    return ham.values(vals)


# ------------------------------------------------------------------------------ Fock reference
class Fock:
    """Exact diagonalisation of ``H(values)`` in a truncated Fock basis of ``levels`` per mode.

    Mode ``i`` uses ``r = sqrt(ħ/2s)(a + a†)``, ``p = i sqrt(ħs/2)(a† - a)`` with the scale
    ``s_i = sqrt(M_{r_i r_i}/M_{p_i p_i})`` of its own oscillator, so that the basis is adapted to
    the uncoupled problem. Products of a mode's operators are formed in ``levels + 2`` levels and
    then cut, so that every matrix is the exact operator restricted to the basis (the Hamiltonian
    is the Rayleigh-Ritz projection). The state is the lowest eigenvector or the Gibbs mixture.
    """

    def __init__(
        self,
        ham: ModeHamiltonian,
        values: np.ndarray,
        levels: int,
        temperature: float | None,
        extra: np.ndarray | None = None,
    ) -> None:
        n, hbar = ham.n_modes, ham.hbar
        m, _, _ = ham.quadratic_form(values)
        big = levels + 2
        a = np.diag(np.sqrt(np.arange(1, big)), 1)
        self.n, self.levels = n, levels
        self.single: list[tuple[np.ndarray, np.ndarray]] = []
        for i in range(n):
            s = math.sqrt(m[i, i] / m[n + i, n + i])
            self.single.append(
                (math.sqrt(hbar / (2 * s)) * (a + a.T), 1j * math.sqrt(hbar * s / 2) * (a.T - a))
            )
        self.dim = levels**n
        coef = ham.string_coefficients(values) + (0.0 if extra is None else extra)
        h = sum(c * self.monomial(q) for q, c in zip(ham.strings, coef, strict=True) if c != 0)
        with threadpool_limits(limits=1, user_api="blas"):
            e, v = la.eigh(h.toarray())
        if temperature is None:
            self.vectors, self.weights = v[:, :1], np.ones(1)
            self.free_energy = float(e[0])
        else:
            w = np.exp(-(e - e[0]) / temperature)
            z = w.sum()
            keep = w / z > 1e-18
            self.vectors, self.weights = v[:, keep], (w / z)[keep]
            self.free_energy = float(e[0] - temperature * np.log(z))
        self.energy = self.expect(h)

    def _one(self, mat: np.ndarray, mode: int) -> sp.csr_array:
        eye = sp.identity(self.levels, format="csr")
        small = sp.csr_array(mat[: self.levels, : self.levels])
        return reduce(
            lambda x, y: sp.csr_array(sp.kron(x, y)),
            [small if k == mode else eye for k in range(self.n)],
        )

    def monomial(self, q: QuadString) -> sp.csr_array:
        """The (symmetrised) monomial ``q`` as a sparse matrix."""
        ops = [self.single[m]["rp".index(letter)] for letter, m in q.factors]
        if not ops:
            return sp.identity(self.dim, format="csr", dtype=complex)
        if len(ops) == 1:
            return self._one(ops[0], q.factors[0][1])
        (_, i), (_, j) = q.factors
        if i == j:
            return self._one(0.5 * (ops[0] @ ops[1] + ops[1] @ ops[0]), i)
        return self._one(ops[0], i) @ self._one(ops[1], j)

    def expect(self, op: sp.csr_array) -> float:
        ov = op @ self.vectors
        return float(np.real(np.sum(self.weights * np.sum(self.vectors.conj() * ov, axis=0))))

    def variance(self, op: sp.csr_array) -> float:
        ov = op @ self.vectors
        sq = float(np.sum(self.weights * np.sum(np.abs(ov) ** 2, axis=0)))
        return sq - self.expect(op) ** 2

    def observable(self, ham: ModeHamiltonian, coef: np.ndarray) -> sp.csr_array:
        return sum(
            (c * self.monomial(q) for q, c in zip(ham.strings, coef, strict=True) if c != 0),
            sp.csr_array((self.dim, self.dim), dtype=complex),
        )


# Per case: modes, Fock levels per mode, tolerance. The truncation error falls by about ten per
# level (measured); each case checks that one level fewer changes no expectation value by more
# than a third of the tolerance, so the reference is converged well below it. Three modes at ten
# levels (a 1000-dimensional space) reach 3e-9 (thermal) and are compared to 1e-7.
CASES = [(1, 28, 1e-9), (2, 14, 1e-9), (3, 10, 1e-7)]


@pytest.mark.parametrize(("n", "levels", "tol"), CASES)
@pytest.mark.parametrize("thermal", [False, True], ids=["ground", "thermal"])
def test_closed_forms_match_fock_diagonalisation(
    n: int, levels: int, tol: float, thermal: bool
) -> None:
    ham = network(n, seed=10 + n)
    values = network_values(ham, seed=10 + n)
    omega = decompose(ham.quadratic_form(values)[0], ham.hbar).frequencies
    temperature = 0.3 * float(omega[0]) if thermal else None
    spec = StateSpec(kind="thermal", temperature=temperature) if thermal else StateSpec()
    st = solve(ham, values, spec)
    ref = Fock(ham, values, levels, temperature)
    coarse = Fock(ham, values, levels - 1, temperature)
    want = np.array([ref.expect(ref.monomial(q)) for q in ham.strings])
    # the reference is converged: one level fewer per mode changes nothing beyond tol / 3
    coarse_want = np.array([coarse.expect(coarse.monomial(q)) for q in ham.strings])
    assert np.max(np.abs(want - coarse_want)) < tol / 3
    assert abs(ref.free_energy - coarse.free_energy) < tol / 3
    assert st.energy == pytest.approx(ref.energy, abs=tol)
    assert st.free_energy == pytest.approx(ref.free_energy, abs=tol)
    assert st.gap == pytest.approx(ham.hbar * omega[0])
    assert st.degeneracy == 1 and st.is_pure == (not thermal) and st.backend == "gaussian"
    # every monomial of degree <= 2, r p cross terms included
    got = string_expectations(ham, st)
    np.testing.assert_allclose(got, want, atol=tol)
    # variances: every single monomial (r_i p_i needs the ħ² commutator term) and random sums
    rng = np.random.default_rng(n)
    coef = np.vstack([np.eye(len(ham.strings)), rng.standard_normal((4, len(ham.strings)))])
    want_var = [ref.variance(ref.observable(ham, c)) for c in coef]
    np.testing.assert_allclose(variances(ham, st, coef), want_var, atol=10 * tol)
    # linear response d<m_s>/dλ for H + λB against Fock finite differences, with B the first
    # parameter's derivative (a spring, or a force for one mode) plus a bit of every monomial
    b = ham.derivative_coefficients[0] + 0.1 * rng.standard_normal(len(ham.strings))
    # central differences err by h² (third derivative) ≈ 1e-8, rounding by 1e-13/h; the coarser
    # basis (converged to tol / 3) is enough for a 1e-6 check
    step = 1e-4
    plus = Fock(ham, values, levels - 1, temperature, extra=step * b)
    minus = Fock(ham, values, levels - 1, temperature, extra=-step * b)
    fd_resp = np.array(
        [plus.expect(plus.monomial(q)) - minus.expect(minus.monomial(q)) for q in ham.strings]
    ) / (2 * step)
    lr = linear_response(ham, values, st, np.eye(len(ham.strings)), b, spec)
    np.testing.assert_allclose(lr, fd_resp, atol=1e-6 * max(1.0, np.max(np.abs(lr))))


def test_one_oscillator_textbook_values() -> None:
    # H = p²/2m + mω²r²/2 + F r: ⟨r²⟩ - ⟨r⟩² = ħ/(2mω) coth(ħω/2T), ⟨r⟩ = -F/(mω²)
    mass, w, force, hbar, t = 1.7, 0.9, 0.3, 0.8, 0.5
    ham = ModeHamiltonian(
        1, [(1 / (2 * mass), "p0 p0"), (mass * w**2 / 2, "r0 r0"), (force, "r0")], hbar=hbar
    )
    for temperature, occ in ((None, 1.0), (t, 1 / math.tanh(hbar * w / (2 * t)))):
        spec = StateSpec() if temperature is None else StateSpec(kind="thermal", temperature=t)
        st = solve(ham, np.zeros(0), spec)
        assert st.mean[0] == pytest.approx(-force / (mass * w**2), rel=1e-13)
        assert st.cov[0, 0] == pytest.approx(hbar / (2 * mass * w) * occ, rel=1e-13)
        assert st.cov[1, 1] == pytest.approx(hbar * mass * w / 2 * occ, rel=1e-13)
        assert st.cov[0, 1] == pytest.approx(0.0, abs=1e-14)
        shift = -(force**2) / (2 * mass * w**2)
        assert st.energy == pytest.approx(hbar * w / 2 * occ + shift, rel=1e-13)
        assert st.frequencies == pytest.approx([w], rel=1e-13)
    f_th = hbar * w / 2 + t * math.log(1 - math.exp(-hbar * w / t)) + shift
    assert solve(ham, np.zeros(0), StateSpec(kind="thermal", temperature=t)).free_energy == (
        pytest.approx(f_th, rel=1e-13)
    )


# ------------------------------------------------------------------------------ response vs FD
def _five_point(func: Any, h: float) -> np.ndarray:
    """``f'(0)`` by the five-point stencil (error h⁴ f⁽⁵⁾/30)."""
    return (-func(2 * h) + 8 * func(h) - 8 * func(-h) + func(-2 * h)) / (12 * h)


@pytest.mark.parametrize("n", [1, 5, 40, 200])
@pytest.mark.parametrize("thermal", [False, True], ids=["ground", "thermal"])
def test_linear_response_matches_differences_of_the_closed_form(n: int, thermal: bool) -> None:
    ham = network(n, seed=n, extra=n <= 5)
    values = network_values(ham, seed=n)
    spec = StateSpec(kind="thermal", temperature=0.7) if thermal else StateSpec()
    st = solve(ham, values, spec)
    rng = np.random.default_rng(n)
    a_coef = np.eye(len(ham.strings)) if n <= 5 else rng.standard_normal((3, len(ham.strings)))
    # B: a spring derivative plus a random small quadratic perturbation of every string
    b = ham.derivative_coefficients[0] + 0.1 * rng.standard_normal(len(ham.strings))
    lr = linear_response(ham, values, st, a_coef, b, spec)

    def shifted(lam: float) -> np.ndarray:
        m, f, c = ham.quadratic_form(values)
        dm, df, _ = ham.operator_form(b)
        temp = 0.7 if thermal else None
        s = state_from_form(decompose(m + lam * dm, ham.hbar), f + lam * df, c, temp)
        return a_coef @ string_expectations(ham, s)

    # five-point differences at h = 1e-3 err by ~1e-12 relative; rounding ~1e-13 / h
    with threadpool_limits(limits=1, user_api="blas"):
        fd = _five_point(shifted, 1e-3)
    assert np.max(np.abs(lr - fd)) <= 1e-8 * np.max(np.abs(fd))


def test_susceptibility_is_symmetric() -> None:
    # Onsager reciprocity: d<∂H/∂p_a>/dp_b is symmetric; each column is an independent solve
    from qeprop.gradients import susceptibility

    ham = network(4, seed=3, extra=False)
    system = QEPSystem(ham, {"d": QuadSum.from_terms([(1.0, "r0 r0"), (-1.0, "r0 r3")])})
    for spec in (StateSpec(), StateSpec(kind="thermal", temperature=0.4)):
        chi = susceptibility(system, network_values(ham, 3), state=spec)
        np.testing.assert_allclose(chi, chi.T, atol=1e-10 * np.max(np.abs(chi)))


# ------------------------------------------------------------------------------ estimators
def oscillator_system(cost: bool = False) -> tuple[QEPSystem, np.ndarray]:
    ham = network(4, seed=7, extra=False)
    outputs = {
        "d13": QuadSum.from_terms([(1.0, "r1 r1"), (1.0, "r3 r3"), (-2.0, "r1 r3")]),
        "x2": QuadSum.from_terms([(1.0, "r2")]),
        "rp": QuadSum.from_terms([(1.0, "r0 p0"), (0.5, "p1 p1")]),
    }
    trainable = [p for p in ham.params if p.startswith("k")]
    c = QuadSum.from_terms([(0.5, "r0 r0"), (-0.3, "r2 p1"), (0.2, "r3")]) if cost else None
    return QEPSystem(ham, outputs, trainable=trainable, cost=c), network_values(ham, 7)


LOSS = MeanSquaredError([0.9, -0.2, 0.1])
SPECS = {"ground": StateSpec(), "thermal": StateSpec(kind="thermal", temperature=0.5)}


@pytest.mark.parametrize("kind", list(SPECS))
def test_nudged_estimators_converge_at_their_order(kind: str) -> None:
    system, values = oscillator_system(cost=True)
    spec = SPECS[kind]
    ref = estimate_gradient(system, values, LOSS, estimator="linear_response", state=spec)
    assert ref.backend == "gaussian" and ref.degeneracy == 1
    betas = np.array([0.02, 0.01, 0.005])
    for name, order in (("positive", 1), ("negative", 1), ("centered", 2)):
        err = [
            np.linalg.norm(
                estimate_gradient(
                    system, values, LOSS, estimator=name, nudge=b, state=spec
                ).gradient
                - ref.gradient
            )
            for b in betas
        ]
        slope = np.polyfit(np.log(betas), np.log(err), 1)[0]
        assert abs(slope - order) < 0.15, (name, slope, err)
    # the cost observable (loss = <C>), nudged H + βC
    ref_c = estimate_gradient(system, values, None, estimator="linear_response", state=spec)
    err = [
        np.linalg.norm(
            estimate_gradient(
                system, values, None, estimator="cost_observable", variant="positive", nudge=b,
                state=spec,
            ).gradient
            - ref_c.gradient
        )
        for b in betas
    ]  # fmt: skip
    assert abs(np.polyfit(np.log(betas), np.log(err), 1)[0] - 1) < 0.15


@pytest.mark.parametrize("kind", list(SPECS))
def test_finite_nudges_equal_differences_of_exact_nudged_solves(kind: str) -> None:
    system, values = oscillator_system()
    spec, beta = SPECS[kind], 0.05
    h = system.full
    full = system.full_values(values)
    free = solve(h, full, spec)
    train = h.derivative_coefficients[system.trainable_index]
    y = string_expectations(h, free) @ system.output_coefficients[1].T
    eps = LOSS(y)[1]

    def a_at(sign: int) -> np.ndarray:
        v = full.copy()
        v[system.output_index] += sign * beta * eps
        return train @ string_expectations(h, solve(h, v, spec))

    a0, ap, am = a_at(0), a_at(1), a_at(-1)
    exact = {"positive": (ap - a0) / beta, "negative": (a0 - am) / beta}
    exact["centered"] = (ap - am) / (2 * beta)
    for name, want in exact.items():
        got = estimate_gradient(system, values, LOSS, estimator=name, nudge=beta, state=spec)
        np.testing.assert_allclose(got.gradient, want, rtol=1e-8, atol=1e-12)
        assert got.stderr.tolist() == [0.0] * len(want)


@pytest.mark.parametrize("kind", list(SPECS))
def test_linear_response_and_finite_difference_estimators_agree(kind: str) -> None:
    system, values = oscillator_system()
    spec = SPECS[kind]
    lr = estimate_gradient(system, values, LOSS, estimator="linear_response", state=spec)
    fd = estimate_gradient(system, values, LOSS, estimator="finite_difference", state=spec)
    # central differences with h = 1e-4: O(h²) ≈ 1e-8 relative, rounding ≈ 1e-12
    np.testing.assert_allclose(fd.gradient, lr.gradient, rtol=1e-6, atol=1e-9)
    # and the loss itself, differenced by hand with the five-point stencil
    full = system.full_values(values)
    coef = system.output_coefficients

    def loss_at(j: int, d: float) -> float:
        v = full.copy()
        v[system.trainable_index[j]] += d
        st = solve(system.full, v, spec)
        return LOSS(coef[0] + coef[1] @ string_expectations(system.full, st))[0]

    for j in range(len(system.trainable)):
        g = _five_point(lambda d, j=j: loss_at(j, d), 1e-3)
        assert lr.gradient[j] == pytest.approx(g, rel=1e-8, abs=1e-10)


def test_contrastive_function_is_the_free_energy_difference() -> None:
    system, values = oscillator_system()
    spec = SPECS["thermal"]
    rec = estimate_gradient(system, values, LOSS, estimator="positive", nudge=0.01, state=spec)
    h = system.full
    full = system.full_values(values)
    free = solve(h, full, spec)
    v = full.copy()
    v[system.output_index] += 0.01 * rec.error_signal
    nudged = solve(h, v, spec)
    assert rec.contrastive == pytest.approx((nudged.free_energy - free.free_energy) / 0.01)


# ------------------------------------------------------------------------------ shots
def test_measurement_settings_follow_the_documented_convention() -> None:
    qs = [QuadString.parse(t) for t in ("r0 r1", "r2", "p0 p0", "p1 p2", "r0 p0", "r1 p2")]
    settings = quad_measurement_settings(qs)
    # greedy, two-mode strings first: r0 r1 and r1 p2 share a setting, p1 p2 needs another;
    # r0 p0 = (u0² - v0²)/2 puts u0 into the second and v0 into a third, which r2 joins (p2 is
    # read in the first two); p0 p0 needs a fourth
    assert [s.label for s in settings] == ["r0 r1 p2", "u0 p1 p2", "v0 r2", "p0"]
    flat = [q for s in quad_settings(qs) for q in s]
    assert flat.count(QuadString.parse("r0 p0")) == 2
    assert all(flat.count(q) == 1 for q in qs if str(q) != "r0 p0")
    for s in settings:  # every string of a setting is read from its quadratures
        for q in s.strings:
            for letter, mode in q.factors:
                assert s.quadrature(mode) in (letter, "u", "v")


def test_all_positions_share_one_setting() -> None:
    springs = [QuadString.parse(f"r{i} r{j}") for i in range(5) for j in range(i, 5)]
    momenta = [QuadString.parse(f"p{i} p{i}") for i in range(5)]
    assert len(quad_settings(springs)) == 1
    assert len(quad_settings(springs + momenta)) == 2


@pytest.mark.parametrize("kind", list(SPECS))
def test_sampled_shots_are_unbiased_with_stderr_one_over_sqrt_shots(kind: str) -> None:
    system, values = oscillator_system(cost=True)
    h = system.full
    st = solve(h, system.full_values(values), SPECS[kind])
    ident, coef = system.output_coefficients
    ident = np.concatenate([ident, [system.cost_coefficients[0]]])
    coef = np.vstack([coef, system.cost_coefficients[1]])
    exact = measure(h, st, ident, coef).mean
    rng = np.random.default_rng(5)
    small = measure(h, st, ident, coef, shots=4000, model="sampled", rng=rng)
    large = measure(h, st, ident, coef, shots=16000, model="sampled", rng=rng)
    model = measure(h, st, ident, coef, shots=4000, model="gaussian", rng=rng)
    used = coef.any(axis=0)
    n_settings = len(quad_settings([q for q, c in zip(h.strings, used, strict=True) if c]))
    assert small.shots == small.preparations == 4000 * n_settings
    assert model.shots == small.shots and len(small.settings) == n_settings
    for est in (small, large, model):
        z = (est.mean - exact) / est.stderr
        assert np.all(np.abs(z) < 4), z  # seeded; 4 standard errors
    # stderr ∝ 1/√M: four times the shots halve it (sample stderr: ~2 % precision at M = 4000)
    np.testing.assert_allclose(small.stderr / large.stderr, 2.0, rtol=0.08)
    # the sample spread is the exact per-setting variance σ² = Σ_g Var(A_g)
    np.testing.assert_allclose(small.stderr, model.stderr, rtol=0.08)


def test_gaussian_shot_model_stderr_is_the_exact_variance_within_one_setting() -> None:
    system, values = oscillator_system()
    h = system.full
    st = solve(h, system.full_values(values), StateSpec())
    coef = system.output_coefficients[1][:2]  # d13 and x2: positions only, one setting
    est = measure(
        h, st, np.zeros(2), coef, shots=100, model="gaussian", rng=np.random.default_rng(0)
    )
    np.testing.assert_allclose(est.stderr**2 * 100, variances(h, st, coef), rtol=1e-12)
    assert est.shots == 100 and [s.basis for s in est.settings] == ["r1 r2 r3"]


def test_shot_noise_estimates_through_estimate_gradient() -> None:
    system, values = oscillator_system()
    ref = estimate_gradient(system, values, LOSS, estimator="centered", nudge=0.2)
    rec = estimate_gradient(
        system, values, LOSS, estimator="centered", nudge=0.2, shots=20000, shot_model="sampled",
        seed=3,
    )  # fmt: skip
    assert rec.shots > 0 and np.all(rec.stderr > 0)
    assert np.all(np.abs(rec.gradient - ref.gradient) < 5 * rec.stderr)
    # the couplings are springs: one setting reads every position
    nudged = [ph for ph in rec.ledger if ph.phase.startswith("nudged")]
    assert len(nudged) == 2
    assert all([s[0] for s in ph.settings] == ["r0 r1 r2 r3"] for ph in nudged)
    assert rec.shots == 2 * 20000


# ------------------------------------------------------------------------------ classical limit
def test_classical_limit() -> None:
    t = 0.6
    for hbar in (1e-3, 1e-6):
        ham = network(6, seed=2, hbar=hbar, extra=False)
        values = network_values(ham, 2)
        m, f, _ = ham.quadratic_form(values)
        thermal = solve(ham, values, StateSpec(kind="thermal", temperature=t))
        # V = T M⁻¹ (1 + O((ħω/T)²)): relative corrections ~ (ħω/T)²/12
        np.testing.assert_allclose(thermal.cov, t * la.inv(m), rtol=0, atol=hbar**2 * 10)
        ground = solve(ham, values, StateSpec())
        classical = -la.solve(m, f)
        np.testing.assert_allclose(ground.mean, classical, rtol=1e-12)
        np.testing.assert_allclose(thermal.mean, classical, rtol=1e-12)
        # ground fluctuations vanish linearly in ħ
        assert np.max(np.abs(ground.cov)) < 10 * hbar
        # the energy is the classical minimum plus the zero-point energy Σ ħω/2
        c = float(ham.quadratic_form(values)[2])
        omega = decompose(m, hbar).frequencies
        e_cl = c + 0.5 * float(f @ classical)
        assert ground.energy == pytest.approx(e_cl + 0.5 * hbar * omega.sum(), rel=1e-12)


# ------------------------------------------------------------------------------ bad input
def test_not_positive_definite_and_zero_modes_are_refused() -> None:
    # an inverted oscillator
    ham = ModeHamiltonian(1, [(0.5, "p0 p0"), (-0.3, "r0 r0")])
    with pytest.raises(ProblemError, match=r"not positive definite \(smallest eigenvalue -0\.6"):
        solve(ham, np.zeros(0))
    # two masses and one spring, nothing pinned: the centre of mass translates freely
    free = ModeHamiltonian(
        2, [(0.5, "p0 p0"), (0.5, "p1 p1"), (0.5, "r0 r0"), (0.5, "r1 r1"), (-1.0, "r0 r1")]
    )
    with pytest.raises(ProblemError, match="zero within rounding: a zero mode") as exc:
        solve(free, np.zeros(0), StateSpec(kind="thermal", temperature=1.0))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("r0 r1 r2", "has 3 factors"),
        ("x0", "unknown quadrature 'x' in 'x0'"),
        ("r9", "mode index 9 in 'r9' is out of range for 2 modes"),
        ("r", "has no mode index"),
        ("r0r1", "malformed quadrature"),
    ],
)
def test_malformed_quadrature_strings(text: str, match: str) -> None:
    with pytest.raises(ProblemError, match=match):
        QuadString.parse(text, n_modes=2)


def test_bad_hamiltonians_and_mixing_are_refused() -> None:
    with pytest.raises(ProblemError, match="hbar must be a finite number > 0"):
        ModeHamiltonian(1, [(1.0, "r0 r0")], hbar=float("nan"))
    with pytest.raises(ProblemError, match=r"terms\[0\]: mode index 3"):
        ModeHamiltonian(2, [(1.0, "r3 r0")])
    ham = network(2, seed=0, extra=False)
    with pytest.raises(ProblemError, match="is a Pauli operator"):
        QEPSystem(ham, {"z": PauliSum.from_terms([(1.0, "Z0")])})
    from qeprop import ParametrisedHamiltonian

    qubits = ParametrisedHamiltonian(2, [(1.0, "Z0 Z1"), (0.5, "X0"), (0.5, "X1")])
    with pytest.raises(ProblemError, match="is a quadrature observable"):
        QEPSystem(qubits, {"r": QuadSum.from_terms([(1.0, "r0")])})
    with pytest.raises(ProblemError, match="the dense backend solves qubit problems"):
        solve(ham, network_values(ham, 0), StateSpec(method="dense"))
    with pytest.raises(ProblemError, match="the gaussian backend solves oscillator networks"):
        solve(qubits, np.zeros(0), StateSpec(method="gaussian"))
    with pytest.raises(ProblemError, match="cannot prepare eigenstate states"):
        solve(ham, network_values(ham, 0), StateSpec(kind="eigenstate", level=1))
    with pytest.raises(ProblemError, match="Pauli symmetries of qubit problems"):
        solve(ham, network_values(ham, 0), StateSpec(symmetry="auto"))


# ------------------------------------------------------------------------------ problem files
def mode_problem(**changes: Any) -> dict[str, Any]:
    d = json.loads((ROOT / "examples" / "oscillators.json").read_text(encoding="utf-8"))
    d.update(changes)
    return d


def gradient(capsys: pytest.CaptureFixture, path: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["gradient", str(path), *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("state", [{"kind": "ground"}, {"kind": "thermal", "temperature": 0.4}])
def test_every_estimator_through_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, state: dict[str, Any]
) -> None:
    d = mode_problem(state=state)
    d["estimator"] = {"kind": "centered", "nudge": 0.001}
    path = tmp_path / "osc.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    grads = {}
    for est in ("positive", "negative", "centered", "linear_response", "finite_difference"):
        code, out, err = gradient(capsys, path, "--estimator", est, "--json")
        assert code == 0 and err == "", err
        obj = json.loads(out)
        assert obj["backend"] == "gaussian"
        grads[est] = np.array(list(obj["gradient"].values()))
    ref = grads["linear_response"]
    # one-sided O(β) at β = 0.001 (≈ 0.6 % here: the output couples strongly), centred O(β²)
    for est, tol in (("positive", 0.03), ("negative", 0.03), ("centered", 1e-3),
                     ("finite_difference", 1e-5)):  # fmt: skip
        assert np.max(np.abs(grads[est] - ref)) <= tol * np.linalg.norm(ref), est
    # a cost observable, with shots from the sampled model
    d["loss"] = {"kind": "observable", "terms": [{"quad": "r1 r3", "coeff": 1.0},
                                                 {"quad": "r0 p0", "coeff": 0.3}]}  # fmt: skip
    d.update(shots=2000, shot_model="sampled", seed=1)
    path.write_text(json.dumps(d), encoding="utf-8")
    code, out, err = gradient(capsys, path, "--estimator", "cost_observable", "--json")
    assert code == 0 and err == "", err
    obj = json.loads(out)
    assert obj["shots"] > 0 and all(v > 0 for v in obj["stderr"].values())
    code, out, err = gradient(capsys, path, "--estimator", "cost_observable")
    assert code == 0 and "4 modes (ħ = 1), 15 terms" in out


def test_example_problem_loads() -> None:
    prob = load_problem(ROOT / "examples" / "oscillators.json")
    assert isinstance(prob.system.hamiltonian, ModeHamiltonian)
    assert prob.system.trainable == ("k01", "k12", "k23")


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"hbar": float("nan")}, "hbar"),
        ({"hbar": -1.0}, "hbar"),
        ({"modes": 2}, "terms[2].quad: mode index 2 in 'p2 p2' is out of range for 2 modes"),
        ({"qubits": 4}, "not both"),
        ({"terms": [{"quad": "r0 r1 r2"}]}, "terms[0].quad: 'r0 r1 r2' has 3 factors"),
        ({"terms": [{"quad": "x0"}]}, "terms[0].quad: unknown quadrature 'x' in 'x0'"),
        ({"terms": [{"pauli": "Z0"}]}, "terms[0].pauli: a Pauli term in a problem of oscillator"),
        ({"outputs": [{"name": "z", "pauli": "Z0"}]}, "outputs[0].pauli: a Pauli term"),
        ({"state": {"method": "dense"}}, "the dense backend solves qubit problems"),
        ({"state": {"method": "sparse"}}, "the sparse backend solves qubit problems"),
        ({"state": {"kind": "eigenstate", "level": 1}}, "cannot prepare eigenstate states"),
        ({"loss": {"kind": "cross_entropy", "target": [1.0]}}, "loss.kind: cross_entropy: the"),
        (
            {"terms": [{"quad": "p0 p0", "coeff": 0.5}, {"quad": "r0 r0", "coeff": -0.5}]},
            "not positive definite (smallest eigenvalue -1)",
        ),
    ],
)
def test_bad_mode_problems_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, change: dict[str, Any], expect: str
) -> None:
    d = mode_problem(**change)
    if "terms" in change and len(change["terms"]) == 2:
        d.update(params={}, inputs={}, outputs=[{"name": "x", "quad": "r0"}])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d), encoding="utf-8")  # NaN becomes a NaN literal
    code, out, err = gradient(capsys, path)
    assert code == 2 and out == "", err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert expect in err, err


def test_qubit_problem_with_quadrature_terms_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    d = json.loads((ROOT / "examples" / "minimal.json").read_text(encoding="utf-8"))
    d["terms"].append({"quad": "r0 r0"})
    path = tmp_path / "q.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    code, out, err = gradient(capsys, path)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "terms[3].quad: a quadrature term ('quad') in a qubit problem" in err
    d = json.loads((ROOT / "examples" / "minimal.json").read_text(encoding="utf-8"))
    path.write_text(json.dumps(d), encoding="utf-8")
    code, _, err = gradient(capsys, path, "--method", "gaussian")
    assert code == 2 and "the gaussian backend solves oscillator networks" in err


# ------------------------------------------------------------------------------ layer-1 types
def test_quadrature_strings_and_sums() -> None:
    q = QuadString.parse("p0 R1")
    assert (
        str(q) == "r1 p0"
        and q == QuadString.parse("r1 p0")
        and hash(q) == hash(QuadString.parse("r1   p0"))
    )
    assert q.max_mode == 1 and q.degree == 2 and q.xi_indices(3) == (1, 3)
    assert str(QuadString.parse("")) == "1" and QuadString.parse("1").is_identity()
    assert sorted(QuadString.parse(t) for t in ("p0", "r1 r0", "", "r2")) == [
        QuadString.parse(t) for t in ("", "r2", "p0", "r0 r1")
    ]
    a = QuadSum.from_terms([(1.0, "r0 r0"), (2.0, "r0 p1"), (0.5, "p1 r0")])
    assert a.coefficient("r0 p1") == 2.5 and len(a) == 2 and a.max_mode == 1
    b = 2 * a - a
    assert b == a and (a + (-1.0) * a) == QuadSum()
    assert as_quad_sum("r3") == QuadSum.from_terms([(1.0, "r3")])
    assert as_quad_sum([(0.5, "p2 p2")]).real() == {QuadString.parse("p2 p2"): 0.5}
    with pytest.raises(ProblemError, match="must be a real number"):
        QuadSum.from_terms([(1j, "r0")])
    with pytest.raises(ProblemError, match="not finite"):
        QuadSum.from_terms([(float("nan"), "r0")])
    assert a.spectrum_bounds() is None and QuadSum.from_terms([(2.0, "")]).spectrum_bounds() == (
        2.0,
        2.0,
    )


def test_mode_hamiltonian_interface() -> None:
    # one spring constant k on three terms: ½k(r0 - r1)², plus masses and a pinning
    ham = ModeHamiltonian(
        2,
        [(0.5, "p0 p0"), (0.5, "p1 p1"), (1.0, "r0 r0"),
         (0.5, "r0 r0", "k"), (0.5, "r1 r1", "k"), (-1.0, "r0 r1", "k")],
        extra_strings=[QuadString.parse("r1 p1")],
    )  # fmt: skip
    assert ham.params == ("k",) and ham.hbar == 1.0
    assert len(ham.strings) == 6  # p0 p0, p1 p1, r0 r0, r1 r1, r0 r1 and the extra r1 p1
    dk = dict(zip(map(str, ham.strings), ham.derivative_coefficients[0], strict=True))
    assert dk == {"p0 p0": 0, "p1 p1": 0, "r0 r0": 0.5, "r1 r1": 0.5, "r0 r1": -1.0, "r1 p1": 0}
    m, f, c = ham.quadratic_form(ham.values({"k": 2.0}))
    np.testing.assert_allclose(m, [[4, -2, 0, 0], [-2, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert f.tolist() == [0, 0, 0, 0] and c == 0
    ident, coef = ham.coefficients_of(QuadSum.from_terms([(3.0, ""), (1.0, "r1 p1")]))
    assert ident == 3.0 and coef[ham.string_index[QuadString.parse("r1 p1")]] == 1.0
    with pytest.raises(ProblemError, match="not in the Hamiltonian's basis"):
        ham.coefficients_of(QuadSum.from_terms([(1.0, "p0")]))
    with pytest.raises(ProblemError, match="cannot be measured on oscillator modes"):
        ham.coefficients_of(PauliSum.from_terms([(1.0, "Z0")]))
    with pytest.raises(ProblemError, match="unknown parameters"):
        ham.values({"k": 1.0, "q": 2.0})
    with pytest.raises(ProblemError, match="not finite"):
        ham.check_values(np.array([np.nan]))
    bigger = ham.with_terms([ModeTerm(1.0, QuadString.parse("r0"), "F")], params=["F"])
    assert bigger.params == ("k", "F") and bigger.hbar == ham.hbar
    assert ham.norm_bound(np.array([2.0])) == pytest.approx(0.5 + 0.5 + 1 + 1 + 1 + 2)
