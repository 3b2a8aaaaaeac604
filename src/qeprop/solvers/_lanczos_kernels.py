"""Compiled (numba) kernels of :mod:`qeprop.solvers.batch`; imported only when first needed.

Compiled code is cached by numba next to this module, so the compilation cost (tens of seconds)
is paid once per installation.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["lanczos_batch", "lanczos_one"]


@nb.njit(cache=True)
def sturm_count(alpha, beta, m, x):
    """Number of eigenvalues of the m x m tridiagonal matrix below x."""
    count = 0
    d = alpha[0] - x
    if d < 0:
        count += 1
    for i in range(1, m):
        if d == 0.0:
            d = 1e-300
        d = alpha[i] - x - beta[i - 1] * beta[i - 1] / d
        if d < 0:
            count += 1
    return count


@nb.njit(cache=True)
def kth_eigenvalue(alpha, beta, m, k):
    """k-th lowest eigenvalue (k = 0, 1, ...) by bisection on the Sturm count."""
    lo = np.inf
    hi = -np.inf
    for i in range(m):
        r = 0.0
        if i > 0:
            r += abs(beta[i - 1])
        if i < m - 1:
            r += abs(beta[i])
        lo = min(lo, alpha[i] - r)
        hi = max(hi, alpha[i] + r)
    span = max(hi - lo, 1e-300)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if sturm_count(alpha, beta, m, mid) > k:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-15 * max(1.0, abs(mid)) or hi - lo < 1e-14 * span * 1e-3:
            break
    return 0.5 * (lo + hi)


@nb.njit(cache=True)
def tridiag_vector(alpha, beta, m, theta, out):
    """Unit eigenvector of the tridiagonal matrix for eigenvalue theta (inverse iteration)."""
    shift = theta - 1e-13 * max(1.0, abs(theta))
    diag = np.empty(m)
    sup = np.empty(m)
    x = np.ones(m)
    for _ in range(3):
        # solve (T - shift) y = x by Gaussian elimination without pivoting (T - shift is
        # nearly singular by design; tiny pivots are bumped)
        for i in range(m):
            diag[i] = alpha[i] - shift
        rhs = x.copy()
        for i in range(1, m):
            piv = diag[i - 1]
            if abs(piv) < 1e-300:
                piv = 1e-300
            f = beta[i - 1] / piv
            diag[i] -= f * beta[i - 1]
            rhs[i] -= f * rhs[i - 1]
            sup[i - 1] = beta[i - 1]
        piv = diag[m - 1]
        if abs(piv) < 1e-300:
            piv = 1e-300
        x[m - 1] = rhs[m - 1] / piv
        for i in range(m - 2, -1, -1):
            piv = diag[i]
            if abs(piv) < 1e-300:
                piv = 1e-300
            x[i] = (rhs[i] - sup[i] * x[i + 1]) / piv
        nrm = np.sqrt(np.sum(x * x))
        x /= nrm
    out[:m] = x


@nb.njit(cache=True, fastmath={"nnan", "ninf", "nsz", "arcp"})
def lanczos_one(masks, data, v_start, lock, tol, max_steps):
    """Lowest Ritz pair of one Hamiltonian on the complement of ``lock``.

    The Hamiltonian is given by flip pattern: ``H[r, r ^ masks[k]] = data[k, r]``.

    ``lock`` is a ``(k, dim)`` array of orthonormal rows projected out of every Krylov vector
    (``k = 0``: no deflation). Returns ``(theta0, res0, x, steps)``: the lowest Ritz value, its
    residual norm ``|β_m s_m|``, its Ritz vector and the number of steps (= matvecs). Stops when
    ``res0 <= tol * max(1, |theta0|)``.
    """
    dim = v_start.shape[0]
    q = np.empty((max_steps + 1, dim), dtype=v_start.dtype)
    alpha = np.zeros(max_steps)
    beta = np.zeros(max_steps)
    s = np.zeros(max_steps)
    w = v_start.copy()
    for k in range(lock.shape[0]):
        c = 0.0 * w[0]
        for r in range(dim):
            c += np.conj(lock[k, r]) * w[r]
        for r in range(dim):
            w[r] -= c * lock[k, r]
    q[0] = w / np.sqrt(np.sum(np.abs(w) ** 2))
    m = 0
    theta0 = 0.0
    res0 = np.inf
    for j in range(max_steps):
        for r in range(dim):
            w[r] = 0.0
        for k in range(masks.shape[0]):
            mk = masks[k]
            for r in range(dim):
                w[r] += data[k, r] * q[j, r ^ mk]
        a = 0.0
        for r in range(dim):
            a += (np.conj(q[j, r]) * w[r]).real
        alpha[j] = a
        # three-term recurrence w -= α q_j + β q_{j-1}, then one local reorthogonalisation
        bprev = beta[j - 1] if j > 0 else 0.0
        c = 0.0 * w[0]
        for r in range(dim):
            w[r] -= a * q[j, r]
            if j > 0:
                w[r] -= bprev * q[j - 1, r]
            c += np.conj(q[j, r]) * w[r]
        for r in range(dim):
            w[r] -= c * q[j, r]
        for k in range(lock.shape[0]):  # deflation
            c = 0.0 * w[0]
            for r in range(dim):
                c += np.conj(lock[k, r]) * w[r]
            for r in range(dim):
                w[r] -= c * lock[k, r]
        bj = 0.0
        for r in range(dim):
            bj += w[r].real * w[r].real + w[r].imag * w[r].imag
        bj = np.sqrt(bj)
        beta[j] = bj
        m = j + 1
        breakdown = bj <= 1e-12 * max(1.0, abs(a))
        if m % 3 == 0 or breakdown or m == max_steps or m == dim - lock.shape[0]:
            theta0 = kth_eigenvalue(alpha, beta, m, 0)
            tridiag_vector(alpha, beta, m, theta0, s)
            res0 = abs(bj * s[m - 1])
            if res0 <= tol * max(1.0, abs(theta0)) or breakdown or m == dim - lock.shape[0]:
                break
        if j + 1 < max_steps:
            for r in range(dim):
                q[j + 1, r] = w[r] / bj
    x = np.zeros(dim, dtype=v_start.dtype)
    for i in range(m):
        for r in range(dim):
            x[r] += s[i] * q[i, r]
    x /= np.sqrt(np.sum(np.abs(x) ** 2))
    return theta0, res0, x, m


@nb.njit(cache=True, parallel=True)
def lanczos_batch(masks, data, v0, v_alt, tol, gap_tol, max_steps,
                  out_e, out_res, out_vec, out_steps, out_e1, out_res1):  # fmt: skip
    """Ground states of ``data.shape[0]`` Hamiltonians sharing one flip pattern, in parallel.

    With ``gap_tol > 0``, a second run from ``v_alt`` deflated against the ground vector gives the
    next level (``out_e1``, residual ``out_res1``): the gap, and a second copy of the ground level
    if it is degenerate (a single Krylov space holds only one direction of each eigenspace).
    """
    empty = np.zeros((0, v0.shape[1]), dtype=v0.dtype)
    for b in nb.prange(data.shape[0]):
        e, r0, x, m = lanczos_one(masks, data[b], v0[b], empty, tol, max_steps)
        out_e[b] = e
        out_res[b] = r0
        out_vec[b] = x
        out_steps[b] = m
        out_e1[b] = np.nan
        out_res1[b] = np.inf
        if gap_tol > 0:
            lock = np.empty((1, x.shape[0]), dtype=x.dtype)
            lock[0] = x
            e1, r1, _, m1 = lanczos_one(masks, data[b], v_alt, lock, gap_tol, max_steps)
            out_e1[b] = e1
            out_res1[b] = r1
            out_steps[b] = m + m1
