"""Compiled (numba) loops over the flip-pattern layout; imported only when first needed.

Compiled code is cached by numba next to this module, so the compilation cost (tens of seconds)
is paid once per installation. Everything that calls into these loops lives in this one module
(numba's cache does not notice edits to a jitted callee in another file).

A Hamiltonian is given by flip pattern, ``H[r, r ^ masks[k]] = data[k, r]``
(:attr:`qeprop.hamiltonian.SparseStructure.mask_layout`); ``real[k]`` marks the patterns whose data
is real, whose products then take two real multiplications instead of a complex one. A string
``P_s`` with basis masks ``(x_s, z_s)`` and ``n_Y(s)`` Y letters has the elements

.. math::  ⟨r| P_s |r \\oplus x_s⟩ = i^{n_Y(s)} σ_s[r], \\qquad
           σ_s[r] = (-1)^{|(r \\oplus x_s) \\wedge z_s|},

and the string tables of :class:`qeprop.hamiltonian.MaskStrings` give ``k_s`` (the index of
``x_s`` in ``masks``), ``i^{n_Y(s)} = ph_re[s] + i ph_im[s]`` and the ``(S, dim)`` ±1 rows ``σ_s``
(``int8``). Contents: the batched Lanczos solver of :mod:`qeprop.solvers.batch`
(:func:`lanczos_batch`), the data of many coefficient vectors (:func:`fill_mask_data`) and the
string expectations of many pure states (:func:`pure_expectations`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "apply_masks",
    "fill_mask_data",
    "lanczos_batch",
    "lanczos_one",
    "lowest_eigenvalue",
    "pure_expectations",
]

# no NaN/inf inputs reach these loops (the solver checks its Hamiltonians). Sums are NOT
# reordered ("reassoc" is left out): a vectorised reduction's rounding depends on the alignment of
# its arrays, which differs between a fresh process and one that reuses scratch memory, and a
# resumed run must repeat an uninterrupted one bit for bit
_FAST = {"nnan", "ninf", "nsz", "arcp", "contract"}


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
def lowest_eigenvalue(alpha, beta, m):
    """Lowest eigenvalue of the m x m symmetric tridiagonal matrix ``T`` (diagonal ``alpha``,
    off-diagonal ``beta``) by Laguerre's method from below.

    With the pivots ``d_i(x)`` of ``T - x = L D L^T`` (``d_1 = α_1 - x``,
    ``d_i = α_i - x - β_{i-1}² / d_{i-1}``) and their derivatives, ``S1 = Σ_j 1/(λ_j - x)
    = -Σ_i d_i'/d_i`` and ``S2 = Σ_j 1/(λ_j - x)² = -Σ_i (d_i''/d_i - (d_i'/d_i)²)``; the step
    ``x ← x + m / (S1 + sqrt((m - 1)(m S2 - S1²)))`` never passes the lowest eigenvalue from
    below and converges cubically, from the Gershgorin bound in a few steps. A pivot ``≤ 0`` means
    ``x`` reached the eigenvalue to rounding. Falls back to bisection (:func:`kth_eigenvalue`) if
    the iteration stalls.
    """
    if m == 1:
        return alpha[0]
    x = np.inf
    scale = 0.0
    for i in range(m):
        r = 0.0
        if i > 0:
            r += abs(beta[i - 1])
        if i < m - 1:
            r += abs(beta[i])
        x = min(x, alpha[i] - r)
        scale = max(scale, abs(alpha[i]) + r)
    x -= 1e-3 * max(scale, 1e-300)  # strictly below the spectrum
    for _ in range(60):
        d = alpha[0] - x
        if d <= 0.0:
            return x
        inv = 1.0 / d
        dp = -1.0
        dpp = 0.0
        t = dp * inv
        s1 = -t
        s2 = t * t
        for i in range(1, m):
            b2 = beta[i - 1] * beta[i - 1]
            dpp = b2 * inv * (dpp * inv - 2.0 * t * t)
            dp = -1.0 + b2 * t * inv
            d = alpha[i] - x - b2 * inv
            if d <= 0.0:
                return x
            inv = 1.0 / d
            t = dp * inv
            s1 -= t
            s2 -= dpp * inv - t * t
        disc = (m - 1) * (m * s2 - s1 * s1)
        step = m / (s1 + np.sqrt(max(disc, 0.0)))
        if not step > 2.2e-16 * max(1.0, abs(x)):
            return x + max(step, 0.0)
        x += step
    return kth_eigenvalue(alpha, beta, m, 0)


@nb.njit(cache=True)
def tridiag_vector(alpha, beta, m, theta, out, work):
    """Unit eigenvector ``out[:m]`` of the tridiagonal matrix for eigenvalue theta.

    Three steps of inverse iteration with ``T - σ``, ``σ = θ - 1e-13 max(1, |θ|)``, factored once
    by Gaussian elimination without pivoting (``T - σ`` is nearly singular by design; tiny pivots
    are bumped). ``work`` has room for ``2 m`` numbers.
    """
    shift = theta - 1e-13 * max(1.0, abs(theta))
    inv = work[:m]  # 1 / pivot
    mul = work[m : 2 * m]  # elimination multipliers
    piv = alpha[0] - shift
    if abs(piv) < 1e-300:
        piv = 1e-300
    inv[0] = 1.0 / piv
    for i in range(1, m):
        f = beta[i - 1] * inv[i - 1]
        mul[i] = f
        piv = alpha[i] - shift - f * beta[i - 1]
        if abs(piv) < 1e-300:
            piv = 1e-300
        inv[i] = 1.0 / piv
    x = out
    for i in range(m):
        x[i] = 1.0
    for _ in range(3):
        for i in range(1, m):
            x[i] -= mul[i] * x[i - 1]
        x[m - 1] *= inv[m - 1]
        for i in range(m - 2, -1, -1):
            x[i] = (x[i] - beta[i] * x[i + 1]) * inv[i]
        nrm = 0.0
        for i in range(m):
            nrm += x[i] * x[i]
        nrm = 1.0 / np.sqrt(nrm)
        for i in range(m):
            x[i] *= nrm


@nb.njit(cache=True, fastmath=_FAST)
def fill_one(coef, offsets, order, ph_re, ph_im, signs, width, out):
    """``D[k, r] = Σ_{s: k_s = k} coef[s] (ph_re[s] + i ph_im[s]) σ_s[r]`` for one vector ``coef``.

    The strings of pattern ``k`` are ``order[offsets[k]:offsets[k + 1]]``. ``out`` is the float
    view of ``D`` ``(n_masks, width * dim)``: ``width = 2`` for complex data (``Re D[k, r] =
    out[k, 2r]``, ``Im D[k, r] = out[k, 2r + 1]``), ``width = 1`` for real data (every ``ph_im``
    is then 0). Real and imaginary parts are summed in contiguous rows, then interleaved.
    """
    dim = out.shape[1] // width
    tre = np.empty(dim)
    tim = np.empty(dim)
    for k in range(out.shape[0]):
        for r in range(dim):
            tre[r] = 0.0
            tim[r] = 0.0
        for j in range(offsets[k], offsets[k + 1]):
            s = order[j]
            sg = signs[s]
            if ph_im[s] == 0.0:
                cr = coef[s] * ph_re[s]
                for r in range(dim):
                    tre[r] += cr * sg[r]
            else:
                ci = coef[s] * ph_im[s]
                for r in range(dim):
                    tim[r] += ci * sg[r]
        row = out[k]
        if width == 2:
            for r in range(dim):
                row[2 * r] = tre[r]
                row[2 * r + 1] = tim[r]
        else:
            for r in range(dim):
                row[r] = tre[r]


@nb.njit(cache=True)
def fill_mask_data(coef, offsets, order, ph_re, ph_im, signs, width, out):
    """Mask-layout data of ``H_b = Σ_s coef[b, s] P_s`` for every row ``b`` of ``coef`` ``(B, S)``.

    ``H_b[r, r ^ masks[k]] = D[b, k, r]`` with ``out`` the float view ``(B, n_masks, width * dim)``
    of ``D`` (see :func:`fill_one`).
    """
    for b in range(coef.shape[0]):
        fill_one(coef[b], offsets, order, ph_re, ph_im, signs, width, out[b])


@nb.njit(cache=True, fastmath=_FAST)
def _expect_one(v, masks, str_off, str_order, ph_re, ph_im, signs, out):
    """``out[s] = Re⟨v| P_s |v⟩`` for every string ``s`` of one pure state ``v`` ``(dim,)``.

    Per mask ``m_k``: ``u[r] = conj(v[r]) v[r ^ m_k]``, then for each string of the mask
    ``⟨P_s⟩ = Re(i^{n_Y} Σ_r σ_s[r] u[r]) = ph_re Σ σ Re u - ph_im Σ σ Im u``.
    """
    dim = v.shape[0]
    ure = np.empty(dim)
    uim = np.empty(dim)
    for k in range(masks.shape[0]):
        if str_off[k + 1] == str_off[k]:
            continue
        mk = masks[k]
        for r in range(dim):
            a = v[r]
            c = v[r ^ mk]
            ure[r] = a.real * c.real + a.imag * c.imag
            uim[r] = a.real * c.imag - a.imag * c.real
        for j in range(str_off[k], str_off[k + 1]):
            s = str_order[j]
            sg = signs[s]
            acc = 0.0
            if ph_im[s] == 0.0:
                for r in range(dim):
                    acc += sg[r] * ure[r]
                out[s] = ph_re[s] * acc
            else:
                for r in range(dim):
                    acc += sg[r] * uim[r]
                out[s] = -ph_im[s] * acc


@nb.njit(cache=True)
def pure_expectations(vecs, masks, str_off, str_order, ph_re, ph_im, signs, out):
    """``out[b, s] = Re⟨v_b| P_s |v_b⟩`` for the rows ``v_b`` of ``vecs`` ``(B, dim)``.

    ``str_order`` lists the strings grouped by mask (group ``k`` is
    ``str_order[str_off[k]:str_off[k + 1]]``). Each row is summed in a fixed order.
    """
    for b in range(vecs.shape[0]):
        _expect_one(vecs[b], masks, str_off, str_order, ph_re, ph_im, signs, out[b])


@nb.njit(cache=True)
def mask_order(real):
    """Pattern indices with the real ones first, and how many are real (see :func:`apply_masks`)."""
    order = np.empty(real.shape[0], dtype=np.int64)
    n = 0
    for k in range(real.shape[0]):
        if real[k]:
            order[n] = k
            n += 1
    j = n
    for k in range(real.shape[0]):
        if not real[k]:
            order[j] = k
            j += 1
    return order, n


@nb.njit(cache=True, fastmath=_FAST)
def apply_masks(masks, order, n_real, data, x, w):
    """``w = H x`` with ``H[r, r ^ masks[k]] = data[k, r]``: ``w[r] = Σ_k data[k, r] x[r ^ m_k]``.

    The patterns are taken in ``order``: its first ``n_real`` have real data (two real products
    each), the rest complex; up to three patterns of a kind share one pass over ``w``. Returns
    ``Re⟨x, w⟩``.
    """
    dim = x.shape[0]
    nm = masks.shape[0]
    for r in range(dim):
        w[r] = 0.0
    j = 0
    while j < nm:
        real = j < n_real
        left = (n_real if real else nm) - j
        if left >= 3:
            k1 = order[j]
            k2 = order[j + 1]
            k3 = order[j + 2]
            m1 = masks[k1]
            m2 = masks[k2]
            m3 = masks[k3]
            d1 = data[k1]
            d2 = data[k2]
            d3 = data[k3]
            if real:
                for r in range(dim):
                    w[r] += d1[r].real * x[r ^ m1] + d2[r].real * x[r ^ m2] + d3[r].real * x[r ^ m3]
            else:
                for r in range(dim):
                    w[r] += d1[r] * x[r ^ m1] + d2[r] * x[r ^ m2] + d3[r] * x[r ^ m3]
            j += 3
        elif left == 2:
            k1 = order[j]
            k2 = order[j + 1]
            m1 = masks[k1]
            m2 = masks[k2]
            d1 = data[k1]
            d2 = data[k2]
            if real:
                for r in range(dim):
                    w[r] += d1[r].real * x[r ^ m1] + d2[r].real * x[r ^ m2]
            else:
                for r in range(dim):
                    w[r] += d1[r] * x[r ^ m1] + d2[r] * x[r ^ m2]
            j += 2
        else:
            k1 = order[j]
            m1 = masks[k1]
            d1 = data[k1]
            if real:
                for r in range(dim):
                    w[r] += d1[r].real * x[r ^ m1]
            else:
                for r in range(dim):
                    w[r] += d1[r] * x[r ^ m1]
            j += 1
    a = 0.0
    for r in range(dim):
        a += x[r].real * w[r].real + x[r].imag * w[r].imag
    return a


@nb.njit(cache=True, fastmath=_FAST)
def lanczos_one(masks, order, n_real, data, v_start, lock, tol, max_steps, q, x, want_vector):
    """Lowest Ritz pair of one Hamiltonian on the complement of ``lock``.

    ``lock`` is a ``(k, dim)`` array of orthonormal rows projected out of every Krylov vector
    (``k = 0``: no deflation); ``q`` is scratch of shape ``(max_steps + 1, dim)`` for the Krylov
    basis and ``x`` a work vector, which receives the Ritz vector if ``want_vector``. Returns
    ``(theta0, res0, steps)``: the lowest Ritz value, its residual norm ``|β_m s_m|`` and the
    number of steps (= matvecs); the run stops when ``res0 <= tol * max(1, |theta0|)``.

    Step ``j``: ``w = H q_j - α_j q_j - β_{j-1} q_{j-1}`` in one pass, which also sums
    ``c = ⟨q_j, w⟩``, ``⟨lock_k, w⟩`` and ``|w|²``; then ``q_{j+1} = (w - c q_j - Σ_k ⟨lock_k, w⟩
    lock_k) / β_j`` (one local reorthogonalisation and the deflation) with
    ``β_j² = |w|² - |c|² - Σ_k |⟨lock_k, w⟩|²``. The residual is checked every third step, and at
    every step once the rate of the last checks predicts convergence within three.
    """
    dim = v_start.shape[0]
    nlock = lock.shape[0]
    alpha = np.zeros(max_steps)
    beta = np.zeros(max_steps)
    s = np.zeros(max_steps)
    work = np.empty(2 * max_steps)
    cl = np.zeros(max(nlock, 1), dtype=q.dtype)
    w = x  # x doubles as the work vector until the Ritz vector is formed
    for r in range(dim):
        w[r] = v_start[r]
    for k in range(nlock):
        c = 0.0 * w[0]
        for r in range(dim):
            c += np.conj(lock[k, r]) * w[r]
        for r in range(dim):
            w[r] -= c * lock[k, r]
    nrm = 0.0
    for r in range(dim):
        nrm += w[r].real * w[r].real + w[r].imag * w[r].imag
    nrm = 1.0 / np.sqrt(nrm)
    for r in range(dim):
        q[0, r] = w[r] * nrm
    m = 0
    theta0 = 0.0
    res0 = np.inf
    last_m = 0
    last_res = np.inf
    next_check = 3
    limit = dim - nlock
    for j in range(max_steps):
        qj = q[j]
        a = apply_masks(masks, order, n_real, data, qj, w)
        alpha[j] = a
        c = 0.0 * w[0]
        nw = 0.0
        for k in range(nlock):
            cl[k] = 0.0
        if j > 0:
            bprev = beta[j - 1]
            qp = q[j - 1]
            for r in range(dim):
                wr = w[r] - a * qj[r] - bprev * qp[r]
                w[r] = wr
                c += np.conj(qj[r]) * wr
                nw += wr.real * wr.real + wr.imag * wr.imag
        else:
            for r in range(dim):
                wr = w[r] - a * qj[r]
                w[r] = wr
                c += np.conj(qj[r]) * wr
                nw += wr.real * wr.real + wr.imag * wr.imag
        b2 = nw - (c.real * c.real + c.imag * c.imag)
        for k in range(nlock):
            ck = 0.0 * w[0]
            for r in range(dim):
                ck += np.conj(lock[k, r]) * w[r]
            cl[k] = ck
            b2 -= ck.real * ck.real + ck.imag * ck.imag
        bj = np.sqrt(max(b2, 0.0))
        beta[j] = bj
        m = j + 1
        breakdown = bj <= 1e-12 * max(1.0, abs(a))
        if m >= next_check or breakdown or m == max_steps or m == limit:
            theta0 = lowest_eigenvalue(alpha, beta, m)
            tridiag_vector(alpha, beta, m, theta0, s, work)
            res0 = abs(bj * s[m - 1])
            goal = tol * max(1.0, abs(theta0))
            if res0 <= goal or breakdown or m == limit:
                break
            # steps to convergence at the rate since the last check (three if unknown)
            ahead = 3
            if last_m > 0 and 0.0 < res0 < last_res:
                rate = np.log(res0 / last_res) / (m - last_m)
                ahead = min(3, max(1, int(np.ceil(np.log(goal / res0) / rate))))
            last_m = m
            last_res = res0
            next_check = m + ahead
        if j + 1 < max_steps:
            inv = 1.0 / bj
            qn = q[j + 1]
            if nlock == 0:
                for r in range(dim):
                    qn[r] = (w[r] - c * qj[r]) * inv
            else:
                for r in range(dim):
                    qn[r] = w[r] - c * qj[r]
                for k in range(nlock):
                    ck = cl[k]
                    for r in range(dim):
                        qn[r] -= ck * lock[k, r]
                for r in range(dim):
                    qn[r] *= inv
    if not want_vector:
        return theta0, res0, m
    for r in range(dim):
        x[r] = 0.0
    for i in range(m):
        si = s[i]
        qi = q[i]
        for r in range(dim):
            x[r] += si * qi[r]
    nrm = 0.0
    for r in range(dim):
        nrm += x[r].real * x[r].real + x[r].imag * x[r].imag
    nrm = 1.0 / np.sqrt(nrm)
    for r in range(dim):
        x[r] *= nrm
    return theta0, res0, m


@nb.njit(cache=True, parallel=True)
def lanczos_batch(masks, real, offsets, order, ph_re, ph_im, signs, coef, idx, v0, v_alt, tol,
                  gap_tol, max_steps, work, data_work,
                  out_e, out_res, out_vec, out_steps, out_e1, out_res1):  # fmt: skip
    """Ground states of ``H_b = Σ_s coef[b, s] P_s`` for ``b = idx[i]``, in parallel over ``i``.

    Each thread builds the flip-pattern data of its Hamiltonian (:func:`fill_one`) in its slab of
    ``data_work`` ``(n_threads, n_masks, dim)`` and runs Lanczos with its slab of ``work``
    ``(n_threads, max_steps + 1, dim)``. Element ``i`` starts from ``v0[i]`` and writes
    ``out_*[i]``. With ``gap_tol > 0``, a second run from ``v_alt`` deflated against the ground
    vector gives the next level (``out_e1``, residual ``out_res1``): the gap, and a second copy of
    the ground level if it is degenerate (a single Krylov space holds only one direction of each
    eigenspace). Each element's arithmetic is the same whichever thread runs it.
    """
    dim = v0.shape[1]
    by_kind, n_real = mask_order(real)
    for i in nb.prange(idx.shape[0]):
        t = nb.get_thread_id()
        data = data_work[t]
        flat = data.view(np.float64)
        fill_one(coef[idx[i]], offsets, order, ph_re, ph_im, signs, flat.shape[1] // dim, flat)
        q = work[t]
        x = out_vec[i]
        e, r0, m = lanczos_one(
            masks, by_kind, n_real, data, v0[i], v0[i:i, :], tol, max_steps, q, x, True
        )
        out_e[i] = e
        out_res[i] = r0
        out_steps[i] = m
        out_e1[i] = np.nan
        out_res1[i] = np.inf
        if gap_tol > 0:
            lock = x.reshape((1, dim))
            w = np.empty(dim, dtype=x.dtype)
            e1, r1, m1 = lanczos_one(
                masks, by_kind, n_real, data, v_alt, lock, gap_tol, max_steps, q, w, False
            )
            out_e1[i] = e1
            out_res1[i] = r1
            out_steps[i] = m + m1
