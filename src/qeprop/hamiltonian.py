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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .checks import MAX_COEFFICIENT, MAX_QUBITS, readonly
from .errors import PauliError, ProblemError
from .memory import available_memory, check_memory
from .pauli import PauliString, PauliSum, parity, phase_column

__all__ = [
    "MaskStrings",
    "ParameterVector",
    "ParametrisedHamiltonian",
    "SparseStructure",
    "Term",
    "memory_budget",
    "parameter_order",
]


@dataclass(frozen=True)
class Term:
    """One Hamiltonian term ``coeff * (value of param, or 1) * pauli``."""

    coeff: float
    pauli: PauliString
    param: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pauli, PauliString):
            raise ProblemError(f"a term's Pauli string must be a PauliString, got {self.pauli!r}")
        c = self.coeff
        if (
            isinstance(c, bool | np.bool_)
            or not isinstance(c, int | float | np.integer | np.floating)
            or not _finite(c)
        ):
            raise ProblemError(
                f"coefficient {c!r} of term {str(self.pauli)!r} must be a finite real"
            )
        object.__setattr__(self, "coeff", float(c))
        if self.param is not None and (not isinstance(self.param, str) or not self.param):
            raise ProblemError(
                f"the parameter of term {str(self.pauli)!r} must be a non-empty name, "
                f"got {self.param!r}"
            )

    @classmethod
    def make(cls, coeff: float, pauli: str | PauliString, param: str | None = None) -> Term:
        p = pauli if isinstance(pauli, PauliString) else PauliString.parse(pauli)
        return cls(coeff, p, param)


def _names(names: Sequence[str], limit: int = 6) -> str:
    """A list of names for a one-line message, cut after ``limit`` entries."""
    names = list(names)
    if len(names) <= limit:
        return str(names)
    return f"{str(names[:limit])[:-1]}, ... ({len(names)} in all)]"


def _finite(c: object) -> bool:
    try:
        return bool(np.isfinite(float(c)))  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):  # an int beyond the float range
        return False


def memory_budget() -> int:
    """Bytes this process may still allocate (:func:`qeprop.memory.available_memory`)."""
    return available_memory()


