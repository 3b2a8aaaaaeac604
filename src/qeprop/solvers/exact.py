"""Exact equilibria from state vectors: dense ``eigh``, sparse Lanczos, matrix-free Lanczos.

The three vector backends share the state logic (ground state with its gap and degenerate
manifold, excited levels followed by continuity, the Gibbs state); they differ only in how the
lowest eigenpairs are found (an :class:`Eigen` strategy) and in the engine that applies Pauli sums
to vectors (the sparse structure, or the compiled matrix-free kernel).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as la
import scipy.sparse.linalg as spla

from ..errors import ConvergenceError, DegeneracyError, LevelCrossingWarning, ProblemError
from ..hamiltonian import ParametrisedHamiltonian
from ..memory import available_memory, check_memory
from ..states import Engine, Equilibrium
from . import StateSpec

__all__ = [
    "DENSE_EIGEN",
    "MATRIX_FREE_EIGEN",
    "SPARSE_EIGEN",
    "Eigen",
    "blas_threads",
    "dense_memory",
    "kernel_for",
    "matrix_free_memory",
    "solve_eigenstate",
    "solve_ground",
    "solve_kind",
    "solve_thermal",
    "sparse_memory",
]

# Krylov basis size of ARPACK. It checks convergence only after filling the basis, so a warm start,
# which converges within a few steps, profits from a smaller basis than the default 20.
_NCV_WARM = 10
_NCV_COLD = 20

_controller = None


@contextlib.contextmanager
def blas_threads(n: int | None, dim: int) -> Iterator[None]:
    """Limit BLAS threads to ``n`` for dense work on matrices up to dimension 2048.

    On few cores, multi-threaded OpenBLAS makes small eigensolves many times slower than a
    single thread (thread start-up and contention dominate). ``n=None`` changes nothing.
    """
    global _controller
    if n is None or dim > 2048:
        yield
        return
    from threadpoolctl import ThreadpoolController

    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=n, user_api="blas"):
        yield


# ---------------------------------------------------------------------------- memory
def _itemsize(ham: ParametrisedHamiltonian) -> int:
    return 8 if ham.is_real else 16


#: peak bytes per (string x basis state) of building the sparse structure (measured: the coo
#: parts, their concatenation and the two CSR conversions of the string map; 126 complex,
#: about 110 real, at 14-18 qubits)
_STRUCTURE_BYTES = {8: 110.0, 16: 126.0}


def _structure_memory(ham: ParametrisedHamiltonian) -> float:
    if "structure" in ham.__dict__:  # already built
        return 0.0
    d, isz = ham.dim, _itemsize(ham)
    masks = len({p.basis_masks(ham.n_qubits)[0] for p in ham.strings}) or 1
    return len(ham.strings) * d * _STRUCTURE_BYTES[isz] + masks * d * 60.0


def dense_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    """Peak bytes of a dense solve: the structure, ``H``, ``eigh``'s copy and work, vectors."""
    d, isz = ham.dim, _itemsize(ham)
    return _structure_memory(ham) + 4.0 * d * d * isz


def sparse_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    """Peak bytes of a sparse solve: structure build, CSR data, ARPACK basis, response vectors."""
    d, isz = ham.dim, _itemsize(ham)
    masks = len({p.basis_masks(ham.n_qubits)[0] for p in ham.strings}) or 1
    return _structure_memory(ham) + masks * d * isz + (_NCV_COLD + 16) * d * isz


#: vectors a matrix-free gradient holds besides the Lanczos basis: free state and the levels
#: above it, two nudged states, products, MINRES work vectors (twice the size if complex)
_MF_VECTORS = 14
#: smallest Lanczos basis of the matrix-free solver (two-pass Lanczos below it)
_MF_MIN_BASIS = 4
_MF_MAX_BASIS = 256
#: largest qubit count the matrix-free kernel is built for (2^40 amplitudes are 8 TiB)
_MF_MAX_QUBITS = 40


_KERNELS: weakref.WeakKeyDictionary[ParametrisedHamiltonian, Any] = weakref.WeakKeyDictionary()


def kernel_for(ham: ParametrisedHamiltonian) -> Any:
    """The matrix-free engine (:class:`~qeprop.solvers.matrix_free.PauliKernel`) of ``ham``'s
    string basis, built once per Hamiltonian (it holds no matrix, only small tables)."""
    kernel = _KERNELS.get(ham)
    if kernel is None:
        from .matrix_free import PauliKernel

        kernel = PauliKernel(ham.strings, ham.n_qubits)
        kernel.strings = ham.strings  # type: ignore[attr-defined]  # engine identity (engine_for)
        _KERNELS[ham] = kernel
    return kernel


