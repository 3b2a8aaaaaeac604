"""The ``gaussian`` backend: ground and Gibbs states of quadratic oscillator Hamiltonians.

For ``N`` modes with ``ξ = (r_0..r_{N-1}, p_0..p_{N-1})``, ``[ξ_a, ξ_b] = iħ Ω_ab``,
``Ω = [[0, I], [-I, 0]]`` and

.. math::  H = ½ ξ^T M ξ + f^T ξ + c   \\qquad (M \\text{ real symmetric, } 2N × 2N),

a ground state exists iff ``M`` is positive definite; the ground and Gibbs states are then
Gaussian, fixed by

* the mean ``ξ̄ = ⟨ξ⟩ = -M⁻¹ f`` (the classical minimum: ``dξ/dt = Ω(Mξ + f)`` vanishes there);
* the symmetrised covariance ``V_ab = ½⟨{Δξ_a, Δξ_b}⟩``,

  .. math::  V = \\frac{ħ}{2} \\, g(K) \\, (iΩ), \\qquad K = iΩM, \\qquad
             g(x) = \\operatorname{sign}(x) \\text{ (ground)}, \\;
             g(x) = \\coth\\frac{ħ x}{2T} \\text{ (thermal)}.

  ``K`` has the eigenvalues ``±ω_k``, the normal-mode frequencies (each once with each sign).
  Check on one oscillator ``H = p²/2m + mω²r²/2``, ``M = diag(mω², 1/m)``: ``K² = ω² I``,
  ``g(K) = g(ω) K/ω`` and ``V = (ħ/2) g(ω) diag(1/(mω), mω)``, i.e.
  ``⟨r²⟩ = ħ/(2mω) coth(ħω/2T)`` and ``⟨p²⟩ = (ħmω/2) coth(ħω/2T)``.

Computation. With the Cholesky factor ``M = L Lᵀ``, ``K = L⁻ᵀ Q Lᵀ`` is similar to the Hermitian
``Q = Lᵀ (iΩ) L`` (purely imaginary, eigenvalues ``λ = ±ω_k``); with ``Q = W Λ W†`` and
``Y = L⁻ᵀ W``,

.. math::  V = \\frac{ħ}{2} \\, Y \\operatorname{diag}(λ g(λ)) Y^†,

real and positive definite (``λ g(λ) = |λ| coth(ħ|λ|/2T)`` or ``|λ|``); ``ħ → 0`` gives the
classical ``V → T M⁻¹`` (thermal) and ``V → 0`` (ground, the state sits at ``ξ̄``).

Energies: ``⟨H⟩ = ½ tr(MV) + ½ ξ̄ᵀMξ̄ + fᵀξ̄ + c = Σ_k (ħω_k/2) coth(ħω_k/2T) + c - ½ fᵀM⁻¹f``;
the ground energy is ``Σ_k ħω_k/2 + c - ½ fᵀM⁻¹f`` and the free energy
``F = Σ_k [ħω_k/2 + T ln(1 - e^{-ħω_k/T})] + c - ½ fᵀM⁻¹f``. The gap is ``ħ min_k ω_k``.

Expectations of the strings (symmetrised monomials): ``⟨1⟩ = 1``, ``⟨ξ_a⟩ = ξ̄_a``,
``⟨sym(ξ_a ξ_b)⟩ = V_ab + ξ̄_a ξ̄_b``. The variance of ``A = a + lᵀξ + ½ ξᵀ A ξ`` (Wick/Isserlis
with the ordered pair function ``C = V + (iħ/2)Ω``; odd moments vanish) is

.. math::  \\operatorname{Var} A = k^T V k + ½ \\operatorname{tr}(AVAV)
           + \\frac{ħ^2}{8} \\operatorname{tr}(AΩAΩ), \\qquad k = l + A ξ̄,

where the last term is the commutator correction (it makes ``Var(r² + p²) = 0`` in the vacuum).

Linear response ``d⟨A⟩/dλ`` for ``H + λB`` (``B ↔ (dM, df)``) differentiates the closed form:
``dξ̄ = -M⁻¹(dM ξ̄ + df)`` and, by the Daleckii-Krein formula for the Fréchet derivative of
``g(K)`` in the eigenbasis of ``K = Y Λ Y⁻¹``,

.. math::  dV = \\frac{ħ}{2} Y \\, [H ∘ (Y^† dM \\, Y)] \\, Y^†, \\qquad
           H_{ij} = λ_i λ_j \\frac{g(λ_i) - g(λ_j)}{λ_i - λ_j}

(``λ_i² g'(λ_i)`` on the diagonal), evaluated without overflow or cancellation (see
:func:`_kernel`). For a thermal state this is the static (Kubo-Mori) susceptibility, the
derivative of the Gibbs expectation value.

Shapes: ``mean (2N,)``, ``cov (2N, 2N)``, ``frequencies (N,)``; operators are given over the string
basis of a :class:`~qeprop.modes.ModeHamiltonian`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg as la

from ..checks import readonly
from ..errors import ProblemError
from ..memory import check_memory
from ..modes import ModeHamiltonian
from ..quadratures import QuadSetting, quad_measurement_settings
from ..states import GaussianEquilibrium
from .exact import blas_threads

if TYPE_CHECKING:
    from . import StateSpec

__all__ = [
    "GaussianForm",
    "decompose",
    "gaussian_memory",
    "measurement_settings",
    "response",
    "shot_estimate",
    "solve",
    "state_from_form",
    "string_expectations",
    "variances",
]

#: relative rounding floor below which an eigenvalue of ``M`` counts as zero (a zero mode)
_ZERO_FLOOR = 1e3 * float(np.finfo(float).eps)


@dataclass(frozen=True)
class GaussianForm:
    """The normal-mode decomposition of a positive-definite ``M`` (``Q = Lᵀ(iΩ)L = W Λ W†``).

    Attributes
    ----------
    chol : (2N, 2N) array
        Lower Cholesky factor ``L`` of ``M``.
    eigvals : (2N,) array
        ``λ`` ascending: ``-ω_{N-1} .. -ω_0, ω_0 .. ω_{N-1}``.
    y : (2N, 2N) complex array
        ``Y = L⁻ᵀ W``: ``K = iΩM = Y Λ Y⁻¹`` with ``Y⁻¹ = W† Lᵀ`` and ``Y Y† = M⁻¹``.
    hbar : float
    """

    chol: np.ndarray
    eigvals: np.ndarray
    y: np.ndarray
    hbar: float

    @property
    def frequencies(self) -> np.ndarray:
        """``ω_k`` ascending ``(N,)``."""
        return self.eigvals[len(self.eigvals) // 2 :]


def _omega_times(x: np.ndarray) -> np.ndarray:
    """``Ω x`` for ``x`` of shape ``(2N, ...)``."""
    n = x.shape[0] // 2
    return np.concatenate([x[n:], -x[:n]])


def decompose(m: np.ndarray, hbar: float) -> GaussianForm:
    """Check that ``M`` is positive definite and diagonalise ``iΩM`` (:class:`GaussianForm`).

    Raises :class:`~qeprop.errors.ProblemError` in one line when the smallest eigenvalue of ``M``
    is negative, or zero within rounding (``≤ 1e3 eps ||M||``: a zero mode such as the free
    translation of a spring network with no pinned mode): then there is no ground state.
    """
    ev = la.eigvalsh(m)
    top = float(np.max(np.abs(ev))) if ev.size else 0.0
    low = float(ev[0])
    if not low > _ZERO_FLOOR * top:
        zero = abs(low) <= _ZERO_FLOOR * top
        raise ProblemError(
            f"the quadratic part of H is not positive definite (smallest eigenvalue {low:.3g}"
            + (
                ", zero within rounding: a zero mode, e.g. a free translation of springs with no "
                "pinned mode or a momentum without a kinetic term"
                if zero
                else ""
            )
            + "): no ground state"
        )
    try:
        chol = la.cholesky(m, lower=True)
    except la.LinAlgError:  # positive only within the rounding of a large matrix
        raise ProblemError(
            f"the quadratic part of H is not positive definite (smallest eigenvalue {low:.3g}, "
            "zero within rounding: a zero mode): no ground state"
        ) from None
    j = chol.T @ _omega_times(chol)
    q = 1j * (j - j.T) / 2  # Hermitian up to rounding; symmetrised
    lam, w = la.eigh(q)
    y = la.solve_triangular(chol.T, w, lower=False)
    return GaussianForm(chol, lam, y, float(hbar))


def _rho(a: np.ndarray) -> np.ndarray:
    """``|a| / (1 - e^{-2|a|})`` (``1/2`` at ``a = 0``), without cancellation."""
    x = np.abs(a)
    den = -np.expm1(-2.0 * x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x / np.where(den > 0, den, 1.0), 0.5)


#: ``ħω_min/2T`` beyond which a Gibbs state equals the ground state in double precision (its
#: thermal corrections are ``e^{-2a} < 1e-34`` relative)
_COLD = 40.0


def _thermal(form: GaussianForm, temperature: float | None) -> float | None:
    """``temperature``, or ``None`` where the Gibbs state is the ground state to rounding (so that
    ``ħω/2T`` never overflows)."""
    if temperature is None or form.hbar * form.frequencies[0] > 2.0 * _COLD * temperature:
        return None
    return temperature


def _occupation(form: GaussianForm, temperature: float | None) -> np.ndarray:
    """``(ħ/2) λ g(λ)`` for every eigenvalue: ``ħ|λ|/2`` (ground) or
    ``(ħ|λ|/2) coth(ħ|λ|/2T) = T ρ(a)(1 + e^{-2|a|})`` with ``a = ħλ/2T`` (thermal)."""
    lam = form.eigvals
    temperature = _thermal(form, temperature)
    if temperature is None:
        return 0.5 * form.hbar * np.abs(lam)
    a = form.hbar * lam / (2.0 * temperature)
    return temperature * _rho(a) * (1.0 + np.exp(-2.0 * np.abs(a)))


def _kernel(form: GaussianForm, temperature: float | None) -> np.ndarray:
    """``(ħ/2) H_ij = (ħ/2) λ_i λ_j (g(λ_i) - g(λ_j))/(λ_i - λ_j)`` ``(2N, 2N)``.

    Ground: ``-ħ|λ_i λ_j|/(|λ_i| + |λ_j|)`` for opposite signs, 0 for equal signs. Thermal, with
    ``a = ħλ/2T``, ``d = a_i - a_j``: ``-2T ρ(a_i) ρ(a_j) e^{|d| - |a_i| - |a_j|} s(d)`` with
    ``s(d) = (1 - e^{-2|d|})/|d|`` (``s(0) = 2``), from
    ``coth a - coth b = -sinh(a - b)/(sinh a sinh b)``: every factor is bounded, so neither a low
    temperature (``a ≫ 1``) nor ``ħ → 0`` (``a → 0``, where the kernel tends to ``-T``) loses
    precision.
    """
    lam = form.eigvals
    temperature = _thermal(form, temperature)
    if temperature is None:
        al = np.abs(lam)
        opposite = np.sign(lam)[:, None] != np.sign(lam)[None, :]
        return np.where(opposite, -form.hbar * np.outer(al, al) / (al[:, None] + al[None, :]), 0.0)
    a = form.hbar * lam / (2.0 * temperature)
    d = np.abs(a[:, None] - a[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(d > 0, -np.expm1(-2.0 * d) / np.where(d > 0, d, 1.0), 2.0)
    x = np.abs(a)
    ex = np.exp(d - x[:, None] - x[None, :])
    r = _rho(a)
    return -2.0 * temperature * np.outer(r, r) * ex * s


def state_from_form(
    form: GaussianForm, f: np.ndarray, c: float, temperature: float | None
) -> GaussianEquilibrium:
    """The Gaussian ground (``temperature=None``) or Gibbs state of ``½ξᵀMξ + fᵀξ + c``."""
    hbar = form.hbar
    mean = -la.cho_solve((form.chol, True), f)
    occ = _occupation(form, temperature)
    yv = form.y * occ
    cov = (yv @ form.y.conj().T).real
    cov = 0.5 * (cov + cov.T)
    shift = c + 0.5 * float(f @ mean)  # c - ½ fᵀ M⁻¹ f
    energy = 0.5 * float(occ.sum()) + shift
    omega = form.frequencies
    if temperature is None:
        free = energy
    else:
        with np.errstate(over="ignore"):  # ħω/T = inf at a vanishing temperature: no term
            x = hbar * omega / temperature
        free = float(np.sum(0.5 * hbar * omega + temperature * np.log(-np.expm1(-x)))) + shift
    return GaussianEquilibrium(
        mean=readonly(mean),
        cov=readonly(cov),
        energy=energy,
        free_energy=free,
        gap=hbar * float(omega[0]),
        frequencies=readonly(omega.copy()),
        hbar=hbar,
        kind="ground" if temperature is None else "thermal",
        temperature=temperature,
    )


def _check_ham(ham: object) -> ModeHamiltonian:
    if not isinstance(ham, ModeHamiltonian):
        raise ProblemError(
            "the gaussian backend solves oscillator networks (a ModeHamiltonian, 'modes' in a "
            f"problem file), not a {type(ham).__name__}",
            where="state.method",
        )
    return ham


def _temperature(spec: StateSpec) -> float | None:
    if spec.kind == "thermal":
        return float(spec.temperature)  # type: ignore[arg-type]
    if spec.kind != "ground":
        raise ProblemError(
            f"the gaussian backend prepares ground and thermal states, not {spec.kind!r} states",
            where="state.kind",
        )
    return None


def solve(ham: object, values: np.ndarray, spec: StateSpec) -> GaussianEquilibrium:
    """The ground or Gibbs state of ``ham(values)`` (no warm start is needed: a direct solve)."""
    h = _check_ham(ham)
    m, f, c = h.quadratic_form(values)
    temperature = _temperature(spec)
    with blas_threads(spec.blas_threads, len(f)):
        return state_from_form(decompose(m, h.hbar), f, c, temperature)


def gaussian_memory(ham: object, spec: StateSpec) -> float:
    """Peak bytes of a solve plus a linear response: about twelve complex ``2N x 2N`` matrices
    (``M``, ``L``, ``Q``, ``W``, ``Y``, LAPACK workspace, ``V``; the response's ``Y†dMY``, the
    kernel and products)."""
    n = getattr(ham, "n_modes", 0)
    return 12.0 * 16.0 * (2 * n) ** 2 + (1 << 20)


# ------------------------------------------------------------------------------ response
def _entries(
    ham: ModeHamiltonian, coef: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(pa, pb, w, l)``: the Hessian ``A`` of ``Σ_s coef_s m_s`` (``½ξᵀAξ``) as entries
    ``A[pa, pb] = w`` (off-diagonal ones in both orders) and the linear part ``l (2N,)``."""
    deg, a, b = ham.string_layout
    nz = coef != 0
    q = nz & (deg == 2)
    qa, qb, qw = a[q], b[q], coef[q]
    off = qa != qb
    pa = np.concatenate([qa, qb[off]])
    pb = np.concatenate([qb, qa[off]])
    w = np.concatenate([np.where(off, qw, 2.0 * qw), qw[off]])
    lin = np.zeros(2 * ham.n_modes)
    sel = nz & (deg == 1)
    np.add.at(lin, a[sel], coef[sel])
    return pa, pb, w, lin


