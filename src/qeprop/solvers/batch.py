"""Ground states of many Hamiltonians with one sparsity pattern, solved together.

Training loops solve the same parametrised Hamiltonian at many parameter vectors (a mini-batch of
inputs, each free and nudged). These Hamiltonians share the flip patterns of
:class:`~qeprop.hamiltonian.SparseStructure` and differ only in their data, so one compiled Lanczos
kernel (numba, :mod:`qeprop.solvers._lanczos_kernels`) solves a whole batch, in parallel over the
batch, without Python overhead per step: each thread builds the data ``H[r, r ^ m_k]`` of its
Hamiltonian from the string coefficients (:class:`~qeprop.hamiltonian.MaskStrings`) in its own
scratch and runs the recursion there.

The kernel runs a Lanczos recursion from each start vector and checks the residual
``|β_m s_m|`` of the lowest Ritz pair every third step, and at every step once the rate of the
last two checks predicts convergence within three (the lowest Ritz value comes from Laguerre's
method on the tridiagonal matrix). On cold solves a second run, deflated against the ground vector
and converged to ``gap_tol``, gives the next level: the gap, or a second copy of the ground level
(a single Krylov space holds only one direction of each eigenspace, so a degenerate level would
otherwise go unseen). Levels whose gap is not resolved from zero are handed to
:func:`qeprop.solvers.solve`, which handles degenerate manifolds (or raises). Warm-started solves
(nudged states) keep the level of their free state and report no gap (``nan``).

Threads: the kernel uses numba's current thread count (``numba.set_num_threads``); every element
is computed by one thread from its own inputs, so results do not depend on the thread count.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..checks import MAX_COEFFICIENT
from ..errors import ConvergenceError, ProblemError
from ..hamiltonian import ParametrisedHamiltonian
from ..states import Equilibrium
from . import StateSpec
from . import solve_vectors as solve

__all__ = ["solve_ground_batch"]


def _kernels() -> Any:
    """The compiled kernel (imported on first use, keeping ``import qeprop`` fast)."""
    from ._lanczos_kernels import lanczos_batch

    return lanczos_batch


def _threads() -> int:
    """Threads of numba's parallel loops in this thread (numba imported on first use)."""
    import numba

    return int(numba.get_num_threads())


@contextlib.contextmanager
def _dynamic_schedule() -> Iterator[None]:
    """numba's parallel loops started inside hand out their iterations one at a time."""
    import numba

    old = numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(old)


