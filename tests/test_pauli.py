"""Pauli strings and sums, checked against dense numpy matrices (the independent oracle).

Dense references come from ``conftest.kron_string`` (Kronecker products with qubit 0 leftmost).
Phases and matrix entries are exact small integers (0, ±1, ±i, ±1/2), so comparisons use a
tolerance of 1e-12: anything larger than rounding would be a real error.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import PAULI_MATRICES, kron_string
from qeprop import PauliError, PauliString, PauliSum
from qeprop.pauli import parity, qubitwise_commute_groups

ATOL = 1e-12  # entries are small exact numbers; only rounding is allowed


def random_label(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("IXYZ"), size=n))


def sparse_label(dense: str) -> str:
    return " ".join(f"{c}{q}" for q, c in enumerate(dense) if c != "I")


# ------------------------------------------------------------------------------- parsing
def test_sparse_and_dense_forms_agree():
    assert PauliString.parse("X0 Z3 Y7") == PauliString.parse("XIIZIIIY")
    assert PauliString.parse("Z3 X0 Y7") == PauliString.parse("X0 Z3 Y7")  # order is irrelevant
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 9))
        dense = random_label(rng, n)
        a, b = PauliString.parse(dense), PauliString.parse(sparse_label(dense))
        assert a == b
        np.testing.assert_allclose(a.to_dense(n), kron_string(dense), atol=ATOL)


@pytest.mark.parametrize("text", ["", "   ", "I", "III", "I0", "I0 I3"])
def test_identity_forms(text):
    p = PauliString.parse(text)
    assert p.is_identity()
    assert p.label() == ""
    assert p.weight == 0
    np.testing.assert_array_equal(p.to_dense(3), np.eye(8))


def test_lowercase_is_accepted():
    assert PauliString.parse("x0 z2 y5") == PauliString.parse("X0 Z2 Y5")
    assert PauliString.parse("xzy") == PauliString.parse("XZY")


def test_properties():
    p = PauliString.parse("X0 Y2 Z3 Y5")
    assert p.weight == 4
    assert p.n_y == 2
    assert p.support == 0b101101
    assert p.max_qubit == 5
    assert p.letters() == {0: "X", 2: "Y", 3: "Z", 5: "Y"}
    assert str(PauliString()) == "I"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Q0", "unknown Pauli letter 'Q'"),  # sparse form
        ("XQZ", "unknown Pauli letter 'Q'"),  # dense form
        ("Xa", "unknown Pauli letter 'A'"),  # no digit: read densely, 'a' is not a letter
        ("X0 Z", "malformed Pauli token 'Z'"),  # a letter without its qubit index
        ("X0 Z1a", "malformed Pauli token 'Z1A'"),
        ("X0 Z-1", "malformed Pauli token 'Z-1'"),
        ("X0 Y0", "qubit 0 appears twice"),
        ("Z3 X1 Z3", "qubit 3 appears twice"),
    ],
)
def test_parse_errors_are_helpful(text, fragment):
    with pytest.raises(PauliError) as info:
        PauliString.parse(text)
    msg = str(info.value)
    assert fragment in msg
    assert repr(text) in msg  # the message quotes the whole input


def test_qubit_out_of_range():
    with pytest.raises(PauliError, match=r"qubit index 5 .* out of range for 3 qubits"):
        PauliString.parse("X0 Z5", n_qubits=3)
    with pytest.raises(PauliError, match="out of range"):
        PauliString.parse("XXXX", n_qubits=3)
    assert PauliString.parse("X0 Z2", n_qubits=3).max_qubit == 2  # the boundary is fine
    with pytest.raises(PauliError, match="out of range"):
        PauliString.parse("Z3").to_dense(3)


def test_non_text_is_rejected():
    with pytest.raises(PauliError, match="must be text"):
        PauliString.parse(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- conventions
def test_qubit_zero_is_leftmost():
    np.testing.assert_array_equal(PauliString.parse("Z0").to_dense(2), np.diag([1, 1, -1, -1]))
    np.testing.assert_array_equal(PauliString.parse("Z1").to_dense(2), np.diag([1, -1, 1, -1]))
    x0 = np.kron(PAULI_MATRICES["X"], np.eye(2))
    np.testing.assert_array_equal(PauliString.parse("X0").to_dense(2), x0)
    # basis index of |b0 b1 b2> is 4 b0 + 2 b1 + b2: X0 maps |000> (0) to |100> (4)
    assert PauliString.parse("X0").to_dense(3)[4, 0] == 1


def test_label_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 9))
        dense = random_label(rng, n)
        p = PauliString.parse(dense)
        assert p.dense_label(n) == dense
        assert p.label() == sparse_label(dense)
        assert PauliString.parse(p.label()) == p
        assert PauliString.parse(p.dense_label(n)) == p
    with pytest.raises(PauliError):
        PauliString.parse("X4").dense_label(3)


def test_sparse_rendering_is_the_dense_one():
    rng = np.random.default_rng(2)
    for _ in range(20):
        dense = random_label(rng, 4)
        p = PauliString.parse(dense)
        np.testing.assert_array_equal(p.to_sparse(4).toarray(), kron_string(dense))


# ------------------------------------------------------------------------------- algebra
@pytest.mark.parametrize(("a", "b"), list(itertools.product("IXYZ", repeat=2)))
def test_single_qubit_product_table(a, b):
    phase, p = PauliString.parse(a).multiply(PauliString.parse(b))
    assert phase in (1, 1j, -1, -1j)
    expected = PAULI_MATRICES[a] @ PAULI_MATRICES[b]
    np.testing.assert_allclose(phase * p.to_dense(1), expected, atol=ATOL)


def test_multi_qubit_products_with_phase():
    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(1, 6))
        a, b = random_label(rng, n), random_label(rng, n)
        phase, p = PauliString.parse(a).multiply(PauliString.parse(b))
        np.testing.assert_allclose(
            phase * p.to_dense(n), kron_string(a) @ kron_string(b), atol=ATOL
        )
        prod = PauliString.parse(a) @ PauliString.parse(b)
        np.testing.assert_allclose(prod.to_dense(n), kron_string(a) @ kron_string(b), atol=ATOL)


def test_commutation_relations_against_matrices():
    rng = np.random.default_rng(4)
    n = 3
    labels = [random_label(rng, n) for _ in range(40)]
    seen = {True: 0, False: 0}
    for a, b in itertools.product(labels[:20], labels[20:]):
        ma, mb = kron_string(a), kron_string(b)
        pa, pb = PauliString.parse(a), PauliString.parse(b)
        commute = np.allclose(ma @ mb, mb @ ma, atol=ATOL)
        assert pa.commutes(pb) == commute
        seen[commute] += 1
        # qubit-wise: the single-qubit factors commute on every qubit
        qwc = all(
            np.allclose(
                PAULI_MATRICES[x] @ PAULI_MATRICES[y], PAULI_MATRICES[y] @ PAULI_MATRICES[x]
            )
            for x, y in zip(a, b, strict=True)
        )
        assert pa.qubitwise_commutes(pb) == qwc
        if qwc:
            assert commute  # qubit-wise commuting implies commuting
    assert seen[True] and seen[False]  # both cases were exercised


def test_commuting_but_not_qubitwise():
    xx, zz = PauliString.parse("X0 X1"), PauliString.parse("Z0 Z1")
    assert xx.commutes(zz)
    assert not xx.qubitwise_commutes(zz)


# ------------------------------------------------------------------------------- Pauli sums
def test_projector_matrix_and_idempotence():
    n = 3
    proj = PauliSum.projector({0: 0, 2: 1})
    one = np.eye(1 << n)
    z0, z2 = kron_string("ZII"), kron_string("IIZ")
    expected = (one + z0) @ (one - z2) / 4
    np.testing.assert_allclose(proj.to_dense(n), expected, atol=ATOL)
    assert proj @ proj == proj  # idempotent as a Pauli sum
    m = proj.to_dense(n)
    np.testing.assert_allclose(m @ m, m, atol=ATOL)
    assert proj.is_hermitian()
    assert proj == PauliSum.from_terms([(0.25, ""), (0.25, "Z0"), (-0.25, "Z2"), (-0.25, "Z0 Z2")])
    # it projects onto the basis states with b0 = 0, b2 = 1: indices 1 and 3 of 8
    np.testing.assert_allclose(np.diag(m), [0, 1, 0, 1, 0, 0, 0, 0], atol=ATOL)


def test_projector_rejects_bad_bits():
    with pytest.raises(PauliError, match="must be 0 or 1"):
        PauliSum.projector({0: 2})


def test_sum_algebra_against_matrices():
    n = 3
    a = PauliSum.from_terms([(0.5, "X0 Y1"), (-1.25, "Z2"), (0.3, "")])
    b = PauliSum.from_terms([(2.0, "Y0"), (0.7, "X1 X2"), (-0.4, "Z0 Z2")])
    ma, mb = a.to_dense(n), b.to_dense(n)
    np.testing.assert_allclose((a + b).to_dense(n), ma + mb, atol=ATOL)
    np.testing.assert_allclose((a - b).to_dense(n), ma - mb, atol=ATOL)
    np.testing.assert_allclose((2.5 * a).to_dense(n), 2.5 * ma, atol=ATOL)
    np.testing.assert_allclose((a @ b).to_dense(n), ma @ mb, atol=ATOL)
    np.testing.assert_allclose(a.commutator(b).to_dense(n), ma @ mb - mb @ ma, atol=ATOL)
    assert a.is_hermitian() and b.is_hermitian()
    assert not a.commutator(b).is_hermitian()  # [A, B] is anti-Hermitian: i * real coefficients
    assert a.norm_bound() == pytest.approx(0.5 + 1.25 + 0.3)
    assert a.coefficient("Y1 X0") == 0.5


def test_from_terms_adds_repeats_and_rejects_non_finite():
    s = PauliSum.from_terms([(1.0, "Z0"), (2.0, "Z0"), (1.0, "X1"), (-1.0, "X1")])
    assert s == PauliSum.from_terms([(3.0, "Z0")])
    assert len(s) == 1  # cancelled strings are dropped
    with pytest.raises(PauliError, match="not finite"):
        PauliSum.from_terms([(float("nan"), "Z0")])
    with pytest.raises(PauliError, match="out of range"):
        PauliSum.from_terms([(1.0, "Z4")], n_qubits=3)


def test_real_dtype_for_real_sums():
    assert PauliSum.from_terms([(1.0, "X0 Z1"), (1.0, "Y0 Y1")]).to_dense(2).dtype == np.float64
    assert PauliSum.from_terms([(1.0, "Y0")]).to_dense(1).dtype == np.complex128


# ------------------------------------------------------------------------------- grouping
def test_qubitwise_commute_groups_is_a_partition():
    rng = np.random.default_rng(5)
    strings = [PauliString.parse(random_label(rng, 4)) for _ in range(60)]
    strings.append(PauliString())  # the identity is left out
    groups = qubitwise_commute_groups(strings)
    flat = [p for g in groups for p in g]
    assert len(flat) == len(set(flat))  # disjoint, no duplicates
    assert set(flat) == {p for p in strings if not p.is_identity()}
    for g in groups:
        assert g
        for p, q in itertools.combinations(g, 2):
            assert p.qubitwise_commutes(q)
    assert len(groups) < len(set(flat))  # some sharing actually happened


def test_groups_of_known_sets():
    z = [PauliString.parse(s) for s in ("Z0", "Z1", "Z0 Z1")]
    assert len(qubitwise_commute_groups(z)) == 1
    xz = [PauliString.parse(s) for s in ("X0", "Z0")]
    assert len(qubitwise_commute_groups(xz)) == 2
    assert qubitwise_commute_groups([]) == []


def test_parity():
    rng = np.random.default_rng(6)
    v = rng.integers(0, 2**62, size=200)
    expected = [bin(int(x)).count("1") % 2 for x in v]
    np.testing.assert_array_equal(parity(v), expected)


def test_projector_rejects_negative_qubit() -> None:
    with pytest.raises(PauliError, match="non-negative integer"):
        PauliSum.projector({-1: 0})


def test_non_ascii_digits_are_not_qubit_indices() -> None:
    with pytest.raises(PauliError):
        PauliString.parse("X\u0663")  # ARABIC-INDIC DIGIT THREE