_WORKSPACES: weakref.WeakKeyDictionary[ParametrisedHamiltonian, Any] = weakref.WeakKeyDictionary()


def _workspace_for(ham: ParametrisedHamiltonian) -> Any:
    """The Lanczos vector memory the solves of ``ham`` share (free, then nudged states): kept
    between solves so that large vectors are not faulted in afresh for every solve."""
    ws = _WORKSPACES.get(ham)
    if ws is None:
        from .matrix_free import LanczosWorkspace

        ws = LanczosWorkspace()
        _WORKSPACES[ham] = ws
    return ws


def matrix_free_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    """Peak bytes of a matrix-free solve: a few vectors plus the kernel's tables."""
    d, isz = ham.dim, _itemsize(ham)
    if ham.n_qubits > _MF_MAX_QUBITS:  # beyond any machine: no kernel needs to be built to know
        return float((_MF_VECTORS + _MF_MIN_BASIS) * d * isz)
    tables = kernel_for(ham).memory_bytes(threads=spec.threads)
    return (_MF_VECTORS + _MF_MIN_BASIS) * d * isz + tables


# ---------------------------------------------------------------------------- eigen-solvers
EigenResult = tuple[np.ndarray, np.ndarray, str, int]
Lowest = Callable[
    [ParametrisedHamiltonian, np.ndarray, StateSpec, int, list[np.ndarray], int],
    EigenResult,
]


@dataclass(frozen=True)
class Eigen:
    """How a vector backend finds the lowest eigenpairs and applies Pauli sums.

    ``lowest(ham, values, spec, k, starts, precise) -> (evals (k,), vecs (d, k), method,
    matvecs)``: the lowest ``k`` eigenpairs, the first ``precise`` to full tolerance,
    warm-started from ``starts`` (called by :meth:`run` for problems too large to solve
    densely). ``engine(ham)`` is the backend's Pauli-sum engine.
    """

    backend: str
    lowest: Lowest
    engine: Callable[[ParametrisedHamiltonian], Engine]

    def run(
        self,
        ham: ParametrisedHamiltonian,
        values: np.ndarray,
        spec: StateSpec,
        k: int,
        starts: list[np.ndarray],
        precise: int,
    ) -> EigenResult:
        """The lowest ``min(k, dim)`` eigenpairs: densely for small problems (``spec.use_dense``,
        or nearly all levels asked for, where Lanczos cannot run), else with :attr:`lowest`."""
        d = ham.dim
        k = min(k, d)
        if spec.use_dense(d) or k >= d - 1:
            return _dense_eigen(ham, values, spec, k, starts, precise)
        return self.lowest(ham, values, spec, k, starts, precise)


