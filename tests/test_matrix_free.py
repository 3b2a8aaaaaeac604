"""The matrix-free Pauli-sum engine, the memory-lean Lanczos solver and the shifted MINRES solve.

Every product is checked against an independent rendering: the CSR matrix of
:class:`~qeprop.hamiltonian.SparseStructure` and, for at most 6 qubits, the Kronecker-product
reference. Eigenpairs are checked against dense ``eigh`` and the linear response against finite
differences of dense ground states.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest

from conftest import dense_eigh, random_hamiltonian
from qeprop import ParametrisedHamiltonian, PauliString
from qeprop.errors import ConvergenceError, PauliError, ProblemError
from qeprop.measurement import string_expectations
from qeprop.models import cluster_ising
from qeprop.models.sensor import sensor_layout
from qeprop.solvers.matrix_free import (
    LanczosResult,
    LanczosWorkspace,
    PauliKernel,
    lanczos_lowest,
    minres_shifted,
)
from qeprop.states import Equilibrium

# Products are sums of at most ~30 terms of size |c| ~ 1 per entry: agreement with the sparse
# rendering is limited only by floating-point rounding, ~1e-15 relative.
PRODUCT_TOL = 1e-12


def _vectors(rng: np.random.Generator, dim: int, k: int | None, complex_: bool) -> np.ndarray:
    shape = (dim,) if k is None else (dim, k)
    v = rng.standard_normal(shape)
    return v + 1j * rng.standard_normal(shape) if complex_ else v


def _check_apply(ham: ParametrisedHamiltonian, values: np.ndarray, kernel: PauliKernel) -> None:
    """``kernel.apply`` equals the CSR product for real/complex (d,) and (d, K) inputs."""
    rng = np.random.default_rng(7)
    coef = ham.string_coefficients(values)
    h = ham.sparse(values)
    for k in (None, 1, 3):
        for complex_ in (False, True):
            v = _vectors(rng, ham.dim, k, complex_)
            got = kernel.apply(coef, v)
            ref = h @ v
            assert got.shape == ref.shape
            scale = max(1.0, float(np.abs(ref).max()))
            assert np.abs(got - ref).max() <= PRODUCT_TOL * scale, (k, complex_)


# ---------------------------------------------------------------------------- products
@pytest.mark.parametrize("letters", ["XZ", "IXYZ"])  # real and complex (odd-Y) string sets
@pytest.mark.parametrize("n", [3, 5, 8])
def test_apply_matches_sparse_random_strings(letters: str, n: int) -> None:
    ham, values = random_hamiltonian(n, 12, 3, seed=n, letters=letters)
    # block sizes: 1 bit, a middle split, all bits, and larger than the register
    for bb in (1, max(1, n // 2), n, n + 3, None):
        kernel = PauliKernel(ham.strings, n, block_bits=bb)
        assert kernel.is_real == ham.is_real
        assert kernel.block_bits == min(bb or 12, n)
        _check_apply(ham, values, kernel)


@pytest.mark.parametrize("letters", ["XZ", "IXYZ"])
def test_apply_matches_kron_reference(letters: str) -> None:
    ham, values = random_hamiltonian(5, 10, 4, seed=3, letters=letters)
    ref = ham.kron_reference(values)
    coef = ham.string_coefficients(values)
    kernel = PauliKernel(ham.strings, 5, block_bits=2)
    # the full matrix, column by column: apply to the identity
    got = kernel.apply(coef, np.eye(ham.dim))
    assert np.abs(got - ref).max() <= PRODUCT_TOL * np.abs(ref).max()
    assert ham.is_real == (letters == "XZ")
    assert got.dtype == (np.float64 if ham.is_real else np.complex128)


def test_apply_structured_strings() -> None:
    """Strings on the high qubits only, the low ones only, both, and the identity."""
    n = 9
    labels = [
        "",  # identity
        "X0 Z1",  # high qubits only (qubit 0 = most significant bit)
        "Y0 Y2 Z3",
        "Z7 X8",  # low qubits only
        "Y8",
        "Z0 X4 Y8",  # across the block boundary
        "Y1 Z5 Z8",
        "X0 X1 X2 X3 X4 X5 X6 X7 X8",
        "Z0 Z1 Z2 Z3 Z4 Z5 Z6 Z7 Z8",
    ]
    rng = np.random.default_rng(11)
    terms = [(float(rng.normal()), lab) for lab in labels]
    ham = ParametrisedHamiltonian(n, terms)
    values = np.zeros(0)
    for bb in (1, 2, 3, 4, 8, 9):
        _check_apply(ham, values, PauliKernel(ham.strings, n, block_bits=bb))


def test_apply_fallback_for_many_high_z_bits() -> None:
    """Groups whose strings use many high Z bits sum one sub-table per high pattern per block."""
    n = 12
    rng = np.random.default_rng(5)
    labels = []
    for _ in range(12):
        high = "".join(rng.choice(list("IZ"), size=9))  # qubits 0..8: the high bits
        labels.append(high + "XZZ")  # every string has low Z bits and the same X mask
        labels.append(high + "YIZ")
    labels += ["X9", "Z0 Z8 Z11"]
    terms = [(float(rng.normal()), lab) for lab in labels]
    ham = ParametrisedHamiltonian(n, terms)
    kernel = PauliKernel(ham.strings, n, block_bits=3)
    assert 2 in kernel._mode  # the fallback path is exercised
    _check_apply(ham, np.zeros(0), kernel)


def test_apply_out_argument_and_tables_follow_coefficients() -> None:
    ham, values = random_hamiltonian(6, 10, 3, seed=1, letters="IXYZ")
    kernel = PauliKernel(ham.strings, 6, block_bits=3)
    rng = np.random.default_rng(2)
    v = _vectors(rng, ham.dim, None, True)
    out = np.empty(ham.dim, dtype=complex)
    for vals in (values, -2 * values, values):  # cached tables must follow new coefficients
        res = kernel.apply(ham.string_coefficients(vals), v, out=out)
        assert res is out
        assert np.abs(out - ham.sparse(vals) @ v).max() <= PRODUCT_TOL * np.abs(out).max()


def test_empty_string_list_is_the_zero_operator() -> None:
    kernel = PauliKernel([], 3)
    v = np.arange(8.0)
    assert np.array_equal(kernel.apply(np.zeros(0), v), np.zeros(8))
    assert kernel.expectations(v).shape == (0,)


def test_threads_do_not_change_results() -> None:
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba runs with a single thread on this machine")
    ham, values = random_hamiltonian(10, 16, 4, seed=4, letters="IXYZ")
    kernel = PauliKernel(ham.strings, 10, block_bits=4)
    coef = ham.string_coefficients(values)
    v = _vectors(np.random.default_rng(3), ham.dim, 2, True)
    one = kernel.apply(coef, v, threads=1)
    two = kernel.apply(coef, v, threads=2)
    # each output entry is computed by one thread with the same operations: identical
    assert np.abs(one - two).max() <= 1e-12 * np.abs(one).max()
    e1 = kernel.matrix_elements(v, v[::-1].copy(), np.array([0.3, 0.7]), threads=1)
    e2 = kernel.matrix_elements(v, v[::-1].copy(), np.array([0.3, 0.7]), threads=2)
    # the partial sums of the two threads are added in another order: rounding only
    assert np.abs(e1 - e2).max() <= 1e-12 * max(1.0, np.abs(e1).max())


@pytest.mark.parametrize("letters", ["XZ", "IXYZ"])
def test_matrix_elements_and_expectations(letters: str) -> None:
    ham, values = random_hamiltonian(7, 14, 3, seed=8, letters=letters)
    rng = np.random.default_rng(9)
    st = ham.structure
    for bb in (2, 4, 7):
        kernel = PauliKernel(ham.strings, 7, block_bits=bb)
        bra = _vectors(rng, ham.dim, 3, True)
        ket = _vectors(rng, ham.dim, 3, True)
        w = np.array([0.5, 0.3, 0.2])
        ref = st.string_matrix_elements(bra, ket, w)
        got = kernel.matrix_elements(bra, ket, w)
        # sums of 128 products of O(1) entries: rounding ~1e-14 relative to the largest
        assert np.abs(got - ref).max() <= PRODUCT_TOL * np.abs(ref).max()
        one = _vectors(rng, ham.dim, None, False)
        assert np.allclose(
            kernel.matrix_elements(one, one), st.string_matrix_elements(one, one), atol=1e-12
        )
    # expectations in an equilibrium state (a mixture of two eigenvectors)
    ev, vec = dense_eigh(ham.dense(values), k=2)
    state = Equilibrium(vectors=vec, weights=np.array([0.6, 0.4]), energies=ev, gap=1.0)
    got = PauliKernel(ham.strings, 7).expectations(vec, np.array([0.6, 0.4]))
    assert np.abs(got - string_expectations(ham, state)).max() <= PRODUCT_TOL


def test_bad_input_raises() -> None:
    ham, values = random_hamiltonian(4, 6, 2, seed=0)
    kernel = PauliKernel(ham.strings, 4)
    coef = ham.string_coefficients(values)
    with pytest.raises(ProblemError, match="coef"):
        kernel.apply(coef[:-1], np.ones(16))
    with pytest.raises(ProblemError, match="coef"):
        kernel.apply(coef * np.nan, np.ones(16))
    with pytest.raises(ProblemError, match="shape"):
        kernel.apply(coef, np.ones(8))
    with pytest.raises(ProblemError, match="threads"):
        kernel.apply(coef, np.ones(16), threads=0)
    with pytest.raises(ProblemError, match="out"):
        kernel.apply(coef, np.ones(16), out=np.empty(16, dtype=np.float32))
    with pytest.raises(ProblemError, match="weights"):
        kernel.matrix_elements(np.ones((16, 2)), np.ones((16, 2)), np.ones(3))
    with pytest.raises(PauliError):
        PauliKernel([PauliString.parse("X5")], 4)
    with pytest.raises(ProblemError, match="block_bits"):
        PauliKernel(ham.strings, 4, block_bits=0)


def test_memory_estimate_is_small_and_known_before_use() -> None:
    ham, _ = random_hamiltonian(10, 16, 4, seed=2, letters="IXYZ")
    kernel = PauliKernel(ham.strings, 10)
    est = kernel.memory_bytes(16)
    # tables: one row of 2**B complex entries per table row, plus sign rows and scratch
    assert 0 < est < 64 * 2**20
    assert est >= kernel._n_rows * (1 << kernel.block_bits) * 16


def test_import_does_not_load_numba() -> None:
    code = "import sys, qeprop.solvers.matrix_free; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------- eigensolver
def _sensor_chain(n_sites: int) -> tuple[ParametrisedHamiltonian, np.ndarray]:
    """Open cluster-Ising chain with a 2-qubit sensor (the phase-recognition model)."""
    chain = cluster_ising.hamiltonian_terms(n_sites, boundary="open")
    layout = sensor_layout((n_sites, n_sites + 1), (0, 1), "xyz")
    ham = ParametrisedHamiltonian(
        n_sites + 2, [*chain, *layout.terms], params=[*cluster_ising.PARAMS, *layout.names]
    )
    rng = np.random.default_rng(12)
    values = np.concatenate([[1.2, 1.5, 1.0], layout.init_params(rng)])
    return ham, values


@pytest.fixture(scope="module")
def sensor_chain() -> tuple[ParametrisedHamiltonian, np.ndarray, PauliKernel]:
    ham, values = _sensor_chain(8)
    return ham, values, PauliKernel(ham.strings, ham.n_qubits)


def _op(kernel: PauliKernel, coef: np.ndarray) -> functools.partial:
    """``v -> H v`` with an ``out`` keyword (the solver then reuses one product buffer)."""
    return functools.partial(kernel.apply, coef)


def _phase_free(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - |⟨a|b⟩|`` for unit vectors: zero when equal up to a phase."""
    return 1.0 - abs(np.vdot(a, b))


