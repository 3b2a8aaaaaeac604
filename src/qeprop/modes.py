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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .checks import MAX_COEFFICIENT, readonly
from .errors import ProblemError, QuadratureError
from .hamiltonian import ParametrisedHamiltonian
from .quadratures import MAX_MODES, QuadString, QuadSum

__all__ = ["Hamiltonian", "ModeHamiltonian", "ModeTerm"]


def _finite(c: object) -> bool:
    try:
        return bool(np.isfinite(float(c)))  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return False


def _names(names: Sequence[str], limit: int = 6) -> str:
    names = list(names)
    if len(names) <= limit:
        return str(names)
    return f"{str(names[:limit])[:-1]}, ... ({len(names)} in all)]"


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


class ModeHamiltonian:
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
        if params is None:
            self.params: tuple[str, ...] = tuple(seen)
        else:
            self.params = tuple(params)
            odd = [p for p in self.params if not isinstance(p, str) or not p]
            if odd:
                raise ProblemError(f"parameter names must be non-empty text, got {odd[0]!r}")
            if len(set(self.params)) != len(self.params):
                dup = sorted({p for p in self.params if self.params.count(p) > 1})
                raise ProblemError(f"parameter names are not unique: {dup} appear more than once")
            missing = [p for p in seen if p not in self.params]
            if missing:
                raise ProblemError(f"terms use parameters that are not defined: {missing}")
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

    def values(self, mapping: Mapping[str, float] | None = None, **kw: float) -> np.ndarray:
        """Parameter vector ``(P,)`` aligned with :attr:`params` from a name->value mapping.

        The checks of :meth:`ParametrisedHamiltonian.values
        <qeprop.hamiltonian.ParametrisedHamiltonian.values>`: finite reals, no unknown or missing
        names.
        """
        if mapping is not None and not isinstance(mapping, Mapping):
            raise ProblemError(
                f"parameter values must be a name->value mapping, got {type(mapping).__name__}"
            )
        given = dict(mapping or {}, **kw)
        unknown = [k for k in given if k not in self.param_index]
        if unknown:
            raise ProblemError(
                f"unknown parameters {_names(unknown)}; this Hamiltonian has {_names(self.params)}"
            )
        missing = [p for p in self.params if p not in given]
        if missing:
            raise ProblemError(f"no value given for parameters {_names(missing)}")
        for p in self.params:
            v = given[p]
            if isinstance(v, bool | np.bool_) or not isinstance(
                v, int | float | np.integer | np.floating
            ):
                raise ProblemError(f"the value of parameter {p!r} must be a real number, got {v!r}")
            if not _finite(v):
                raise ProblemError(f"parameters [{p!r}] are not finite (NaN or inf)")
        return self.check_values(np.array([float(given[p]) for p in self.params]))

    def check_values(self, values: np.ndarray) -> np.ndarray:
        """``values`` as a float vector ``(P,)``: real, finite, with finite coefficients of ``H``.

        Raises :class:`ProblemError` for a wrong shape, non-real entries, NaN/±inf (naming the
        parameters), or values for which ``Σ_s |c_s|`` exceeds
        :data:`~qeprop.checks.MAX_COEFFICIENT`.
        """
        try:
            raw = np.asarray(values)
        except (TypeError, ValueError):
            raise ProblemError(
                f"parameter values must be a vector of real numbers, got {values!r}"
            ) from None
        if raw.dtype.kind == "O":
            for x in raw.reshape(-1):
                if isinstance(x, bool | np.bool_) or not isinstance(
                    x, int | float | np.integer | np.floating
                ):
                    raise ProblemError(f"parameter values must be real numbers, got {x!r}")
            raw = raw.astype(float)
        elif raw.dtype.kind not in "iuf":
            raise ProblemError(
                f"parameter values must be real numbers, got an array of {raw.dtype} "
                f"({np.ravel(raw)[:3].tolist()}...)"
            )
        v = np.asarray(raw, dtype=float)
        if v.shape != (len(self.params),):
            raise ProblemError(
                f"expected {len(self.params)} parameter values {_names(self.params)}, "
                f"got shape {v.shape}"
            )
        bad = [self.params[i] for i in np.flatnonzero(~np.isfinite(v))]
        if bad:
            raise ProblemError(f"parameters {_names(bad)} are not finite (NaN or inf)")
        with np.errstate(over="ignore", invalid="ignore"):
            coef = np.abs(self.string_coefficients(v))
            scale = coef.sum()
        if not scale <= MAX_COEFFICIENT:
            col = int(np.argmax(np.where(np.isfinite(coef), coef, np.inf)))
            drivers = [
                self.params[k] for k in np.flatnonzero((self._derivs[:, col] != 0) & (v != 0))
            ]
            size = "overflows to inf" if not np.isfinite(coef[col]) else f"is {coef[col]:.3g}"
            raise ProblemError(
                f"the coefficient of {str(self.strings[col])!r} in H {size} for the values of "
                f"parameters {_names(drivers)}: the scale of H (sum of |coefficients|) must "
                f"stay below {MAX_COEFFICIENT:.0e}; use smaller values"
            )
        return v

    def string_coefficients(self, values: np.ndarray) -> np.ndarray:
        """Coefficient of each string for parameter vector(s) ``values`` ``(P,)`` or ``(B, P)``."""
        return self._fixed + np.asarray(values, dtype=float) @ self._derivs

    @property
    def derivative_coefficients(self) -> np.ndarray:
        """``(n_params, n_strings)``: row ``k`` expresses ``∂H/∂p_k`` in the string basis
        (read-only)."""
        return self._derivs

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
