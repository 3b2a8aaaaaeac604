"""Parametrised Pauli-term Hamiltonians and their matrix renderings.

A :class:`ParametrisedHamiltonian` is an immutable list of terms ``coeff * [param] * P`` on
``n_qubits`` qubits,

.. math::  H(p) = \\sum_t c_t \\, p_{k(t)} \\, P_t \\qquad (p_{k(t)} = 1 \\text{ for fixed terms}),

so the QEP Hamiltonian ``H(x, θ, ν) = H_fixed + Σ x_k B_k + Σ θ_j A_j + Σ ν_l O_l`` is one such list
whose parameters are the inputs ``x``, the couplings ``θ`` and the nudges ``ν``. Several terms may
share a parameter; ``∂H/∂p_k = Σ_{t: k(t)=k} c_t P_t`` then sums over them.

Renderings come from one precomputed structure (:class:`SparseStructure`): all terms whose strings
flip the same bits share one sparsity pattern, so the CSR matrix for new parameter values costs one
sparse matrix-vector product ``data = M @ coefficients`` and never rebuilds operators. Hamiltonians
without an odd number of Y letters in any term are rendered as real matrices.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .errors import PauliError, ProblemError, ProblemTooLargeError
from .pauli import PauliString, PauliSum, phase_column

__all__ = ["ParametrisedHamiltonian", "SparseStructure", "Term", "memory_budget"]


@dataclass(frozen=True)
class Term:
    """One Hamiltonian term ``coeff * (value of param, or 1) * pauli``."""

    coeff: float
    pauli: PauliString
    param: str | None = None

    @classmethod
    def make(cls, coeff: float, pauli: str | PauliString, param: str | None = None) -> Term:
        p = pauli if isinstance(pauli, PauliString) else PauliString.parse(pauli)
        if isinstance(coeff, complex) or not np.isfinite(coeff):
            raise ProblemError(f"coefficient {coeff!r} of term {str(p)!r} must be a finite real")
        return cls(float(coeff), p, param)


def memory_budget() -> int:
    """Bytes a single allocation may take: 80 % of the physical memory of this machine."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 << 30
    return int(0.8 * total)


def check_memory(nbytes: float, what: str, budget: int | None = None) -> None:
    """Raise :class:`ProblemTooLargeError` if ``nbytes`` exceeds the memory budget."""
    limit = memory_budget() if budget is None else budget
    if nbytes > limit:
        raise ProblemTooLargeError(
            f"{what} needs about {nbytes / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB "
            "available; use fewer qubits or a solver that does not store the matrix"
        )