def test_lanczos_matches_dense(sensor_chain) -> None:
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    ev, vec = dense_eigh(ham.dense(values), k=3)
    res = lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 3, tol=1e-12)
    assert isinstance(res, LanczosResult)
    evals, vecs, matvecs = res
    assert vecs.shape == (kernel.dim, 3) and matvecs == res.level_matvecs.sum()
    # residual 1e-12 |E|: eigenvalue error ~ res² / gap, far below 1e-10
    assert np.abs(evals - ev).max() <= 1e-10
    for i in range(3):
        # eigenvector error ~ residual / gap (gap >= 0.1 here)
        assert _phase_free(vecs[:, i], vec[:, i]) <= 1e-10
        assert res.residuals[i] <= 1e-12 * max(1.0, abs(evals[i]))
    assert np.allclose(vecs.conj().T @ vecs, np.eye(3), atol=1e-12)


def test_lanczos_warm_start_from_solution_is_fast(sensor_chain) -> None:
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    cold = lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 2, tol=1e-11)
    warm = lanczos_lowest(
        _op(kernel, coef), kernel.dim, kernel.dtype, 2, list(cold.vecs.T), tol=1e-10
    )
    # converged starts: one step plus the explicit residual check per level
    assert warm.matvecs <= 6 < cold.matvecs
    assert np.abs(warm.evals - cold.evals).max() <= 1e-10


