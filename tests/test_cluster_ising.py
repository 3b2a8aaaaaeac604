"""The cluster-Ising model: terms, exact phase diagram, free-fermion energies and samplers.

H0 = g_ZXZ Σ Z_{j-1} X_j Z_{j+1} - g_ZZ Σ Z_j Z_{j+1} - g_X Σ X_j; the phase is the number of
zeros of f(z) = g_ZXZ z² - g_ZZ z + g_X inside the unit circle (0/1/2: paramagnet/ferromagnet/
cluster).

Oracles, all independent of the root counting:

* the terms against dense Kronecker products of hand-written labels;
* the closed-form phase diagram on the triangle g_ZXZ + g_ZZ + g_X = 4;
* exact diagonalisation (ED): (i) periodic-chain energies per parity sector against the
  free-fermion formula, (ii) the 2**w near-degenerate ground states of open chains (w Majorana
  zero modes per edge), (iii) the order / string-order parameter of each phase on a ring, at
  points of all eight sign patterns of the couplings.

Tolerances: energies are sums of L O(1) numbers computed by two exact methods, so 1e-9 leaves
only rounding (the observed worst case is ~1e-13). Deep inside the phases (zeros of f at modulus
<= 0.45 or >= 2.2) open chains of 10 sites have edge splittings <= 7e-4 and bulk gaps >= 1.1 (see
the comments at the point table), so "levels within 1e-2 of the ground level" counts the
degeneracy with margins of > 10x on both sides.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import dense_eigh, kron_string
from qeprop import ParametrisedHamiltonian, PauliString, ProblemError
from qeprop.models import cluster_ising as ci
from qeprop.pauli import parity

E_TOL = 1e-9  # ED vs free fermions: two exact methods, rounding only (observed ~1e-13)

# Magnitudes (|g_ZXZ|, |g_ZZ|, |g_X|) deep inside each phase: the number of zeros inside the unit
# circle does not depend on the signs here (for every sign pattern the zeros have modulus
# <= 0.45 or >= 2.2), so these 3 x 8 points test negative couplings of every kind.
DEEP = {
    "cluster": (1.0, 0.2, 0.1),
    "ferromagnet": (0.1, 1.0, 0.2),
    "paramagnet": (0.2, 0.3, 1.0),
}
SIGNS = list(itertools.product((1.0, -1.0), repeat=3))
DEEP_POINTS = [
    pytest.param(name, np.array(mag) * s, id=f"{name}{''.join('+-'[s_ < 0] for s_ in s)}")
    for name, mag in DEEP.items()
    for s in SIGNS
]


# --------------------------------------------------------------------------- Hamiltonian
def reference_dense(length: int, boundary: str, g: np.ndarray) -> np.ndarray:
    """H0 from Kronecker products of hand-written dense labels (no PauliString involved)."""

    def label(letters: dict[int, str]) -> str:
        return "".join(letters.get(q, "I") for q in range(length))

    if boundary == "periodic":
        centres, bonds = range(length), range(length)
    else:
        centres, bonds = range(1, length - 1), range(length - 1)
    h = np.zeros((2**length, 2**length), dtype=complex)
    for j in centres:
        h += g[0] * kron_string(label({(j - 1) % length: "Z", j: "X", (j + 1) % length: "Z"}))
    for j in bonds:
        h -= g[1] * kron_string(label({j: "Z", (j + 1) % length: "Z"}))
    for j in range(length):
        h -= g[2] * kron_string(label({j: "X"}))
    return h


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_hamiltonian_matches_kronecker_reference(boundary):
    length = 5
    ham = ci.hamiltonian(length, boundary=boundary)
    assert ham.params == ("g_zxz", "g_zz", "g_x")
    n_terms = 3 * length if boundary == "periodic" else 3 * length - 3
    assert len(ham.terms) == n_terms
    for g in ([0.7, -1.3, 0.4], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]):
        np.testing.assert_allclose(
            ham.dense(np.array(g)), reference_dense(length, boundary, np.array(g)), atol=1e-12
        )


def test_terms_carry_parameters_signs_and_offset():
    terms = ci.hamiltonian_terms(4, boundary="open", offset=3, params=("a", "b", "c"))
    labels = [(t.coeff, t.pauli.label(), t.param) for t in terms]
    assert labels == [
        (1.0, "Z3 X4 Z5", "a"),
        (1.0, "Z4 X5 Z6", "a"),
        (-1.0, "Z3 Z4", "b"),
        (-1.0, "Z4 Z5", "b"),
        (-1.0, "Z5 Z6", "b"),
        (-1.0, "X3", "c"),
        (-1.0, "X4", "c"),
        (-1.0, "X5", "c"),
        (-1.0, "X6", "c"),
    ]
    ring = ci.hamiltonian_terms(3)
    assert {t.pauli.label() for t in ring if t.param == "g_zxz"} == {
        "X0 Z1 Z2",
        "Z0 X1 Z2",
        "Z0 Z1 X2",
    }
    assert {t.pauli.label() for t in ring if t.param == "g_zz"} == {"Z0 Z1", "Z1 Z2", "Z0 Z2"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"length": 2}, "at least 3 sites"),
        ({"length": 4.0}, "integer"),
        ({"length": 4, "boundary": "ring"}, "unknown boundary"),
        ({"length": 4, "offset": -1}, "offset"),
        ({"length": 4, "params": ("a", "a", "b")}, "must differ"),
        ({"length": 4, "params": ("a", "b")}, "three"),
    ],
)
def test_hamiltonian_terms_reject_bad_input(kwargs, match):
    with pytest.raises(ProblemError, match=match):
        ci.hamiltonian_terms(**kwargs)


# --------------------------------------------------------------------------- phase labels
def closed_form_triangle(g: np.ndarray) -> str:
    """Phase on the triangle with non-negative couplings summing to 4."""
    if g[1] > 2:
        return "ferromagnet"
    return "cluster" if g[0] > g[2] else "paramagnet"


def test_phase_labels_match_closed_form_on_triangle():
    pts = ci.sample_triangle(3000, np.random.default_rng(7))
    # keep points farther than 0.05 from both boundaries (g_ZZ = 2; g_ZXZ = g_X below it)
    away = (np.abs(pts[:, 1] - 2) > 0.05) & (
        (pts[:, 1] > 2) | (np.abs(pts[:, 0] - pts[:, 2]) > 0.05)
    )
    pts = pts[away]
    assert len(pts) > 2500
    expected = [closed_form_triangle(p) for p in pts]
    assert list(ci.phases(pts)) == expected
    assert [ci.phase(*p) for p in pts[:200]] == expected[:200]
    assert set(expected) == set(ci.PHASES)  # all three phases were hit


def test_phase_index_order_and_vectorised_forms():
    assert ci.PHASES == ("cluster", "ferromagnet", "paramagnet")
    for name, mag in DEEP.items():
        assert ci.phase(*mag) == name
        assert ci.phase_index(*mag) == ci.PHASES.index(name)
    assert ci.phase_index(1.0, 0.0, 1.0) == -1  # zeros ±i on the circle
    pts = np.array([DEEP["cluster"], DEEP["ferromagnet"], DEEP["paramagnet"], (1.0, 0.0, 1.0)])
    np.testing.assert_array_equal(ci.phase_indices(pts), [0, 1, 2, -1])
    assert list(ci.phases(pts)) == [*ci.PHASES, "critical"]
    assert [ci.winding_number(*p) for p in pts[:3]] == [2, 1, 0]


@pytest.mark.parametrize(
    ("g", "label"),
    [
        ((0.0, 1.0, 0.5), "ferromagnet"),  # g_ZXZ = 0: transverse-field Ising, zero 0.5
        ((0.0, -2.0, 1.0), "ferromagnet"),  # antiferromagnet, zero -0.5
        ((0.0, 0.5, 1.0), "paramagnet"),  # zero 2
        ((0.0, 1.0, 1.0), "critical"),  # zero 1
        ((0.0, -1.0, 1.0), "critical"),  # zero -1
        ((0.0, 0.0, 1.0), "paramagnet"),  # constant f: no zeros
        ((0.0, 0.0, -3.0), "paramagnet"),
        ((0.0, 1.0, 0.0), "ferromagnet"),  # zero at the origin
        ((1.0, 0.0, 0.0), "cluster"),  # double zero at the origin (pure cluster model)
        ((-1.0, 0.0, 0.0), "cluster"),
        ((1.0, 2.0, 0.0), "ferromagnet"),  # zeros 0 and 2
        ((1.0, 0.0, 1.0), "critical"),  # zeros ±i
        ((1.0, 0.0, -1.0), "critical"),  # zeros ±1
        ((1.0, 2.0, 1.0), "critical"),  # double zero at 1: the multicritical point
        ((1.0, 0.0, 4.0), "paramagnet"),  # |z| = 2 (complex pair)
        ((4.0, 0.0, 1.0), "cluster"),  # |z| = 1/2 (complex pair)
        ((1e-300, 1.0, 0.5), "ferromagnet"),  # tiny leading coefficient: zero near infinity
    ],
)
def test_phase_degenerate_and_signed_polynomials(g, label):
    assert ci.phase(*g) == label


def test_phase_tolerance_and_errors():
    g = (1.0, 0.0, 1.0 + 1e-10)  # |z| = sqrt(1 + 1e-10): 5e-11 outside the circle
    assert ci.phase(*g) == "critical"
    assert ci.phase(*g, tol=1e-12) == "paramagnet"
    assert ci.phase(1.0, 0.0, 1.0 - 1e-10, tol=1e-12) == "cluster"
    assert ci.winding_number(*g, tol=0.0) == 0
    with pytest.raises(ProblemError, match="phase boundary"):
        ci.winding_number(1.0, 0.0, 1.0)
    with pytest.raises(ProblemError, match="all three couplings are zero"):
        ci.phase(0.0, 0.0, 0.0)
    with pytest.raises(ProblemError, match="not finite"):
        ci.phase(np.nan, 1.0, 1.0)
    with pytest.raises(ProblemError, match="tol"):
        ci.phase(1.0, 1.0, 1.0, tol=-1.0)
    with pytest.raises(ProblemError, match="shape"):
        ci.phases(np.ones((4, 2)))


def test_boundaries_are_critical_and_separate_the_right_phases():
    lines = ci.triangle_boundaries(total=4.0, n=101)
    fm, cp = lines["ferromagnet_boundary"], lines["cluster_paramagnet_boundary"]
    for line in (fm, cp):
        assert line.shape == (101, 3)
        np.testing.assert_allclose(line.sum(axis=1), 4.0, atol=1e-12)
        assert np.all(line >= 0)
        # the multicritical endpoint (1, 2, 1) is a double zero: rounding moves it by ~1e-8
        assert set(ci.phases(line, tol=1e-6)) == {"critical"}
    np.testing.assert_allclose(fm[-1], [0.0, 2.0, 2.0])
    np.testing.assert_allclose(cp[0], [2.0, 0.0, 2.0])
    np.testing.assert_allclose(cp[-1], [1.0, 2.0, 1.0])
    np.testing.assert_allclose(lines["outline"][0], lines["outline"][-1])
    # step off each line within the triangle (directions sum to zero); skip the multicritical end
    up = np.array([-0.5, 1.0, -0.5]) * 0.02
    assert set(ci.phases(fm[:-5] + up)) == {"ferromagnet"}
    below = ci.phases(fm[1:-1] - up)
    assert set(below[: len(below) // 2 - 2]) == {"cluster"}
    assert set(below[len(below) // 2 + 2 :]) == {"paramagnet"}
    side = np.array([1.0, 0.0, -1.0]) * 0.02
    assert set(ci.phases(cp[:-5] + side)) == {"cluster"}
    assert set(ci.phases(cp[:-5] - side)) == {"paramagnet"}


# --------------------------------------------------------------------------- exact diagonalisation
def x_basis_hamiltonian(length: int) -> ParametrisedHamiltonian:
    """H0 conjugated by Hadamards on every qubit (X <-> Z): the parity Π X_j becomes Π Z_j,
    diagonal in the computational basis, so the two sectors are index blocks."""
    ham = ci.hamiltonian(length)
    swapped = [(t.coeff, PauliString(t.pauli.z, t.pauli.x), t.param) for t in ham.terms]
    return ParametrisedHamiltonian(length, swapped, params=ham.params)


def sector_ground_energies(length: int, g: np.ndarray) -> dict[int, float]:
    h = x_basis_hamiltonian(length).dense(g)
    odd = parity(np.arange(2**length)).astype(bool)
    out = {}
    for p, block in ((1, ~odd), (-1, odd)):
        out[p] = float(dense_eigh(h[np.ix_(block, block)], 1)[0][0])
    return out


@pytest.mark.parametrize("length", [5, 6, 7, 8, 9, 10])
def test_free_fermion_energies_match_ed_in_both_parity_sectors(length):
    rng = np.random.default_rng(100 + length)
    n_points = 12 if length < 10 else 4
    for _ in range(n_points):
        # couplings of either sign and mixed scales: all phases, including near-critical ones
        g = rng.normal(size=3) * rng.choice([0.3, 1.0, 3.0], size=3)
        ed = sector_ground_energies(length, g)
        for p in (1, -1):
            ff = ci.free_fermion_ground_energy(*g, length, parity=p)
            assert abs(ff - ed[p]) < E_TOL, (g, p, ff, ed[p])
        assert abs(ci.free_fermion_ground_energy(*g, length) - min(ed.values())) < E_TOL


@pytest.mark.parametrize("length", [6, 8, 10])
def test_free_fermion_ground_energy_matches_ed_of_the_spin_chain(length):
    rng = np.random.default_rng(length)
    ham = ci.hamiltonian(length)
    points = [np.array(mag) * s for mag in DEEP.values() for s in SIGNS[::3]]
    points += [rng.uniform(-2, 2, size=3) for _ in range(4)]
    points.append(np.array([1.0, 2.0, 1.0]))  # the multicritical point: gapless
    for g in points:
        e0 = float(dense_eigh(ham.dense(g), 1)[0][0])
        assert abs(ci.free_fermion_ground_energy(*g, length) - e0) < E_TOL, g


def test_dispersion_normalisation_and_parity_subtlety():
    k = np.linspace(0, 2 * np.pi, 7)
    np.testing.assert_allclose(ci.dispersion(0.0, 0.0, 1.0, k), 2.0)  # one flipped X_j costs 2
    np.testing.assert_allclose(ci.dispersion(1.0, 0.0, 0.0, k), 2.0)
    np.testing.assert_allclose(ci.dispersion(0.3, 0.5, 0.7, 0.0), 2 * abs(0.3 - 0.5 + 0.7))
    # pure field g_X = 1 on 6 sites: the periodic-fermion vacuum also has energy -6, but it is
    # even; the odd sector's lowest state has one flipped spin (one quasiparticle, ε = 2)
    assert ci.free_fermion_ground_energy(0.0, 0.0, 1.0, 6, parity=1) == pytest.approx(-6.0)
    assert ci.free_fermion_ground_energy(0.0, 0.0, 1.0, 6, parity=-1) == pytest.approx(-4.0)
    # ferromagnet: the odd vacuum has the right parity, the two sectors are near-degenerate
    e_even = ci.free_fermion_ground_energy(0.0, 1.0, 0.2, 8, parity=1)
    e_odd = ci.free_fermion_ground_energy(0.0, 1.0, 0.2, 8, parity=-1)
    assert 0 < abs(e_even - e_odd) < 1e-5
    with pytest.raises(ProblemError, match="parity"):
        ci.free_fermion_ground_energy(1.0, 1.0, 1.0, 6, parity=0)
    with pytest.raises(ProblemError, match="at least 3"):
        ci.free_fermion_ground_energy(1.0, 1.0, 1.0, 2)


@pytest.fixture(scope="module")
def open_chain():
    return ci.hamiltonian(10, boundary="open")


@pytest.mark.parametrize(("name", "g"), DEEP_POINTS)
def test_open_chain_degeneracy_counts_edge_modes(name, g, open_chain):
    assert ci.phase(*g) == name
    w = ci.winding_number(*g)
    energies = dense_eigh(open_chain.dense(g), 8)[0]
    levels = energies - energies[0]
    # observed: splittings <= 6.7e-4, gaps to the next level >= 1.1 (L = 10)
    n_low = int(np.sum(levels < 1e-2))
    assert n_low == 2**w, (levels, w)
    assert levels[n_low] > 0.5


RING = 10
ORDER_PARAMETERS = {
    "ferromagnet": "Z0 Z5",  # (-1)**5 < 0 for the antiferromagnet: compare |.|
    "cluster": "Z0 Y1 X2 X3 Y4 Z5",  # = ± product of the cluster terms j = 1..4
    "paramagnet": "X1 X2 X3 X4 X5",
}


@pytest.mark.parametrize(("name", "g"), DEEP_POINTS)
def test_ring_ground_state_has_the_order_of_its_phase(name, g):
    ham = ci.hamiltonian(RING)
    psi = dense_eigh(ham.dense(g), 1)[1][:, 0]
    values = {
        k: float(np.real(psi.conj() @ (PauliString.parse(op).to_sparse(RING) @ psi)))
        for k, op in ORDER_PARAMETERS.items()
    }
    # observed: |own order| >= 0.94, |other orders| <= 0.04
    for k, v in values.items():
        assert (abs(v) > 0.9) == (k == name), values
    if name == "ferromagnet":
        assert np.sign(values["ferromagnet"]) == np.sign(g[1])  # antiferromagnet for g_ZZ < 0


# --------------------------------------------------------------------------- samplers
def test_sample_triangle_is_uniform_on_the_simplex():
    n = 20000
    pts = ci.sample_triangle(n, np.random.default_rng(3), total=4.0)
    assert pts.shape == (n, 3)
    np.testing.assert_allclose(pts.sum(axis=1), 4.0, atol=1e-12)
    assert np.all(pts >= 0)
    # each coordinate has mean 4/3 and sd ~0.94: 0.04 is 6 standard errors (0.0067)
    np.testing.assert_allclose(pts.mean(axis=0), 4.0 / 3.0, atol=0.04)
    # areas: ferromagnet 1/4 of the triangle, cluster and paramagnet 3/8 each (sd <= 0.0035)
    frac = np.array([np.mean(ci.phases(pts) == p) for p in ci.PHASES])
    np.testing.assert_allclose(frac, [3 / 8, 1 / 4, 3 / 8], atol=0.02)
    np.testing.assert_array_equal(pts, ci.sample_triangle(n, np.random.default_rng(3)))
    assert ci.sample_triangle(0, 1).shape == (0, 3)
    with pytest.raises(ProblemError):
        ci.sample_triangle(-1, 1)
    with pytest.raises(ProblemError):
        ci.sample_triangle(5, 1, total=0.0)


def test_sample_patches_stay_in_their_squares_and_phases():
    pts, which = ci.sample_patches(3000, np.random.default_rng(5), return_centres=True)
    assert pts.shape == (3000, 3) and which.shape == (3000,)
    np.testing.assert_allclose(pts.sum(axis=1), 4.0, atol=1e-12)
    assert np.all(pts >= 0)
    centres = np.array(ci.DEFAULT_CENTRES)
    assert np.all(np.abs(pts[:, 2] - centres[which, 0]) <= 0.2)
    assert np.all(np.abs(pts[:, 1] - centres[which, 1]) <= 0.2)
    # each centre is picked with probability 1/3 (sd ~0.009)
    np.testing.assert_allclose(np.bincount(which, minlength=3) / 3000, 1 / 3, atol=0.04)
    expected = np.array(["cluster", "paramagnet", "ferromagnet"])  # per default centre
    np.testing.assert_array_equal(ci.phases(pts), expected[which])
    # the patch corners, too, lie in the expected phases
    for c, name in zip(centres, expected, strict=True):
        for dx, dz in itertools.product((-0.2, 0.2), repeat=2):
            gx, gzz = c[0] + dx, c[1] + dz
            assert ci.phase(4.0 - gx - gzz, gzz, gx) == name
    plain = ci.sample_patches(10, np.random.default_rng(5))
    assert isinstance(plain, np.ndarray) and plain.shape == (10, 3)


def test_sample_patches_rejects_squares_outside_the_triangle():
    with pytest.raises(ProblemError, match="leaves the triangle"):
        ci.sample_patches(5, 0, centres=((0.1, 1.0),))
    with pytest.raises(ProblemError, match="leaves the triangle"):
        ci.sample_patches(5, 0, centres=((2.0, 1.9),))
    with pytest.raises(ProblemError, match="centres"):
        ci.sample_patches(5, 0, centres=((1.0, 1.0, 1.0),))