class SparseStructure:
    """Fixed CSR pattern of a set of Pauli strings and the map from string coefficients to data.

    For string ``s`` with basis masks ``(xmask_s, zmask_s)`` the matrix elements are
    ``<b ^ xmask_s| P_s |b> = i**(#Y_s) (-1)**popcount(b & zmask_s)``. Strings sharing ``xmask``
    share
    the pattern ``{(b ^ xmask, b)}``. ``term_map`` is the ``(nnz, n_strings)`` sparse matrix with
    these elements, so ``csr.data = term_map @ coefficients``, and the expectation values of all
    strings in a state are ``term_map.T @ w`` with ``w_e = Σ_k p_k conj(ψ_k[row_e]) ψ_k[col_e]``.

    Attributes
    ----------
    rows, cols : (nnz,) int arrays in CSR order.
    indptr, indices : the CSR index arrays.
    term_map : (nnz, n_strings) CSR array, real or complex.
    """

    def __init__(self, strings: Sequence[PauliString], n_qubits: int) -> None:
        d = 1 << n_qubits
        self.n_qubits = n_qubits
        self.dim = d
        masks = [p.basis_masks(n_qubits) for p in strings]
        xmasks = sorted({m[0] for m in masks})
        n_y = [p.n_y for p in strings]
        self.is_real = all(k % 2 == 0 for k in n_y)
        dtype = np.float64 if self.is_real else np.complex128
        idx_t = np.int32 if d * max(len(xmasks), 1) < 2**31 - 1 else np.int64
        nnz = d * len(xmasks)
        per_string = 8 if self.is_real else 16
        check_memory(
            nnz * (2 * idx_t().itemsize + per_string) + len(strings) * d * (per_string + 8),
            f"the sparse structure of {len(strings)} Pauli strings on {n_qubits} qubits",
        )
        b = np.arange(d, dtype=np.int64)
        # rows r, cols c = r ^ m for every pattern m; sort each row's columns.
        block_of = {m: i for i, m in enumerate(xmasks)}
        xm_arr = np.asarray(xmasks, dtype=np.int64)
        cols_rm = b[:, None] ^ xm_arr[None, :]  # (d, n_masks): column for row r, pattern m
        order_in_row = np.argsort(cols_rm, axis=1, kind="stable")
        cols_sorted = np.take_along_axis(cols_rm, order_in_row, axis=1)
        # position in CSR data of entry (row r, pattern m)
        pos = np.empty_like(order_in_row)
        np.put_along_axis(
            pos, order_in_row, np.arange(len(xmasks), dtype=np.int64)[None, :], axis=1
        )
        pos += (b * len(xmasks))[:, None]
        self.indptr = (np.arange(d + 1, dtype=np.int64) * len(xmasks)).astype(idx_t)
        self.indices = cols_sorted.reshape(-1).astype(idx_t)
        self.rows = np.repeat(b, len(xmasks)).astype(idx_t)
        self.cols = self.indices
        # term map: string s contributes at entries (row = b ^ xmask_s, col = b)
        data_parts, row_parts, col_parts = [], [], []
        for s, ((xm, zm), ny) in enumerate(zip(masks, n_y, strict=True)):
            r = b ^ xm
            data_parts.append(phase_column(b, zm, ny).astype(dtype))
            row_parts.append(pos[r, block_of[xm]])
            col_parts.append(np.full(d, s, dtype=np.int64))
        if strings:
            tm = sp.coo_array(
                (
                    np.concatenate(data_parts),
                    (np.concatenate(row_parts), np.concatenate(col_parts)),
                ),
                shape=(nnz, len(strings)),
            )
        else:
            tm = sp.coo_array((nnz, 0), dtype=dtype)
        self.term_map = sp.csr_array(tm)
        self.term_map_t = sp.csr_array(tm.T)
        self.dtype = dtype
        self.nnz = nnz

    @cached_property
    def mask_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """``(masks, perm)``: the same data by flip pattern, ``H[r, r ^ masks[k]] = D[k, r]``.

        ``D = data[perm].reshape(len(masks), dim)`` for CSR ``data`` of this structure; a
        matrix-vector product is then ``(Hv)[r] = Σ_k D[k, r] v[r ^ masks[k]]``, with no index
        arrays to read.
        """
        flips = np.bitwise_xor(self.rows.astype(np.int64), self.cols.astype(np.int64))
        masks = np.unique(flips)
        slot = np.searchsorted(masks, flips) * self.dim + self.rows.astype(np.int64)
        perm = np.empty(self.nnz, dtype=np.int64)
        perm[slot] = np.arange(self.nnz)
        return masks, perm

    @cached_property
    def mask_term_maps(self) -> tuple[sp.csr_array, sp.csr_array]:
        """Real and imaginary parts of ``term_map``, rows in the order of :attr:`mask_layout`.

        Matrix elements of Pauli strings are real (±1) or imaginary (±i), so the data for real
        coefficients ``c`` is ``re @ c + 1j * (im @ c)``: two real products, not a complex one.
        """
        tm = self.term_map[self.mask_layout[1]]
        return sp.csr_array(tm.real), sp.csr_array(
            tm.imag if self.dtype == np.complex128 else tm * 0
        )

    def mask_data(self, coefficients: np.ndarray) -> np.ndarray:
        """``(B, n_masks, dim)`` data of :attr:`mask_layout` for string coefficients ``(B, S)``."""
        coefficients = np.atleast_2d(coefficients)
        re, im = self.mask_term_maps
        out = (re @ coefficients.T).T
        if self.dtype == np.complex128:
            out = out + 1j * (im @ coefficients.T).T
        return np.ascontiguousarray(out).reshape(len(coefficients), -1, self.dim)

    def matrix(self, coefficients: np.ndarray) -> sp.csr_array:
        """CSR matrix ``Σ_s c_s P_s`` for string coefficients ``c`` (shape ``(n_strings,)``)."""
        data = self.term_map @ np.asarray(coefficients, dtype=np.float64)
        return sp.csr_array((data, self.indices, self.indptr), shape=(self.dim, self.dim))

    def pair_products(
        self, bra: np.ndarray, ket: np.ndarray, weights: np.ndarray | None = None
    ) -> np.ndarray:
        """``w_e = Σ_k weights_k conj(bra[row_e, k]) ket[col_e, k]`` for every stored entry ``e``.

        ``bra``/``ket`` have shape ``(d,)`` or ``(d, K)``.
        """
        if bra.ndim == 1:
            w = np.conj(bra[self.rows]) * ket[self.cols]
            return w if weights is None else w * weights[0]
        if weights is None:
            weights = np.ones(bra.shape[1])
        w = np.zeros(self.nnz, dtype=np.result_type(bra, ket))
        for k in range(bra.shape[1]):
            if weights[k] != 0:
                w += weights[k] * (np.conj(bra[self.rows, k]) * ket[self.cols, k])
        return w

    def string_matrix_elements(
        self, bra: np.ndarray, ket: np.ndarray, weights: np.ndarray | None = None
    ) -> np.ndarray:
        """``Σ_k weights_k <bra_k| P_s |ket_k>`` for every string ``s`` (complex, ``(S,)``)."""
        return self.term_map_t @ self.pair_products(bra, ket, weights)

    def string_traces(self, w_matrix: np.ndarray) -> np.ndarray:
        """``Tr(P_s W)`` for a dense ``d x d`` matrix ``W``: ``Σ_e M[e, s] W[col_e, row_e]``."""
        return self.term_map_t @ w_matrix[self.cols, self.rows]