def _dense_lowest(
    ham: ParametrisedHamiltonian, values: np.ndarray, spec: StateSpec, k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Lowest ``k`` eigenpairs (all if ``k`` is None) of the dense matrix."""
    d = ham.dim
    check_memory(3 * d * d * _itemsize(ham), f"dense diagonalisation of dimension {d}")
    h = ham.dense(values)
    with blas_threads(spec.blas_threads, d):
        if k is None or k >= d:
            return la.eigh(h)
        return la.eigh(h, subset_by_index=[0, k - 1], driver="evr")


def _dense_eigen(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    k: int,
    starts: list[np.ndarray],
    precise: int,
) -> EigenResult:
    ev, vec = _dense_lowest(ham, values, spec, min(k, ham.dim))
    return ev, vec, "dense", 0


def _sparse_eigen(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    k: int,
    starts: list[np.ndarray],
    precise: int,
) -> EigenResult:
    ev, vec, mv = _lanczos_lowest(ham, values, spec, k, starts, precise)
    return ev, vec, "lanczos", mv


def _matrix_free_eigen(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    k: int,
    starts: list[np.ndarray],
    precise: int,
) -> EigenResult:
    from .matrix_free import lanczos_lowest

    d = ham.dim
    kernel = kernel_for(ham)
    coef = ham.string_coefficients(values)
    dtype = np.float64 if ham.is_real else np.complex128
    isz = _itemsize(ham)
    workspace = _workspace_for(ham)
    # the Lanczos basis may take half of what is left after the other vectors (a longer basis
    # saves the second pass that rebuilds unstored vectors); the workspace already holds some
    room = available_memory() + workspace.nbytes - (_MF_VECTORS * d * isz)
    basis = int(min(_MF_MAX_BASIS, max(_MF_MIN_BASIS, room // (2 * d * isz))))
    maxiter = spec.maxiter if spec.maxiter is not None else 20000
    res = lanczos_lowest(
        functools.partial(kernel.apply, coef, threads=spec.threads),
        d,
        dtype,
        k,
        # views, not copies (at 26 qubits a vector is 1 GiB): the solver copies the start of
        # each level it runs; starts beyond the k levels are not used
        [s.real if ham.is_real else np.asarray(s, dtype=complex) for s in starts[:k]],
        tol=spec.tol,
        gap_tol=spec.gap_tol,
        # levels beyond ``precise`` only measure the gap for the degeneracy check: to 1 % of it
        gap_rel=0.01,
        precise=precise,
        maxiter=maxiter,
        max_vectors=basis,
        rng=np.random.default_rng(20240501),
        workspace=workspace,
    )
    return res.evals, res.vecs, "matrix-free-lanczos", int(res.matvecs)


def _structure(ham: ParametrisedHamiltonian) -> Engine:
    return ham.structure


def _kernel(ham: ParametrisedHamiltonian) -> Engine:
    return kernel_for(ham)


DENSE_EIGEN = Eigen("dense", _dense_eigen, _structure)
SPARSE_EIGEN = Eigen("sparse", _sparse_eigen, _structure)
MATRIX_FREE_EIGEN = Eigen("matrix-free", _matrix_free_eigen, _kernel)


def _starts(guess: Equilibrium | None, d: int) -> list[np.ndarray]:
    if guess is None or guess.dim != d or guess.kind == "thermal":
        return []
    return list(guess.vectors.T) + (list(guess.above.T) if guess.above is not None else [])


def _lanczos_lowest(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    k: int,
    starts: list[np.ndarray],
    precise: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Lowest ``k`` eigenpairs by Lanczos (ARPACK), one level at a time with deflation.

    A single-vector Krylov method sees only one copy of a degenerate level, so asking ARPACK for
    ``k`` eigenvalues at once can silently skip a degenerate partner. Here level ``i`` is the lowest
    eigenpair of ``H`` on the orthogonal complement of levels ``0..i-1`` (locked directions are
    shifted far up), which finds every copy. ``starts[i]`` warm-starts level ``i`` (a fixed
    pseudo-random vector otherwise); levels ``>= precise`` are only needed for their energy and use
    a looser tolerance (the eigenvalue error is quadratic in the residual).
    """
    d = ham.dim
    h = ham.sparse(values)
    count = [0]
    locked = np.zeros((d, 0), dtype=np.result_type(h.dtype, np.float64))
    shift = 2.0 * ham.norm_bound(values) + 1.0
    maxiter = spec.maxiter if spec.maxiter is not None else 10 * d
    rng = np.random.default_rng(20240501)
    evs: list[float] = []
    for i in range(k):
        lk = locked

        def matvec(v: np.ndarray, lk: np.ndarray = lk) -> np.ndarray:
            count[0] += 1
            if lk.shape[1] == 0:
                return h @ v
            c = lk.conj().T @ v
            pv = v - lk @ c
            w = h @ pv
            return w - lk @ (lk.conj().T @ w) + shift * (lk @ c)

        op = spla.LinearOperator((d, d), matvec=matvec, dtype=h.dtype)
        v0 = starts[i] if i < len(starts) else rng.standard_normal(d)
        v0 = v0.real.copy() if ham.is_real else v0.astype(complex)
        if lk.shape[1]:
            v0 = v0 - lk @ (lk.conj().T @ v0)
        if np.linalg.norm(v0) < 1e-8:
            v0 = rng.standard_normal(d).astype(v0.dtype)
        tol = spec.tol if i < precise else max(spec.tol, spec.gap_tol)
        try:
            with blas_threads(spec.blas_threads, d):
                ev, vec = spla.eigsh(
                    op,
                    k=1,
                    which="SA",
                    v0=v0,
                    tol=tol,
                    maxiter=maxiter,
                    ncv=_NCV_WARM if i < len(starts) else _NCV_COLD,
                )
        except spla.ArpackNoConvergence:
            raise ConvergenceError(
                f"Lanczos did not converge to tol={tol:g} within maxiter={maxiter} restarts "
                f"(dimension {d}, level {i}); raise maxiter or tol, or use method='dense'"
            ) from None
        x = vec[:, 0]
        if lk.shape[1]:
            x = x - lk @ (lk.conj().T @ x)
        x = x / np.linalg.norm(x)
        evs.append(float(ev[0]))
        locked = np.column_stack([locked, x])
    order = np.argsort(evs, kind="stable")
    return np.asarray(evs)[order], locked[:, order], count[0]


def _residual(engine: Engine, coef: np.ndarray, vec: np.ndarray, ev: np.ndarray) -> float:
    """Largest ``||H ψ_k - E_k ψ_k||`` over the columns of ``vec``."""
    if not vec.size:
        return 0.0
    r = np.asarray(engine.apply(coef, vec)) - vec * ev
    return float(np.max(np.linalg.norm(r, axis=0)))


def _make_real(vec: np.ndarray, ham: ParametrisedHamiltonian) -> np.ndarray:
    return vec.real.astype(np.float64) if ham.is_real and np.iscomplexobj(vec) else vec


def _degeneracy_message(kind: str, level: int, gap: float, threshold: float) -> str:
    what = "ground state" if kind == "ground" else f"eigenstate {level}"
    return (
        f"the {what} is degenerate: gap {gap:.3e} is below the degeneracy threshold "
        f"{threshold:.3g} (degeneracy_tol, at least 1e3 eps ||H||); "
        "set degeneracy='mixture' to use the equal-weight mixture over the degenerate manifold, "
        "or break the degeneracy (e.g. a small symmetry-breaking field)"
    )


# ---------------------------------------------------------------------------- ground state
def solve_kind(
    eigen: Eigen,
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    guess: Equilibrium | None,
) -> Equilibrium:
    """The equilibrium of ``spec.kind`` with the eigensolver and engine of ``eigen``."""
    if spec.kind == "thermal":
        return solve_thermal(ham, values, spec, guess)
    if spec.kind == "eigenstate":
        return solve_eigenstate(ham, values, spec, guess, eigen)
    return solve_ground(ham, values, spec, guess, eigen)


def solve_ground(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    guess: Equilibrium | None,
    eigen: Eigen = SPARSE_EIGEN,
) -> Equilibrium:
    """Ground state (or equal-weight mixture over a degenerate ground manifold) of ``H(values)``.

    The gap ``δ = E_g - E_{g-1}`` above the ``g``-fold manifold is measured on every call. When a
    ``guess`` of the same kind is given (the free state of a nudged solve), it is the Lanczos start
    vector and its manifold size ``g`` is kept, so that free and nudged states are the same branch.
    """
    d = ham.dim
    follow = guess is not None and guess.kind == "ground" and spec.degeneracy == "mixture"
    g_fixed = guess.degeneracy if follow and guess is not None else None
    k = (g_fixed + 1) if g_fixed else 2
    # a nudged state followed from its free state keeps that state's manifold; on the
    # matrix-free backend (large sizes) its gap, which no estimator reads, is not computed
    if g_fixed and eigen.backend == "matrix-free":
        k = g_fixed
    matvecs = 0
    starts = _starts(guess, d)
    tol_deg = spec.degeneracy_threshold(ham.norm_bound(values))
    while True:
        ev, vec, method, mv = eigen.run(ham, values, spec, k, starts, g_fixed or k - 1)
        matvecs += mv
        if g_fixed is not None:
            g = g_fixed
            break
        within = int(np.sum(ev - ev[0] < tol_deg))
        if within < len(ev) or len(ev) >= d:
            g = within if spec.degeneracy == "mixture" else 1
            break
        k = min(2 * k, d)
    if len(ev) > g:
        gap = float(ev[g] - ev[g - 1])
    else:  # the whole space, or a nudged matrix-free state whose gap was not computed
        gap = float("inf") if len(ev) >= d else float("nan")
    if spec.degeneracy == "error" and gap < tol_deg:
        raise DegeneracyError(_degeneracy_message("ground", 0, gap, tol_deg))
    vectors = _make_real(vec[:, :g], ham)
    engine = eigen.engine(ham)
    return Equilibrium(
        vectors=vectors,
        weights=np.full(g, 1.0 / g),
        energies=ev[:g].copy(),
        gap=gap,
        splitting=float(ev[g - 1] - ev[0]),
        kind="ground",
        method=method,
        level=0,
        residual=_residual(engine, ham.string_coefficients(values), vectors, ev[:g]),
        matvecs=matvecs,
        spectrum=ev.copy(),
        above=_make_real(vec[:, g:], ham) if vec.shape[1] > g else None,
        backend=eigen.backend,
        engine=engine,
    )


# ---------------------------------------------------------------------------- excited level
def solve_eigenstate(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    guess: Equilibrium | None,
    eigen: Eigen = SPARSE_EIGEN,
) -> Equilibrium:
    """The ``spec.level``-th eigenstate, followed by continuity from ``guess`` when given.

    Without a guess the level is counted from the bottom of the spectrum. With a guess (the free
    state of a nudged solve), the returned state is the set of ``g`` eigenvectors with the largest
    overlap with the guess manifold (Scellier, "using any eigenstate": the nudged state must be a
    smooth deformation of the free one); a total overlap below one half warns of a level crossing.
    """
    d = ham.dim
    if spec.level >= d:
        raise ProblemError(
            f"level {spec.level} does not exist: the Hilbert space has dimension {d}",
            where="state.level",
        )
    follow = guess is not None and guess.kind == "eigenstate" and guess.dim == d
    top = (guess.level + guess.degeneracy) if follow and guess is not None else spec.level + 1
    k = min(d, top + 2)
    matvecs = 0
    starts = _starts(guess, d)
    tol_deg = spec.degeneracy_threshold(ham.norm_bound(values))
    while True:
        ev, vec, method, mv = eigen.run(ham, values, spec, k, starts, k)
        matvecs += mv
        if follow and guess is not None:
            ov = np.sum(np.abs(vec.conj().T @ guess.vectors) ** 2 * guess.weights, axis=1)
            ov = ov * guess.degeneracy
            g = guess.degeneracy
            chosen = np.sort(np.argsort(ov)[::-1][:g])
            if chosen[-1] == len(ev) - 1 and len(ev) < d:
                k = min(d, k + 4)
                continue
            if ov[chosen].sum() < 0.5 * g:
                warnings.warn(
                    f"eigenstate {guess.level} followed through the nudge keeps only "
                    f"{ov[chosen].sum() / g:.2f} of its weight: a level crossing is likely; "
                    "use a smaller nudge",
                    LevelCrossingWarning,
                    stacklevel=3,
                )
            lo, hi = int(chosen[0]), int(chosen[-1])
            break
        lvl = spec.level
        lo = hi = lvl
        if spec.degeneracy == "mixture":
            while lo > 0 and ev[lvl] - ev[lo - 1] < tol_deg:
                lo -= 1
            while hi + 1 < len(ev) and ev[hi + 1] - ev[lvl] < tol_deg:
                hi += 1
        if hi == len(ev) - 1 and len(ev) < d:
            k = min(d, 2 * k)
            continue
        chosen = np.arange(lo, hi + 1)
        break
    below = ev[lo] - ev[lo - 1] if lo > 0 else np.inf
    above = ev[hi + 1] - ev[hi] if hi + 1 < len(ev) else np.inf
    gap = float(min(below, above))
    if spec.degeneracy == "error" and gap < tol_deg:
        raise DegeneracyError(_degeneracy_message("eigenstate", spec.level, gap, tol_deg))
    vectors = _make_real(vec[:, chosen], ham)
    energies = ev[chosen].copy()
    engine = eigen.engine(ham)
    return Equilibrium(
        vectors=vectors,
        weights=np.full(len(chosen), 1.0 / len(chosen)),
        energies=energies,
        gap=gap,
        splitting=float(energies[-1] - energies[0]),
        kind="eigenstate",
        method=method,
        level=lo,
        residual=_residual(engine, ham.string_coefficients(values), vectors, energies),
        matvecs=matvecs,
        spectrum=ev.copy(),
        backend=eigen.backend,
        engine=engine,
    )


# ---------------------------------------------------------------------------- thermal state
def solve_thermal(
    ham: ParametrisedHamiltonian, values: np.ndarray, spec: StateSpec, guess: Equilibrium | None
) -> Equilibrium:
    """Gibbs state ``ρ = exp(-H/T) / Z`` from the full spectrum (dense).

    Weights are ``w_k = exp(-(E_k - E_0)/T) / Σ_m exp(-(E_m - E_0)/T)``; all ``dim`` eigenvectors
    are kept so that the exact thermal susceptibility can be formed.
    """
    del guess  # a dense solve has no use for a warm start
    ev, vec = _dense_lowest(ham, values, spec, None)
    t = float(spec.temperature)  # type: ignore[arg-type]
    with np.errstate(over="ignore"):  # T far below the level spacing: weights underflow to 0
        boltz = np.exp(-(ev - ev[0]) / t)
    weights = boltz / boltz.sum()
    vectors = _make_real(vec, ham)
    return Equilibrium(
        vectors=vectors,
        weights=weights,
        energies=ev,
        gap=float(ev[1] - ev[0]) if len(ev) > 1 else float("inf"),
        splitting=0.0,
        kind="thermal",
        method="dense",
        temperature=t,
        residual=0.0,
        matvecs=0,
        spectrum=ev,
        backend="dense",
        engine=ham.structure,
    )