def response(
    ham: object,
    values: np.ndarray,
    state: GaussianEquilibrium,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    """Exact ``d⟨A_i⟩/dλ`` at ``λ = 0`` for ``H(values) + λB`` in the Gaussian ``state``.

    ``a_coef`` ``(n_ops, S)`` and ``b_coef`` ``(S,)`` over the strings of ``ham``; the result has
    shape ``(n_ops,)``. The derivative of the closed form (module docstring): ``O(N³)`` for the
    decomposition, then ``O((E + K) N²)`` for ``E`` Hessian entries of ``B`` and ``K`` quadratic
    strings read by the ``A_i``.
    """
    h = _check_ham(ham)
    a_coef = np.atleast_2d(np.asarray(a_coef, dtype=float))
    b_coef = np.asarray(b_coef, dtype=float)
    with blas_threads(spec.blas_threads, 2 * h.n_modes):
        return _response(h, values, state, a_coef, b_coef)


def _response(
    h: ModeHamiltonian,
    values: np.ndarray,
    state: GaussianEquilibrium,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
) -> np.ndarray:
    m, f, _ = h.quadratic_form(values)
    form = decompose(m, h.hbar)
    temperature = state.temperature if state.kind == "thermal" else None
    mean = -la.cho_solve((form.chol, True), f)
    dm, df, _ = h.operator_form(b_coef)
    dmean = -la.cho_solve((form.chol, True), dm @ mean + df)
    deg, sa, sb = h.string_layout
    need = np.flatnonzero(np.any(a_coef != 0, axis=0) & (deg == 2))
    dstr = np.zeros(len(h.strings))
    lin = deg == 1
    dstr[lin] = dmean[sa[lin]]
    if need.size:
        pa, pb, w, _ = _entries(h, b_coef)
        y = form.y
        n2 = y.shape[0]
        if len(w) == 0:
            dcov = np.zeros(len(need))
        else:
            if len(w) <= n2:
                d = (y[pa].conj().T * w) @ y[pb]  # Y† dM Y from the entries of dM
            else:
                d = y.conj().T @ (dm @ y)
            z = _kernel(form, temperature) * d
            ia, ib = sa[need], sb[need]
            dcov = np.sum((y[ia] @ z) * y[ib].conj(), axis=1).real
        dstr[need] = dcov + dmean[sa[need]] * mean[sb[need]] + mean[sa[need]] * dmean[sb[need]]
    return a_coef @ dstr


# ------------------------------------------------------------------------------ measurements
def _check_state(ham: object, state: GaussianEquilibrium) -> ModeHamiltonian:
    h = _check_ham(ham)
    if h.n_modes != state.n_modes:
        raise ProblemError(
            f"the state has {state.n_modes} modes but the operators act on {h.n_modes} modes"
        )
    return h


def string_expectations(ham: object, state: GaussianEquilibrium) -> np.ndarray:
    """``⟨m_s⟩`` for every string of ``ham.strings``: 1, ``ξ̄_a`` or ``V_ab + ξ̄_a ξ̄_b``."""
    h = _check_state(ham, state)
    deg, a, b = h.string_layout
    mu, v = state.mean, state.cov
    return np.where(deg == 2, v[a, b] + mu[a] * mu[b], np.where(deg == 1, mu[a], 1.0))


def _omega_block(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """``Ω[rows][:, cols]`` for ``Ω = [[0, I], [-I, 0]]`` of ``2n`` dimensions."""
    r, c = rows[:, None], cols[None, :]
    return np.where((r < n) & (c == r + n), 1.0, 0.0) - np.where((r >= n) & (c == r - n), 1.0, 0.0)


def quadratic_variance(
    mean: np.ndarray,
    cov: np.ndarray,
    hbar: float,
    pa: np.ndarray,
    pb: np.ndarray,
    w: np.ndarray,
    lin: np.ndarray,
) -> float:
    """``Var(lᵀξ + ½ξᵀAξ)`` in a Gaussian state (module docstring), ``A[pa, pb] = w``."""
    n2 = len(mean)
    k = lin + np.bincount(pa, weights=w * mean[pb], minlength=n2)
    var = float(k @ cov @ k)
    if len(w) == 0:
        return max(var, 0.0)
    if len(w) <= 2 * n2:
        g = cov[np.ix_(pb, pa)]
        o = _omega_block(pb, pa, n2 // 2)
        var += 0.5 * float(w @ (g * g.T) @ w) + hbar**2 / 8.0 * float(w @ (o * o.T) @ w)
    else:
        amat = np.zeros((n2, n2))
        np.add.at(amat, (pa, pb), w)
        av = amat @ cov
        ao = _omega_times(amat.T).T  # A Ωᵀ = -A Ω: the sign drops out of tr((AΩ)²)
        var += 0.5 * float(np.sum(av * av.T)) + hbar**2 / 8.0 * float(np.sum(ao * ao.T))
    return max(var, 0.0)


def variances(ham: object, state: GaussianEquilibrium, coef: np.ndarray) -> np.ndarray:
    """``Var(A_i)`` of ``A_i = Σ_s coef[i, s] m_s`` (identity parts do not contribute)."""
    h = _check_state(ham, state)
    coef = np.atleast_2d(np.asarray(coef, dtype=float))
    out = np.zeros(len(coef))
    for i, row in enumerate(coef):
        pa, pb, w, lin = _entries(h, row)
        out[i] = quadratic_variance(state.mean, state.cov, h.hbar, pa, pb, w, lin)
    return out


def _settings(ham: ModeHamiltonian, coef: np.ndarray) -> list[QuadSetting]:
    used = np.flatnonzero(np.any(np.atleast_2d(coef) != 0, axis=0))
    return quad_measurement_settings(ham.strings[i] for i in used)


def measurement_settings(ham: object, coef: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The settings that measure observables ``coef`` ``(n_ops, S)``: ``(label, columns)``.

    :func:`~qeprop.quadratures.quad_measurement_settings` of the strings with a non-zero
    coefficient; ``label`` names the quadrature read on each mode (``"r0 r1 p2"``,
    ``u = (r + p)/√2``, ``v = (r - p)/√2``) and ``columns`` the strings read from it (``r_i p_i``
    in two settings).
    """
    h = _check_ham(ham)
    return [
        (s.label, np.array([h.string_index[q] for q in s.strings], dtype=int))
        for s in _settings(h, coef)
    ]


def _quadrature_rows(setting: QuadSetting, n: int) -> np.ndarray:
    """``T (k, 2N)``: row ``j`` reads the ``j``-th quadrature of the setting from ``ξ``."""
    t = np.zeros((len(setting.quadratures), 2 * n))
    h = 1.0 / np.sqrt(2.0)
    for j, (mode, c) in enumerate(setting.quadratures):
        t[j, mode] = {"r": 1.0, "p": 0.0, "u": h, "v": h}[c]
        t[j, n + mode] = {"r": 0.0, "p": 1.0, "u": h, "v": -h}[c]
    return t


def _part(q: tuple[tuple[str, int], ...], setting: QuadSetting) -> tuple[float, bool]:
    """``(sign, half)`` of a string read in ``setting``: ``r_i p_i`` is ``+u²/2`` or ``-v²/2``."""
    if len(q) == 2 and q[0][1] == q[1][1] and q[0] != q[1]:
        return (1.0 if setting.quadrature(q[0][1]) == "u" else -1.0), True
    return 1.0, False


def _setting_part_entries(
    h: ModeHamiltonian, row: np.ndarray, setting: QuadSetting
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The part of observable ``row`` measured in ``setting`` as Hessian entries and linear part.

    An ordinary string is measured wholly; ``r_i p_i`` contributes ``+u_i²/2`` or ``-v_i²/2``,
    i.e. ``±(r_i² + p_i²)/4 + sym(r_i p_i)/2``.
    """
    n = h.n_modes
    pa: list[int] = []
    pb: list[int] = []
    w: list[float] = []
    lin = np.zeros(2 * n)
    for q in setting.strings:
        c = float(row[h.string_index[q]])
        if c == 0:
            continue
        sign, half = _part(q.factors, setting)
        idx = q.xi_indices(n)
        if half:
            ra, pp = idx
            pa += [ra, pp, ra, pp]
            pb += [ra, pp, pp, ra]
            w += [sign * c / 2, sign * c / 2, c / 2, c / 2]
        elif len(idx) == 2:
            if idx[0] == idx[1]:
                pa.append(idx[0])
                pb.append(idx[0])
                w.append(2 * c)
            else:
                pa += [idx[0], idx[1]]
                pb += [idx[1], idx[0]]
                w += [c, c]
        else:
            lin[idx[0]] += c
    return np.array(pa, dtype=int), np.array(pb, dtype=int), np.array(w), lin


def shot_estimate(
    ham: object,
    state: GaussianEquilibrium,
    ident: np.ndarray,
    coef: np.ndarray,
    exact: np.ndarray,
    shots: int,
    model: str,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, stderr)`` of observables ``ident + coef @ m`` from ``shots`` shots per setting.

    ``"gaussian"``: ``N(⟨A⟩, σ²/M)`` with ``σ² = Σ_g Var(A_g)`` over the parts ``A_g`` of ``A``
    measured in each setting ``g`` (``Var(A)`` when ``A`` lies in one setting), exact variances
    (:func:`quadratic_variance`). ``"sampled"``: per setting, ``M`` joint samples of its
    quadratures ``q = Tξ`` from their Gaussian distribution ``N(T ξ̄, T V Tᵀ)`` (commuting
    quadratures of distinct modes have a joint distribution), and every string of the setting
    evaluated on each sample (``r_i p_i`` as ``±x²/2`` of its ``u_i``/``v_i`` reading).
    """
    h = _check_state(ham, state)
    coef = np.atleast_2d(np.asarray(coef, dtype=float))
    settings = _settings(h, coef)
    var = np.zeros(len(coef))
    if model == "gaussian":
        for s in settings:
            for i, row in enumerate(coef):
                pa, pb, w, lin = _setting_part_entries(h, row, s)
                var[i] += quadratic_variance(state.mean, state.cov, h.hbar, pa, pb, w, lin)
        se = np.sqrt(var / shots)
        return exact + se * rng.standard_normal(len(exact)), se
    deg = h.string_layout[0]
    mean = np.asarray(ident, dtype=float) + coef[:, deg == 0].sum(axis=1)
    if settings:
        widest = max(len(s.strings) + len(s.quadratures) for s in settings)
        check_memory(
            2.0 * shots * 8 * (widest + len(coef)),
            f"sampling {shots} shots per measurement setting",
            hint="use fewer shots or shot_model='gaussian'",
        )
    n = h.n_modes
    for s in settings:
        t = _quadrature_rows(s, n)
        mu = t @ state.mean
        cq = t @ state.cov @ t.T
        ev, u = np.linalg.eigh(0.5 * (cq + cq.T))
        root = u * np.sqrt(np.clip(ev, 0.0, None))
        x = mu + rng.standard_normal((shots, len(mu))) @ root.T  # (M, k)
        col = {mode: j for j, (mode, _) in enumerate(s.quadratures)}
        vals = np.empty((len(s.strings), shots))
        for k, q in enumerate(s.strings):
            sign, half = _part(q.factors, s)
            if half:
                vals[k] = sign * 0.5 * x[:, col[q.factors[0][1]]] ** 2
            else:
                vals[k] = np.prod([x[:, col[m]] for _, m in q.factors], axis=0)
        cols = [h.string_index[q] for q in s.strings]
        per_shot = coef[:, cols] @ vals
        mean = mean + per_shot.mean(axis=1)
        var = var + (per_shot.var(axis=1, ddof=1) / shots if shots > 1 else np.nan)
    return mean, np.sqrt(var)