@dataclass(frozen=True)
class MaskStrings:
    """The strings of a :class:`SparseStructure` in its flip-pattern layout (read-only arrays).

    String ``s`` with basis masks ``(x_s, z_s)`` has the elements
    ``⟨r| P_s |r ^ x_s⟩ = i^{n_Y(s)} σ_s[r]`` with ``σ_s[r] = (-1)^popcount((r ^ x_s) & z_s)``.

    Attributes
    ----------
    string_mask : (S,) int64
        ``k_s``: the index of ``x_s`` in ``masks`` of :attr:`SparseStructure.mask_layout`.
    phase_re, phase_im : (S,) float64
        ``i^{n_Y(s)} = phase_re[s] + i phase_im[s]`` (one of ±1, ±i).
    signs : (S, dim) int8
        The ±1 rows ``σ_s``.
    order, offsets : (S,) and (n_masks + 1,) int64
        The strings grouped by mask: group ``k`` is ``order[offsets[k]:offsets[k + 1]]``.
    real_masks : (n_masks,) bool
        True where no string of the mask has an odd number of Y letters (real data for real
        coefficients).
    """

    string_mask: np.ndarray
    phase_re: np.ndarray
    phase_im: np.ndarray
    signs: np.ndarray
    order: np.ndarray
    offsets: np.ndarray
    real_masks: np.ndarray


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
        self.strings = tuple(strings)
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
    def mask_strings(self) -> MaskStrings:
        """Every string in the flip-pattern layout of :attr:`mask_layout` (:class:`MaskStrings`).

        Built on first use; the sign rows take ``n_strings * dim`` bytes.
        """
        masks = self.mask_layout[0]
        n_s, d = len(self.strings), self.dim
        check_memory(n_s * d, f"the sign rows of {n_s} Pauli strings on {self.n_qubits} qubits")
        xz = [p.basis_masks(self.n_qubits) for p in self.strings]
        n_y = np.array([p.n_y for p in self.strings], dtype=np.int64)
        string_mask = np.searchsorted(masks, np.array([x for x, _ in xz], dtype=np.int64))
        string_mask = string_mask.astype(np.int64)
        rows = np.arange(d, dtype=np.int64)
        signs = np.empty((n_s, d), dtype=np.int8)
        for s, (xm, zm) in enumerate(xz):
            signs[s] = 1 - 2 * parity((rows ^ xm) & zm)
        order = np.argsort(string_mask, kind="stable").astype(np.int64)
        offsets = np.searchsorted(string_mask[order], np.arange(len(masks) + 1)).astype(np.int64)
        odd = np.zeros(len(masks), dtype=bool)
        np.logical_or.at(odd, string_mask, n_y % 2 == 1)
        return MaskStrings(
            string_mask=readonly(string_mask),
            phase_re=readonly(np.array([1.0, 0.0, -1.0, 0.0])[n_y % 4]),
            phase_im=readonly(np.array([0.0, 1.0, 0.0, -1.0])[n_y % 4]),
            signs=readonly(signs),
            order=readonly(order),
            offsets=readonly(offsets),
            real_masks=readonly(~odd),
        )

    def mask_data(self, coefficients: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(B, n_masks, dim)`` data of :attr:`mask_layout` for string coefficients ``(B, S)``.

        ``D[b, k, r] = Σ_{s: x_s = masks[k]} c[b, s] i^{n_Y(s)} σ_s[r]`` (:class:`MaskStrings`),
        so that ``H_b[r, r ^ masks[k]] = D[b, k, r]`` for ``H_b = Σ_s c[b, s] P_s``; built in a
        compiled loop. ``out``, if given, is a C-contiguous array of that shape and of
        :attr:`dtype` to fill (a reused buffer avoids fresh pages on every call).
        """
        from .solvers._lanczos_kernels import fill_mask_data

        coef = np.ascontiguousarray(np.atleast_2d(coefficients), dtype=np.float64)
        if coef.ndim != 2 or coef.shape[1] != len(self.strings):
            raise ProblemError(
                f"coefficients must have shape (B, {len(self.strings)}) (one per string), "
                f"got {np.shape(coefficients)}"
            )
        shape = (len(coef), len(self.mask_layout[0]), self.dim)
        if out is None:
            out = np.empty(shape, dtype=self.dtype)
        elif out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ProblemError(
                f"out must be a C-contiguous {np.dtype(self.dtype)} array of shape {shape}, got "
                f"{out.dtype} {out.shape}"
            )
        ms = self.mask_strings
        width = 2 if self.dtype == np.complex128 else 1
        flat = out.reshape(shape[0], shape[1], -1).view(np.float64)
        fill_mask_data(coef, ms.offsets, ms.order, ms.phase_re, ms.phase_im, ms.signs, width, flat)
        return out

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

    def matrix_elements(
        self, bra: np.ndarray, ket: np.ndarray, weights: np.ndarray | None = None
    ) -> np.ndarray:
        """Engine interface (:class:`qeprop.states.Engine`): :meth:`string_matrix_elements`."""
        return self.string_matrix_elements(bra, ket, weights)

    def apply(self, coefficients: np.ndarray, vecs: np.ndarray) -> np.ndarray:
        """``Σ_s c_s P_s vecs`` for vectors ``(dim,)`` or ``(dim, K)`` (engine interface)."""
        return self.matrix(coefficients) @ vecs

    def string_traces(self, w_matrix: np.ndarray) -> np.ndarray:
        """``Tr(P_s W)`` for a dense ``d x d`` matrix ``W``: ``Σ_e M[e, s] W[col_e, row_e]``."""
        return self.term_map_t @ w_matrix[self.cols, self.rows]


def parameter_order(seen: Iterable[str], params: Sequence[str] | None) -> tuple[str, ...]:
    """The parameter order of a term-list Hamiltonian: ``params`` if given (non-empty, unique
    names covering every parameter the terms use, ``seen``), else the order of first use."""
    if params is None:
        return tuple(seen)
    order = tuple(params)
    odd = [p for p in order if not isinstance(p, str) or not p]
    if odd:
        raise ProblemError(f"parameter names must be non-empty text, got {odd[0]!r}")
    if len(set(order)) != len(order):
        dup = sorted({p for p in order if order.count(p) > 1})
        raise ProblemError(f"parameter names are not unique: {dup} appear more than once")
    missing = [p for p in seen if p not in order]
    if missing:
        raise ProblemError(f"terms use parameters that are not defined: {missing}")
    return order


class ParameterVector:
    """Parameter vectors of a term-list Hamiltonian ``H(p) = G_0 + Σ_k p_k G_k`` in a string basis.

    Shared by the qubit (:class:`ParametrisedHamiltonian`) and the mode
    (:class:`~qeprop.modes.ModeHamiltonian`) Hamiltonians, which set ``params``,
    ``param_index``, ``strings`` and the read-only coefficient rows ``_fixed`` ``(S,)`` and
    ``_derivs`` ``(P, S)``.
    """

    params: tuple[str, ...]
    param_index: dict[str, int]
    strings: tuple[object, ...]
    _fixed: np.ndarray
    _derivs: np.ndarray

    def values(self, mapping: Mapping[str, float] | None = None, **kw: float) -> np.ndarray:
        """Parameter vector ``(P,)`` aligned with :attr:`params` from a name->value mapping.

        Every value must be a finite real number (``int``, ``float`` or a numpy number; never
        ``bool`` or text such as ``"0.5"``). Unknown names, missing names, NaN and ±inf raise
        :class:`ProblemError` naming the parameter; so do values that make the scale of ``H``
        (``Σ_s |c_s|``) exceed :data:`~qeprop.checks.MAX_COEFFICIENT` (see :meth:`check_values`).
        """
        if mapping is not None and not isinstance(mapping, Mapping):
            raise ProblemError(
                f"parameter values must be a name->value mapping, got {type(mapping).__name__}"
            )
        given = dict(mapping or {}, **kw)
        unknown = [k for k in given if k not in self.param_index]
        if unknown:
            raise ProblemError(
                f"unknown parameters {_names(unknown)}; this Hamiltonian has {_names(self.params)}"
            )
        missing = [p for p in self.params if p not in given]
        if missing:
            raise ProblemError(f"no value given for parameters {_names(missing)}")
        for p in self.params:
            v = given[p]
            if isinstance(v, bool | np.bool_) or not isinstance(
                v, int | float | np.integer | np.floating
            ):
                raise ProblemError(f"the value of parameter {p!r} must be a real number, got {v!r}")
            if not _finite(v):
                raise ProblemError(f"parameters [{p!r}] are not finite (NaN or inf)")
        return self.check_values(np.array([float(given[p]) for p in self.params]))

    def check_values(self, values: np.ndarray) -> np.ndarray:
        """``values`` as a float vector ``(P,)``: real, finite, with finite coefficients of ``H``.

        Raises :class:`ProblemError` for a wrong shape, non-real entries (text, booleans, complex
        numbers), NaN/±inf (naming the parameters), or values for which the scale of ``H``,
        ``Σ_s |c_s|``, exceeds :data:`~qeprop.checks.MAX_COEFFICIENT` = 1e150 or overflows
        (naming the largest string and the parameters that drive it): eigensolvers square it.
        """
        try:
            raw = np.asarray(values)
        except (TypeError, ValueError):
            raise ProblemError(
                f"parameter values must be a vector of real numbers, got {values!r}"
            ) from None
        if raw.dtype.kind == "O":
            for x in raw.reshape(-1):
                if isinstance(x, bool | np.bool_) or not isinstance(
                    x, int | float | np.integer | np.floating
                ):
                    raise ProblemError(f"parameter values must be real numbers, got {x!r}")
            raw = raw.astype(float)
        elif raw.dtype.kind not in "iuf":
            raise ProblemError(
                f"parameter values must be real numbers, got an array of {raw.dtype} "
                f"({np.ravel(raw)[:3].tolist()}...)"
            )
        v = np.asarray(raw, dtype=float)
        if v.shape != (len(self.params),):
            raise ProblemError(
                f"expected {len(self.params)} parameter values {_names(self.params)}, "
                f"got shape {v.shape}"
            )
        bad = [self.params[i] for i in np.flatnonzero(~np.isfinite(v))]
        if bad:
            raise ProblemError(f"parameters {_names(bad)} are not finite (NaN or inf)")
        with np.errstate(over="ignore", invalid="ignore"):
            coef = np.abs(self.string_coefficients(v))
            scale = coef.sum()
        if not scale <= MAX_COEFFICIENT:  # also catches inf and NaN
            col = int(np.argmax(np.where(np.isfinite(coef), coef, np.inf)))
            drivers = [
                self.params[k] for k in np.flatnonzero((self._derivs[:, col] != 0) & (v != 0))
            ]
            size = "overflows to inf" if not np.isfinite(coef[col]) else f"is {coef[col]:.3g}"
            raise ProblemError(
                f"the coefficient of {str(self.strings[col])!r} in H {size} for the values of "
                f"parameters {_names(drivers)}: the scale of H (sum of |coefficients|) must "
                f"stay below {MAX_COEFFICIENT:.0e} (solvers square it); use smaller values"
            )
        return v

    def string_coefficients(self, values: np.ndarray) -> np.ndarray:
        """Coefficient of each string for parameter vector(s) ``values`` ``(P,)`` or ``(B, P)``."""
        return self._fixed + np.asarray(values, dtype=float) @ self._derivs

    @property
    def derivative_coefficients(self) -> np.ndarray:
        """``(n_params, n_strings)``: row ``k`` expresses ``∂H/∂p_k`` in the string basis.

        Read-only (shared by every later gradient); take a copy to modify it.
        """
        return self._derivs


class ParametrisedHamiltonian(ParameterVector):
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
        if n_qubits > MAX_QUBITS:
            raise ProblemError(f"{n_qubits} qubits are more than the {MAX_QUBITS} supported")
        self.n_qubits = int(n_qubits)
        tl: list[Term] = []
        for i, t in enumerate(terms):
            try:
                if isinstance(t, Term):
                    term = t
                elif isinstance(t, tuple | list) and len(t) in (2, 3):
                    term = Term.make(*t)
                else:
                    raise ProblemError(f"expected a Term or (coeff, pauli[, param]), got {t!r}")
                term.pauli.check_qubits(self.n_qubits)
            except (PauliError, ProblemError) as e:
                raise e.located(f"terms[{i}]") from None
            tl.append(term)
        self.terms: tuple[Term, ...] = tuple(tl)
        seen: dict[str, None] = {}
        for t in self.terms:
            if t.param is not None:
                seen.setdefault(t.param, None)
        self.params: tuple[str, ...] = parameter_order(seen, params)
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
        with np.errstate(over="ignore", invalid="ignore"):
            for t in self.terms:
                row = 0 if t.param is None else 1 + self.param_index[t.param]
                g[row, self.string_index[t.pauli]] += t.coeff
        if not np.all(np.abs(g) <= MAX_COEFFICIENT):  # also catches inf and NaN
            row, col = (int(i[0]) for i in np.nonzero(~(np.abs(g) <= MAX_COEFFICIENT)))
            name = None if row == 0 else self.params[row - 1]
            same = [
                f"terms[{i}]"
                for i, t in enumerate(self.terms)
                if t.pauli == self.strings[col] and t.param == name
            ]
            raise ProblemError(
                (
                    f"the coefficients of {', '.join(same)}"
                    if len(same) > 1
                    else f"the coefficient of {', '.join(same)}"
                )
                + f" (string {str(self.strings[col])!r}"
                + (f", parameter {name!r}" if name else "")
                + (") add up to " if len(same) > 1 else ") is ")
                + f"{g[row, col]:.3g}: "
                + ("overflow; " if not np.isfinite(g[row, col]) else "")
                + f"coefficients must stay below {MAX_COEFFICIENT:.0e} (solvers square them)"
            )
        self._fixed = readonly(g[0])
        self._derivs = readonly(g[1:])

    # ------------------------------------------------------------------ parameters
    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    @property
    def is_real(self) -> bool:
        """True when every term has an even number of Y letters (real matrix)."""
        return all(p.n_y % 2 == 0 for p in self.strings)

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
        return ident, readonly(vec)

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