def test_lanczos_nudged_warm_start_saves_products(sensor_chain) -> None:
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    free = lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 1, tol=1e-10)
    nudged = values.copy()
    nudged[-3:] += 0.05  # sensor-sensor couplings
    c2 = ham.string_coefficients(nudged)
    warm = lanczos_lowest(_op(kernel, c2), kernel.dim, kernel.dtype, 1, [free.vecs[:, 0]])
    cold = lanczos_lowest(_op(kernel, c2), kernel.dim, kernel.dtype, 1)
    assert warm.matvecs < cold.matvecs
    assert abs(warm.evals[0] - cold.evals[0]) <= 1e-10


def test_lanczos_finds_every_copy_of_a_degenerate_level() -> None:
    # open cluster chain Σ_j Z_{j-1} X_j Z_{j+1}: 6 commuting stabilisers on 8 qubits, so the
    # ground level -6 is 2**(8-6) = 4-fold degenerate and the next level is -4
    n = 8
    terms = [(-1.0, f"Z{j - 1} X{j} Z{j + 1}") for j in range(1, n - 1)]
    ham = ParametrisedHamiltonian(n, terms)
    kernel = PauliKernel(ham.strings, n, block_bits=5)
    coef = ham.string_coefficients(np.zeros(0))
    res = lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 5, tol=1e-10)
    assert np.allclose(res.evals, [-6, -6, -6, -6, -4], atol=1e-9)
    manifold = res.vecs[:, :4]
    assert np.allclose(manifold.conj().T @ manifold, np.eye(4), atol=1e-10)
    h = ham.dense(np.zeros(0))
    assert np.abs(h @ manifold + 6 * manifold).max() <= 1e-9


