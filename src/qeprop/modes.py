"""Parametrised quadratic Hamiltonians of oscillator modes (quantum harmonic oscillator networks).

A :class:`ModeHamiltonian` is an immutable list of terms ``coeff * [param] * m`` on ``n_modes``
modes, each ``m`` a quadrature string (:class:`~qeprop.quadratures.QuadString`: a symmetrised
product of at most two of ``r_i``, ``p_i``),

.. math::  H(p) = \\sum_t c_t \\, p_{k(t)} \\, m_t
                = \\tfrac12 ξ^T M(p) ξ + f(p)^T ξ + c(p), \\qquad [ξ_a, ξ_b] = iħ Ω_{ab},

with ``ξ = (r_0..r_{N-1}, p_0..p_{N-1})`` and ``Ω = [[0, I], [-I, 0]]``. It has the interface the
estimator pipeline uses on :class:`~qeprop.hamiltonian.ParametrisedHamiltonian` (``params``,
``strings``, ``derivative_coefficients``, ``coefficients_of``, ``with_terms``, ...), so problem
files, shared parameters, nudging (adding terms) and every estimator work for oscillator networks
unchanged. Scellier's network (eq. 41) with masses ``m_i`` and springs ``k_ij`` is

.. math::  H = Σ_i \\frac{p_i^2}{2 m_i} + \\frac12 Σ_{i<j} k_{ij} (r_i - r_j)^2,

i.e. the terms ``(1/(2 m_i), "p_i p_i")`` and, sharing the parameter ``k_ij``, ``(0.5, "r_i r_i")``,
``(0.5, "r_j r_j")``, ``(-1, "r_i r_j")``; ``∂H/∂k_ij = (r_i - r_j)²/2`` (eq. 42).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .checks import MAX_COEFFICIENT, readonly
from .errors import ProblemError, QuadratureError
from .hamiltonian import ParameterVector, ParametrisedHamiltonian, _finite, parameter_order
from .quadratures import MAX_MODES, QuadString, QuadSum

__all__ = ["Hamiltonian", "ModeHamiltonian", "ModeTerm"]


@dataclass(frozen=True)
class ModeTerm:
    """One Hamiltonian term ``coeff * (value of param, or 1) * quad`` (a quadrature string)."""

    coeff: float
    quad: QuadString
    param: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.quad, QuadString):
            raise ProblemError(
                f"a mode term's operator must be a QuadString (e.g. QuadString.parse('r0 r1')), "
                f"got {self.quad!r}"
            )
        c = self.coeff
        if (
            isinstance(c, bool | np.bool_)
            or not isinstance(c, int | float | np.integer | np.floating)
            or not _finite(c)
        ):
            raise ProblemError(
                f"coefficient {c!r} of term {str(self.quad)!r} must be a finite real"
            )
        object.__setattr__(self, "coeff", float(c))
        if self.param is not None and (not isinstance(self.param, str) or not self.param):
            raise ProblemError(
                f"the parameter of term {str(self.quad)!r} must be a non-empty name, "
                f"got {self.param!r}"
            )

    @classmethod
    def make(cls, coeff: float, quad: str | QuadString, param: str | None = None) -> ModeTerm:
        q = quad if isinstance(quad, QuadString) else QuadString.parse(quad)
        return cls(coeff, q, param)


class ModeHamiltonian(ParameterVector):
    """Immutable quadratic Hamiltonian ``H(p) = Σ_t c_t p_{k(t)} m_t`` of ``n_modes`` oscillators.

    Parameters
    ----------
    n_modes:
        Number of modes ``N`` (positions ``r_i``, momenta ``p_i``).
    terms:
        :class:`ModeTerm` objects, or tuples ``(coeff, quad)`` / ``(coeff, quad, param)``.
    params:
        Order of the parameter vector (default: order of first appearance in ``terms``).
    hbar:
        ``ħ`` in ``[r_i, p_j] = iħ δ_ij`` (finite, > 0; default 1).
    extra_strings:
        Further quadrature strings of the string basis (observables to measure with it).

    Notes
    -----
    The string basis :attr:`strings` holds every distinct quadrature string of the terms plus
    ``extra_strings``. ``ħ → 0`` is the classical limit (thermal covariance ``T M⁻¹``, ground
    state at the classical minimum).
    """

    def __init__(
        self,
        n_modes: int,
        terms: Iterable[ModeTerm | tuple],
        params: Sequence[str] | None = None,
        hbar: float = 1.0,
        extra_strings: Iterable[QuadString] = (),
    ) -> None:
        if not isinstance(n_modes, int | np.integer) or isinstance(n_modes, bool) or n_modes < 1:
            raise ProblemError(f"the number of modes must be a positive integer, got {n_modes!r}")
        if n_modes > MAX_MODES:
            raise ProblemError(f"{n_modes} modes are more than the {MAX_MODES} supported")
        self.n_modes = int(n_modes)
        if (
            isinstance(hbar, bool | np.bool_)
            or not isinstance(hbar, int | float | np.integer | np.floating)
            or not (_finite(hbar) and float(hbar) > 0)
        ):
            raise ProblemError(f"hbar must be a finite number > 0, got {hbar!r}")
        self.hbar = float(hbar)
        tl: list[ModeTerm] = []
        for i, t in enumerate(terms):
            try:
                if isinstance(t, ModeTerm):
                    term = t
                elif isinstance(t, tuple | list) and len(t) in (2, 3):
                    term = ModeTerm.make(*t)
                else:
                    raise ProblemError(f"expected a ModeTerm or (coeff, quad[, param]), got {t!r}")
                term.quad.check_modes(self.n_modes)
            except ProblemError as e:
                raise e.located(f"terms[{i}]") from None
            tl.append(term)
        self.terms: tuple[ModeTerm, ...] = tuple(tl)
        seen: dict[str, None] = {}
        for t in self.terms:
            if t.param is not None:
                seen.setdefault(t.param, None)
        self.params: tuple[str, ...] = parameter_order(seen, params)
        self.param_index = {p: i for i, p in enumerate(self.params)}
        strings: dict[QuadString, None] = {}
        for t in self.terms:
            strings.setdefault(t.quad, None)
        for q in extra_strings:
            if not isinstance(q, QuadString):
                raise QuadratureError(
                    f"extra strings of a mode Hamiltonian must be QuadString, got {q!r}"
                )
            q.check_modes(self.n_modes)
            strings.setdefault(q, None)
        self.strings: tuple[QuadString, ...] = tuple(strings)
        self.string_index = {q: i for i, q in enumerate(self.strings)}
        g = np.zeros((len(self.params) + 1, len(self.strings)))
        with np.errstate(over="ignore", invalid="ignore"):
            for t in self.terms:
                row = 0 if t.param is None else 1 + self.param_index[t.param]
                g[row, self.string_index[t.quad]] += t.coeff
        if not np.all(np.abs(g) <= MAX_COEFFICIENT):  # also catches inf and NaN
            row, col = (int(i[0]) for i in np.nonzero(~(np.abs(g) <= MAX_COEFFICIENT)))
            name = None if row == 0 else self.params[row - 1]
            same = [
                f"terms[{i}]"
                for i, t in enumerate(self.terms)
                if t.quad == self.strings[col] and t.param == name
            ]
            raise ProblemError(
                f"the coefficient{'s' if len(same) > 1 else ''} of {', '.join(same)} (string "
                f"{str(self.strings[col])!r}"
                + (f", parameter {name!r}" if name else "")
                + ") "
                + ("add up to " if len(same) > 1 else "is ")
                + f"{g[row, col]:.3g}: coefficients must stay below {MAX_COEFFICIENT:.0e}"
            )
        self._fixed = readonly(g[0])
        self._derivs = readonly(g[1:])

    # ------------------------------------------------------------------ parameters
    @property
    def is_real(self) -> bool:
        """Always True: quadrature strings are Hermitian with real coefficients."""
        return True

    def coefficients_of(self, op: object, what: str = "operator") -> tuple[float, np.ndarray]:
        """``(identity part, coefficients over strings (S,))`` of a quadrature observable.

        Raises :class:`ProblemError` for a qubit operator, or a string outside the basis (build
        the Hamiltonian with ``extra_strings`` to include it).
        """
        if not isinstance(op, QuadSum):
            raise ProblemError(
                f"{what}: a {type(op).__name__} cannot be measured on oscillator modes; use a "
                "quadrature observable (QuadSum, strings such as 'r0 r1')"
            )
        vec = np.zeros(len(self.strings))
        ident = 0.0
        for q, c in op.real(what=what).items():
            if q.is_identity() and q not in self.string_index:
                ident += c
                continue
            if q not in self.string_index:
                raise ProblemError(f"{what}: string {str(q)!r} is not in the Hamiltonian's basis")
            vec[self.string_index[q]] += c
        return ident, readonly(vec)

    # ------------------------------------------------------------------ composition
    def with_terms(
        self,
        terms: Iterable[ModeTerm],
        params: Sequence[str] = (),
        extra_strings: Iterable[QuadString] = (),
    ) -> ModeHamiltonian:
        """A new Hamiltonian with ``terms`` appended; new parameter names go after the old ones."""
        return ModeHamiltonian(
            self.n_modes,
            [*self.terms, *terms],
            params=[*self.params, *[p for p in params if p not in self.param_index]],
            hbar=self.hbar,
            extra_strings=[*self.strings, *extra_strings],
        )

    # ------------------------------------------------------------------ the quadratic form
    @cached_property
    def string_layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(degree, a, b)``, each ``(S,)`` int64 and read-only: string ``s`` is ``1``
        (degree 0), ``ξ_a`` (degree 1) or ``sym(ξ_a ξ_b)`` with ``a <= b`` (degree 2); unused
        indices are 0."""
        n = self.n_modes
        deg = np.zeros(len(self.strings), dtype=np.int64)
        a = np.zeros(len(self.strings), dtype=np.int64)
        b = np.zeros(len(self.strings), dtype=np.int64)
        for s, q in enumerate(self.strings):
            idx = q.xi_indices(n)
            deg[s] = len(idx)
            if idx:
                a[s] = idx[0]
                b[s] = idx[-1]
        return readonly(deg), readonly(a), readonly(b)

    def quadratic_form(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``(M (2N, 2N), f (2N,), c)`` with ``H(values) = ½ ξᵀ M ξ + fᵀ ξ + c``.

        ``M`` is real symmetric: a string ``sym(ξ_a ξ_b)`` with coefficient ``w`` adds ``w`` to
        ``M_ab`` and to ``M_ba`` (so ``2w`` to ``M_aa`` for ``ξ_a²``); ``ξ_a`` adds ``w`` to
        ``f_a``; the identity adds ``w`` to ``c``.
        """
        return self.operator_form(self.string_coefficients(values))

    def operator_form(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """:meth:`quadratic_form` of the operator ``Σ_s coef_s m_s`` (``coef`` over strings)."""
        coef = np.asarray(coef, dtype=float)
        deg, a, b = self.string_layout
        d = 2 * self.n_modes
        m = np.zeros((d, d))
        f = np.zeros(d)
        q = deg == 2
        np.add.at(m, (a[q], b[q]), coef[q])
        np.add.at(m, (b[q], a[q]), coef[q])
        lin = deg == 1
        np.add.at(f, a[lin], coef[lin])
        return m, f, float(coef[deg == 0].sum())

    def norm_bound(self, values: np.ndarray) -> float:
        """``Σ_s |c_s|``: the scale of the coefficients of ``H(values)``.

        Not a bound on an operator norm (quadratic Hamiltonians are unbounded); it sets the scale
        of relative tolerances, as :meth:`ParametrisedHamiltonian.norm_bound
        <qeprop.hamiltonian.ParametrisedHamiltonian.norm_bound>` does for qubits.
        """
        return float(np.abs(self.string_coefficients(values)).sum())

    def __repr__(self) -> str:
        return (
            f"ModeHamiltonian(n_modes={self.n_modes}, terms={len(self.terms)}, "
            f"params={len(self.params)}, strings={len(self.strings)}, hbar={self.hbar:g})"
        )


#: a Hamiltonian of qubits (Pauli terms) or of oscillator modes (quadrature terms)
Hamiltonian = ParametrisedHamiltonian | ModeHamiltonian