@functools.cache
def _start_vectors(dim: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixed pseudo-random start vectors ``(cold start, second-level start)`` (read-only)."""
    a = np.random.default_rng(20240501).standard_normal(dim).astype(dtype)
    b = np.random.default_rng(20240502).standard_normal(dim).astype(dtype)
    a.flags.writeable = False
    b.flags.writeable = False
    return a, b


#: scratch arrays up to this size are kept between calls (per calling thread), so that repeated
#: solves of one size reuse warm memory instead of faulting in fresh pages every call
_KEEP_BYTES = 64 << 20
_scratch_store = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """An uninitialised array ``(shape, dtype)``, reused between calls of this thread if small."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size > _KEEP_BYTES:
        return np.empty(shape, dtype=dtype)
    store: dict[tuple[str, str], np.ndarray] = _scratch_store.__dict__.setdefault("arrays", {})
    key = (name, np.dtype(dtype).str)
    buf = store.get(key)
    if buf is None or buf.size < int(np.prod(shape)):
        buf = np.empty(shape, dtype=dtype).reshape(-1)
        store[key] = buf
    return buf[: int(np.prod(shape))].reshape(shape)


def _coefficients(
    ham: ParametrisedHamiltonian, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """String coefficients ``(B, n_strings)`` of the rows of ``values`` and their scales
    ``Σ_s |c_s|`` (:meth:`~qeprop.hamiltonian.ParametrisedHamiltonian.norm_bound`).

    Every row passes the checks of :meth:`~qeprop.hamiltonian.ParametrisedHamiltonian.check_values`
    (shape, finite values, scale at most ``MAX_COEFFICIENT``), tested for the whole batch at once;
    a failing batch is checked row by row, which raises the message naming the input.
    """
    ok = values.ndim == 2 and values.shape[1] == len(ham.params)
    ok = ok and bool(np.all(np.isfinite(values)))
    if ok:
        with np.errstate(over="ignore", invalid="ignore"):
            coef = ham.string_coefficients(values)
            scale = np.abs(coef).sum(axis=1)
        if np.all(scale <= MAX_COEFFICIENT):  # also catches inf and NaN
            return coef, scale
    for v in values:
        ham.check_values(v)
    raise ProblemError(f"parameter values of shape {values.shape} do not fit this Hamiltonian")


def solve_ground_batch(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec | None = None,
    guesses: Sequence[Equilibrium | None] | None = None,
    max_steps: int = 90,
) -> list[Equilibrium]:
    """Ground states of ``H(values[b])`` for a batch of parameter vectors ``values (B, P)``.

    Parameters
    ----------
    ham, values:
        The Hamiltonian and a ``(B, n_params)`` array of parameter vectors.
    spec:
        Tolerances: ``tol`` (relative residual of the ground state), ``gap_tol`` (of the next
        level, which gives the gap) and ``degeneracy_tol``. An element whose gap is not resolved
        from zero goes to :func:`qeprop.solvers.solve`, which applies ``degeneracy`` ("error"
        raises, "mixture" returns the equal-weight mixture over the manifold).
    guesses:
        Optional warm starts (e.g. the free states when solving the nudged ones).
    max_steps:
        Krylov steps before an explicit restart from the current Ritz vector (up to 20 restarts).
    """
    spec = spec or StateSpec()
    if spec.symmetry == "auto":
        from . import sectors

        return sectors.solve_ground_batch(ham, values, spec, guesses)
    values = np.atleast_2d(np.asarray(values, dtype=float))
    coef, scale = _coefficients(ham, values)  # (B, n_strings): rows are parameter vectors
    kernel = _kernels()
    st = ham.structure
    masks = st.mask_layout[0]
    ms = st.mask_strings
    dtype = st.dtype
    b, d = len(values), ham.dim
    v0 = np.empty((b, d), dtype=dtype)
    fallback, v_alt = _start_vectors(d, np.dtype(dtype).str)
    for i in range(b):
        g = guesses[i] if guesses is not None else None
        v0[i] = g.vectors[:, 0] if g is not None and g.dim == d else fallback
    steps = min(max_steps, d)
    e = np.empty(b)
    e1 = np.empty(b)
    res1 = np.empty(b)
    res = np.empty(b)
    vec = np.empty((b, d), dtype=dtype)
    total = np.zeros(b, dtype=np.int64)
    todo = np.arange(b)
    # the gap (and the check for a degenerate ground level) is measured on cold solves only; a
    # nudged solve, warm-started from its free state, keeps that state's level
    gap_tol = max(spec.gap_tol, spec.tol) if guesses is None else 0.0
    threads = _threads()
    work = _scratch("krylov", (threads, steps + 1, d), dtype)
    data_work = _scratch("data", (threads, len(masks), d), dtype)
    for _restart in range(20):
        n = len(todo)
        e_t, r_t, e1_t, r1_t = (np.empty(n) for _ in range(4))
        x_t = np.empty((n, d), dtype=dtype)
        n_t = np.empty(n, dtype=np.int64)
        with _dynamic_schedule():  # elements take unequal times: hand them out one at a time
            kernel(masks, ms.real_masks, ms.offsets, ms.order, ms.phase_re, ms.phase_im, ms.signs,
                   coef, todo, v0[todo], v_alt, spec.tol, gap_tol, steps, work, data_work,
                   e_t, r_t, x_t, n_t, e1_t, r1_t)  # fmt: skip
        e[todo], res[todo], vec[todo], e1[todo], res1[todo] = e_t, r_t, x_t, e1_t, r1_t
        total[todo] += n_t
        left = r_t > spec.tol * np.maximum(1.0, np.abs(e_t))
        if not np.any(left):
            break
        v0[todo[left]] = x_t[left]
        todo = todo[left]
    else:
        raise ConvergenceError(
            f"batched Lanczos did not converge to tol={spec.tol:g} for {len(todo)} of {b} "
            f"Hamiltonians (residuals {res[todo].max():.2e})"
        )
    out: list[Equilibrium] = []
    for i in range(b):
        gap = float(e1[i] - e[i])  # nan for warm-started solves
        # a gap that is not resolved from zero by the rough second run (its eigenvalue error is
        # about res1^2 / gap) is handed to the reference solver, which decides with full accuracy
        tol_deg = spec.degeneracy_threshold(scale[i])
        unresolved = gap < max(tol_deg, 10.0 * res1[i])
        if unresolved:
            g = guesses[i] if guesses is not None else None
            out.append(solve(ham, values[i], spec, g))
            continue
        out.append(
            Equilibrium(
                vectors=vec[i][:, None],
                weights=np.ones(1),
                energies=np.array([e[i]]),
                gap=gap,
                kind="ground",
                method="batch-lanczos",
                residual=float(res[i]),
                matvecs=int(total[i]),
                spectrum=np.array([e[i], e1[i]]),
                backend="sparse",
                engine=st,
            )
        )
    return out