@pytest.mark.parametrize("max_vectors", [4, 5, 7, 12])
def test_lanczos_small_vector_budget_gives_the_same_result(
    sensor_chain,
    max_vectors: int,
) -> None:
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    # a plain callable (a new array per product) and one with ``out`` (a reused buffer)
    full = lanczos_lowest(lambda v: kernel.apply(coef, v), kernel.dim, kernel.dtype, 2, tol=1e-11)
    lean = lanczos_lowest(
        _op(kernel, coef), kernel.dim, kernel.dtype, 2, tol=1e-11, max_vectors=max_vectors
    )
    # same Krylov spaces; the second pass regenerates the unstored vectors
    assert np.abs(lean.evals - full.evals).max() <= 1e-10
    for i in range(2):
        assert _phase_free(lean.vecs[:, i], full.vecs[:, i]) <= 1e-10
    assert lean.matvecs > full.matvecs  # the second pass costs products


def test_lanczos_workspace_is_reused_across_calls(sensor_chain) -> None:
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    ws = LanczosWorkspace()
    first = lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 2, workspace=ws)
    held = ws.nbytes
    assert held > 0  # the stored Lanczos vectors stay for the next call
    blocks = [id(b) for b in ws.blocks]
    nudged = values.copy()
    nudged[-1] += 0.1
    c2 = ham.string_coefficients(nudged)
    again = lanczos_lowest(_op(kernel, c2), kernel.dim, kernel.dtype, 1, [first.vecs[:, 0]],
                           workspace=ws)  # fmt: skip
    assert [id(b) for b in ws.blocks][: len(blocks)] == blocks
    ref = lanczos_lowest(_op(kernel, c2), kernel.dim, kernel.dtype, 1, [first.vecs[:, 0]])
    assert abs(again.evals[0] - ref.evals[0]) <= 1e-12 * abs(ref.evals[0])
    ws.release()
    assert ws.nbytes == 0


def test_lanczos_gap_level_uses_the_loose_tolerance(sensor_chain) -> None:
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    res = lanczos_lowest(
        _op(kernel, coef), kernel.dim, kernel.dtype, 2, tol=1e-12, gap_tol=1e-5, precise=1
    )
    ev, _ = dense_eigh(ham.dense(values), k=2)
    assert res.residuals[0] <= 1e-12 * abs(res.evals[0])
    assert res.residuals[1] <= 1e-5 * abs(res.evals[1])
    # a Ritz value's error is at most residual² / (distance to the next level)
    assert abs(res.evals[1] - ev[1]) <= 1e-6


