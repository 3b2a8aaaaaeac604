"""Ground states of many Hamiltonians with one sparsity pattern, solved together.

Training loops solve the same parametrised Hamiltonian at many parameter vectors (a mini-batch of
inputs, each free and nudged). These Hamiltonians share the CSR pattern of
:class:`~qeprop.hamiltonian.SparseStructure` and differ only in their data, so one compiled Lanczos
kernel (numba) solves a whole batch, in parallel over the batch, without Python overhead per step.

The kernel runs a Lanczos recursion from each start vector and checks the residual
``|β_m s_m|`` of the lowest Ritz pair every few steps. On cold solves a second run, deflated
against the ground vector and converged to ``gap_tol``, gives the next level: the gap, or a second
copy of the ground level (a single Krylov space holds only one direction of each eigenspace, so a
degenerate level would otherwise go unseen). Levels whose gap is not resolved from zero are handed
to :func:`qeprop.solvers.solve`, which handles degenerate manifolds (or raises). Warm-started
solves (nudged states) keep the level of their free state and report no gap (``nan``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConvergenceError
from ..hamiltonian import ParametrisedHamiltonian
from ..states import Equilibrium
from . import StateSpec, solve

__all__ = ["solve_ground_batch"]


def _kernels() -> Any:
    """The compiled kernel (imported on first use, keeping ``import qeprop`` fast)."""
    from ._lanczos_kernels import lanczos_batch

    return lanczos_batch


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
    values = np.atleast_2d(np.asarray(values, dtype=float))
    for v in values:
        ham.check_values(v)
    kernel = _kernels()
    st = ham.structure
    coef = ham.string_coefficients(values)  # (B, n_strings): rows are parameter vectors
    masks = st.mask_layout[0]
    dtype = st.dtype
    data = st.mask_data(coef)
    b, d = len(values), ham.dim
    v0 = np.empty((b, d), dtype=dtype)
    fallback = np.random.default_rng(20240501).standard_normal(d)
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
    v_alt = np.random.default_rng(20240502).standard_normal(d).astype(dtype)
    for _restart in range(20):
        n = len(todo)
        e_t, r_t, e1_t, r1_t = (np.empty(n) for _ in range(4))
        x_t = np.empty((n, d), dtype=dtype)
        n_t = np.empty(n, dtype=np.int64)
        kernel(masks, data[todo], v0[todo], v_alt, spec.tol, gap_tol, steps,
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
        unresolved = gap < max(spec.degeneracy_tol, 10.0 * res1[i])
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
            )
        )
    return out
