"""Equilibrium solvers against dense linear algebra (``scipy.linalg.eigh``, ``scipy.linalg.expm``).

The reference matrices are ``ham.dense`` (its agreement with Kronecker products is tested in
``test_hamiltonian.py``) or ``kron_reference`` for small systems.

Tolerances: the solvers run with ``tol=1e-12`` (relative eigenvalue tolerance). For Hamiltonians
with ``||H|| ~ 10`` and gaps ``δ >~ 0.1`` that means eigenvalue errors ~1e-11 and eigenvector
errors ~``tol ||H|| / δ`` ~ 1e-9; the asserts below allow 1e-9 on energies and 1e-8 on
``1 - |overlap|`` / density matrices, i.e. well above these but far below any physical effect.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as la

from conftest import dense_eigh, random_hamiltonian
from qeprop import DegeneracyError, ParametrisedHamiltonian, ProblemError, StateSpec, solve
from qeprop.errors import LevelCrossingWarning

LANCZOS = StateSpec(method="lanczos", dense_max_dim=2)  # force Lanczos at any dimension
DENSE = StateSpec(method="dense")
E_TOL = 1e-9  # eigenvalues: ~tol * ||H|| = 1e-11 expected
V_TOL = 1e-8  # eigenvectors / density matrices: ~tol * ||H|| / gap = 1e-10 expected


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)))


def projector(vectors: np.ndarray) -> np.ndarray:
    return vectors @ vectors.conj().T


# ------------------------------------------------------------------------------- ground states
@pytest.mark.parametrize(("n", "seed", "letters"), [(8, 0, "IXYZ"), (9, 1, "IXZ"), (10, 2, "IXYZ")])
def test_dense_and_lanczos_agree_with_eigh(n, seed, letters):
    ham, v = random_hamiltonian(n, 3 * n, 3, seed=seed, letters=letters)
    ev, vec = dense_eigh(ham.dense(v), 2)
    assert ev[1] - ev[0] > 0.05  # precondition: a clearly non-degenerate ground state
    dense = solve(ham, v, DENSE)
    lanczos = solve(ham, v, LANCZOS)
    assert dense.method == "dense" and lanczos.method == "lanczos"
    for st in (dense, lanczos):
        assert st.degeneracy == 1 and st.kind == "ground"
        np.testing.assert_allclose(st.weights, [1.0])
        assert st.energy == pytest.approx(ev[0], abs=E_TOL)
        assert st.gap == pytest.approx(ev[1] - ev[0], abs=E_TOL)
        assert overlap(st.vectors[:, 0], vec[:, 0]) == pytest.approx(1.0, abs=V_TOL)
        assert st.residual < 1e-8  # ||Hψ - Eψ|| ~ tol * ||H||
        assert np.linalg.norm(st.vectors[:, 0]) == pytest.approx(1.0, abs=1e-12)
    assert lanczos.matvecs > 0 and dense.matvecs == 0
    if ham.is_real:
        assert dense.vectors.dtype == np.float64 and lanczos.vectors.dtype == np.float64


def test_auto_method_switches_on_dimension():
    ham, v = random_hamiltonian(5, 10, 2, seed=3)
    assert solve(ham, v, StateSpec(dense_max_dim=32)).method == "dense"
    assert solve(ham, v, StateSpec(dense_max_dim=16)).method == "lanczos"
    assert solve(ham, v).method == "dense"  # default dense_max_dim=256 >= 32


def test_warm_start_gives_the_cold_state():
    ham, v = random_hamiltonian(9, 27, 3, seed=4)
    cold = solve(ham, v, LANCZOS)
    # re-solving at the same values from the converged state
    again = solve(ham, v, LANCZOS, guess=cold)
    assert overlap(again.vectors[:, 0], cold.vectors[:, 0]) == pytest.approx(1.0, abs=V_TOL)
    assert again.energy == pytest.approx(cold.energy, abs=E_TOL)
    assert again.gap == pytest.approx(cold.gap, abs=E_TOL)
    # a nearby parameter point: warm and cold solves find the same state
    v2 = v + 1e-3
    warm = solve(ham, v2, LANCZOS, guess=cold)
    cold2 = solve(ham, v2, LANCZOS)
    assert overlap(warm.vectors[:, 0], cold2.vectors[:, 0]) == pytest.approx(1.0, abs=V_TOL)
    assert warm.energy == pytest.approx(cold2.energy, abs=E_TOL)
    assert warm.gap == pytest.approx(cold2.gap, abs=E_TOL)


# ------------------------------------------------------------------------------- degeneracy
def degenerate_hamiltonian(
    n: int, seed: int, idle: int = 1
) -> tuple[ParametrisedHamiltonian, np.ndarray]:
    """A random Hamiltonian on qubits 0..n-1-idle embedded in n qubits: the last ``idle`` qubits
    are untouched, so every level is exactly ``2**idle``-fold degenerate."""
    small, v = random_hamiltonian(n - idle, 3 * n, 3, seed=seed)
    return ParametrisedHamiltonian(n, small.terms, params=small.params), v


@pytest.mark.parametrize("spec", [DENSE, LANCZOS], ids=["dense", "lanczos"])
@pytest.mark.parametrize("idle", [1, 2])
def test_exact_degeneracy_mixture(spec, idle):
    ham, v = degenerate_hamiltonian(7, seed=5, idle=idle)
    g = 2**idle
    ev, vec = dense_eigh(ham.kron_reference(v))
    assert ev[g - 1] - ev[0] < 1e-10 < 0.05 < ev[g] - ev[g - 1]  # precondition: exactly g-fold
    st = solve(ham, v, spec)
    assert st.degeneracy == g
    np.testing.assert_allclose(st.weights, np.full(g, 1 / g), atol=1e-15)
    np.testing.assert_allclose(st.energies, ev[:g], atol=E_TOL)
    assert st.gap == pytest.approx(ev[g] - ev[g - 1], abs=E_TOL)
    assert st.splitting < 1e-9
    # basis independent: ρ = P_manifold / g, whichever orthonormal basis the solver chose
    np.testing.assert_allclose(st.density_matrix(), projector(vec[:, :g]) / g, atol=V_TOL)
    np.testing.assert_allclose(st.vectors.conj().T @ st.vectors, np.eye(g), atol=V_TOL)


@pytest.mark.parametrize("spec", [DENSE, LANCZOS], ids=["dense", "lanczos"])
def test_exact_degeneracy_error_mode(spec):
    ham, v = degenerate_hamiltonian(7, seed=5)
    with pytest.raises(DegeneracyError, match="degenerate"):
        solve(ham, v, spec.with_(degeneracy="error"))


def test_error_mode_accepts_a_non_degenerate_state():
    ham, v = random_hamiltonian(5, 10, 2, seed=6)
    st = solve(ham, v, StateSpec(degeneracy="error"))
    assert st.degeneracy == 1


def test_guess_keeps_the_manifold_size():
    # the free state is the exact 2-fold mixture; a field 1e-4 Z on the idle qubit splits the pair
    # by 2e-4 > degeneracy_tol: a cold solve returns one state, a solve following the free state
    # keeps both (same branch for free and nudged phases)
    ham, v = degenerate_hamiltonian(6, seed=13)
    split = ParametrisedHamiltonian(6, [*ham.terms, (1.0, "Z5", "eps")])
    free = solve(split, np.append(v, 0.0))
    assert free.degeneracy == 2
    nudged_values = np.append(v, 1e-4)
    assert solve(split, nudged_values).degeneracy == 1
    followed = solve(split, nudged_values, guess=free)
    assert followed.degeneracy == 2
    ev, vec = dense_eigh(split.dense(nudged_values), 3)
    np.testing.assert_allclose(followed.energies, ev[:2], atol=E_TOL)
    np.testing.assert_allclose(followed.density_matrix(), projector(vec[:, :2]) / 2, atol=V_TOL)


def cluster_ising(n: int, g_zxz: float, g_zz: float, g_x: float) -> ParametrisedHamiltonian:
    """Open chain ``g_zxz Σ_{j=1}^{n-2} Z_{j-1} X_j Z_{j+1} - g_zz Σ_{j=0}^{n-2} Z_j Z_{j+1}
    - g_x Σ_j X_j``."""
    terms = [(g_zxz, f"Z{j - 1} X{j} Z{j + 1}") for j in range(1, n - 1)]
    terms += [(-g_zz, f"Z{j} Z{j + 1}") for j in range(n - 1)]
    terms += [(-g_x, f"X{j}") for j in range(n)]
    return ParametrisedHamiltonian(n, terms)


@pytest.mark.parametrize("method", ["dense", "lanczos"])
def test_cluster_ising_low_manifold(method):
    ham = cluster_ising(8, g_zxz=2.5, g_zz=0.5, g_x=1.0)
    v = np.zeros(0)
    ev = dense_eigh(ham.dense(v))[0]
    spec = StateSpec(method=method, dense_max_dim=2)
    # The four edge-mode states form a low manifold far below the bulk excitations (~2 g_zxz),
    # but at 8 sites with these symmetry-breaking couplings they are split by O(0.1), not by
    # 1e-3: eigh decides how many levels lie within each tolerance of E0.
    assert ev[4] - ev[3] > 10 * (ev[3] - ev[0])  # a well-isolated 4-state manifold
    for tol in (1e-3, 0.5):
        expected = int(np.sum(ev - ev[0] < tol))
        st = solve(ham, v, spec.with_(degeneracy_tol=tol))
        assert st.degeneracy == expected
        np.testing.assert_allclose(st.energies, ev[:expected], atol=E_TOL)
        assert st.gap == pytest.approx(ev[expected] - ev[expected - 1], abs=E_TOL)
        assert st.splitting == pytest.approx(ev[expected - 1] - ev[0], abs=E_TOL)
        if tol == 0.5:
            assert expected == 4  # the whole edge manifold
        else:
            assert expected == 1  # the splitting (~0.068) exceeds 1e-3 at 8 sites


# ------------------------------------------------------------------------------- thermal
@pytest.mark.parametrize("temperature", [0.3, 1.0, 5.0])
def test_thermal_state_is_gibbs(temperature):
    ham, v = random_hamiltonian(5, 10, 3, seed=7)
    h = ham.kron_reference(v)
    gibbs = la.expm(-h / temperature)
    gibbs /= np.trace(gibbs)
    st = solve(ham, v, StateSpec(kind="thermal", temperature=temperature))
    assert st.kind == "thermal" and st.temperature == temperature
    assert st.degeneracy == ham.dim
    assert st.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # expm is accurate to ~1e-13 relative here; entries of ρ are <= 1
    np.testing.assert_allclose(st.density_matrix(), gibbs, atol=1e-10)
    ev = dense_eigh(h)[0]
    assert st.gap == pytest.approx(ev[1] - ev[0], abs=E_TOL)
    assert st.energy == pytest.approx(np.trace(gibbs @ h).real, abs=1e-10)


def test_low_temperature_approaches_the_ground_state():
    ham, v = random_hamiltonian(5, 10, 3, seed=8)
    ground = solve(ham, v)
    t = ground.gap / 50  # excited weights <= (dim-1) e^{-50} ~ 6e-21
    st = solve(ham, v, StateSpec(kind="thermal", temperature=t))
    np.testing.assert_allclose(st.density_matrix(), ground.density_matrix(), atol=1e-10)
    assert st.weights[0] == pytest.approx(1.0, abs=1e-15)


def test_high_temperature_approaches_the_maximally_mixed_state():
    ham, v = random_hamiltonian(4, 8, 3, seed=9)
    st = solve(ham, v, StateSpec(kind="thermal", temperature=1e6))
    # weights e^{-ΔE/T}: deviations from 1/d are ~ ||H|| / T ~ 1e-5 relative
    np.testing.assert_allclose(st.weights, np.full(ham.dim, 1 / ham.dim), rtol=1e-4)


# ------------------------------------------------------------------------------- eigenstates
@pytest.mark.parametrize("spec", [DENSE, LANCZOS], ids=["dense", "lanczos"])
@pytest.mark.parametrize("level", [1, 3])
def test_eigenstate_level_matches_eigh(spec, level):
    ham, v = random_hamiltonian(7, 20, 3, seed=10)
    ev, vec = dense_eigh(ham.kron_reference(v))
    spacings = np.diff(ev[: level + 2])
    assert spacings.min() > 1e-2  # precondition: the levels involved are non-degenerate
    st = solve(ham, v, spec.with_(kind="eigenstate", level=level))
    assert st.kind == "eigenstate" and st.level == level and st.degeneracy == 1
    assert st.energy == pytest.approx(ev[level], abs=E_TOL)
    assert overlap(st.vectors[:, 0], vec[:, level]) == pytest.approx(1.0, abs=1e-7)
    assert st.gap == pytest.approx(min(ev[level] - ev[level - 1], ev[level + 1] - ev[level]))


def test_eigenstate_followed_through_a_small_perturbation():
    ham, v = random_hamiltonian(6, 16, 3, seed=11)
    spec = StateSpec(kind="eigenstate", level=2)
    free = solve(ham, v, spec)
    v2 = v + np.array([1e-3, -2e-3, 1e-3])
    followed = solve(ham, v2, spec, guess=free)
    ev, vec = dense_eigh(ham.kron_reference(v2))
    assert followed.level == 2
    assert followed.energy == pytest.approx(ev[2], abs=E_TOL)
    assert overlap(followed.vectors[:, 0], vec[:, 2]) == pytest.approx(1.0, abs=1e-7)


def test_eigenstate_is_followed_through_a_level_crossing():
    # H(a) = a Z0 + 0.3 Z1 is diagonal with E(b0, b1) = a (-1)^b0 + 0.3 (-1)^b1. At a = 0.2 the
    # levels are |11> -0.5, |01> -0.1, |10> 0.1, |00> 0.5, so level 1 is |01>. At a = 0.4 the
    # branches |01> (E = a - 0.3) and |10> (E = 0.3 - a) have crossed: |01> is now level 2.
    ham = ParametrisedHamiltonian(2, [(1.0, "Z0", "a"), (0.3, "Z1")])
    spec = StateSpec(kind="eigenstate", level=1)
    free = solve(ham, np.array([0.2]), spec)
    idx = int(np.argmax(np.abs(free.vectors[:, 0])))
    assert free.energy == pytest.approx(-0.1)
    followed = solve(ham, np.array([0.4]), spec, guess=free)
    counted = solve(ham, np.array([0.4]), spec)
    assert overlap(followed.vectors[:, 0], free.vectors[:, 0]) == pytest.approx(1.0)
    assert followed.level == 2  # same branch, now the third level
    assert followed.energy == pytest.approx(0.1)
    assert counted.level == 1 and abs(counted.vectors[idx, 0]) < 1e-12  # the other branch


def test_level_crossing_warning_when_the_state_is_lost():
    # H(a, b) = a (Z0 + 0.7 Z1) + b (X0 + 0.7 X1): the ground state |11> of (a, b) = (1, 0) has
    # overlap 1/4 with every eigenvector at (0, 1) (the X basis), so following it must warn.
    terms = [(1.0, "Z0", "a"), (0.7, "Z1", "a"), (1.0, "X0", "b"), (0.7, "X1", "b")]
    ham = ParametrisedHamiltonian(2, terms)
    spec = StateSpec(kind="eigenstate", level=0)
    free = solve(ham, np.array([1.0, 0.0]), spec)
    with pytest.warns(LevelCrossingWarning, match="level crossing"):
        solve(ham, np.array([0.0, 1.0]), spec, guess=free)


# ------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"kind": "excited"}, "unknown state kind"),
        ({"method": "qr"}, "unknown solver method"),
        ({"degeneracy": "ignore"}, "unknown degeneracy mode"),
        ({"kind": "thermal"}, "finite temperature > 0"),
        ({"kind": "thermal", "temperature": 0.0}, "finite temperature > 0"),
        ({"kind": "thermal", "temperature": -1.0}, "finite temperature > 0"),
        ({"kind": "thermal", "temperature": float("nan")}, "finite temperature > 0"),
        ({"kind": "thermal", "temperature": float("inf")}, "finite temperature > 0"),
        ({"temperature": 1.0}, "only used by thermal"),
        ({"kind": "eigenstate", "level": -1}, "non-negative integer"),
        ({"kind": "eigenstate", "level": 1.5}, "non-negative integer"),
        ({"tol": -1e-12}, "tol must be a finite number > 0"),
        ({"tol": 0.0}, "tol must be a finite number > 0"),
        ({"degeneracy_tol": float("nan")}, "degeneracy_tol must be a finite number > 0"),
    ],
)
def test_invalid_state_spec(kwargs, fragment):
    with pytest.raises(ProblemError, match=fragment):
        StateSpec(**kwargs)


def test_solve_checks_values():
    ham, _ = random_hamiltonian(3, 6, 2, seed=12)
    with pytest.raises(ProblemError, match="not finite"):
        solve(ham, np.array([np.nan, 0.0]))
    with pytest.raises(ProblemError, match="expected 2 parameter values"):
        solve(ham, np.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"maxiter": -1}, "maxiter must be a positive integer"),
        ({"maxiter": 0}, "maxiter must be a positive integer"),
        ({"dense_max_dim": -1}, "dense_max_dim must be a positive integer"),
        ({"blas_threads": 0}, "blas_threads must be a positive integer"),
        ({"tol": "a"}, "tol must be a finite number"),
        ({"tol": None}, "tol must be a finite number"),
        ({"kind": "thermal", "temperature": "hot"}, "finite temperature"),
        ({"level": True}, "level must be a non-negative integer"),
    ],
)
def test_state_spec_rejects_malformed_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ProblemError, match=match):
        StateSpec(**kwargs)


def test_state_spec_accepts_numpy_integers() -> None:
    assert StateSpec(kind="eigenstate", level=np.int64(2)).level == 2


def test_eigenstate_level_beyond_dimension_is_a_clear_error() -> None:
    ham = ParametrisedHamiltonian(3, [(1.0, "Z0"), (0.5, "X1"), (0.3, "Z2 X0")])
    with pytest.raises(ProblemError, match="level 8 does not exist"):
        solve(ham, np.zeros(0), StateSpec(kind="eigenstate", level=8))
