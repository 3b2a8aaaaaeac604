"""Pauli symmetries, the tapered (block-diagonal) form and ground states solved through sectors.

Oracles: the full dense spectrum (the union of the sector spectra must equal it), the eigenvector
equation and the symmetry eigenvalues of every mapped-back vector, and the full-space solvers
(``symmetry = "none"``) for energies, expectation values, gaps, degeneracies and QEP gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_hamiltonian
from qeprop import ParametrisedHamiltonian, PauliString, QEPSystem
from qeprop.errors import DegeneracyError, ProblemError
from qeprop.experiments.kitaev_sensor import EXPERIMENT as KITAEV
from qeprop.gradients import GradientOptions, estimate_gradient
from qeprop.losses import make_loss
from qeprop.measurement import string_expectations
from qeprop.models import kitaev
from qeprop.solvers import StateSpec, solve
from qeprop.solvers.batch import solve_ground_batch
from qeprop.solvers.sectors import sector_form
from qeprop.symmetry import commuting_symmetries, tapering

# Sector solves and full-space solves both converge to relative residual 1e-10 here: energies
# agree to ~1e-12 (quadratic in the residual), expectation values to ~1e-9 (linear, divided by
# gaps of ~1e-2 on the Kitaev torus).
ENERGY_TOL = 1e-9
EXPECT_TOL = 1e-7


def _kitaev(nx: int = 4) -> tuple[ParametrisedHamiltonian, QEPSystem, np.ndarray]:
    model = KITAEV.model(KITAEV.resolve({"nx": nx}))
    theta = np.random.default_rng(3).standard_normal(len(model.layout.names))
    x = np.array([0.5, 0.3, 0.2])
    values = model.system.full_values(model.values(x, theta))
    return model.system.full, model.system, values


def _tfim(n: int, h: float) -> ParametrisedHamiltonian:
    """Open transverse-field Ising chain ``-Σ Z_j Z_{j+1} - h Σ X_j`` (parity ``Π X_j``)."""
    terms: list[tuple] = [(-1.0, f"Z{j} Z{j + 1}", "J") for j in range(n - 1)]
    terms += [(-1.0, f"X{j}", "h") for j in range(n)]
    return ParametrisedHamiltonian(n, terms)


def test_symmetries_of_the_kitaev_sensor_are_its_flux_and_loop_operators() -> None:
    ham, _, _ = _kitaev(4)
    strings = [t.pauli for t in ham.terms]
    gens = commuting_symmetries(strings, ham.n_qubits)
    # 4 plaquettes (product fixed) + 2 loops on the 4x2 torus: 3 + 2 = 5 independent symmetries
    assert len(gens) == 5
    for g in gens:
        assert all(g.commutes(p) for p in strings)
        assert all(g.commutes(h) for h in gens)
    # independent: no product of a non-empty subset is the identity
    masks = {(0, 0)}
    for g in gens:
        masks |= {(x ^ g.x, z ^ g.z) for x, z in masks}
    assert len(masks) == 2 ** len(gens)
    # every plaquette operator is in the group they generate
    for w in kitaev.plaquettes(4, 2):
        assert (w.x, w.z) in masks


def test_no_symmetry_and_a_single_parity() -> None:
    ham, _ = random_hamiltonian(4, 8, 3, seed=0)
    assert commuting_symmetries([t.pauli for t in ham.terms], 4) == []
    gens = commuting_symmetries([t.pauli for t in _tfim(5, 0.7).terms], 5)
    assert gens == [PauliString.parse("X0 X1 X2 X3 X4")]


@pytest.mark.parametrize("case", ["kitaev", "tfim"])
def test_sector_spectra_make_up_the_full_spectrum(case: str) -> None:
    if case == "kitaev":
        ham, _, values = _kitaev(4)
    else:
        ham = _tfim(7, 0.4)
        values = ham.values(J=1.0, h=0.4)
    n = ham.n_qubits
    coef = ham.string_coefficients(values)
    full = sum(c * p.to_dense(n) for c, p in zip(coef, ham.strings, strict=True))
    form = sector_form(ham)
    assert form is not None
    tap = form.tapering
    spectra = []
    for s in range(form.n_sectors):
        h_s = form.reduced.dense(form.rows(coef, np.array([s]))[0])
        e, v = np.linalg.eigh(h_s)
        spectra.append(e)
        psi = tap.embed(s, v[:, :3])
        # eigenvectors of the full H with the same energies, orthonormal, in sector s
        assert np.linalg.norm(full @ psi - psi * e[:3]) < 1e-10
        assert np.allclose(psi.conj().T @ psi, np.eye(3), atol=1e-12)
        for i, g in enumerate(tap.generators):
            assert np.allclose(g.to_dense(n) @ psi, (-1) ** ((s >> i) & 1) * psi, atol=1e-12)
    np.testing.assert_allclose(
        np.sort(np.concatenate(spectra)), np.linalg.eigvalsh(full), atol=1e-11
    )


def test_ground_state_through_sectors_equals_the_full_space_one() -> None:
    ham, _, values = _kitaev(4)
    ref = solve(ham, values, StateSpec(tol=1e-10, method="matrix-free"))
    got = solve(ham, values, StateSpec(tol=1e-10, symmetry="auto"))
    assert got.sector is not None and len(got.sector.indices) == 1
    assert abs(got.energy - ref.energy) < ENERGY_TOL
    assert abs(got.gap - ref.gap) < 1e-8
    np.testing.assert_allclose(
        string_expectations(ham, got), string_expectations(ham, ref), atol=EXPECT_TOL
    )
    # the batch path gives the same states
    spec = StateSpec(tol=1e-10, symmetry="auto")
    many = solve_ground_batch(ham, np.array([values, 0.9 * values]), spec)
    assert abs(many[0].energy - got.energy) < ENERGY_TOL
    ref2 = solve(ham, 0.9 * values, StateSpec(tol=1e-10))
    assert abs(many[1].energy - ref2.energy) < ENERGY_TOL


def test_degeneracy_across_sectors_follows_the_policy() -> None:
    # the classical Ising chain (h = 0): |00..0> and |11..1> are degenerate, one in each parity
    # sector (as (|0..0> ± |1..1>)/sqrt 2)
    ham = _tfim(6, 0.0)
    values = ham.values(J=1.0, h=0.0)
    with pytest.raises(DegeneracyError, match="sectors"):
        solve(ham, values, StateSpec(symmetry="auto", degeneracy="error"))
    got = solve(ham, values, StateSpec(symmetry="auto"))
    ref = solve(ham, values, StateSpec(method="dense"))
    assert got.degeneracy == ref.degeneracy == 2
    np.testing.assert_allclose(got.density_matrix(), ref.density_matrix(), atol=1e-10)
    assert abs(got.gap - ref.gap) < 1e-8


def test_small_field_splits_the_sectors_and_the_lower_one_wins() -> None:
    ham = _tfim(6, 0.05)
    values = ham.values(J=1.0, h=0.05)
    got = solve(ham, values, StateSpec(symmetry="auto", tol=1e-12))
    ref = solve(ham, values, StateSpec(method="dense"))
    assert got.degeneracy == 1
    assert abs(got.energy - ref.energy) < 1e-11
    # the gap is the tiny splitting to the lowest level of the other parity sector
    assert abs(got.gap - ref.gap) < 1e-9 and got.gap < 1e-4


@pytest.mark.parametrize("estimator", ["centered", "positive", "linear_response"])
def test_gradients_through_sectors_equal_the_full_space_ones(estimator: str) -> None:
    _, system, values = _kitaev(4)
    loss = make_loss("mse", [1.0, 0.0], 2)
    hv = values[: len(system.hamiltonian.params)]
    opts = {
        s: GradientOptions(state=StateSpec(tol=1e-11, symmetry=s), nudge=0.05)
        for s in ("none", "auto")
    }
    a = estimate_gradient(system, hv, loss, estimator=estimator, options=opts["auto"])
    b = estimate_gradient(system, hv, loss, estimator=estimator, options=opts["none"])
    # both exact to the solver tolerance: gradients of size ~0.1 agree to ~1e-7 relative
    np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-6, atol=1e-8)


def test_nudged_states_stay_in_the_free_sector() -> None:
    ham, _, values = _kitaev(4)
    spec = StateSpec(tol=1e-10, symmetry="auto")
    free = solve(ham, values, spec)
    nudged = solve(ham, values * 1.01, spec, guess=free)
    assert nudged.sector.indices == free.sector.indices
    assert np.isnan(nudged.gap)
    ref = solve(ham, values * 1.01, StateSpec(tol=1e-10))
    assert abs(nudged.energy - ref.energy) < ENERGY_TOL


def test_a_hamiltonian_without_symmetries_is_solved_as_before() -> None:
    ham, values = random_hamiltonian(5, 10, 3, seed=4)
    assert sector_form(ham) is None
    got = solve(ham, values, StateSpec(symmetry="auto"))
    ref = solve(ham, values, StateSpec())
    assert abs(got.energy - ref.energy) < 1e-11
    assert got.sector is None


def test_bad_symmetry_settings_are_refused() -> None:
    with pytest.raises(ProblemError, match="symmetry mode"):
        StateSpec(symmetry="yes")
    with pytest.raises(ProblemError, match="ground states only"):
        StateSpec(kind="thermal", temperature=1.0, symmetry="auto")
    ham = _tfim(4, 0.3)
    with pytest.raises(ProblemError, match="not a symmetry"):
        tapering([t.pauli for t in ham.terms], 4, [PauliString.parse("Z0")])


def test_a_diagonal_hamiltonian_keeps_a_qubit_and_bounds_its_sectors() -> None:
    # every Z_i is a symmetry: all n would leave sectors of dimension 1 and 2^n of them
    n = 12
    ham = ParametrisedHamiltonian(
        n, [(0.3 + 0.1 * i, f"Z{i}") for i in range(n)] + [(0.2, "Z0 Z1", "a")]
    )
    form = sector_form(ham)
    assert form is not None
    assert form.reduced.n_qubits >= 1 and len(form.tapering.generators) <= 14
    got = solve(ham, ham.values(a=0.5), StateSpec(symmetry="auto"))
    ref = solve(ham, ham.values(a=0.5), StateSpec())
    assert abs(got.energy - ref.energy) < 1e-12
    np.testing.assert_allclose(
        string_expectations(ham, got), string_expectations(ham, ref), atol=1e-12
    )
    with pytest.raises(ProblemError, match="not finite"):
        solve(ham, np.array([np.nan]), StateSpec(symmetry="auto"))
