"""Quadrature monomials of oscillator modes and real-coefficient sums of them.

Conventions (see ``docs/conventions.md``):

* Mode ``i`` has position ``r_i`` and momentum ``p_i`` with ``[r_i, p_j] = iħ δ_ij``. The stacked
  vector is ``ξ = (r_0, ..., r_{N-1}, p_0, ..., p_{N-1})``: ``r_i`` is ``ξ_i`` and ``p_i`` is
  ``ξ_{N+i}``.
* A quadrature string is a product of at most two factors, written ``"r3"``, ``"p0 p0"``,
  ``"r0 r1"``, ``"r0 p0"`` (letter ``r`` or ``p``, then the mode index, separated by spaces; upper
  case is accepted); ``""`` is the identity (the constant 1). A product of non-commuting factors
  means the **symmetrised** product, ``"r0 p0" = (r0 p0 + p0 r0)/2``, so every string is Hermitian
  and ``"r0 p0"`` and ``"p0 r0"`` are the same string.
* The canonical order lists positions before momenta and lower modes first (the order of ``ξ``):
  ``"p0 r1"`` is written ``"r1 p0"``.
* A Hermitian quadratic observable is a sum of strings with **real** coefficients
  (:class:`QuadSum`), e.g. ``(r0 - r1)² = r0 r0 + r1 r1 - 2 r0 r1``.

Measurement settings (:func:`quad_settings`): one setting measures, on every mode it touches, one
quadrature at an angle: ``r_i``, ``p_i``, ``u_i = (r_i + p_i)/√2`` or ``v_i = (r_i - p_i)/√2``.
Quadratures of different modes commute, so one setting yields a joint sample of all of them, and
every string whose factors are all read in that setting is estimated from the same shots. All
``r_i`` commute (one setting for every spring ``(r_i - r_j)²``), and so do all ``p_i``. The
symmetrised product ``r_i p_i`` of one mode is not a function of one quadrature: it is measured as
``(u_i² - v_i²)/2`` and needs two settings, one reading ``u_i`` and one reading ``v_i``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import QuadratureError

__all__ = [
    "MAX_MODES",
    "QuadSetting",
    "QuadString",
    "QuadSum",
    "QuadratureError",
    "as_quad_sum",
    "quad_measurement_settings",
    "quad_settings",
]

#: largest number of oscillator modes of a problem (a solve needs dense ``2N x 2N`` matrices; the
#: memory check refuses far smaller problems on real machines)
MAX_MODES = 100_000
_MAX_INDEX_DIGITS = len(str(MAX_MODES - 1))

#: factor letters: index 0 is a position, 1 a momentum
_LETTERS = ("r", "p")
_TOKEN = re.compile(r"^([A-Za-z]+)([0-9]*)$")


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _limit_text(n_modes: int | None) -> str:
    if n_modes is not None and n_modes <= MAX_MODES:
        return f" for {n_modes} modes (valid indices 0..{n_modes - 1})"
    return f" (at most {MAX_MODES} modes are supported, indices 0..{MAX_MODES - 1})"


def _factor_key(x: tuple[str, int]) -> tuple[int, int]:
    """Canonical order of factors: positions before momenta, lower modes first (``ξ`` order)."""
    return _LETTERS.index(x[0]), x[1]


@functools.total_ordering
@dataclass(frozen=True)
class QuadString:
    """A monomial of at most two quadratures, symmetrised (Hermitian), without a coefficient.

    Parameters
    ----------
    factors:
        ``(letter, mode)`` pairs, ``letter`` ``"r"`` or ``"p"``; at most two. Stored in canonical
        order (positions before momenta, lower modes first). ``()`` is the identity.

    Examples
    --------
    >>> QuadString.parse("p0 r1")
    QuadString('r1 p0')
    >>> QuadString.parse("r0 r0").degree
    2
    """

    factors: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        f = self.factors
        if not isinstance(f, tuple) or len(f) > 2:
            raise QuadratureError(
                f"a quadrature string has at most two factors, got {f!r}"
                if isinstance(f, tuple)
                else f"the factors of a quadrature string must be a tuple, got {f!r}"
            )
        clean = []
        for x in f:
            if (
                not isinstance(x, tuple)
                or len(x) != 2
                or x[0] not in _LETTERS
                or isinstance(x[1], bool)
                or not isinstance(x[1], int | np.integer)
                or not 0 <= x[1] < MAX_MODES
            ):
                raise QuadratureError(
                    f"a quadrature factor must be ('r' | 'p', mode index in [0, {MAX_MODES})), "
                    f"got {x!r}"
                )
            clean.append((str(x[0]), int(x[1])))
        object.__setattr__(self, "factors", tuple(sorted(clean, key=_factor_key)))

    def _key(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        return len(self.factors), tuple(_factor_key(x) for x in self.factors)

    def __lt__(self, other: object) -> bool:
        """Strings sort by degree, then in ``ξ`` order of their factors."""
        if not isinstance(other, QuadString):
            return NotImplemented
        return self._key() < other._key()

    # ------------------------------------------------------------------ construction
    @classmethod
    def parse(cls, text: str, n_modes: int | None = None) -> QuadString:
        """Parse ``"r0 p1"``: letters ``r``/``p`` (either case) followed by a mode index.

        ``""`` (or ``"1"``) is the identity. Raises :class:`~qeprop.errors.QuadratureError` for
        unknown letters, missing indices, more than two factors, or (if ``n_modes`` is given) an
        index ``>= n_modes``.
        """
        if not isinstance(text, str):
            raise QuadratureError(f"a quadrature string must be text, got {type(text).__name__}")
        shown = _shown(text)
        tokens = text.split()
        if tokens == ["1"]:
            tokens = []
        if len(tokens) > 2:
            raise QuadratureError(
                f"{shown!r} has {len(tokens)} factors; a quadrature string is a product of at "
                "most two (Hamiltonians and observables are quadratic), e.g. 'r0 r1'"
            )
        factors = []
        for tok in tokens:
            m = _TOKEN.match(tok)
            if m is None:
                tok_shown = _shown(tok)
                raise QuadratureError(
                    f"malformed quadrature {tok_shown!r} in {shown!r} (expected r or p followed "
                    "by a mode index, factors separated by spaces, e.g. 'r0 p1')"
                )
            letter = m.group(1).lower()
            if letter not in _LETTERS:
                raise QuadratureError(
                    f"unknown quadrature {m.group(1)!r} in {shown!r} (expected r or p followed by "
                    "a mode index, e.g. 'r0 p1')"
                )
            digits = m.group(2)
            if not digits:
                raise QuadratureError(
                    f"quadrature {tok!r} in {shown!r} has no mode index (write e.g. '{letter}0')"
                )
            digits = digits.lstrip("0") or "0"
            if len(digits) > _MAX_INDEX_DIGITS or int(digits) >= MAX_MODES:
                raise QuadratureError(
                    f"mode index {digits[:20]}{'...' if len(digits) > 20 else ''} in {shown!r} "
                    f"is out of range{_limit_text(n_modes)}"
                )
            factors.append((letter, int(digits)))
        q = cls(tuple(factors))
        if n_modes is not None:
            q.check_modes(n_modes, text)
        return q

    def check_modes(self, n_modes: int, text: str | None = None) -> None:
        """Raise :class:`QuadratureError` if the string acts on a mode ``>= n_modes``."""
        top = self.max_mode
        if top >= n_modes:
            shown = _shown(text) if text is not None else self.label()
            raise QuadratureError(
                f"mode index {top} in {shown!r} is out of range for {n_modes} modes "
                f"(valid indices 0..{n_modes - 1})"
            )

    # ------------------------------------------------------------------ properties
    @property
    def degree(self) -> int:
        """Number of factors (0 for the identity, 1 linear, 2 quadratic)."""
        return len(self.factors)

    @property
    def max_mode(self) -> int:
        """Largest mode index acted on (-1 for the identity)."""
        return max((m for _, m in self.factors), default=-1)

    @property
    def modes(self) -> tuple[int, ...]:
        """The distinct modes acted on, ascending."""
        return tuple(sorted({m for _, m in self.factors}))

    def is_identity(self) -> bool:
        return not self.factors

    def xi_indices(self, n_modes: int) -> tuple[int, ...]:
        """Indices of the factors in ``ξ = (r_0..r_{N-1}, p_0..p_{N-1})``: ``r_i -> i``,
        ``p_i -> N + i``."""
        self.check_modes(n_modes)
        return tuple(m + _LETTERS.index(letter) * n_modes for letter, m in self.factors)

    def label(self) -> str:
        """``"r0 p1"``; ``""`` for the identity."""
        return " ".join(f"{letter}{m}" for letter, m in self.factors)

    def __repr__(self) -> str:
        return f"QuadString({self.label()!r})"

    def __str__(self) -> str:
        return self.label() or "1"


_QuadLike = str | QuadString


def _as_string(q: _QuadLike, n_modes: int | None = None) -> QuadString:
    if isinstance(q, QuadString):
        if n_modes is not None:
            q.check_modes(n_modes)
        return q
    if isinstance(q, str):
        return QuadString.parse(q, n_modes)
    raise QuadratureError(f"expected a quadrature string such as 'r0 p1', got {type(q).__name__}")


def _coefficient(c: object, q: QuadString) -> float:
    """A finite real coefficient of ``q`` (never ``bool``, complex, or text such as ``"0.5"``)."""
    if isinstance(c, bool | np.bool_) or not isinstance(c, int | float | np.integer | np.floating):
        raise QuadratureError(
            f"coefficient {c!r} of {str(q)!r} must be a real number (quadrature strings are "
            "Hermitian; a Hermitian sum has real coefficients)"
        )
    try:
        v = float(c)
    except OverflowError:  # an int beyond the float range
        v = math.inf
    if not math.isfinite(v):
        raise QuadratureError(f"coefficient {c!r} of {str(q)!r} is not finite")
    return v


class QuadSum:
    """A Hermitian sum ``Σ_s c_s m_s`` of quadrature strings with real coefficients (immutable).

    ``(r0 - r1)²`` is ``QuadSum.from_terms([(1, "r0 r0"), (1, "r1 r1"), (-2, "r0 r1")])``.
    """

    __slots__ = ("_terms",)

    def __init__(self, terms: Mapping[QuadString, float] | None = None) -> None:
        acc: dict[QuadString, float] = {}
        for q, c in (terms or {}).items():
            if not isinstance(q, QuadString):
                raise QuadratureError(
                    f"the strings of a quadrature sum must be QuadString, got {q!r}"
                )
            acc[q] = acc.get(q, 0.0) + _coefficient(c, q)
        for q, c in acc.items():
            if not math.isfinite(c):
                raise QuadratureError(
                    f"the coefficient of {str(q)!r} overflows: the coefficients given add up "
                    "beyond the float range (about 1.8e308)"
                )
        self._terms = {q: c for q, c in acc.items() if c != 0}

    @classmethod
    def from_terms(
        cls, terms: Iterable[tuple[float, _QuadLike]], n_modes: int | None = None
    ) -> QuadSum:
        """From ``[(coeff, "r0 r1"), ...]``; repeated strings are added."""
        acc: dict[QuadString, float] = {}
        for item in terms:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise QuadratureError(f"expected (coefficient, quadrature string), got {item!r}")
            c, q = item
            qs = _as_string(q, n_modes)
            acc[qs] = acc.get(qs, 0.0) + _coefficient(c, qs)
        return cls(acc)

    # ------------------------------------------------------------------ container protocol
    def items(self) -> Iterator[tuple[QuadString, float]]:
        return iter(self._terms.items())

    def strings(self) -> list[QuadString]:
        return list(self._terms)

    def coefficient(self, q: _QuadLike) -> float:
        return self._terms.get(_as_string(q), 0.0)

    def real(self, tol: float = 1e-12, what: str = "operator") -> dict[QuadString, float]:
        """The (real) coefficients by string; the same interface as
        :meth:`qeprop.pauli.PauliSum.real` (a quadrature sum is Hermitian by construction)."""
        return dict(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuadSum):
            return NotImplemented
        keys = set(self._terms) | set(other._terms)
        return all(abs(self.coefficient(k) - other.coefficient(k)) <= 1e-12 for k in keys)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [f"{c:g}*{q!s}" for q, c in sorted(self._terms.items())]
        return f"QuadSum({' + '.join(parts) or '0'})"

    # ------------------------------------------------------------------ algebra
    def __add__(self, other: QuadSum) -> QuadSum:
        if not isinstance(other, QuadSum):
            return NotImplemented
        acc = dict(self._terms)
        for q, c in other._terms.items():
            acc[q] = acc.get(q, 0.0) + c
        return QuadSum(acc)

    def __sub__(self, other: QuadSum) -> QuadSum:
        if not isinstance(other, QuadSum):
            return NotImplemented
        return self + (-1.0) * other

    def __mul__(self, scalar: float) -> QuadSum:
        if isinstance(scalar, bool) or not isinstance(
            scalar, int | float | np.integer | np.floating
        ):
            return NotImplemented
        return QuadSum({q: c * float(scalar) for q, c in self._terms.items()})

    __rmul__ = __mul__

    def __neg__(self) -> QuadSum:
        return (-1.0) * self

    # ------------------------------------------------------------------ properties
    @property
    def max_mode(self) -> int:
        """Largest mode index acted on (-1 for a constant)."""
        return max((q.max_mode for q in self._terms), default=-1)

    def norm_bound(self) -> float:
        """``Σ_s |c_s|``: a scale of the coefficients (not an operator norm: quadratic
        observables are unbounded)."""
        return float(sum(abs(c) for c in self._terms.values()))

    def spectrum_bounds(self) -> tuple[float, float] | None:
        """``(c, c)`` for a constant ``c``; ``None`` otherwise (a non-constant quadratic or
        linear observable of oscillators has an unbounded spectrum, never within ``[0, 1]``)."""
        if all(q.is_identity() for q in self._terms):
            c = sum(self._terms.values())
            return float(c), float(c)
        return None


def as_quad_sum(obj: QuadSum | QuadString | str | Iterable[tuple[float, str]]) -> QuadSum:
    """Coerce a string, a :class:`QuadString` or ``[(coeff, string), ...]`` to a QuadSum."""
    if isinstance(obj, QuadSum):
        return obj
    if isinstance(obj, QuadString):
        return QuadSum({obj: 1.0})
    if isinstance(obj, str):
        return QuadSum({QuadString.parse(obj): 1.0})
    if isinstance(obj, Mapping) or not isinstance(obj, Iterable):
        raise QuadratureError(
            f"expected a quadrature observable (QuadSum, 'r0 r1' or [(coeff, string), ...]), "
            f"got {type(obj).__name__}"
        )
    return QuadSum.from_terms(obj)


# ---------------------------------------------------------------------- measurement settings
#: the quadratures a setting may read on a mode: r, p, u = (r + p)/√2, v = (r - p)/√2
SETTING_QUADRATURES = ("r", "p", "u", "v")


@dataclass(frozen=True)
class QuadSetting:
    """One measurement setting: one quadrature per mode, read jointly on every shot.

    Attributes
    ----------
    quadratures : tuple of (mode, letter)
        Ascending modes, each with ``"r"``, ``"p"``, ``"u"`` (``(r + p)/√2``) or ``"v"``
        (``(r - p)/√2``).
    strings : tuple of QuadString
        The strings estimated (wholly, or ``r_i p_i`` half-way: ``+u_i²/2`` or ``-v_i²/2``) from
        this setting's shots.
    """

    quadratures: tuple[tuple[int, str], ...]
    strings: tuple[QuadString, ...]

    @property
    def label(self) -> str:
        """``"r0 r1 p2 u3"``: the quadrature read on each mode."""
        return " ".join(f"{c}{m}" for m, c in self.quadratures)

    def quadrature(self, mode: int) -> str | None:
        return dict(self.quadratures).get(mode)


def _requirements(q: QuadString) -> list[dict[int, str]]:
    """The quadratures a string needs, per setting: one dict, or two for ``r_i p_i``."""
    if len(q.factors) == 2 and q.factors[0][1] == q.factors[1][1] and q.factors[0] != q.factors[1]:
        m = q.factors[0][1]
        return [{m: "u"}, {m: "v"}]
    return [{m: letter for letter, m in q.factors}]


def quad_measurement_settings(strings: Iterable[QuadString]) -> list[QuadSetting]:
    """Group quadrature strings into jointly measurable settings (greedy, widest strings first).

    A string fits a setting when every quadrature it needs is either not yet read on that mode or
    already the one read there; it goes into the first setting it fits (a new one otherwise).
    ``r_i p_i`` needs a ``u_i`` setting and a ``v_i`` setting (:mod:`qeprop.quadratures`). The
    identity is left out (its expectation is 1 without measurement).
    """
    todo = sorted({q for q in strings if not q.is_identity()}, key=lambda q: (-len(q.modes), q))
    angles: list[dict[int, str]] = []
    members: list[list[QuadString]] = []
    for q in todo:
        for need in _requirements(q):
            for k, have in enumerate(angles):
                if all(have.get(m, c) == c for m, c in need.items()):
                    have.update(need)
                    if q not in members[k]:
                        members[k].append(q)
                    break
            else:
                angles.append(dict(need))
                members.append([q])
    return [
        QuadSetting(tuple(sorted(a.items())), tuple(m))
        for a, m in zip(angles, members, strict=True)
    ]


def quad_settings(strings: Iterable[QuadString]) -> list[list[QuadString]]:
    """The strings of each measurement setting of :func:`quad_measurement_settings`.

    ``len(quad_settings(strings))`` is the number of settings (each measured ``M`` times with
    ``M`` shots); ``r_i p_i`` appears in two of them (its ``u_i`` and ``v_i`` halves).
    """
    return [list(s.strings) for s in quad_measurement_settings(strings)]