class ParametrisedHamiltonian:
    """Immutable Pauli-term Hamiltonian ``H(p) = Σ_t c_t p_{k(t)} P_t`` on ``n_qubits`` qubits.

    Parameters
    ----------
    n_qubits:
        Number of qubits; qubit 0 is the leftmost Kronecker factor.
    terms:
        :class:`Term` objects, or tuples ``(coeff, pauli)`` / ``(coeff, pauli, param)``.
    params:
        Order of the parameter vector. Defaults to the order of first appearance in ``terms``.
        Listing a name that no term uses is allowed (its derivative is zero).

    Notes
    -----
    Parameter values are passed as a vector aligned with :attr:`params` (see :meth:`values`).
    The string basis :attr:`strings` holds every distinct Pauli string of the terms plus any
    ``extra_strings`` (observables one wants to measure with the same structure).
    """

    def __init__(
        self,
        n_qubits: int,
        terms: Iterable[Term | tuple],
        params: Sequence[str] | None = None,
        extra_strings: Iterable[PauliString] = (),
    ) -> None:
        if not isinstance(n_qubits, int | np.integer) or isinstance(n_qubits, bool) or n_qubits < 1:
            raise ProblemError(f"the number of qubits must be a positive integer, got {n_qubits!r}")
        self.n_qubits = int(n_qubits)
        tl: list[Term] = []
        for i, t in enumerate(terms):
            try:
                term = t if isinstance(t, Term) else Term.make(*t)
                term.pauli.check_qubits(self.n_qubits)
            except (PauliError, ProblemError) as e:
                raise e.located(f"terms[{i}]") from None
            tl.append(term)
        self.terms: tuple[Term, ...] = tuple(tl)
        seen: dict[str, None] = {}
        for t in self.terms:
            if t.param is not None:
                seen.setdefault(t.param, None)
        if params is None:
            self.params: tuple[str, ...] = tuple(seen)
        else:
            self.params = tuple(params)
            if len(set(self.params)) != len(self.params):
                raise ProblemError(f"parameter names are not unique: {list(self.params)}")
            missing = [p for p in seen if p not in self.params]
            if missing:
                raise ProblemError(f"terms use parameters that are not defined: {missing}")
        self.param_index = {p: i for i, p in enumerate(self.params)}
        strings: dict[PauliString, None] = {}
        for t in self.terms:
            strings.setdefault(t.pauli, None)
        for p in extra_strings:
            p.check_qubits(self.n_qubits)
            strings.setdefault(p, None)
        self.strings: tuple[PauliString, ...] = tuple(strings)
        self.string_index = {p: i for i, p in enumerate(self.strings)}
        # G[0] fixed part, G[1 + k] derivative w.r.t. parameter k, in the string basis
        g = np.zeros((len(self.params) + 1, len(self.strings)))
        for t in self.terms:
            row = 0 if t.param is None else 1 + self.param_index[t.param]
            g[row, self.string_index[t.pauli]] += t.coeff
        self._fixed = g[0]
        self._derivs = g[1:]

    # ------------------------------------------------------------------ parameters
    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    @property
    def is_real(self) -> bool:
        """True when every term has an even number of Y letters (real matrix)."""
        return all(p.n_y % 2 == 0 for p in self.strings)

    def values(self, mapping: Mapping[str, float] | None = None, **kw: float) -> np.ndarray:
        """Parameter vector from a name->value mapping; unknown names, missing names, NaN raise."""
        given = dict(mapping or {}, **kw)
        unknown = [k for k in given if k not in self.param_index]
        if unknown:
            raise ProblemError(
                f"unknown parameters {unknown}; this Hamiltonian has {list(self.params)}"
            )
        missing = [p for p in self.params if p not in given]
        if missing:
            raise ProblemError(f"no value given for parameters {missing}")
        try:
            vec = np.array([given[p] for p in self.params], dtype=float)
        except (TypeError, ValueError):
            bad = {p: given[p] for p in self.params if not isinstance(given[p], int | float)}
            raise ProblemError(f"parameter values must be real numbers, got {bad}") from None
        return self.check_values(vec)

    def check_values(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        if v.shape != (len(self.params),):
            raise ProblemError(
                f"expected {len(self.params)} parameter values {list(self.params)}, "
                f"got shape {v.shape}"
            )
        bad = [self.params[i] for i in np.flatnonzero(~np.isfinite(v))]
        if bad:
            raise ProblemError(f"parameters {bad} are not finite (NaN or inf)")
        return v

    def string_coefficients(self, values: np.ndarray) -> np.ndarray:
        """Coefficient of each string for parameter vector(s) ``values`` ``(P,)`` or ``(B, P)``."""
        return self._fixed + np.asarray(values, dtype=float) @ self._derivs

    @property
    def derivative_coefficients(self) -> np.ndarray:
        """``(n_params, n_strings)``: row ``k`` expresses ``∂H/∂p_k`` in the string basis."""
        return self._derivs

    def coefficients_of(self, op: PauliSum, what: str = "operator") -> tuple[float, np.ndarray]:
        """``(identity part, coefficients over strings)`` of a Hermitian operator in this basis.

        Raises :class:`ProblemError` if ``op`` has a string outside the basis (build the
        Hamiltonian with ``extra_strings`` to include it).
        """
        vec = np.zeros(len(self.strings))
        ident = 0.0
        for p, c in op.real(what=what).items():
            if p.is_identity() and p not in self.string_index:
                ident += c
                continue
            if p not in self.string_index:
                raise ProblemError(f"{what}: string {str(p)!r} is not in the Hamiltonian's basis")
            vec[self.string_index[p]] += c
        return ident, vec

    # ------------------------------------------------------------------ composition
    def with_terms(
        self,
        terms: Iterable[Term],
        params: Sequence[str] = (),
        extra_strings: Iterable[PauliString] = (),
    ) -> ParametrisedHamiltonian:
        """A new Hamiltonian with ``terms`` appended; new parameter names go after the old ones."""
        return ParametrisedHamiltonian(
            self.n_qubits,
            [*self.terms, *terms],
            params=[*self.params, *[p for p in params if p not in self.param_index]],
            extra_strings=[*self.strings, *extra_strings],
        )

    # ------------------------------------------------------------------ renderings
    @cached_property
    def structure(self) -> SparseStructure:
        """The precomputed sparse structure (built on first use)."""
        return SparseStructure(self.strings, self.n_qubits)

    def sparse(self, values: np.ndarray) -> sp.csr_array:
        """CSR matrix of ``H(values)``: one sparse product with precomputed per-term data."""
        return self.structure.matrix(self.string_coefficients(values))

    def dense(self, values: np.ndarray) -> np.ndarray:
        check_memory(
            self.dim**2 * (8 if self.is_real else 16), f"a dense {self.dim}x{self.dim} Hamiltonian"
        )
        return self.sparse(values).toarray()

    def operator_matrix(self, op_coefficients: np.ndarray) -> sp.csr_array:
        """CSR matrix of the operator ``Σ_s c_s P_s`` (``c`` over :attr:`strings`)."""
        return self.structure.matrix(op_coefficients)

    def kron_reference(self, values: np.ndarray) -> np.ndarray:
        """Dense ``H(values)`` built independently from Kronecker products (for tests only)."""
        single = {
            "I": np.eye(2),
            "X": np.array([[0, 1], [1, 0]], dtype=complex),
            "Y": np.array([[0, -1j], [1j, 0]]),
            "Z": np.diag([1.0, -1.0]),
        }
        coef = self.string_coefficients(values)
        out = np.zeros((self.dim, self.dim), dtype=complex)
        for p, c in zip(self.strings, coef, strict=True):
            letters = p.letters()
            m = np.ones((1, 1), dtype=complex)
            for q in range(self.n_qubits):
                m = np.kron(m, single[letters.get(q, "I")])
            out += c * m
        return out

    def norm_bound(self, values: np.ndarray) -> float:
        """``Σ_s |c_s|``: an upper bound on ``||H(values)||``."""
        return float(np.abs(self.string_coefficients(values)).sum())

    def __repr__(self) -> str:
        return (
            f"ParametrisedHamiltonian(n_qubits={self.n_qubits}, terms={len(self.terms)}, "
            f"params={len(self.params)}, strings={len(self.strings)})"
        )
