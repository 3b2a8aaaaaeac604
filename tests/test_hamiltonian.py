"""Parametrised Hamiltonians: every rendering agrees, parameters are checked, memory is guarded.

The oracle is the dense matrix built from the terms with numpy Kronecker products (and, where
the library offers it, its own independent ``kron_reference``). All entries are sums of O(10)
products of O(1) coefficients, so 1e-12 absolute tolerance leaves room only for rounding.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp

import qeprop.hamiltonian as hmod
from conftest import kron_string, random_hamiltonian
from qeprop import (
    ParametrisedHamiltonian,
    PauliError,
    PauliSum,
    ProblemError,
    ProblemTooLargeError,
    Term,
)
from qeprop.hamiltonian import check_memory

ATOL = 1e-12  # sums of a few O(1) products: rounding only


def dense_from_terms(ham: ParametrisedHamiltonian, values: np.ndarray) -> np.ndarray:
    """Independent oracle: Σ_t c_t p_k(t) P_t with numpy Kronecker products."""
    out = np.zeros((ham.dim, ham.dim), dtype=complex)
    for t in ham.terms:
        scale = 1.0 if t.param is None else values[ham.params.index(t.param)]
        out += t.coeff * scale * kron_string(t.pauli.dense_label(ham.n_qubits))
    return out


@pytest.mark.parametrize(
    ("letters", "seed"), [("IXYZ", 0), ("IXYZ", 1), ("IXZ", 2), ("IZ", 3), ("IXY", 4)]
)
def test_all_renderings_agree(letters, seed):
    ham, values = random_hamiltonian(5, 12, 4, seed=seed, letters=letters)
    ref = dense_from_terms(ham, values)
    sparse = ham.sparse(values)
    assert isinstance(sparse, sp.csr_array | sp.csr_matrix)
    np.testing.assert_allclose(sparse.toarray(), ref, atol=ATOL)
    np.testing.assert_allclose(ham.dense(values), ref, atol=ATOL)
    np.testing.assert_allclose(ham.kron_reference(values), ref, atol=ATOL)
    # the string-coefficient view: H = Σ_s c_s P_s
    as_sum = PauliSum(dict(zip(ham.strings, ham.string_coefficients(values), strict=True)))
    np.testing.assert_allclose(as_sum.to_dense(ham.n_qubits), ref, atol=ATOL)
    np.testing.assert_allclose(ref, ref.conj().T, atol=ATOL)  # Hermitian


def test_real_and_complex_dtypes():
    real = ParametrisedHamiltonian(2, [(1.0, "X0 Z1", "a"), (0.5, "Y0 Y1"), (0.2, "Z0")])
    assert real.is_real
    v = real.values({"a": 0.3})
    assert real.sparse(v).dtype == np.float64
    assert real.dense(v).dtype == np.float64
    cplx = ParametrisedHamiltonian(2, [(1.0, "X0 Y1", "a"), (0.5, "Z0")])
    assert not cplx.is_real
    assert cplx.sparse(v).dtype == np.complex128
    assert cplx.dense(v).dtype == np.complex128
    np.testing.assert_allclose(cplx.dense(v), dense_from_terms(cplx, v), atol=ATOL)
    # a complex string among extra (measured) strings makes the basis complex too
    extra = ParametrisedHamiltonian(
        2, [(1.0, "Z0")], extra_strings=[PauliSum.from_terms([(1.0, "Y0")]).strings()[0]]
    )
    assert not extra.is_real


def test_shared_parameter_derivative_is_the_sum():
    terms = [
        (1.5, "X0 X1", "J"),
        (-0.5, "Z1 Z2", "J"),
        (0.25, "X0 X1", "J"),  # the same string twice under one parameter
        (2.0, "Y0 Y2", "h"),
        (0.7, "Z0"),
    ]
    ham = ParametrisedHamiltonian(3, terms, params=["h", "J", "unused"])
    assert ham.params == ("h", "J", "unused")
    d = ham.derivative_coefficients
    assert d.shape == (3, len(ham.strings))
    deriv_j = PauliSum(dict(zip(ham.strings, d[1], strict=True)))
    assert deriv_j == PauliSum.from_terms([(1.75, "X0 X1"), (-0.5, "Z1 Z2")])
    np.testing.assert_array_equal(d[2], 0.0)  # declared but unused parameter
    # H is linear in the parameters: H(v + e_J) - H(v) is exactly ∂H/∂J
    v = ham.values(h=0.3, J=-1.1, unused=4.0)
    e_j = np.array([0.0, 1.0, 0.0])
    diff = ham.dense(v + e_j) - ham.dense(v)
    expected = 1.75 * kron_string("XXI") - 0.5 * kron_string("IZZ")
    np.testing.assert_allclose(diff, expected, atol=ATOL)


def test_parameter_order_defaults_to_first_appearance():
    ham = ParametrisedHamiltonian(2, [(1, "Z0", "b"), (1, "Z1", "a"), (1, "X0", "b")])
    assert ham.params == ("b", "a")


def test_values_errors():
    ham = ParametrisedHamiltonian(2, [(1.0, "Z0", "a"), (1.0, "X1", "b")])
    np.testing.assert_array_equal(ham.values({"a": 1.0, "b": 2.0}), [1.0, 2.0])
    np.testing.assert_array_equal(ham.values(b=2.0, a=1.0), [1.0, 2.0])
    with pytest.raises(ProblemError, match=r"unknown parameters \['c'\]"):
        ham.values({"a": 1.0, "b": 2.0, "c": 3.0})
    with pytest.raises(ProblemError, match=r"no value given for parameters \['b'\]"):
        ham.values({"a": 1.0})
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ProblemError, match=r"\['b'\] are not finite"):
            ham.values({"a": 1.0, "b": bad})
    with pytest.raises(ProblemError, match="expected 2 parameter values"):
        ham.check_values(np.zeros(3))


def test_term_errors_name_the_term():
    with pytest.raises(PauliError) as info:
        ParametrisedHamiltonian(3, [(1.0, "X0"), (1.0, "Z1"), (0.5, "Z0 X5")])
    assert info.value.where == "terms[2]"
    assert str(info.value).startswith("terms[2]: ")
    assert "out of range for 3 qubits" in str(info.value)
    with pytest.raises(PauliError, match=r"^terms\[1\]: .*unknown Pauli letter"):
        ParametrisedHamiltonian(2, [(1.0, "X0"), (1.0, "Q1")])
    with pytest.raises(ProblemError, match=r"^terms\[0\]: .*finite real"):
        ParametrisedHamiltonian(2, [(float("nan"), "X0")])


def test_constructor_errors():
    with pytest.raises(ProblemError, match="positive integer"):
        ParametrisedHamiltonian(0, [])
    with pytest.raises(ProblemError, match="not defined"):
        ParametrisedHamiltonian(2, [(1.0, "Z0", "a")], params=["b"])
    with pytest.raises(ProblemError, match="not unique"):
        ParametrisedHamiltonian(2, [(1.0, "Z0", "a")], params=["a", "a"])


def test_term_make():
    t = Term.make(2, "X0 Z1", "g")
    assert t.coeff == 2.0 and t.param == "g" and t.pauli.label() == "X0 Z1"
    with pytest.raises(ProblemError):
        Term.make(1j, "X0")  # type: ignore[arg-type]


def test_memory_guard_is_fast_and_precedes_allocation():
    ham = ParametrisedHamiltonian(40, [(1.0, "X0 Z39", "a"), (0.5, "Z3")])
    v = ham.values(a=1.0)
    for render in (ham.sparse, ham.dense):
        start = time.perf_counter()
        with pytest.raises(ProblemTooLargeError, match="GiB"):
            render(v)
        # 2**40 amplitudes cannot be touched in a second: raising this fast shows that the
        # budget is checked before anything of that size is allocated
        assert time.perf_counter() - start < 1.0
    with pytest.raises(ProblemTooLargeError, match=r"my matrix needs about 2\.0 GiB"):
        check_memory(2 * 2**30, "my matrix", budget=2**30)
    check_memory(2**20, "small", budget=2**30)  # within budget: no error
    assert hmod.memory_budget() > 0
    assert issubclass(ProblemTooLargeError, MemoryError)


def test_new_values_reuse_the_structure(monkeypatch):
    ham, v1 = random_hamiltonian(5, 10, 3, seed=7)
    built = []
    original_init = hmod.SparseStructure.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(hmod.SparseStructure, "__init__", counting_init)
    m1 = ham.sparse(v1)
    structure = ham.structure
    v2 = v1 + np.array([0.5, -0.25, 1.0])
    m2 = ham.sparse(v2)
    ham.dense(v2)
    assert ham.structure is structure
    assert len(built) == 1  # built once, lazily, and never again
    # same pattern, new data = term_map @ string coefficients
    np.testing.assert_array_equal(m1.indices, m2.indices)
    np.testing.assert_array_equal(m1.indptr, m2.indptr)
    np.testing.assert_allclose(m2.data, structure.term_map @ ham.string_coefficients(v2), atol=ATOL)
    np.testing.assert_allclose(m2.toarray(), dense_from_terms(ham, v2), atol=ATOL)


def test_operator_matrix_and_coefficients_of():
    ham = ParametrisedHamiltonian(
        3,
        [(1.0, "X0 X1", "a"), (0.4, "Z2")],
        extra_strings=[PauliSum.from_terms([(1, "Z0 Z1")]).strings()[0]],
    )
    op = PauliSum.from_terms([(0.5, ""), (2.0, "Z0 Z1"), (-1.0, "Z2")])
    ident, coef = ham.coefficients_of(op)
    assert ident == 0.5
    m = ham.operator_matrix(coef).toarray() + ident * np.eye(8)
    np.testing.assert_allclose(m, op.to_dense(3), atol=ATOL)
    with pytest.raises(ProblemError, match="not in the Hamiltonian's basis"):
        ham.coefficients_of(PauliSum.from_terms([(1.0, "Y1")]))


def test_norm_bound_bounds_the_spectrum():
    ham, v = random_hamiltonian(5, 12, 4, seed=11)
    ev = np.linalg.eigvalsh(ham.dense(v))
    assert np.max(np.abs(ev)) <= ham.norm_bound(v) + 1e-12  # ||H|| <= Σ|c_s|, up to rounding
