"""DMRG sweeps in plain numpy: the numerical engine of the ``dmrg`` backend.

Conventions
-----------
* An MPS is a list of site tensors ``A_k[l, s, r]`` (bond dimension 1 at both ends; physical
  index 0 is ``|0⟩``, the ``Z = +1`` state).
* An MPO is a list of ``W_k[w, w', out, in]`` (bond dimension 1 at both ends).
* Environments hold the sites left of ``k`` (``L_k``) or from ``k`` on (``R_k``) as
  ``E[mpo, bra, ket]``: ``L_{k+1} = Σ conj(A_k) L_k W_k A_k``. The MPO channels of a bond are
  ordered "start" (nothing placed yet) first and "done" (everything placed) last, so in
  canonical form ``L_k[0]`` and ``R_k[-1]`` are identity matrices (not multiplied in local
  products). Local vectors are laid out physical indices first, ``(s, l, r)``
  (:func:`to_local`): a local product is then one batch of matrix products with the left
  environment (per physical index), one matrix product with the MPO (on the leading rows) and
  one batch with the right environment (per MPO channel), all without transposing large
  tensors and with work arrays reused across the products of one local problem.

The MPO of ``H = Σ_s c_s P_s`` comes from a :class:`MPOTemplate`, built once per set of strings
and site order: a finite-state automaton whose channels are the prefixes of the strings (strings
that start alike share them), with each string's coefficient on its last letter. New
coefficients (a nudge, a training step) only refill those entries.

Two-site sweeps grow the bond dimension (truncating singular values below the relative
``cutoff`` and beyond ``chi``); one-site sweeps keep it. Local ground states come from a Lanczos
iteration started at the current local tensor (a good guess once the sweeps settle), stopped when
its residual is below the tolerance the caller asks for or after a fixed number of products
(the sweeps, not one local problem, converge the state). A state-averaged two-site sweep keeps
several states in one basis: a block Krylov solve (:func:`ritz_lowest`) gives the lowest few
local eigenpairs, and the truncation keeps the basis of their averaged density matrix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
from scipy.linalg.lapack import dstev as _dstev

from ..pauli import PauliString
from . import _progress

__all__ = ["MPOTemplate", "Sweeper", "lanczos_lowest", "ritz_lowest"]

# Y = -i Ỹ with the real Ỹ = [[0, 1], [-1, 0]]: strings with an even number of Y are real in this
# representation, and a string's phase (-i)^{n_Y} goes into its coefficient
_LETTERS = {
    "I": np.eye(2),
    "X": np.array([[0.0, 1.0], [1.0, 0.0]]),
    "Y": np.array([[0.0, 1.0], [-1.0, 0.0]]),
    "Z": np.array([[1.0, 0.0], [0.0, -1.0]]),
}
_PHASE = np.array([1.0, -1j, -1.0, 1j])  # (-i)^{n_Y mod 4}


# ---------------------------------------------------------------------------- the MPO
@dataclass
class _SiteEntries:
    fixed: np.ndarray  # (Dl, Dr, 2, 2) real: channel bookkeeping and inner letters
    flat: np.ndarray  # (m,) indices a * Dr + b of the coefficient entries
    string: np.ndarray  # (m,) string index of each coefficient entry
    letter: np.ndarray  # (m, 4) the last letter of that string (real representation)


@dataclass
class MPOTemplate:
    """The MPO structure of ``Σ_s c_s P_s`` for fixed strings on fixed MPS sites.

    ``strings`` are the Pauli strings, ``pos[q]`` the MPS site of qubit ``q``; ``active`` marks
    the strings that get channels (the others must have zero coefficients when the MPO is
    filled). Identity strings are left out of the MPO: their coefficients sum to :meth:`offset`.
    """

    strings: Sequence[PauliString]
    pos: np.ndarray
    active: np.ndarray
    sites: list[_SiteEntries] = field(init=False)
    dims: list[int] = field(init=False)
    identity: np.ndarray = field(init=False)
    phase: np.ndarray = field(init=False)
    odd: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.pos)
        n_y = np.array([p.n_y for p in self.strings], dtype=np.int64)
        self.phase = _PHASE[n_y % 4]
        self.odd = n_y % 2 == 1
        self.identity = np.array([p.is_identity() for p in self.strings], dtype=bool)
        # channels of bond j (between sites j - 1 and j): "start" (nothing placed yet), "done",
        # then the prefixes of the strings that cross it
        chans: list[dict[object, int]] = []
        for j in range(n + 1):
            d: dict[object, int] = {}
            if j < n:
                d["start"] = len(d)
            if j > 0:
                d["done"] = len(d)
            chans.append(d)
        fixed: list[set[tuple[int, int, str]]] = [set() for _ in range(n)]
        coef: list[list[tuple[int, int, int, str]]] = [[] for _ in range(n)]

        def channel(j: int, key: object) -> int:
            d = chans[j]
            if key not in d:
                d[key] = len(d)
            return d[key]

        for s, p in enumerate(self.strings):
            if not self.active[s] or self.identity[s]:
                continue
            letters = sorted((int(self.pos[q]), a) for q, a in p.letters().items())
            first, last = letters[0][0], letters[-1][0]
            at = dict(letters)
            placed = 0
            for k in range(first, last + 1):
                a_in = channel(k, "start" if k == first else tuple(letters[:placed]))
                letter = at.get(k, "I")
                if k in at:
                    placed += 1
                if k == last:
                    coef[k].append((a_in, channel(k + 1, "done"), s, letter))
                else:
                    fixed[k].add((a_in, channel(k + 1, tuple(letters[:placed])), letter))
        self.dims = [len(d) for d in chans]
        # renumber so that "done" is the last channel of its bond ("start" is already the
        # first): the identity blocks of the environments are then the first channel of a left
        # and the last channel of a right environment (see :meth:`Sweeper.local`)
        perm: list[np.ndarray] = []
        for d in chans:
            new_index = np.arange(len(d))
            if "done" in d:
                new_index[d["done"]] = len(d) - 1
                new_index[d["done"] + 1 :] -= 1
            perm.append(new_index)
        self.sites = []
        for k in range(n):
            dl, dr = self.dims[k], self.dims[k + 1]
            pl, pr = perm[k], perm[k + 1]
            f = np.zeros((dl, dr, 2, 2))
            if k < n - 1:
                f[0, 0] += _LETTERS["I"]
            if k > 0:
                f[dl - 1, dr - 1] += _LETTERS["I"]
            for a, b, letter in fixed[k]:
                f[pl[a], pr[b]] += _LETTERS[letter]
            entries = [(pl[a], pr[b], s, x) for a, b, s, x in coef[k]]
            self.sites.append(
                _SiteEntries(
                    fixed=f,
                    flat=np.array([a * dr + b for a, b, _, _ in entries], dtype=np.int64),
                    string=np.array([s for _, _, s, _ in entries], dtype=np.int64),
                    letter=np.array(
                        [_LETTERS[x].reshape(4) for _, _, _, x in entries], dtype=float
                    ).reshape(-1, 4),
                )
            )

    def is_complex(self, coef: np.ndarray) -> bool:
        """Whether ``H`` with these coefficients needs complex tensors (an odd-``Y`` string)."""
        return bool(np.any(coef[self.odd] != 0))

    def offset(self, coef: np.ndarray) -> float:
        """The identity part of ``H``."""
        return float(np.sum(coef[self.identity]))

    def arrays(self, coef: np.ndarray, dtype: type | None = None) -> list[np.ndarray]:
        """The MPO tensors ``W_k[w, w', out, in]`` for string coefficients ``coef``."""
        if np.any(coef[~self.active & ~self.identity] != 0):
            raise ValueError("a string without MPO channels has a nonzero coefficient")
        if dtype is None:
            dtype = complex if self.is_complex(coef) else float
        eff = coef * self.phase
        if dtype is float:
            eff = eff.real
        out = []
        for site in self.sites:
            dl, dr = site.fixed.shape[:2]
            w: np.ndarray = site.fixed.astype(dtype).reshape(dl * dr, 4)
            if len(site.flat):
                np.add.at(w, site.flat, eff[site.string, None] * site.letter)
            out.append(w.reshape(dl, dr, 2, 2))
        return out


# ---------------------------------------------------------------------------- contractions
def left_env(env: np.ndarray, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``L_{k+1}[w', b', b] = Σ conj(A[a', t, b']) L[w, a', a] W[w, w', t, s] A[a, s, b]``.

    Three matrix products, none of them on a transposed copy of a large tensor: ``L`` (as
    ``(w a', a)``) times each physical slice of ``A``, the MPO on the leading ``(s w)`` rows
    (one product), and ``conj(A)`` (as ``(b', t a')``) times each ``w'`` block.
    """
    dl, al = env.shape[0], env.shape[1]
    ar, dr = a.shape[2], w.shape[1]
    x = np.matmul(env.reshape(dl * al, a.shape[0]), a.transpose(1, 0, 2))  # (s, w a', b)
    wm = np.ascontiguousarray(w.transpose(1, 2, 3, 0)).reshape(dr * 2, 2 * dl)  # (w' t, s w)
    y = (wm @ x.reshape(2 * dl, al * ar)).reshape(dr, 2 * al, ar)  # (w', t a', b)
    m = np.ascontiguousarray(a.transpose(2, 1, 0)).conj().reshape(ar, 2 * al)  # (b', t a')
    return np.matmul(m, y)


def right_env(env: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``R_k[w, a', a] = Σ conj(B[a', t, b']) W[w, w', t, s] B[a, s, b] R_{k+1}[w', b', b]``: the
    mirror image of :func:`left_env` (sites and MPO bonds reversed)."""
    return left_env(env, b.transpose(2, 1, 0), w.transpose(1, 0, 2, 3))


SINGLE = {np.dtype(np.float32), np.dtype(np.complex64)}
#: thresholds of double precision and what they become in single precision (8 to 100 eps32)
_SINGLE_FLOORS = {1e-14: 1e-6, 1e-12: 1e-5, 1e-10: 1e-6}


def work_dtype(dtype: np.dtype | type) -> np.dtype:
    """The arithmetic of vectors of ``dtype``: single precision stays single (the cheap early
    sweeps of a cold solve), everything else is at least double."""
    dt = np.dtype(dtype)
    return dt if dt in SINGLE else np.result_type(dt, np.float64)


def _precision_floor(dtype: np.dtype | type, double: float) -> float:
    """A relative threshold ``double`` of double-precision arithmetic, or its single-precision
    counterpart (``_SINGLE_FLOORS``) for single-precision ``dtype``."""
    return _SINGLE_FLOORS[double] if np.dtype(dtype) in SINGLE else double


def lanczos_lowest(
    matvec: Callable[[np.ndarray], np.ndarray],
    v0: np.ndarray,
    tol: float,
    maxiter: int = 40,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The lowest Ritz value (as a 1-element array) and vector of a Hermitian operator.

    Lanczos from ``v0`` (three-term recurrence plus one pass of full reorthogonalisation),
    stopped when the residual ``||H x - θ x||`` is below ``tol``, when the Krylov space is
    exhausted, or after ``maxiter`` products. The tridiagonal problem of each step goes straight
    to LAPACK (``dstev``: a sweep runs thousands of these small solves, and ``numpy.linalg.eigh``
    costs twice as much per call in argument checks). Returns ``(values, vector, matvecs)``.
    """
    n = v0.size
    kmax = max(1, min(maxiter, n))
    dtype = work_dtype(v0.dtype)
    breakdown = _precision_floor(dtype, 1e-14)
    # BLAS on the Krylov basis in place: the vector operations of a step would otherwise
    # allocate several temporaries of the local dimension (as costly as a small product)
    gemv, axpy = sla.get_blas_funcs(("gemv", "axpy"), dtype=dtype)
    adjoint = 2 if dtype.kind == "c" else 1  # gemv's conjugate transpose
    basis = np.empty((kmax, n), dtype=dtype)
    nrm = np.sqrt(np.vdot(v0, v0).real)
    if nrm == 0:
        v0 = np.ones(n, dtype=dtype)
        nrm = np.sqrt(n)
    np.multiply(v0.reshape(-1), 1.0 / nrm, out=basis[0])
    alpha = np.zeros(kmax)
    beta = np.zeros(kmax)
    vals = np.zeros(1)
    vecs = np.ones((1, 1))
    j = 0
    for j in range(kmax):
        w = np.asarray(matvec(basis[j]), dtype=dtype).reshape(n)
        a = float(np.vdot(basis[j], w).real)
        # the three-term recurrence, then one pass of full reorthogonalisation against the
        # Krylov basis (together two passes for the large components: without the second,
        # orthogonality is lost once the Ritz vector converges); basis[: j + 1].T is the
        # Fortran-ordered (n, j + 1) matrix of the basis vectors, no copy
        w = axpy(basis[j], w, a=-a)
        if j:
            w = axpy(basis[j - 1], w, a=-beta[j - 1])
        fb = basis[: j + 1].T
        h = gemv(1.0, fb, w, trans=adjoint)
        w = gemv(-1.0, fb, h, beta=1.0, y=w, overwrite_y=1)
        b = float(np.sqrt(np.vdot(w, w).real))
        alpha[j] = a
        vals, vecs = _tridiagonal_eigh(alpha[: j + 1], beta[:j])
        if j + 1 == kmax or b <= breakdown * max(1.0, abs(a)) or b * abs(vecs[-1, 0]) <= tol:
            break
        beta[j] = b
        np.multiply(w, 1.0 / b, out=basis[j + 1])
    x = gemv(1.0, basis[: j + 1].T, np.asarray(vecs[:, 0], dtype=dtype))
    x /= np.linalg.norm(x)
    return vals[:1], x, j + 1


def _tridiagonal_eigh(d: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the real symmetric tridiagonal
    matrix with diagonal ``d`` and off-diagonal ``e``."""
    if len(d) == 1:
        return d.copy(), np.ones((1, 1))
    w, z, info = _dstev(d, e, compute_v=1)
    if info != 0:  # pragma: no cover - dstev on a small tridiagonal matrix does not fail
        t = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)
        return np.linalg.eigh(t)
    return w, z


_HEEVD = {
    np.dtype(np.float32): sla.lapack.ssyevd,
    np.dtype(np.float64): sla.lapack.dsyevd,
    np.dtype(np.complex64): sla.lapack.cheevd,
    np.dtype(np.complex128): sla.lapack.zheevd,
}


def _eigh_small(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a small Hermitian matrix, straight
    from LAPACK (``numpy.linalg.eigh`` costs twice as much per call at sizes below 16 in
    argument handling; the sweeps solve thousands of these). Only the lower triangle is read."""
    w, v, info = _HEEVD[a.dtype](a, compute_v=1, lower=1)
    if info != 0:  # pragma: no cover - a small Hermitian eigenproblem does not fail
        return np.linalg.eigh(a)
    return w, v


def _orthonormal_rows(new: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The rows of ``new`` orthogonalised against the orthonormal rows of ``basis`` (two passes
    of block Gram-Schmidt) and among themselves (modified Gram-Schmidt), normalised; rows whose
    remaining norm is below ``1e-12 max(1, largest norm)`` (``1e-5`` in single precision: linearly
    dependent) are dropped.

    Straight BLAS calls on each row (``gemv`` with the conjugation in the call, ``dotc`` and
    ``axpy``): the two-state sweeps of a cold solve orthonormalise thousands of such small
    blocks, where numpy's temporaries and conjugated copies cost more than the arithmetic.
    """
    dt = new.dtype
    # rows (k, n), a private copy: the BLAS routines below write into the contiguous rows
    out = np.array(new, dtype=dt, order="C")
    k = out.shape[0]
    if k == 0:
        return out
    gemv, nrm2, dotc, axpy, scal = sla.get_blas_funcs(
        ("gemv", "nrm2", "dotc", "axpy", "scal"), dtype=dt
    )
    if len(basis):
        bt = np.asarray(basis, dtype=dt).T  # (n, size), Fortran order: no copy
        for v in out:
            for _ in range(2):
                c = gemv(1.0, bt, v, trans=2)  # <b_i|v>
                gemv(-1.0, bt, c, beta=1.0, y=v, overwrite_y=1)  # in place: v is contiguous
    norms = [float(nrm2(v)) for v in out]
    floor = _precision_floor(dt, 1e-12) * max(1.0, max(norms))
    kept: list[int] = []
    for i in range(k):
        v = out[i]
        for _ in range(2):
            for j in kept:
                axpy(out[j], v, a=-dotc(out[j], v))
        nv = float(nrm2(v))
        if nv > floor:
            scal(1.0 / nv, v)
            kept.append(i)
    return out if len(kept) == k else out[kept]


def ritz_lowest(
    matvec: Callable[[np.ndarray], np.ndarray],
    starts: np.ndarray,
    tol: float,
    maxiter: int = 40,
    matmat: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The ``m = len(starts)`` lowest Ritz pairs of a Hermitian operator, from a block Krylov
    space grown by residuals (block Lanczos without the three-term recurrence).

    ``matmat``, if given, applies the operator to a block of rows ``(k, n)`` at once (cheaper
    than ``k`` calls of ``matvec`` for the small local problems of DMRG).
    Starting from the span of the rows of ``starts`` ``(m, n)``, each step adds the residuals of
    the present ``m`` lowest Ritz pairs, orthogonalised, and re-solves the projected problem;
    it stops when every residual ``||H x - θ x||`` is below ``tol`` or after ``maxiter``
    products. A block (not a single vector) is what resolves an exactly degenerate pair. The
    projected matrix grows by the rows of the new directions only (the older entries do not
    change). Returns ``(values (m,), vectors (m, n), matvecs)``.
    """
    m, n = starts.shape
    dtype = work_dtype(starts.dtype)
    cap = max(m, min(n, maxiter + m))
    basis = np.empty((cap, n), dtype=dtype)
    hbasis = np.empty((cap, n), dtype=dtype)
    proj = np.zeros((cap, cap), dtype=dtype)
    size = 0
    used = 0
    new = np.array(starts, dtype=dtype)
    vals = np.zeros(m)
    x = new
    while True:
        q = _orthonormal_rows(new, basis[:size])
        if size == 0 and len(q) < m:  # degenerate starts: pad with a fixed direction
            extra = np.random.default_rng(0).standard_normal((m - len(q), n)).astype(dtype)
            q = np.linalg.qr(np.vstack([q, extra]).T)[0].T
        q = q[: cap - size]
        if len(q) == 0:
            break
        lo, size = size, size + len(q)
        basis[lo:size] = q
        if matmat is not None:
            hbasis[lo:size] = matmat(q)  # the new directions as one block
        else:
            for i in range(lo, size):
                hbasis[i] = matvec(basis[i])
        used += len(q)
        # rows of the new directions; the new columns of the old rows by Hermiticity
        rows = basis[lo:size].conj() @ hbasis[:size].T
        proj[lo:size, :size] = rows
        proj[:lo, lo:size] = rows[:, :lo].conj().T
        diag = proj[lo:size, lo:size]
        proj[lo:size, lo:size] = 0.5 * (diag + diag.conj().T)
        theta, y = _eigh_small(proj[:size, :size])
        k = min(m, size)
        vals, y = theta[:k], y[:, :k]
        x = y.T @ basis[:size]
        res = y.T @ hbasis[:size] - vals[:, None] * x
        norms = np.linalg.norm(res, axis=1)
        if k == m and (np.all(norms <= tol) or used >= maxiter or size >= cap):
            break
        new = res[norms > tol] if k == m else res
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return vals, x, used


def _truncate(s: np.ndarray, chi: int, cutoff: float) -> tuple[int, float]:
    """How many singular values to keep (at most ``chi``; dropping a tail of relative weight at
    most ``cutoff``) and the discarded relative weight."""
    w = s**2
    total = float(w.sum())
    if total == 0:
        return 1, 0.0
    tail = np.cumsum(w[::-1])[::-1] / total  # tail[i] = weight of s[i:]
    keep = int(np.count_nonzero(tail > cutoff)) if cutoff > 0 else int(np.count_nonzero(w))
    keep = max(1, min(chi, keep))
    return keep, float(tail[keep]) if keep < len(s) else 0.0


def _svd(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return sla.svd(m, full_matrices=False, lapack_driver="gesdd", check_finite=False)
    except np.linalg.LinAlgError:  # pragma: no cover - gesdd rarely fails to converge
        return sla.svd(m, full_matrices=False, lapack_driver="gesvd", check_finite=False)


def _is_identity(m: np.ndarray, tol: float = 1e-10) -> bool:
    """Whether the square matrix ``m`` is the identity to ``tol`` (entrywise; ``1e-6`` in single
    precision, where canonical tensors are orthonormal to a few ``eps * chi``)."""
    tol = _precision_floor(m.dtype, tol)
    n = m.shape[0]
    if m.shape != (n, n):
        return False
    return bool(np.max(np.abs(m - _eye(n)), initial=0.0) <= tol)


@functools.cache
def _eye(n: int) -> np.ndarray:
    eye = np.eye(n)
    eye.flags.writeable = False
    return eye


def to_local(t: np.ndarray) -> np.ndarray:
    """A site tensor ``(l, s, r)`` or two-site tensor ``(l, s1, s2, r)`` in the layout of the
    local products, ``(s[, s2], l, r)`` (a copy)."""
    return np.ascontiguousarray(np.moveaxis(t, 0, -2))


def from_local(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`to_local` for a vector of the local ``shape`` ``(s[, s2], l, r)``."""
    return np.ascontiguousarray(np.moveaxis(x.reshape(shape), -2, 0))


# ---------------------------------------------------------------------------- sweeps
class Sweeper:
    """An MPS, an MPO and their environments, swept by one- and two-site updates.

    The MPS must have its orthogonality centre at site 0 (every other tensor right-canonical);
    after each right-to-left sweep it is there again. ``extra`` holds the centre tensors of
    further states in the same basis (a state-averaged sweep targets the ``1 + len(extra)``
    lowest states; their reduced density matrices are averaged when a bond is truncated).
    """

    def __init__(
        self,
        mpo: Sequence[np.ndarray],
        tensors: Sequence[np.ndarray],
        extra: Sequence[np.ndarray] = (),
    ) -> None:
        self.w = list(mpo)
        self.n = len(self.w)
        dtype = np.result_type(
            *[t.dtype for t in tensors], *[w.dtype for w in self.w], *[t.dtype for t in extra]
        )
        self.dtype = dtype
        self.a = [np.asarray(t, dtype=dtype) for t in tensors]
        self.extra = [np.asarray(t, dtype=dtype) for t in extra]
        n = self.n
        one = np.ones((1, 1, 1), dtype=dtype)
        self.left: list[np.ndarray] = [one] * (n + 1)
        self.right: list[np.ndarray] = [one] * (n + 1)
        for k in range(n - 1, 0, -1):
            self.right[k] = right_env(self.right[k + 1], self.a[k], self.w[k])
        self.centre = 0
        self.matvecs = 0
        self.discarded = 0.0
        self.energies = np.full(1 + len(self.extra), np.nan)

    @property
    def energy(self) -> float:
        """The lowest local Ritz value of the last update (identity part of ``H`` excluded)."""
        return float(self.energies[0])

    def drop_extra(self) -> None:
        """Keep only the lowest state."""
        self.extra = []
        self.energies = self.energies[:1]

    # ------------------------------------------------------------ local operators
    def local(
        self, k: int, width: int
    ) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[int, ...]]:
        """The effective Hamiltonian of sites ``k..k+width-1`` (one or two) as a product, for
        a vector or a block of vectors (rows), and the shape of a vector.

        Vectors are laid out physical indices first, ``(s_k, [s_{k+1},] l, r)`` (see
        :func:`to_local`): then the MPO acts on leading rows in one matrix product, between
        a product with the left environment per physical index and one matrix product with the
        right environment (its channel and ket index as one ``(w' b)`` row index, after one
        copy that brings the channel next to ``b``: at bond dimension 64 this is 10-30 %
        faster than a product per channel and a sum over the channels). The left environment's
        first channel ("nothing placed yet") and the right environment's last ("all placed")
        are identity matrices when the MPS is canonical around the sites; where they are
        (checked), they are not multiplied.
        """
        env_l, env_r = self.left[k], self.right[k + width]
        dl, al = env_l.shape[0], env_l.shape[2]
        dr, ar = env_r.shape[0], env_r.shape[2]
        if width == 2:
            w = np.tensordot(self.w[k], self.w[k + 1], axes=([1], [0]))  # (w, o1, i1, w'', o2, i2)
            wm = w.transpose(1, 4, 3, 2, 5, 0).reshape(4 * dr, 4 * dl)  # (o1 o2 w'', i1 i2 w)
        else:
            wm = self.w[k].transpose(2, 1, 3, 0).reshape(2 * dr, 2 * dl)  # (o w', i w)
        wm = np.ascontiguousarray(wm)
        d = 2**width
        skip_l = _is_identity(env_l[0])
        skip_r = _is_identity(env_r[dr - 1])
        lo = 1 if skip_l else 0
        hi = dr - 1 if skip_r else dr
        lm = env_l[lo:].reshape(-1, al)  # (w a', a), identity channel left out
        rm = np.ascontiguousarray(env_r[:hi].transpose(0, 2, 1)).reshape(hi * ar, ar)  # (w' b, b')
        n = d * al * ar
        # work arrays, reused by the products of this local problem (a sweep's large
        # temporaries, freshly allocated per product, cost more in page faults than in
        # arithmetic): per block size, the left product, the MPO product and its copy with the
        # right environment's channel next to its ket index
        work: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

        def mv(v: np.ndarray) -> np.ndarray:
            nb = v.size // n  # one vector or a block of rows
            if nb not in work:
                work[nb] = (np.empty((nb * d, dl * al, ar), dtype=self.dtype),
                            np.empty((nb, d * dr, al * ar), dtype=self.dtype),
                            np.empty((nb * d, al, hi, ar), dtype=self.dtype))  # fmt: skip
            x, y, z = work[nb]  # (k i, w a', b), (k, o w', a' b), (k o, a', w', b)
            v3 = v.reshape(nb * d, al, ar)
            if skip_l:
                x[:, :al] = v3
            if lo < dl:
                np.matmul(lm, v3, out=x[:, lo * al :])
            np.matmul(wm, x.reshape(nb, d * dl, al * ar), out=y)
            y4 = y.reshape(nb * d, dr, al, ar)
            np.copyto(z, y4[:, :hi].transpose(0, 2, 1, 3))
            out = (z.reshape(nb * d * al, hi * ar) @ rm).reshape(nb * d, al, ar)
            if skip_r:
                out += y4[:, dr - 1]
            return out.reshape(v.shape)

        return mv, (*([2] * width), al, ar)

    def centre_energy(self) -> float:
        """``⟨ψ|H|ψ⟩ / ⟨ψ|ψ⟩`` (identity part excluded) with the centre at site 0."""
        mv, _ = self.local(0, 1)
        x = to_local(self.a[0]).reshape(-1)
        return float(np.vdot(x, mv(x)).real / np.vdot(x, x).real)

    def _solve(self, mv: Callable[[np.ndarray], np.ndarray], starts: list[np.ndarray],
               tol: float, maxiter: int) -> list[np.ndarray]:  # fmt: skip
        if len(starts) == 1:
            vals, x, m = lanczos_lowest(mv, starts[0].reshape(-1), tol, maxiter=maxiter)
            xs = [x]
        else:
            vals, xv, m = ritz_lowest(mv, np.stack([t.reshape(-1) for t in starts]), tol, maxiter,
                                      matmat=mv)  # fmt: skip
            xs = list(xv)
        self.matvecs += m
        self.energies = np.asarray(vals, dtype=float)
        return xs

    # ------------------------------------------------------------ sweeps
    def sweep2(
        self, direction: str, chi: int, cutoff: float, tol: float, maxiter: int = 40
    ) -> float:
        """One two-site sweep (``"R"``: left to right, ``"L"``: right to left); returns the energy
        of the last local update. The centre ends at the last site (``"R"``) or site 0."""
        n = self.n
        ks = range(n - 1) if direction == "R" else range(n - 2, -1, -1)
        worst = 0.0
        for k in ks:
            if direction == "R":
                thetas = [np.tensordot(c, self.a[k + 1], axes=([2], [0]))
                          for c in (self.a[k], *self.extra)]  # fmt: skip
            else:
                thetas = [np.tensordot(self.a[k], c, axes=([2], [0]))
                          for c in (self.a[k + 1], *self.extra)]  # fmt: skip
            mv, shape = self.local(k, 2)
            xs = self._solve(mv, [to_local(t) for t in thetas], tol, maxiter)
            l, r = shape[2:]
            mats = [from_local(x, shape).reshape(l * 2, 2 * r) for x in xs]
            if len(mats) == 1:
                big = mats[0]
            else:
                big = np.hstack(mats) if direction == "R" else np.vstack(mats)
            u, s, vh = _svd(big)
            keep, disc = _truncate(s, chi, cutoff)
            worst = max(worst, disc)
            u, s, vh = u[:, :keep], s[:keep], vh[:keep]
            if direction == "R":
                self.a[k] = u.reshape(l, 2, keep)
                cs = [(u.conj().T @ m).reshape(keep, 2, r) for m in mats]
                self.a[k + 1] = cs[0]
                self.extra = cs[1:]
                self.left[k + 1] = left_env(self.left[k], self.a[k], self.w[k])
            else:
                self.a[k + 1] = vh.reshape(keep, 2, r)
                cs = [(m @ vh.conj().T).reshape(l, 2, keep) for m in mats]
                self.a[k] = cs[0]
                self.extra = cs[1:]
                self.right[k + 1] = right_env(self.right[k + 2], self.a[k + 1], self.w[k + 1])
            for c in (self.a[k + 1] if direction == "R" else self.a[k], *self.extra):
                c /= np.linalg.norm(c)
        self.centre = n - 1 if direction == "R" else 0
        self.discarded = worst
        energy = self.energy
        _progress.dmrg_sweep(2, energy, max(self.bond_dims(), default=1))
        return energy

    def sweep1(self, direction: str, tol: float, maxiter: int = 40) -> float:
        """One one-site sweep of the lowest state within the present bond dimensions, from the
        centre to the last site (``"R"``) or to site 0 (``"L"``)."""
        n = self.n
        self.drop_extra()
        ks = range(self.centre, n - 1) if direction == "R" else range(self.centre, 0, -1)
        for k in ks:
            mv, shape = self.local(k, 1)
            self.a[k] = from_local(self._solve(mv, [to_local(self.a[k])], tol, maxiter)[0], shape)
            self._step(k, direction)
        energy = self.energy
        _progress.dmrg_sweep(1, energy, max(self.bond_dims(), default=1))
        return energy

    def _step(self, k: int, direction: str) -> None:
        """Move the centre from site ``k`` one site to the right (``"R"``) or left (``"L"``)."""
        x = self.a[k]
        l, _, r = x.shape
        if direction == "R":
            q, rr = np.linalg.qr(x.reshape(l * 2, r))
            self.a[k] = q.reshape(l, 2, -1)
            self.a[k + 1] = np.tensordot(rr, self.a[k + 1], axes=([1], [0]))
            self.left[k + 1] = left_env(self.left[k], self.a[k], self.w[k])
            self.centre = k + 1
        else:
            q, rr = np.linalg.qr(x.reshape(l, 2 * r).T)
            self.a[k] = q.T.reshape(-1, 2, r)
            self.a[k - 1] = np.tensordot(self.a[k - 1], rr.T, axes=([2], [0]))
            self.right[k] = right_env(self.right[k + 1], self.a[k], self.w[k])
            self.centre = k - 1

    def residual(self) -> float:
        """The local residual ``||H_eff a_k - e a_k|| / ||a_k||`` of the centre site ``k`` (one
        product): how far the state is from a local ground state there."""
        mv, _ = self.local(self.centre, 1)
        x = to_local(self.a[self.centre]).reshape(-1)
        hx = mv(x)
        self.matvecs += 1
        e = np.vdot(x, hx).real / np.vdot(x, x).real
        return float(np.linalg.norm(hx - e * x) / np.linalg.norm(x))

    def probe(self) -> np.ndarray:
        """Move the centre from site 0 to the last site without optimising, and return the
        :meth:`residual` of each site on the way (where the state is furthest from a local
        ground state: where a nearby solve should start)."""
        n = self.n
        self.drop_extra()
        res = np.zeros(n)
        for k in range(self.centre, n):
            res[k] = self.residual()
            if k < n - 1:
                self._step(k, "R")
        return res

    def move(self, k: int) -> None:
        """Move the centre to site ``k`` without optimising."""
        while self.centre < k:
            self._step(self.centre, "R")
        while self.centre > k:
            self._step(self.centre, "L")

    def bond_dims(self) -> list[int]:
        return [t.shape[2] for t in self.a[:-1]]
