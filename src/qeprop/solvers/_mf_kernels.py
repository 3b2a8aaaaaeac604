"""Compiled (numba) kernels of :mod:`qeprop.solvers.matrix_free`; imported only when first needed.

Layout shared by the kernels
----------------------------
A basis index is split as ``r = hi << B | lo`` (``lo`` the ``B`` low bits, a block of
``L = 2**B`` consecutive amplitudes). Vectors are flat arrays of ``dim * K`` entries (a C-ordered
``(dim, K)`` block of ``K`` columns; entry ``(r, k)`` at ``r * K + k``). The strings sharing one X
mask ``m`` form a group ``g`` with ``mhi[g] = m >> B`` and ``mlo[g] = m & (L - 1)``; groups are
ordered by ``mhi`` so that groups reading the same source block follow each other.

The row of a group in block ``hi`` is ``D_g(hi, lo) = sc_g(hi) + T_g(hi, lo)``:

* ``sc_g(hi) = Σ_t sc_c[t] (-1)**popcount(hi & sc_z[t])`` over the group's strings without low Z
  bits (a scalar per block);
* ``mode[g] == 0``: no table (``T = 0``);
* ``mode[g] == 1``: ``T_g(hi, ·) = tables[tb_off[g] + p]`` with ``p`` the bits of ``hi`` at the
  positions ``aux[aux_off[g]:aux_off[g + 1]]`` (a table row per pattern of the high Z bits);
* ``mode[g] == 2``: ``T_g(hi, ·) = Σ_j (-1)**popcount(hi & aux[aux_off[g] + j]) tables[tb_off[g]
  + j]`` (one sub-table per distinct high Z pattern, summed per block).

Complex vectors reach :func:`apply_groups` as float64 views ((re, im) pairs, flag ``cplx``), so
it is compiled once; the other kernels have a float64 and a complex128 specialisation. The
parallel kernels are thin ``prange`` loops over serial range functions, and only the innermost
loops are inlined: this keeps the one-time compile short (compiled code is cached next to this
module).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["apply_groups", "combine", "deflate", "lanczos_step", "pair_sums", "residual_norm"]

# no "reassoc": reordered (vectorised) sums round differently with the alignment of the vectors,
# and results must not depend on which memory a solve happens to reuse
_FAST = {"nsz", "arcp", "contract"}


@nb.njit(fastmath=_FAST)
def _sign(x):
    """``(-1)**popcount(x)`` for a non-negative 64-bit integer."""
    x ^= x >> 32
    x ^= x >> 16
    x ^= x >> 8
    x ^= x >> 4
    x ^= x >> 2
    x ^= x >> 1
    return 1.0 - 2.0 * (x & 1)


#: inner products and norms over whole vectors are summed per chunk of this many entries, then
#: over the chunks. A plain running sum over millions of entries is off by about 1e-12 relative
#: (every addition to a large partial sum rounds): at 24 qubits the error of a Ritz vector's norm
#: alone moved its energy by 1.2e-10, a floor under the Lanczos residual above the requested
#: 1e-12 |E|, and the solve restarted without end. Chunked sums are 10-50 times more accurate.
_CHUNK = 1024


@nb.njit(fastmath=_FAST)
def _dot(a, b):
    """``⟨a|b⟩ = Σ conj(a_i) b_i``, summed per chunk (see ``_CHUNK``)."""
    n = a.size
    total = b[0] * 0.0
    for c0 in range(0, n, _CHUNK):
        part = b[0] * 0.0
        for i in range(c0, min(n, c0 + _CHUNK)):
            part += np.conj(a[i]) * b[i]
        total += part
    return total


@nb.njit(fastmath=_FAST)
def _norm2(a):
    """``||a||²``, summed per chunk (see ``_CHUNK``)."""
    n = a.size
    total = 0.0
    for c0 in range(0, n, _CHUNK):
        part = 0.0
        for i in range(c0, min(n, c0 + _CHUNK)):
            part += (np.conj(a[i]) * a[i]).real
        total += part
    return total


@nb.njit(fastmath=_FAST)
def _row_scalar(g, hi, sc_off, sc_z, sc_c):
    sc = 0.0
    for t in range(sc_off[g], sc_off[g + 1]):
        sc += sc_c[t] * _sign(hi & sc_z[t])
    return sc


@nb.njit(inline="always")
def _real_chunk(out, o0, v, s0, row, r0, sc, n, has_row):
    """``out[o0 + t] += (row[r0 + t] + sc) * v[s0 + t]`` for ``t < n`` (unsigned offsets, so the
    loop compiles without index wrap-around checks and vectorises)."""
    if has_row:
        for t in range(n):
            out[o0 + t] += (row[r0 + t] + sc) * v[s0 + t]
    else:
        for t in range(n):
            out[o0 + t] += sc * v[s0 + t]


@nb.njit(fastmath=_FAST)
def _xor_block(out, o0, v, s0, row, L, m, cplx, rowc, scr, sci, has_row):
    """``out[o0 + lo] += (row + sc)[lo] * v[s0 + (lo ^ m)]`` element by element (for X masks
    with low bits set, where contiguous chunks would be too short to vectorise)."""
    one = np.uint64(1)
    two = np.uint64(2)
    um = np.uint64(m)
    for lo in range(np.uint64(L)):
        q = lo ^ um
        a = scr
        b = sci
        if not cplx:
            if has_row:
                a += row[lo]
            out[o0 + lo] += a * v[s0 + q]
        else:
            if has_row:
                if rowc:
                    a += row[lo]
                    b += row[np.uint64(L) + lo]
                else:
                    a += row[two * lo]
            vr = v[s0 + two * q]
            vi = v[s0 + two * q + one]
            out[o0 + two * lo] += a * vr - b * vi
            out[o0 + two * lo + one] += a * vi + b * vr


def _make_lane(mu):
    """Kernel for 4 consecutive basis indices whose source is permuted by the 2-bit flip ``mu``.

    ``out[o0 + a] += (row + sc)[c0 + a] * v[s0 + (a ^ mu)]`` for ``a < 4`` (per float of each
    index). ``mu`` is a compile-time constant, so the lane permutation is known to the compiler.
    """

    @nb.njit(inline="always")
    def lane(out, o0, v, s0, row, c0, L, cplx, rowc, scr, sci, has_row):
        u = np.uint64
        if not cplx:
            for a in range(4):
                c = scr
                if has_row:
                    c += row[c0 + u(a)]
                out[o0 + u(a)] += c * v[s0 + u(a ^ mu)]
        elif not rowc:
            for a in range(4):
                c = scr
                if has_row:
                    c += row[u(2) * c0 + u(2 * a)]
                out[o0 + u(2 * a)] += c * v[s0 + u(2 * (a ^ mu))]
                out[o0 + u(2 * a + 1)] += c * v[s0 + u(2 * (a ^ mu) + 1)]
        else:
            for a in range(4):
                x = scr
                y = sci
                if has_row:
                    x += row[c0 + u(a)]
                    y += row[u(L) + c0 + u(a)]
                vr = v[s0 + u(2 * (a ^ mu))]
                vi = v[s0 + u(2 * (a ^ mu) + 1)]
                out[o0 + u(2 * a)] += x * vr - y * vi
                out[o0 + u(2 * a + 1)] += x * vi + y * vr

    return lane


_lane1 = _make_lane(1)
_lane2 = _make_lane(2)
_lane3 = _make_lane(3)


@nb.njit(inline="always")
def _complex_chunk(out, o0, v, s0, row, r0, i0, scr, sci, n, has_row):
    """``out[p] += (row[r0 + p] + scr + i (row[i0 + p] + sci)) v[p]`` over ``n`` complex entries
    stored as (re, im) float pairs starting at ``o0``/``s0``."""
    two = np.uint64(2)
    one = np.uint64(1)
    for p in range(n):
        a = scr
        b = sci
        if has_row:
            a += row[r0 + p]
            b += row[i0 + p]
        vr = v[s0 + two * p]
        vi = v[s0 + two * p + one]
        out[o0 + two * p] += a * vr - b * vi
        out[o0 + two * p + one] += a * vi + b * vr


@nb.njit(inline="always")
def _real_chunk2(out, o0, v, s1, row1, r1, sc1, s2, row2, r2, sc2, n):
    """Two groups in one pass: ``out[o0 + t] += (row1 + sc1) v[s1 + t] + (row2 + sc2) v[s2 + t]``
    (rows at offsets ``r1``, ``r2``); halves the loads and stores of ``out``."""
    for t in range(n):
        out[o0 + t] += (row1[r1 + t] + sc1) * v[s1 + t] + (row2[r2 + t] + sc2) * v[s2 + t]


@nb.njit(fastmath=_FAST)
def _group_row(g, hi, mode, aux_off, aux, tb_off, tables, scratch, zero):
    """The table row of group ``g`` in block ``hi`` (``zero`` for groups without a table)."""
    md = mode[g]
    if md == 1:
        p = 0
        for b in range(aux_off[g], aux_off[g + 1]):
            p |= ((hi >> aux[b]) & 1) << (b - aux_off[g])
        return tables[tb_off[g] + p]
    if md == 2:
        scratch[:] = 0.0
        for j in range(aux_off[g + 1] - aux_off[g]):
            s = _sign(hi & aux[aux_off[g] + j])
            sub = tables[tb_off[g] + j]
            for t in range(scratch.size):
                scratch[t] += s * sub[t]
        return scratch
    return zero


@nb.njit(cache=True, fastmath=_FAST)
def _apply_range(v, out, K, B, cplx, h0, h1, mhi, mlo, mode, rowc, sc_off, sc_z, sc_re, sc_im,
                 tb_off, aux_off, aux, tables):  # fmt: skip
    """The blocks ``h0 <= hi < h1`` of :func:`apply_groups` (serial)."""
    L = 1 << B
    width = 2 * K if cplx else K  # floats per basis index
    ngroups = mhi.size
    u = np.uint64
    # groups applied as contiguous runs of real rows (the fused pairs)
    plain = np.zeros(ngroups, dtype=np.bool_)
    for g in range(ngroups):
        m = mlo[g]
        step = m & -m if m != 0 else L
        plain[g] = K == 1 and step >= 4 and not (cplx and rowc[g])
    scratch = np.empty(tables.shape[1])
    scratch2 = np.empty(tables.shape[1])
    zero = np.zeros(tables.shape[1])
    for hi in range(h0, h1):
        wbase = hi * L * width
        for i in range(wbase, wbase + L * width):
            out[i] = 0.0
        g = 0
        while g < ngroups:
            md = mode[g]
            scr = _row_scalar(g, hi, sc_off, sc_z, sc_re)
            sci = _row_scalar(g, hi, sc_off, sc_z, sc_im)
            if md == 0 and scr == 0.0 and sci == 0.0:
                g += 1
                continue
            row = _group_row(g, hi, mode, aux_off, aux, tb_off, tables, scratch, zero)
            has_row = md != 0
            src = (hi ^ mhi[g]) * L
            m = mlo[g]
            step = m & -m if m != 0 else L
            if plain[g] and g + 1 < ngroups and plain[g + 1]:
                # two groups in one pass over the block
                g2 = g + 1
                sc2 = _row_scalar(g2, hi, sc_off, sc_z, sc_re)
                row2 = _group_row(g2, hi, mode, aux_off, aux, tb_off, tables, scratch2, zero)
                src2 = (hi ^ mhi[g2]) * L
                m2 = mlo[g2]
                step2 = m2 & -m2 if m2 != 0 else L
                st = min(step, step2)
                f = 2 if cplx else 1  # real rows of complex data hold every entry twice
                for c0 in range(0, L, st):
                    _real_chunk2(
                        out, u(wbase + c0 * width),
                        v, u((src + (c0 ^ m)) * width), row, u(f * c0), scr,
                        u((src2 + (c0 ^ m2)) * width), row2, u(f * c0), sc2,
                        u(st * width),
                    )  # fmt: skip
                g += 2
                continue
            g += 1
            if K > 1:
                for lo in range(L):
                    a = scr
                    b = sci
                    if has_row:
                        if not cplx:
                            a += row[lo]
                        elif rowc[g - 1]:
                            a += row[lo]
                            b += row[L + lo]
                        else:
                            a += row[2 * lo]
                    oi = (wbase // width + lo) * width
                    vi = (src + (lo ^ m)) * width
                    if not cplx:
                        for k in range(K):
                            out[oi + k] += a * v[vi + k]
                    else:
                        for k in range(K):
                            xr = v[vi + 2 * k]
                            xi = v[vi + 2 * k + 1]
                            out[oi + 2 * k] += a * xr - b * xi
                            out[oi + 2 * k + 1] += a * xi + b * xr
                continue
            rc = rowc[g - 1]
            if step < 4 and L < 4:
                _xor_block(
                    out, u(wbase), v, u(src * width), row, L, m, cplx, rc, scr, sci, has_row,
                )  # fmt: skip
                continue
            if step < 4:
                # flips of the two lowest bits: a fixed permutation of 4 consecutive indices
                mu = m & 3
                mp = m ^ mu
                for c0 in range(0, L, 4):
                    o0 = u(wbase + c0 * width)
                    s0 = u((src + (c0 ^ mp)) * width)
                    if mu == 1:
                        _lane1(out, o0, v, s0, row, u(c0), L, cplx, rc, scr, sci, has_row)
                    elif mu == 2:
                        _lane2(out, o0, v, s0, row, u(c0), L, cplx, rc, scr, sci, has_row)
                    else:
                        _lane3(out, o0, v, s0, row, u(c0), L, cplx, rc, scr, sci, has_row)
                continue
            for c0 in range(0, L, step):
                o0 = u(wbase + c0 * width)
                s0 = u((src + (c0 ^ m)) * width)
                if not cplx:
                    _real_chunk(out, o0, v, s0, row, u(c0), scr, u(step), has_row)
                elif not rc:
                    _real_chunk(out, o0, v, s0, row, u(2 * c0), scr, u(2 * step), has_row)
                else:
                    _complex_chunk(
                        out, o0, v, s0, row, u(c0), u(L + c0), scr, sci, u(step), has_row
                    )  # fmt: skip


@nb.njit(cache=True, parallel=True)
def apply_groups(v, out, K, B, cplx, nparts, mhi, mlo, mode, rowc, sc_off, sc_z, sc_re, sc_im,
                 tb_off, aux_off, aux, tables):  # fmt: skip
    """``out = Σ_g D_g ∘ (v permuted by the group's X mask)`` (see the module docstring).

    ``out[(hi << B | lo), k] = Σ_g D_g(hi, lo) v[(hi ^ mhi[g]) << B | (lo ^ mlo[g]), k]``; the high
    blocks are split into ``nparts`` contiguous ranges run in parallel. ``v`` and ``out`` are flat
    float64 arrays: ``K`` real columns, or with ``cplx`` ``K`` complex columns as (re, im) pairs.

    Table rows have ``2 L`` floats when ``cplx`` (``rowc[g]``: ``[Re | Im]`` halves; otherwise the
    real part with every entry twice, matching the (re, im) pairs), ``L`` floats otherwise.
    Scalars are ``sc_re + i sc_im`` (``sc_im`` is zero for real data). Consecutive groups whose
    rows are real and whose X masks leave runs of at least 4 indices contiguous are applied in
    pairs.
    """
    L = 1 << B
    width = 2 * K if cplx else K  # floats per basis index
    nhi = v.size // (width * L)
    for part in nb.prange(nparts):
        _apply_range(
            v, out, K, B, cplx, part * nhi // nparts, (part + 1) * nhi // nparts, mhi, mlo, mode,
            rowc, sc_off, sc_z, sc_re, sc_im, tb_off, aux_off, aux, tables,
        )  # fmt: skip


@nb.njit(cache=True, fastmath=_FAST)
def _pair_range(bra, ket, K, weights, B, h0, h1, mhi, mlo, l_off, l_ids, s_off, s_l, s_zhi,
                signs, acc):  # fmt: skip
    """The blocks ``h0 <= hi < h1`` of :func:`pair_sums`, added to ``acc`` (serial)."""
    L = 1 << B
    ngroups = mhi.size
    u = np.empty(L, dtype=bra.dtype)
    nl = 0
    for g in range(ngroups):
        nl = max(nl, l_off[g + 1] - l_off[g])
    a = np.empty(max(nl, 1), dtype=bra.dtype)
    for hi in range(h0, h1):
        wbase = hi * L
        for g in range(ngroups):
            src = (hi ^ mhi[g]) * L
            m = mlo[g]
            if K == 1:
                w0 = weights[0]
                for lo in range(L):
                    u[lo] = w0 * np.conj(bra[wbase + lo]) * ket[src + (lo ^ m)]
            else:
                for lo in range(L):
                    x = bra[0] * 0.0
                    ra = (wbase + lo) * K
                    rb = (src + (lo ^ m)) * K
                    for k in range(K):
                        x += weights[k] * np.conj(bra[ra + k]) * ket[rb + k]
                    u[lo] = x
            for i in range(l_off[g], l_off[g + 1]):
                sg = signs[l_ids[i]]
                x = bra[0] * 0.0
                for lo in range(L):
                    x += sg[lo] * u[lo]
                a[i - l_off[g]] = x
            for s in range(s_off[g], s_off[g + 1]):
                acc[s] += _sign(hi & s_zhi[s]) * a[s_l[s]]


@nb.njit(cache=True, parallel=True)
def pair_sums(bra, ket, K, weights, B, nparts, mhi, mlo, l_off, l_ids, s_off, s_l, s_zhi,
              signs, acc):  # fmt: skip
    """Per-string sums ``acc[part, s] += Σ_{r in part} (-1)**popcount(r & z_s) u_g(r)``.

    ``u_g(r) = Σ_k weights[k] conj(bra[r, k]) ket[r ^ m_g, k]`` for the X mask ``m_g`` of the
    string's group. Low Z patterns: group ``g`` uses the sign rows ``signs[l_ids[i]]`` for ``i`` in
    ``l_off[g]:l_off[g + 1]``; its strings are ``s_off[g]:s_off[g + 1]`` (in group order), string
    ``s`` uses local low pattern ``s_l[s]`` and high pattern ``s_zhi[s]``. The high blocks are
    split into ``nparts`` contiguous ranges run in parallel, one row of ``acc`` each.
    """
    L = 1 << B
    nhi = bra.size // (K * L)
    for part in nb.prange(nparts):
        _pair_range(
            bra, ket, K, weights, B, part * nhi // nparts, (part + 1) * nhi // nparts, mhi, mlo,
            l_off, l_ids, s_off, s_l, s_zhi, signs, acc[part],
        )  # fmt: skip


@nb.njit(cache=True, fastmath=_FAST)
def lanczos_step(w, q, qprev, beta_prev, locked, alpha_in, beta_in, dst):
    """One Lanczos step after ``w = H q``: returns ``(alpha, beta)``; writes ``q_next`` to ``dst``.

    ``r = w - ⟨q|w⟩ q - beta_prev qprev - Σ_k ⟨L_k|w⟩ L_k`` (deflation against the rows of
    ``locked``), then one local reorthogonalisation ``r ← r - ⟨q|r⟩ q``, and ``dst = r / beta``
    with ``beta = ||r||``; ``alpha`` is the real part of the whole coefficient of ``q`` taken
    off (``Re⟨q|w⟩`` up to rounding), so that the tridiagonal matrix and the vectors obey the
    same recurrence. Two passes over the vectors: the first gathers the
    inner products from which ``⟨q|r⟩`` and ``||r||`` follow (``q``, ``qprev`` and the rows of
    ``locked`` orthonormal), the second writes ``dst``; when ``||r||`` is small next to ``||w||``
    (cancellation) the norm is measured explicitly. ``alpha_in``/``beta_in`` (if not NaN) replace
    the computed values (the replay of a second Lanczos pass). ``dst`` may be ``qprev``'s memory;
    ``w`` is left unchanged unless the norm is measured explicitly.
    """
    n = w.size
    nl = locked.shape[0]
    aw = w[0] * 0.0
    pw = w[0] * 0.0
    qpq = w[0] * 0.0
    nw = 0.0
    qq = 0.0
    pp = 0.0
    for c0 in range(0, n, _CHUNK):  # sums per chunk, then over chunks (see _CHUNK)
        aw_c = w[0] * 0.0
        pw_c = w[0] * 0.0
        qpq_c = w[0] * 0.0
        nw_c = 0.0
        qq_c = 0.0
        pp_c = 0.0
        for i in range(c0, min(n, c0 + _CHUNK)):
            x = w[i]
            y = q[i]
            z = qprev[i]
            aw_c += np.conj(y) * x
            pw_c += np.conj(z) * x
            qpq_c += np.conj(y) * z
            nw_c += (np.conj(x) * x).real
            qq_c += (np.conj(y) * y).real
            pp_c += (np.conj(z) * z).real
        aw += aw_c
        pw += pw_c
        qpq += qpq_c
        nw += nw_c
        qq += qq_c
        pp += pp_c
    d = np.zeros(nl, dtype=w.dtype)
    for k in range(nl):
        d[k] = _dot(locked[k], w)
    bp = beta_prev
    # r = w - g q - bp qprev - Σ d_k L_k with g = a + c and c = ⟨q|w - a q - bp qprev⟩ / ⟨q|q⟩;
    # its norm from the inner products, with the measured norms of q and qprev (assuming unit
    # norms would let the norm errors of successive vectors grow geometrically)
    g = (aw - bp * qpq) / qq
    # the diagonal entry is the coefficient of q the update below subtracts (with the local
    # correction), so that the tridiagonal matrix and the vectors obey the same recurrence
    a = g.real if np.isnan(alpha_in) else alpha_in
    nr = nw + (np.conj(g) * g).real * qq + bp * bp * pp - 2.0 * (np.conj(g) * aw).real
    nr += -2.0 * bp * pw.real + 2.0 * bp * (np.conj(g) * qpq).real
    for k in range(nl):
        nr -= (np.conj(d[k]) * d[k]).real
    if nr < 1e-4 * nw:
        # cancellation: form r explicitly in w and measure it
        for i in range(n):
            w[i] -= g * q[i] + bp * qprev[i]
        for k in range(nl):
            lk = locked[k]
            for i in range(n):
                w[i] -= d[k] * lk[i]
        c = _dot(q, w) / qq
        if np.isnan(alpha_in):
            a += c.real
        for i in range(n):
            w[i] -= c * q[i]
        b = np.sqrt(_norm2(w))
        if not np.isnan(beta_in):
            b = beta_in
        if b > 0.0:
            inv = 1.0 / b
            for i in range(n):
                dst[i] = w[i] * inv
        return a, b
    b = np.sqrt(nr)
    if not np.isnan(beta_in):
        b = beta_in
    inv = 1.0 / b
    if nl == 0:
        for i in range(n):
            dst[i] = (w[i] - g * q[i] - bp * qprev[i]) * inv
    else:
        for i in range(n):
            x = w[i] - g * q[i] - bp * qprev[i]
            for k in range(nl):
                x -= d[k] * locked[k, i]
            dst[i] = x * inv
    return a, b


@nb.njit(cache=True, fastmath=_FAST)
def deflate(w, locked):
    """``w ← w - Σ_k ⟨L_k|w⟩ L_k`` (rows of ``locked``, orthonormal); returns ``||w||``."""
    n = w.size
    for k in range(locked.shape[0]):
        lk = locked[k]
        d = _dot(lk, w)
        for i in range(n):
            w[i] -= d * lk[i]
    return np.sqrt(_norm2(w))


@nb.njit(cache=True, fastmath=_FAST)
def residual_norm(hx, x, theta):
    """``||hx - theta x||`` without a temporary vector."""
    n = hx.size
    nrm = 0.0
    for c0 in range(0, n, _CHUNK):
        part = 0.0
        for i in range(c0, min(n, c0 + _CHUNK)):
            r = hx[i] - theta * x[i]
            part += (np.conj(r) * r).real
        nrm += part
    return np.sqrt(nrm)


@nb.njit(cache=True, fastmath=_FAST)
def combine(y, rows, coef):
    """``y += Σ_i coef[i] rows[i]`` (a chunk of ``y`` stays in cache while all rows are read)."""
    n = y.size
    chunk = 2048
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        for j in range(rows.shape[0]):
            s = coef[j]
            rj = rows[j]
            for i in range(c0, c1):
                y[i] += s * rj[i]