def test_lanczos_raises_when_out_of_products(sensor_chain) -> None:
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    with pytest.raises(ConvergenceError, match="maxiter=10"):
        lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 1, tol=1e-12, maxiter=10)
    with pytest.raises(ProblemError, match="max_vectors"):
        lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 1, max_vectors=3)
    with pytest.raises(ProblemError, match="start"):
        lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 1, [np.ones(3)])


def test_lanczos_stuck_at_rounding_raises_instead_of_restarting_forever() -> None:
    """A tolerance below double-precision rounding (1e-18 relative) cannot be met: the restarts
    stop improving and the level ends with a clear error after a few of them, long before
    maxiter (here 10^6 products)."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((60, 60))
    a = a + a.T
    spent = [0]

    def op(v: np.ndarray) -> np.ndarray:
        spent[0] += 1
        return a @ v

    with pytest.raises(ConvergenceError, match="stalled at the relative residual"):
        lanczos_lowest(op, 60, np.float64, 1, tol=1e-18, maxiter=10**6)
    assert spent[0] < 1000


@pytest.mark.parametrize("complex_", [False, True])
def test_lanczos_step_inner_products_are_accurate_for_long_vectors(complex_: bool) -> None:
    """``alpha = Re⟨q|Hq⟩`` over 2^20 entries matches an extended-precision sum to 4e-13 (|alpha|
    = 43, like a 24-qubit chain's ground energy). A plain running sum is off by 6e-13 to 3e-12
    here (each addition to a large partial sum rounds), which at 2^24 entries put a floor of
    1e-10 under the Lanczos residual, above tol = 1e-12 |E|; the kernel sums per chunk."""
    from qeprop.solvers import _mf_kernels as kern

    rng = np.random.default_rng(3)
    n = 1 << 20
    q = rng.random(n) + 0.5 + (1j * rng.random(n) if complex_ else 0)
    q /= np.linalg.norm(q)
    p = _vectors(rng, n, None, complex_)
    p -= np.vdot(q, p) * q
    p *= 5.0 / np.linalg.norm(p)
    w = -43.344016870579 * q + p  # H q for an H with Rayleigh quotient -43.34 and beta = 5
    wide = np.clongdouble if complex_ else np.longdouble
    qw = np.sum(np.conj(q.astype(wide)) * w.astype(wide))
    exact = float((qw / np.sum(np.abs(q.astype(wide)) ** 2)).real)
    none = np.zeros((0, n), dtype=q.dtype)
    alpha, beta = kern.lanczos_step(w, q, q, 0.0, none, np.nan, np.nan, np.empty_like(q))
    assert abs(alpha - exact) <= 4e-13
    assert beta == pytest.approx(5.0, rel=1e-12)


def test_lanczos_real_operator_gives_real_vectors() -> None:
    ham, values = random_hamiltonian(9, 14, 3, seed=6, letters="XZ")
    kernel = PauliKernel(ham.strings, 9)
    coef = ham.string_coefficients(values)
    res = lanczos_lowest(_op(kernel, coef), kernel.dim, np.float64, 2, tol=1e-11)
    ev, vec = dense_eigh(ham.dense(values), k=2)
    assert res.vecs.dtype == np.float64
    assert np.abs(res.evals - ev).max() <= 1e-10
    assert _phase_free(res.vecs[:, 0], vec[:, 0]) <= 1e-10


# ---------------------------------------------------------------------------- linear response
@pytest.mark.parametrize("letters", ["XZ", "IXYZ"])
def test_minres_linear_response_matches_finite_differences(letters: str) -> None:
    ham, values = random_hamiltonian(7, 12, 2, seed=21, letters=letters)
    kernel = PauliKernel(ham.strings, 7)
    rng = np.random.default_rng(4)
    a_coef = rng.standard_normal(len(ham.strings))  # observable A = Σ a_s P_s
    v_coef = ham.derivative_coefficients[0]  # perturbation V = ∂H/∂t0
    coef = ham.string_coefficients(values)

    def expect_a(vals: np.ndarray) -> float:
        _, vec = dense_eigh(ham.dense(vals), k=1)
        return float(a_coef @ kernel.expectations(vec[:, :1]))

    ev, vec = dense_eigh(ham.dense(values), k=2)
    assert ev[1] - ev[0] > 1e-3  # a non-degenerate ground state
    psi = vec[:, 0]
    rhs = kernel.apply(v_coef, psi)
    phi = minres_shifted(_op(kernel, coef), float(ev[0]), psi[:, None], rhs, tol=1e-12)
    assert abs(np.vdot(psi, phi)) <= 1e-12
    response = -2.0 * float(a_coef @ kernel.matrix_elements(phi, psi).real)
    h = 1e-4
    shifted = [values.copy(), values.copy()]
    shifted[0][0] += h
    shifted[1][0] -= h
    fd = (expect_a(shifted[0]) - expect_a(shifted[1])) / (2 * h)
    # centred difference error ~ h² |d³⟨A⟩/dt³| ~ 1e-8 here, far below the tolerance
    assert abs(response - fd) <= 1e-6 * max(1.0, abs(fd))


def test_minres_raises_without_convergence() -> None:
    ham, values = random_hamiltonian(6, 10, 2, seed=2, letters="XZ")
    kernel = PauliKernel(ham.strings, 6)
    coef = ham.string_coefficients(values)
    ev, vec = dense_eigh(ham.dense(values), k=1)
    rhs = kernel.apply(ham.derivative_coefficients[0], vec[:, 0])
    with pytest.raises(ConvergenceError, match="MINRES"):
        minres_shifted(_op(kernel, coef), float(ev[0]), vec, rhs, tol=1e-14, maxiter=2)
    with pytest.raises(ProblemError, match="rhs"):
        minres_shifted(_op(kernel, coef), float(ev[0]), vec, rhs[:-1])


def test_lanczos_gap_level_relative_to_the_gap(sensor_chain) -> None:
    """``gap_rel``: the gap level stops once its residual is 1 % of the gap found so far."""
    ham, values, kernel = sensor_chain
    coef = ham.string_coefficients(values)
    common = {"tol": 1e-12, "gap_tol": 1e-8, "precise": 1}
    ref = lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 2, **common)
    res = lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 2, gap_rel=0.01, **common)
    ev, _ = dense_eigh(ham.dense(values), k=2)
    gap = ev[1] - ev[0]
    # the ground level is untouched; the gap level stops earlier, within its Weyl bound
    assert res.level_matvecs[0] == ref.level_matvecs[0]
    assert res.evals[0] == ref.evals[0]
    assert res.level_matvecs[1] <= ref.level_matvecs[1]
    assert res.residuals[1] <= max(1e-8 * abs(res.evals[1]), 0.01 * (res.evals[1] - res.evals[0]))
    assert abs((res.evals[1] - res.evals[0]) - gap) <= 0.01 * gap
    with pytest.raises(ProblemError, match="gap_rel"):
        lanczos_lowest(_op(kernel, coef), kernel.dim, kernel.dtype, 2, gap_rel=1.5)


@pytest.mark.parametrize("complex_", [False, True])
def test_vector_kernels_do_not_depend_on_alignment(complex_: bool) -> None:
    """The compiled reductions give bit-identical results for the same data at other offsets."""
    from qeprop.solvers import _mf_kernels as kern

    rng = np.random.default_rng(13)
    n = 1001
    w, q, p = (_vectors(rng, n, None, complex_) for _ in range(3))
    q /= np.linalg.norm(q)
    p -= np.vdot(q, p) * q
    p /= np.linalg.norm(p)
    locked = _vectors(rng, n, None, complex_)[None, :]
    locked /= np.linalg.norm(locked)
    dt = w.dtype

    def placed(x: np.ndarray, off: int) -> np.ndarray:
        buf = np.zeros(x.size + 8, dtype=dt)
        out = buf[off : off + x.size]
        out[:] = x
        return out

    results = []
    for off in range(4):
        ws, qs, ps = placed(w, off), placed(q, (off + 1) % 4), placed(p, (off + 3) % 4)
        dst = placed(np.zeros(n, dtype=dt), (off + 2) % 4)
        step = kern.lanczos_step(ws, qs, ps, 0.3, locked, np.nan, np.nan, dst)
        x = placed(w, off)
        nrm = kern.deflate(x, locked)
        res = kern.residual_norm(placed(w, off), placed(q, (off + 2) % 4), 0.7)
        y = placed(w, off)
        kern.combine(y, np.vstack([q, p]), np.array([0.5, -0.25], dtype=dt))
        results.append((step, dst.copy(), nrm, x.copy(), res, y.copy()))
    for other in results[1:]:
        assert other[0] == results[0][0] and other[2] == results[0][2]
        assert other[4] == results[0][4]
        for i in (1, 3, 5):
            assert np.array_equal(other[i], results[0][i])
