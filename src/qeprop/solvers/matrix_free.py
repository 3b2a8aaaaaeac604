"""Matrix-free Pauli-sum engine, a memory-lean Lanczos eigensolver and a shifted linear solve.

A Hamiltonian ``H = Σ_s c_s P_s`` (real coefficients, Pauli strings ``P_s``) is applied to vectors
without storing any matrix. With the basis masks of :meth:`~qeprop.pauli.PauliString.basis_masks`
(qubit 0 = most significant bit of a basis index), string ``s`` with masks ``(x_s, z_s)`` has the
matrix elements

.. math::  ⟨b \\oplus x_s| P_s |b⟩ = i^{n_Y(s)} (-1)^{|b \\wedge z_s|},

so the strings sharing one X mask ``m`` form a diagonal-times-permutation operator,

.. math::  (H v)[r] = Σ_m D_m(r)\\, v[r \\oplus m], \\qquad
           D_m(r) = Σ_{s: x_s = m} c_s\\, i^{n_Y(s)} (-1)^{|m \\wedge z_s|} (-1)^{|r \\wedge z_s|}.

:class:`PauliKernel` evaluates this block by block (the low ``B`` bits of ``r`` form a block that
stays in cache) with ``D_m`` read from small per-group tables, in compiled code
(:mod:`qeprop.solvers._mf_kernels`, imported on first use). Its memory is the vectors plus tables
of a few MiB, so 26 qubits fit where the CSR matrix of
:class:`~qeprop.hamiltonian.SparseStructure` does not.

:func:`lanczos_lowest` finds the lowest eigenpairs one level at a time with deflation, storing at
most a given number of vectors (two-pass Lanczos when the budget is tiny), and
:func:`minres_shifted` solves ``(H - E) φ = b`` on the complement of an eigenspace (exact linear
response).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
import scipy.sparse.linalg as spla

from ..errors import ConvergenceError, ProblemError
from ..pauli import PauliString
from . import _progress

__all__ = [
    "LanczosResult",
    "LanczosWorkspace",
    "PauliKernel",
    "lanczos_lowest",
    "minres_shifted",
    "numba_threads",
]

#: default number of low bits per block: a block of amplitudes is 2**B entries
_BLOCK_BITS = {8: 12, 16: 11}
#: table rows allowed per group before the per-block sum of sub-tables is used
_MAX_TABLE_ROWS = 64
#: restarts of a Lanczos level that do not reduce its residual below _STALL_RATIO times the best
#: one so far, in a row, after which the level counts as stuck (see :func:`lanczos_lowest`)
_STALLS = 3
_STALL_RATIO = 0.5


@contextlib.contextmanager
def numba_threads(threads: int) -> Iterator[None]:
    """Run numba parallel regions inside the block with exactly ``threads`` threads.

    The previous setting (per calling thread) is restored afterwards. Raises
    :class:`ProblemError` when ``threads`` is not a positive integer or exceeds the threads numba
    was started with (``NUMBA_NUM_THREADS``, by default the number of cores).
    """
    import numba

    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ProblemError(f"threads must be a positive integer, got {threads!r}")
    limit = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
    if threads > limit:
        raise ProblemError(f"threads={threads} exceeds the {limit} threads numba can use")
    before = numba.get_num_threads()
    numba.set_num_threads(int(threads))
    try:
        yield
    finally:
        numba.set_num_threads(before)


class PauliKernel:
    """Matrix-free ``Σ_s c_s P_s`` on ``n_qubits`` qubits for a fixed list of Pauli strings.

    The strings are fixed at construction; the coefficients are an argument of every call, so one
    kernel serves a parametrised Hamiltonian at all parameter values (tables for the last
    coefficient vector are cached).

    Parameters
    ----------
    strings:
        The Pauli strings ``P_s`` (e.g. ``ParametrisedHamiltonian.strings``); repeats allowed.
    n_qubits:
        Number of qubits; every string must act on qubits ``< n_qubits``.
    block_bits:
        Low bits ``B`` per block (``None``: 12 for real, 11 for complex strings, capped at
        ``n_qubits``), so that a block of the vector (``2**B`` entries) stays in cache.

    Attributes
    ----------
    dim : int
        ``2**n_qubits``.
    n_qubits : int
    is_real : bool
        True when no string has an odd number of Y letters (the operator is then real).
    dtype : numpy dtype
        ``float64`` for real strings, ``complex128`` otherwise (the dtype of the tables and of
        :meth:`apply`'s output for real input).

    Notes
    -----
    Design: the strings are grouped by X mask ``m``; a basis index is split as
    ``r = hi << B | lo``. In group ``m`` the factor ``(-1)^{|r ∧ z_s|}`` splits into a sign from
    the high bits and one from the low bits. Strings without low Z bits give a scalar per block;
    the others are combined, per pattern of the high Z bits they use, into table rows of length
    ``2**B`` (built with one small matrix product per coefficient vector), or, when a group uses
    too many high Z bits, into one sub-table per distinct high pattern summed per block. The
    compiled loop then reads, for each block and group, ``w[lo] += row[lo] · v[(hi ⊕ m_hi) << B
    | (lo ⊕ m_lo)]``.

    The tables of the last coefficient vector are kept on the object, so one kernel must not be
    called from several Python threads with different coefficients at once (use ``threads``
    for parallelism).
    """

    def __init__(
        self, strings: Sequence[PauliString], n_qubits: int, *, block_bits: int | None = None
    ) -> None:
        if isinstance(n_qubits, bool) or not isinstance(n_qubits, int | np.integer):
            raise ProblemError(f"n_qubits must be a positive integer, got {n_qubits!r}")
        if not 1 <= n_qubits <= 40:
            raise ProblemError(f"n_qubits must be between 1 and 40, got {n_qubits}")
        n = int(n_qubits)
        strings = list(strings)
        for i, p in enumerate(strings):
            if not isinstance(p, PauliString):
                raise ProblemError(f"strings[{i}] is not a PauliString: {p!r}")
            p.check_qubits(n)
        self.n_qubits = n
        self.dim = 1 << n
        self.n_strings = len(strings)
        self.is_real = all(p.n_y % 2 == 0 for p in strings)
        self.dtype = np.dtype(np.float64 if self.is_real else np.complex128)
        if block_bits is None:
            block_bits = _BLOCK_BITS[self.dtype.itemsize]
        if isinstance(block_bits, bool) or not isinstance(block_bits, int | np.integer):
            raise ProblemError(f"block_bits must be a positive integer, got {block_bits!r}")
        if block_bits < 1:
            raise ProblemError(f"block_bits must be a positive integer, got {block_bits!r}")
        self.block_bits = min(int(block_bits), n)
        self._build_layout(strings)
        self._coef_key: np.ndarray | None = None
        self._tables = np.zeros((0, 1 << self.block_bits))
        self._sc_re = self._sc_im = np.zeros(0)

    # ------------------------------------------------------------------ layout (strings only)
    def _build_layout(self, strings: list[PauliString]) -> None:
        n, bb = self.n_qubits, self.block_bits
        lmask = (1 << bb) - 1
        masks = [p.basis_masks(n) for p in strings]
        # phase of string s in row convention: i^{n_Y} (-1)^{|x ∧ z|} = (-i)^{n_Y}
        self._phase = np.array([(1, -1j, -1, 1j)[p.n_y % 4] for p in strings], dtype=complex)
        by_mask: dict[int, list[int]] = {}
        for s, (xm, _) in enumerate(masks):
            by_mask.setdefault(xm, []).append(s)
        order = sorted(by_mask, key=lambda m: (m >> bb, m & lmask))
        lows: dict[int, int] = {}  # distinct low Z pattern -> row of the sign table
        mhi, mlo, mode, rowc = [], [], [], []
        sc_off, sc_s, sc_z = [0], [], []
        tb_off: list[int] = []
        aux_off: list[int] = [0]
        aux: list[int] = []
        self._table_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = []
        n_rows = 0
        l_off, l_ids, s_off, s_order, s_l, s_zhi = [0], [], [0], [], [], []
        for m in order:
            members = by_mask[m]
            mhi.append(m >> bb)
            mlo.append(m & lmask)
            rowc.append(any(strings[s].n_y % 2 for s in members))
            tab = [s for s in members if masks[s][1] & lmask]
            for s in members:
                if not masks[s][1] & lmask:
                    sc_s.append(s)
                    sc_z.append(masks[s][1] >> bb)
            sc_off.append(len(sc_s))
            # expectation layout: every string, with its local low pattern
            local: dict[int, int] = {}
            for s in members:
                zl = masks[s][1] & lmask
                if zl not in local:
                    local[zl] = len(local)
                    l_ids.append(lows.setdefault(zl, len(lows)))
                s_order.append(s)
                s_l.append(local[zl])
                s_zhi.append(masks[s][1] >> bb)
            l_off.append(len(l_ids))
            s_off.append(len(s_order))
            tb_off.append(n_rows)
            if not tab:
                mode.append(0)
                aux_off.append(len(aux))
                continue
            zhi = np.array([masks[s][1] >> bb for s in tab], dtype=np.int64)
            high_or = int(np.bitwise_or.reduce(zhi))
            bits = [b for b in range(n - bb) if (high_or >> b) & 1]
            distinct = sorted(set(zhi.tolist()))
            tab_l = np.array([lows.setdefault(masks[s][1] & lmask, len(lows)) for s in tab])
            if (1 << len(bits)) <= _MAX_TABLE_ROWS or (1 << len(bits)) <= len(distinct):
                # one row per pattern p of the high Z bits: M[p, s] = (-1)^{|pattern(p) ∧ zhi_s|}
                pats = np.zeros(1 << len(bits), dtype=np.int64)
                for i, b in enumerate(bits):
                    pats |= ((np.arange(1 << len(bits)) >> i) & 1) << b
                mix = 1.0 - 2.0 * _parity(pats[:, None] & zhi[None, :])
                mode.append(1)
                aux.extend(bits)
            else:
                # one sub-table per distinct high pattern, signed and summed per block
                mix = (np.array(distinct)[:, None] == zhi[None, :]).astype(np.float64)
                mode.append(2)
                aux.extend(distinct)
            aux_off.append(len(aux))
            self._table_parts.append((np.array(tab), tab_l, mix, rowc[-1]))
            n_rows += mix.shape[0]
        self._n_rows = n_rows
        self._n_groups = len(order)
        low_list = sorted(lows, key=lows.__getitem__)
        lo_idx = np.arange(1 << bb, dtype=np.int64)
        self._signs = np.ascontiguousarray(
            1.0 - 2.0 * _parity(np.array(low_list, dtype=np.int64)[:, None] & lo_idx[None, :])
        ).reshape(len(low_list), 1 << bb)
        i64 = np.int64
        self._mhi = np.array(mhi, dtype=i64)
        self._mlo = np.array(mlo, dtype=i64)
        self._mode = np.array(mode, dtype=i64)
        self._rowc = np.array(rowc, dtype=np.bool_)
        self._sc_off = np.array(sc_off, dtype=i64)
        self._sc_s = np.array(sc_s, dtype=i64)
        self._sc_z = np.array(sc_z, dtype=i64)
        self._tb_off = np.array(tb_off, dtype=i64)
        self._aux_off = np.array(aux_off, dtype=i64)
        self._aux = np.array(aux, dtype=i64)
        self._l_off = np.array(l_off, dtype=i64)
        self._l_ids = np.array(l_ids, dtype=i64)
        self._s_off = np.array(s_off, dtype=i64)
        self._s_order = np.array(s_order, dtype=i64)
        self._s_l = np.array(s_l, dtype=i64)
        self._s_zhi = np.array(s_zhi, dtype=i64)

    # ------------------------------------------------------------------ coefficients
    def _check_coef(self, coef: np.ndarray) -> np.ndarray:
        c = np.asarray(coef)
        if c.shape != (self.n_strings,):
            raise ProblemError(
                f"coef must have shape ({self.n_strings},) (one per string), got {c.shape}"
            )
        if np.iscomplexobj(c) or not np.all(np.isfinite(c)):
            raise ProblemError("coef must be finite real numbers (one per string)")
        return c.astype(np.float64)

    def set_coefficients(self, coef: np.ndarray) -> None:
        """Build the tables for string coefficients ``coef`` ``(S,)`` (cached: a repeat is free).

        Table rows are ``T[p, lo] = Σ_s M[p, s] c'_s (-1)^{|lo ∧ zlo_s|}`` with the row-convention
        coefficients ``c'_s = c_s (-i)^{n_Y(s)}``: one matrix product per group.
        """
        c = self._check_coef(coef)
        if self._coef_key is not None and np.array_equal(c, self._coef_key):
            return
        cp = c * self._phase
        block = 1 << self.block_bits
        width = block if self.is_real else 2 * block
        tables = np.empty((self._n_rows, width))
        row = 0
        for tab, tab_l, mix, cplx_row in self._table_parts:
            sg = self._signs[tab_l]
            rows = slice(row, row + mix.shape[0])
            re = (mix * cp[tab].real[None, :]) @ sg
            if self.is_real:
                tables[rows] = re
            elif not cplx_row:
                # real row for (re, im) pairs: every entry twice
                tables[rows, 0::2] = re
                tables[rows, 1::2] = re
            else:
                tables[rows, :block] = re
                tables[rows, block:] = (mix * cp[tab].imag[None, :]) @ sg
            row += mix.shape[0]
        self._tables = tables
        self._sc_re = np.ascontiguousarray(cp[self._sc_s].real)
        self._sc_im = np.ascontiguousarray(cp[self._sc_s].imag)
        self._coef_key = c.copy()

    # ------------------------------------------------------------------ products
    def _check_vectors(self, v: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(v)
        if a.ndim not in (1, 2) or a.shape[0] != self.dim:
            raise ProblemError(
                f"{what} must have shape ({self.dim},) or ({self.dim}, K), got {a.shape}"
            )
        if a.dtype.kind not in "fc":
            a = a.astype(np.float64)
        return a

    def apply(
        self,
        coef: np.ndarray,
        v: np.ndarray,
        out: np.ndarray | None = None,
        threads: int = 1,
    ) -> np.ndarray:
        """``Σ_s coef_s P_s v`` for ``v`` of shape ``(d,)`` or ``(d, K)`` (no matrix stored).

        Parameters
        ----------
        coef:
            ``(S,)`` real coefficients, one per string of the kernel.
        v:
            Vector(s) to multiply; real or complex.
        out:
            Optional C-contiguous output array of ``v``'s shape and the result dtype
            (``complex128`` if ``v`` or the strings are complex, else ``float64``); must not
            share memory with ``v``.
        threads:
            Threads of the compiled loop (parallel over blocks); the result does not depend on it.

        Returns
        -------
        The product, ``float64`` for real strings and real ``v``, else ``complex128``.
        """
        from . import _mf_kernels as kern

        self.set_coefficients(coef)
        a = self._check_vectors(v, "v")
        res_dtype = np.result_type(a.dtype, self.dtype)
        if out is None:
            out = np.empty(a.shape, dtype=res_dtype)
        elif (
            out.shape != a.shape
            or out.dtype != res_dtype
            or not out.flags.c_contiguous
            or np.shares_memory(out, a)
        ):
            raise ProblemError(
                f"out must be a C-contiguous {res_dtype} array of shape {a.shape} not sharing "
                "memory with v"
            )
        src = np.ascontiguousarray(a, dtype=res_dtype)
        k = 1 if a.ndim == 1 else a.shape[1]
        if k == 0:
            return out
        cplx = res_dtype == np.complex128
        if cplx and self.is_real:
            # a real operator on complex vectors: real and imaginary parts as 2K real columns
            k, cplx = 2 * k, False
        src_f = src.reshape(-1).view(np.float64)
        out_f = out.reshape(-1).view(np.float64)
        with numba_threads(threads):
            kern.apply_groups(
                src_f, out_f, k, self.block_bits, cplx, int(threads), self._mhi, self._mlo,
                self._mode, self._rowc, self._sc_off, self._sc_z, self._sc_re, self._sc_im,
                self._tb_off, self._aux_off, self._aux, self._tables,
            )  # fmt: skip
        return out

    def matrix_elements(
        self,
        bra: np.ndarray,
        ket: np.ndarray,
        weights: np.ndarray | None = None,
        threads: int = 1,
    ) -> np.ndarray:
        """``Σ_k weights_k ⟨bra_k| P_s |ket_k⟩`` for every string ``s`` (complex, ``(S,)``).

        ``bra`` and ``ket`` have the same shape ``(d,)`` or ``(d, K)``; ``weights`` ``(K,)``
        defaults to ones. One pass over the vectors per X-mask group: per block the pair products
        ``u(r) = Σ_k w_k conj(bra[r, k]) ket[r ⊕ m, k]`` are contracted with the ±1 sign rows of
        the group's distinct low Z patterns, then with each string's high-bit sign.
        """
        from . import _mf_kernels as kern

        b = self._check_vectors(bra, "bra")
        kt = self._check_vectors(ket, "ket")
        if b.shape != kt.shape:
            raise ProblemError(f"bra and ket shapes differ: {b.shape} and {kt.shape}")
        k = 1 if b.ndim == 1 else b.shape[1]
        w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (k,) or not np.all(np.isfinite(w)):
            raise ProblemError(f"weights must be {k} finite real numbers, got shape {w.shape}")
        dt = np.result_type(b.dtype, kt.dtype, np.float64)
        b = np.ascontiguousarray(b, dtype=dt).reshape(-1)
        kt = np.ascontiguousarray(kt, dtype=dt).reshape(-1)
        acc = np.zeros((int(threads), self.n_strings), dtype=dt)
        if self.n_strings and k:
            with numba_threads(threads):
                kern.pair_sums(
                    b, kt, k, w, self.block_bits, int(threads), self._mhi, self._mlo,
                    self._l_off, self._l_ids, self._s_off, self._s_l, self._s_zhi,
                    self._signs, acc,
                )  # fmt: skip
        out = np.zeros(self.n_strings, dtype=complex)
        out[self._s_order] = acc.sum(axis=0)
        return out * self._phase

    def expectations(
        self, vecs: np.ndarray, weights: np.ndarray | None = None, threads: int = 1
    ) -> np.ndarray:
        """``Σ_k weights_k Re⟨ψ_k| P_s |ψ_k⟩`` for every string ``s`` (real, ``(S,)``).

        ``vecs`` is ``(d,)`` or ``(d, K)`` (columns ``ψ_k``); ``weights`` ``(K,)`` defaults to
        ones. Cost: one pass over the state per X-mask group (see :meth:`matrix_elements`).
        """
        return self.matrix_elements(vecs, vecs, weights, threads=threads).real

    def memory_bytes(self, dtype_size: int | None = None, threads: int = 1) -> int:
        """Bytes of the tables and scratch this kernel allocates (not counting the vectors).

        ``dtype_size`` is the item size of the vectors it will be given (default: that of
        :attr:`dtype`); ``threads`` the thread count of the calls (one scratch block each).
        """
        size = self.dtype.itemsize if dtype_size is None else int(dtype_size)
        block = 1 << self.block_bits
        tables = self._n_rows * block * self.dtype.itemsize
        signs = self._signs.nbytes
        layout = sum(mix.nbytes + 16 * mix.shape[1] for _, _, mix, _ in self._table_parts)
        scratch = threads * block * max(size, self.dtype.itemsize) * 2
        return int(tables + signs + layout + scratch + 64 * self.n_strings)

    @property
    def n_groups(self) -> int:
        """Number of distinct X masks among the strings (passes over a block per product)."""
        return self._n_groups

    def __repr__(self) -> str:
        return (
            f"PauliKernel(n_qubits={self.n_qubits}, strings={self.n_strings}, "
            f"groups={self._n_groups}, block_bits={self.block_bits}, dtype={self.dtype})"
        )


def _parity(v: np.ndarray) -> np.ndarray:
    """``popcount(v) mod 2`` of non-negative integers (vectorised)."""
    v = np.asarray(v, dtype=np.int64).copy()
    for shift in (32, 16, 8, 4, 2, 1):
        v ^= v >> shift
    return (v & 1).astype(np.float64)


# ============================================================================ eigensolver
@dataclass(frozen=True)
class LanczosResult:
    """Result of :func:`lanczos_lowest`; unpacks as ``evals, vecs, matvecs = result``.

    Attributes
    ----------
    evals : (k,) array
        Eigenvalues (Rayleigh quotients of ``vecs``), ascending.
    vecs : (d, k) array
        Orthonormal eigenvectors, column ``i`` for ``evals[i]``.
    matvecs : int
        Products with the operator spent, all levels together.
    residuals : (k,) array
        ``||H x_i - θ_i x_i||`` of each returned pair, from one explicit product per level.
    level_matvecs : (k,) int array
        Products spent on each level (in the order of ``evals``).
    """

    evals: np.ndarray
    vecs: np.ndarray
    matvecs: int
    residuals: np.ndarray
    level_matvecs: np.ndarray

    def __iter__(self) -> Iterator[object]:
        return iter((self.evals, self.vecs, self.matvecs))


def _lowest_tridiagonal(alpha: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
    """Lowest eigenpair of the symmetric tridiagonal matrix (diagonal ``alpha``, off ``beta``)."""
    if alpha.size == 1:
        return float(alpha[0]), np.ones(1)
    ev, vec = la.eigh_tridiagonal(alpha, beta, select="i", select_range=(0, 0))
    return float(ev[0]), vec[:, 0]


def _accepts_out(f: Callable[..., object]) -> bool:
    """True when ``f`` takes an ``out`` keyword (then products go into a reused buffer)."""
    try:
        par = inspect.signature(f).parameters.get("out")
    except (TypeError, ValueError):
        return False
    return par is not None and par.kind in (par.POSITIONAL_OR_KEYWORD, par.KEYWORD_ONLY)


class LanczosWorkspace:
    """Vector memory that successive :func:`lanczos_lowest` calls reuse.

    The solver stores its Lanczos vectors here (allocated on first use and kept). Passing one
    workspace to the solves of one gradient (free state, then the nudged states) avoids touching
    fresh memory for every solve, which costs page faults of the order of a product with ``H``
    per stored vector at large sizes. :meth:`release` frees the memory; :attr:`nbytes` is what it
    holds.
    """

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.ring: list[np.ndarray] = []
        self.product: np.ndarray | None = None

    def fit(self, dim: int, dtype: np.dtype) -> None:
        """Drop the memory if it was made for another dimension or dtype."""
        arrays = [*self.blocks, *self.ring, *([self.product] if self.product is not None else [])]
        if any(a.shape[-1] != dim or a.dtype != dtype for a in arrays):
            self.release()

    def release(self) -> None:
        self.blocks.clear()
        self.ring.clear()
        self.product = None

    @property
    def nbytes(self) -> int:
        extra = [*self.ring, *([self.product] if self.product is not None else [])]
        return int(sum(a.nbytes for a in self.blocks) + sum(a.nbytes for a in extra))


class _Lanczos:
    """Lanczos runs of all levels: the operator, the deflation rows and the vector memory.

    Vector slots: ``q_0`` is the run's start vector itself; ``q_1 .. q_{n_store-1}`` live in blocks
    of rows of the workspace; later vectors alternate between two ring buffers and are
    regenerated by a second pass when the Ritz vector is formed.
    """

    _BLOCK = 16

    def __init__(
        self,
        apply: Callable[..., np.ndarray],
        dim: int,
        dtype: np.dtype,
        n_store: int,
        workspace: LanczosWorkspace,
    ) -> None:
        self.apply = apply
        self.dim = dim
        self.dtype = dtype
        self.locked = np.zeros((0, dim), dtype=dtype)  # (i, d) rows of the found levels
        self.n_store = n_store
        self.matvecs = 0
        self.ws = workspace
        workspace.fit(dim, dtype)
        self._q0 = np.zeros(0, dtype=dtype)
        self._into = _accepts_out(apply)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """``H v``, written into a reused buffer when ``apply`` takes ``out``."""
        self.matvecs += 1
        if self._into:
            if self.ws.product is None:
                self.ws.product = np.empty(self.dim, dtype=self.dtype)
            w = np.asarray(self.apply(v, out=self.ws.product))
        else:
            w = np.asarray(self.apply(v))
        if w.shape != v.shape:
            raise ProblemError(f"apply returned shape {w.shape} for a vector of shape {v.shape}")
        if w.dtype != self.dtype or not w.flags.c_contiguous or np.shares_memory(w, v):
            w = np.array(w, dtype=self.dtype, order="C")
        return w

    def slot(self, j: int) -> np.ndarray:
        """The memory of Lanczos vector ``q_j`` (allocated on first use)."""
        if j == 0:
            return self._q0
        blocks = self.ws.blocks
        if j < self.n_store:
            b, r = divmod(j - 1, self._BLOCK)
            while len(blocks) <= b or blocks[b].shape[0] <= r:
                if len(blocks) > b:  # a shorter block from a smaller budget: replace it
                    blocks.pop()
                rows = min(self._BLOCK, self.n_store - 1 - len(blocks) * self._BLOCK)
                blocks.append(np.empty((rows, self.dim), dtype=self.dtype))
            return blocks[b][r]
        ring = self.ws.ring
        while len(ring) < 2:
            ring.append(np.empty(self.dim, dtype=self.dtype))
        return ring[j % 2]

    def run(
        self,
        x: np.ndarray,
        hx: np.ndarray | None,
        tol: float,
        max_steps: int,
        gap_rel: float = 0.0,
        e0: float = 0.0,
    ) -> np.ndarray:
        """One Lanczos run from the unit vector ``x`` (``hx = H x`` if known): the Ritz vector.

        Stops when the residual estimate ``|β_j s_j|`` of the lowest Ritz pair is below half of
        ``max(tol max(1, |θ|), gap_rel (θ - e0))`` (see :func:`lanczos_lowest`), or when the Krylov
        space is invariant. The Ritz vector is accumulated in ``x``'s memory.
        """
        from . import _mf_kernels as kern

        nan = float("nan")
        self._q0 = x
        alpha: list[float] = []
        beta: list[float] = []
        s = np.ones(1)
        for j in range(max_steps):
            q = self.slot(j)
            qprev = self.slot(j - 1) if j else q
            w = hx if (j == 0 and hx is not None) else self.matvec(q)
            a, b = kern.lanczos_step(
                w, q, qprev, beta[-1] if beta else 0.0, self.locked, nan, nan, self.slot(j + 1)
            )
            del w
            alpha.append(a)
            beta.append(b)
            theta, s = _lowest_tridiagonal(np.array(alpha), np.array(beta[:-1]))
            scale = max(1.0, abs(theta))
            # aim below tol so that the explicit check after the run rarely fails
            aim = 0.5 * max(tol * scale, gap_rel * (theta - e0))
            _progress.lanczos_step(self.locked.shape[0], self.matvecs, abs(b * s[-1]) / scale,
                                   aim / scale)  # fmt: skip
            if b <= 1e-12 * max(scale, abs(a)):
                break  # invariant Krylov space: the Ritz pair is exact
            if abs(b * s[-1]) <= aim:
                break
        hx = None
        m = len(alpha)
        if m <= self.n_store:
            self._accumulate(x, s, m)
        else:
            self._second_pass(x, s, alpha, beta)
        self._q0 = np.zeros(0, dtype=self.dtype)
        nrm = kern.deflate(x, self.locked)
        x /= nrm
        return x

    def _accumulate(self, y: np.ndarray, s: np.ndarray, m: int) -> None:
        """``y ← s_0 y + Σ_{0<i<min(m, n_store)} s_i q_i`` (``y`` holds ``q_0``)."""
        from . import _mf_kernels as kern

        y *= s[0]
        i = 1
        for blk in self.ws.blocks:
            n = min(blk.shape[0], m - i)
            if n <= 0:
                break
            kern.combine(y, blk[:n], np.ascontiguousarray(s[i : i + n], dtype=self.dtype))
            i += n

    def _second_pass(
        self, y: np.ndarray, s: np.ndarray, alpha: list[float], beta: list[float]
    ) -> None:
        """Regenerate ``q_i`` for ``i >= n_store`` with the stored ``α, β`` and add ``s_i q_i``."""
        from . import _mf_kernels as kern

        i0 = self.n_store
        m = len(alpha)
        folded = False
        for i in range(i0, m):
            qc = self.slot(i - 1)
            qp = self.slot(i - 2) if i >= 2 else qc
            w = self.matvec(qc)
            kern.lanczos_step(
                w, qc, qp, beta[i - 2] if i >= 2 else 0.0, self.locked, alpha[i - 1],
                beta[i - 1], self.slot(i),
            )  # fmt: skip
            del w
            if i == i0 + 1:
                # the stored vectors are no longer needed: fold them into y (q_0's memory)
                self._accumulate(y, s, i0)
                self._add(y, self.slot(i0), s[i0])
                folded = True
            if folded:
                self._add(y, self.slot(i), s[i])
        if not folded:  # a single regenerated vector
            self._accumulate(y, s, i0)
            self._add(y, self.slot(i0), s[i0])

    def _add(self, y: np.ndarray, q: np.ndarray, c: float) -> None:
        from . import _mf_kernels as kern

        kern.combine(y, q[None, :], np.array([c], dtype=self.dtype))


def lanczos_lowest(
    apply: Callable[[np.ndarray], np.ndarray],
    dim: int,
    dtype: np.dtype | type,
    k: int,
    starts: Sequence[np.ndarray] = (),
    *,
    tol: float = 1e-10,
    gap_tol: float = 1e-6,
    gap_rel: float = 0.0,
    precise: int | None = None,
    maxiter: int | None = None,
    max_vectors: int | None = None,
    rng: np.random.Generator | None = None,
    workspace: LanczosWorkspace | None = None,
) -> LanczosResult:
    """Lowest ``k`` eigenpairs of the Hermitian operator ``v ↦ apply(v)``, one level at a time.

    Level ``i`` is the lowest eigenpair of ``H`` on the orthogonal complement of levels
    ``0..i-1`` (every Krylov vector is projected), so each copy of a degenerate level is found
    (a single Krylov space holds only one direction of each eigenspace). Each level runs the
    Lanczos recurrence ``β_j q_{j+1} = H q_j - α_j q_j - β_{j-1} q_{j-1}`` (with one local
    reorthogonalisation per step) until the lowest Ritz pair ``(θ, s)`` of the tridiagonal matrix
    has the residual estimate ``|β_j s_j| ≤ tol_i max(1, |θ|) / 2``, then checks the true
    residual ``||H x - θ x||`` with one product and restarts from ``x`` if it is not yet below
    ``tol_i max(1, |θ|)``. Three restarts in a row that do not halve the best residual so far
    raise :class:`ConvergenceError` (the tolerance is below the rounding floor of the problem).

    Parameters
    ----------
    apply:
        ``v (d,) -> H v (d,)``; ``H`` Hermitian. If it takes an ``out`` keyword (as
        :meth:`PauliKernel.apply` does, e.g. ``functools.partial(kernel.apply, coef)``), products
        are written into one reused buffer.
    dim, dtype:
        Dimension ``d`` and the vector dtype (``float64`` for a real symmetric ``H``, else
        ``complex128``).
    k:
        Number of levels.
    starts:
        ``starts[i]`` (shape ``(d,)``) warm-starts level ``i`` (e.g. the free state of a nudged
        solve); levels without one start from a random vector of ``rng``. A warm start keeps the
        symmetry sector of the start vector.
    tol:
        Relative residual of levels ``< precise``: ``||H x - θ x|| ≤ tol · max(1, |θ|)``.
    gap_tol:
        Looser relative residual, ``max(tol, gap_tol)``, of levels ``>= precise`` (only their
        energy is needed; its error is quadratic in the residual).
    gap_rel:
        For levels ``i >= precise >= 1`` whose energy only serves the gap above level 0 (e.g. a
        degeneracy check): such a level also stops once its residual ``r = ||H x - θ_i x||`` is
        at most ``gap_rel (θ_i - θ_0)``. By Weyl's bound an eigenvalue of ``H`` lies within ``r``
        of ``θ_i``, so the gap ``θ_i - θ_0`` is then known to a relative ``gap_rel`` (``0.01``: to
        1 %) without converging the level to ``gap_tol``. A level (nearly) degenerate with level
        0 gets no looser target than ``gap_tol``. Default 0: off.
    precise:
        Number of levels converged to ``tol`` (default: all ``k``).
    maxiter:
        Products allowed per level (default 5000); :class:`ConvergenceError` beyond.
    max_vectors:
        Vectors of dimension ``d`` the solver holds at once, besides the ``k`` output vectors and
        ``starts`` (at least 4; default: as many as a quarter of
        :func:`~qeprop.hamiltonian.memory_budget` allows). Runs of up to ``max_vectors - 3``
        steps keep every Lanczos vector; longer runs keep the first ``max_vectors - 3`` and
        rebuild the Ritz vector's remaining terms by a second pass of the recurrence (two-pass
        Lanczos: the products beyond the stored part are spent twice). Each stored vector thus
        saves one product: a budget of a few hundred vectors avoids the second pass for the
        usual ground-state runs.
    rng:
        Source of the random start vectors (default: a fixed seed, so results are reproducible).
    workspace:
        Memory for the Lanczos vectors kept across calls (see :class:`LanczosWorkspace`); by
        default a private one, freed on return.

    Returns
    -------
    :class:`LanczosResult` (unpacks as ``evals (k,), vecs (d, k), matvecs``), with the true
    residual ``||H x_i - θ_i x_i||`` of every level. ``vecs`` is a Fortran-ordered view (its
    columns are contiguous).
    """
    from ..hamiltonian import memory_budget
    from . import _mf_kernels as kern

    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ProblemError(f"k must be a positive integer, got {k!r}")
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise ProblemError(f"dim must be a positive integer, got {dim!r}")
    if k > dim:
        raise ProblemError(f"k={k} levels requested, but the dimension is only {dim}")
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.complex128)):
        raise ProblemError(f"dtype must be float64 or complex128, got {dt}")
    for name, val in (("tol", tol), ("gap_tol", gap_tol)):
        if not (isinstance(val, int | float | np.floating) and np.isfinite(val) and val > 0):
            raise ProblemError(f"{name} must be a finite number > 0, got {val!r}")
    if not (isinstance(gap_rel, int | float | np.floating) and 0 <= gap_rel < 1):
        raise ProblemError(f"gap_rel must be a number in [0, 1), got {gap_rel!r}")
    precise = k if precise is None else int(precise)
    maxiter = 5000 if maxiter is None else int(maxiter)
    if maxiter < 1:
        raise ProblemError(f"maxiter must be a positive integer, got {maxiter!r}")
    if max_vectors is None:
        max_vectors = max(4, int(0.25 * memory_budget() // (dim * dt.itemsize)))
    if isinstance(max_vectors, bool) or int(max_vectors) < 4:
        raise ProblemError(f"max_vectors must be an integer >= 4, got {max_vectors!r}")
    n_store = int(max_vectors) - 3
    rng = np.random.default_rng(20240501) if rng is None else rng
    rows = np.zeros((k, dim), dtype=dt)  # level i in row i (contiguous)
    evals = np.zeros(k)
    residuals = np.zeros(k)
    spent = np.zeros(k, dtype=np.int64)
    ws = LanczosWorkspace() if workspace is None else workspace
    solver = _Lanczos(apply, dim, dt, n_store, ws)
    for i in range(k):
        tol_i = tol if i < precise else max(tol, gap_tol)
        rel_i = float(gap_rel) if 0 < precise <= i else 0.0
        solver.locked = rows[:i]
        solver.matvecs = 0
        x = _start_vector(starts[i] if i < len(starts) else None, dim, dt, rng, rows[:i])
        hx: np.ndarray | None = None
        best, stalls = np.inf, 0
        while True:
            remaining = maxiter - solver.matvecs
            if remaining <= 0:
                raise ConvergenceError(
                    f"Lanczos level {i} did not reach the relative residual {tol_i:g} within "
                    f"maxiter={maxiter} products (dimension {dim}); raise maxiter or tol"
                )
            x = solver.run(x, hx, tol_i, remaining, rel_i, float(evals[0]))
            hx = solver.matvec(x)
            # the Rayleigh quotient of x as it is (its norm is 1 only to rounding, and at 2^24
            # entries a relative norm error of 1e-12 alone would move θ by 1e-12 |θ|)
            theta = float(np.vdot(x, hx).real / np.vdot(x, x).real)
            res = float(kern.residual_norm(hx, x, theta))
            target = max(tol_i * max(1.0, abs(theta)), rel_i * (theta - evals[0]))
            if res <= target:
                break
            # a restart that does not halve the residual is stuck at a rounding floor: a few
            # of them end the solve with an error rather than spending maxiter products
            stalls = stalls + 1 if res > _STALL_RATIO * best else 0
            best = min(best, res)
            if stalls >= _STALLS:
                raise ConvergenceError(
                    f"Lanczos level {i} stalled at the relative residual "
                    f"{res / max(1.0, abs(theta)):.2g} above the requested {tol_i:g} "
                    f"(dimension {dim}, {solver.matvecs} products): rounding limits the "
                    "residual at this size; raise tol"
                )
        del hx
        spent[i] = solver.matvecs
        rows[i] = x
        del x
        evals[i] = theta
        residuals[i] = res
    if workspace is None:
        ws.release()
    order = np.argsort(evals, kind="stable")
    if np.any(order != np.arange(k)):
        rows = rows[order]
    return LanczosResult(evals[order], rows.T, int(spent.sum()), residuals[order], spent[order])


def _start_vector(
    start: np.ndarray | None,
    dim: int,
    dt: np.dtype,
    rng: np.random.Generator,
    locked: np.ndarray,
) -> np.ndarray:
    """Unit start vector on the complement of ``locked`` (random if none or too small)."""
    from . import _mf_kernels as kern

    if start is not None:
        s = np.asarray(start)
        if s.shape != (dim,):
            raise ProblemError(f"start vectors must have shape ({dim},), got {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ProblemError("start vectors must be finite")
        x = np.array(s.real if dt == np.float64 else s, dtype=dt, order="C")
        total = np.linalg.norm(x)
        nrm = kern.deflate(x, locked)
        if nrm > 1e-6 * total:
            x /= nrm
            return x
    x = rng.standard_normal(dim).astype(dt)
    if dt == np.complex128:
        x += 1j * rng.standard_normal(dim)
    x /= kern.deflate(x, locked)
    return x


# ============================================================================ linear response
def minres_shifted(
    apply: Callable[[np.ndarray], np.ndarray],
    shift: float,
    manifold: np.ndarray,
    rhs: np.ndarray,
    *,
    tol: float = 1e-10,
    maxiter: int | None = None,
) -> np.ndarray:
    """Solve ``(H - shift) φ = rhs`` on the orthogonal complement of ``manifold`` (MINRES).

    With ``P = 1 - M M^†`` (``M`` the orthonormal ``(d, g)`` manifold, e.g. the ground manifold
    at ``shift = E_0``), returns ``φ = P (H - shift)^{-1} P rhs``. This gives the exact linear
    response of a ground state, ``∂⟨A⟩/∂λ = -2 Re Σ_k w_k ⟨φ_k|A|ψ_k⟩`` with
    ``φ_k = (H - E_k)^+ (V ψ_k)`` for a perturbation ``H + λ V``. A complex Hermitian system is
    solved as the real symmetric one of twice the size on the (re, im) pairs of the complex
    vectors (no copies: the real inner product of those pairs is ``Re⟨u|v⟩``).

    Parameters
    ----------
    apply:
        ``v (d,) -> H v``.
    shift:
        The energy ``E`` (inside the manifold's level, so ``H - E`` is regular on the complement).
    manifold:
        ``(d, g)`` orthonormal columns (or ``(d,)``).
    rhs:
        ``(d,)`` right-hand side; its component along the manifold is dropped.
    tol:
        Relative residual ``||(H - E) φ - P rhs|| ≤ tol ||P rhs||``.
    maxiter:
        Iterations allowed (default ``max(1000, 20 · sqrt(d))``); :class:`ConvergenceError`
        beyond.
    """
    from . import _mf_kernels as kern

    m = np.asarray(manifold)
    if m.ndim == 1:
        m = m[:, None]
    b = np.asarray(rhs)
    d = b.shape[0] if b.ndim == 1 else -1
    if b.ndim != 1 or m.ndim != 2 or m.shape[0] != d:
        raise ProblemError(
            f"rhs must be (d,) and manifold (d, g) with the same d, got {b.shape} and {m.shape}"
        )
    if not (isinstance(shift, int | float | np.floating | np.integer) and np.isfinite(shift)):
        raise ProblemError(f"shift must be a finite real number, got {shift!r}")
    if not np.all(np.isfinite(b)):
        raise ProblemError("rhs must be finite")
    cplx = np.iscomplexobj(b) or np.iscomplexobj(m)
    dt = np.dtype(np.complex128 if cplx else np.float64)
    rows = np.ascontiguousarray(m.T, dtype=dt)  # manifold as orthonormal rows
    count = [0]

    def mv(v: np.ndarray) -> np.ndarray:
        # (re, im) pairs of a complex vector: the real symmetric form of a Hermitian operator
        x = np.array(v, dtype=np.float64).view(dt)
        kern.deflate(x, rows)
        count[0] += 1
        w = np.asarray(apply(x))
        if np.iscomplexobj(w) and not cplx:
            raise ProblemError(
                "apply returned complex values for a real rhs and manifold; pass rhs as complex"
            )
        w = np.array(w, dtype=dt)
        w -= shift * x
        kern.deflate(w, rows)
        return w.view(np.float64)

    rhs_p = np.array(b, dtype=dt)
    kern.deflate(rhs_p, rows)
    if not np.any(rhs_p):
        return rhs_p
    n_real = d * (2 if cplx else 1)
    maxiter = max(1000, int(20 * np.sqrt(d))) if maxiter is None else int(maxiter)
    op = spla.LinearOperator((n_real, n_real), matvec=mv, dtype=np.float64)
    sol, info = spla.minres(op, rhs_p.view(np.float64), rtol=tol, maxiter=maxiter)
    if info != 0:
        raise ConvergenceError(
            f"MINRES for (H - {shift:.6g}) φ = rhs did not converge to rtol={tol:g} within "
            f"{maxiter} iterations ({count[0]} products); the gap above the manifold may be "
            "too small"
        )
    phi = np.ascontiguousarray(sol).view(dt)
    kern.deflate(phi, rows)
    return phi
