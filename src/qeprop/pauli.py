"""Pauli strings and real-coefficient sums of them.

Conventions (see ``docs/conventions.md``):

* A Pauli string is a tensor product of single-qubit Paulis ``I, X, Y, Z`` without a phase. It is
  written as in OpenFermion, ``"X0 Z3 Y7"`` (letter, then qubit index, separated by spaces;
  ``""`` is
  the identity), or densely, ``"XZIY"`` (character ``k`` acts on qubit ``k``).
* Qubit 0 is the leftmost Kronecker factor, i.e. the most significant bit of a basis index:
  ``|b_0 b_1 ... b_{n-1}>`` has index ``sum_q b_q 2**(n-1-q)`` and ``Z_q`` has eigenvalue
  ``(-1)**b_q``. Qiskit labels are the reverse of the dense form used here.
* Internally a string is a pair of bit masks over qubits (bit ``q`` of ``x`` set when the letter on
  qubit ``q`` is X or Y, bit ``q`` of ``z`` set when it is Z or Y). Then
  ``P = i**(#Y) * prod_q X_q**x_q Z_q**z_q``.
"""

from __future__ import annotations

import cmath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .checks import MAX_QUBITS
from .errors import PauliError

__all__ = [
    "PauliString",
    "PauliSum",
    "as_pauli_sum",
    "qubitwise_commute_groups",
]

_LETTER_BITS = {"I": (0, 0), "X": (1, 0), "Y": (1, 1), "Z": (0, 1)}
_BITS_LETTER = {v: k for k, v in _LETTER_BITS.items()}
_TOKEN = re.compile(r"^([IXYZ])([0-9]+)$")
#: digits of the largest qubit index that can be read (indices are bounded by MAX_QUBITS - 1)
_MAX_INDEX_DIGITS = len(str(MAX_QUBITS - 1))


def _limit_text(n_qubits: int | None) -> str:
    """The tail of an out-of-range message: `` for 3 qubits (valid indices 0..2)``."""
    if n_qubits is not None and n_qubits <= MAX_QUBITS:
        return f" for {n_qubits} qubits (valid indices 0..{n_qubits - 1})"
    return f" (at most {MAX_QUBITS} qubits are supported, indices 0..{MAX_QUBITS - 1})"


def check_index(q: object, n_qubits: int | None, text: str | None = None) -> int:
    """``q`` as a qubit index ``0 <= q < n_qubits`` (``< MAX_QUBITS`` when ``n_qubits`` is None).

    Raises :class:`PauliError` before any mask ``1 << q`` is built, so a huge index costs nothing.
    """
    if not isinstance(q, int | np.integer) or isinstance(q, bool | np.bool_):
        raise PauliError(f"a qubit index must be an integer, got {q!r}")
    top = MAX_QUBITS if n_qubits is None else min(int(n_qubits), MAX_QUBITS)
    if not 0 <= q < top:
        shown = f" in {text!r}" if text is not None else ""
        raise PauliError(f"qubit index {q}{shown} is out of range{_limit_text(n_qubits)}")
    return int(q)


def _popcount(v: int) -> int:
    return v.bit_count()


@dataclass(frozen=True, order=True)
class PauliString:
    """A phase-free tensor product of Pauli matrices, stored as bit masks over qubit indices.

    Parameters
    ----------
    x, z:
        Bit ``q`` of ``x`` (``z``) is set when the letter on qubit ``q`` has an X (Z) part;
        Y has both.

    Examples
    --------
    >>> PauliString.parse("X0 Z3")
    PauliString('X0 Z3')
    >>> PauliString.parse("XZ").label()
    'X0 Z1'
    """

    x: int = 0
    z: int = 0

    def __post_init__(self) -> None:
        for name, v in (("x", self.x), ("z", self.z)):
            if type(v) is int and 0 <= v and not v >> MAX_QUBITS:
                continue  # the common case, checked first
            if (
                not isinstance(v, int | np.integer)
                or isinstance(v, bool)
                or v < 0
                or int(v) >> MAX_QUBITS
            ):
                raise PauliError(
                    f"the {name} mask of a Pauli string must be a non-negative integer below "
                    f"2**{MAX_QUBITS} (at most {MAX_QUBITS} qubits), got {v!r}"
                )
            object.__setattr__(self, name, int(v))

    # ------------------------------------------------------------------ construction
    @classmethod
    def parse(cls, text: str, n_qubits: int | None = None) -> PauliString:
        """Parse ``"X0 Z3 Y7"`` (OpenFermion style) or dense ``"XZIY"``.

        A string without digits is read as dense. Lower-case letters are accepted. Raises
        :class:`~qeprop.errors.PauliError` for unknown letters, repeated qubits, or (if ``n_qubits``
        is given) an index ``>= n_qubits``.
        """
        if not isinstance(text, str):
            raise PauliError(f"a Pauli string must be text, got {type(text).__name__}")
        s = text.strip().upper()
        shown = text if len(text) <= 60 else text[:57] + "..."
        x = z = 0
        if s and not any(c in "0123456789" for c in s):
            dense = s.replace(" ", "")
            if len(dense) > MAX_QUBITS:  # bounded before any mask is built
                raise PauliError(
                    f"dense Pauli string {shown!r} has {len(dense)} letters, too many"
                    f"{_limit_text(None)}"
                )
            for q, c in enumerate(dense):
                if c not in _LETTER_BITS:
                    raise PauliError(
                        f"unknown Pauli letter {c!r} in {shown!r} (expected I, X, Y or Z)"
                    )
                bx, bz = _LETTER_BITS[c]
                x |= bx << q
                z |= bz << q
        else:
            seen: set[int] = set()
            for tok in s.split():
                m = _TOKEN.match(tok)
                tok_shown = tok if len(tok) <= 30 else tok[:27] + "..."
                if m is None:
                    if tok[:1] not in _LETTER_BITS:
                        raise PauliError(
                            f"unknown Pauli letter {tok[:1]!r} in {shown!r} "
                            "(expected I, X, Y or Z followed by a qubit index, e.g. 'X0 Z3')"
                        )
                    raise PauliError(
                        f"malformed Pauli token {tok_shown!r} in {shown!r} "
                        "(expected a letter followed by a qubit index, e.g. 'X0 Z3')"
                    )
                letter, digits = m.group(1), m.group(2).lstrip("0") or "0"
                if len(digits) > _MAX_INDEX_DIGITS:  # never convert or shift a huge index
                    raise PauliError(
                        f"qubit index {digits[:20]}{'...' if len(digits) > 20 else ''} in "
                        f"{shown!r} is out of range{_limit_text(n_qubits)}"
                    )
                idx = check_index(int(digits), n_qubits, shown)
                if idx in seen:
                    raise PauliError(f"qubit {idx} appears twice in {shown!r}")
                seen.add(idx)
                bx, bz = _LETTER_BITS[letter]
                x |= bx << idx
                z |= bz << idx
        p = cls(x, z)
        if n_qubits is not None:
            p.check_qubits(n_qubits, text)
        return p

    @classmethod
    def from_letters(cls, letters: Mapping[int, str]) -> PauliString:
        """Build from ``{qubit: letter}``."""
        x = z = 0
        for q, c in letters.items():
            q = check_index(q, None)
            try:
                bx, bz = _LETTER_BITS[c.upper()]
            except (KeyError, AttributeError):
                raise PauliError(f"unknown Pauli letter {c!r}") from None
            x |= bx << q
            z |= bz << q
        return cls(x, z)

    def check_qubits(self, n_qubits: int, text: str | None = None) -> None:
        """Raise :class:`PauliError` if the string acts on a qubit ``>= n_qubits``."""
        top = self.max_qubit
        if top >= n_qubits:
            shown = text if text is not None else self.label()
            raise PauliError(
                f"qubit index {top} in {shown!r} is out of range for {n_qubits} qubits "
                f"(valid indices 0..{n_qubits - 1})"
            )

    # ------------------------------------------------------------------ properties
    @property
    def support(self) -> int:
        """Bit mask of the qubits the string acts on non-trivially."""
        return self.x | self.z

    @property
    def max_qubit(self) -> int:
        """Largest qubit index acted on (-1 for the identity)."""
        return self.support.bit_length() - 1

    @property
    def weight(self) -> int:
        """Number of non-identity letters."""
        return _popcount(self.support)

    @property
    def n_y(self) -> int:
        """Number of Y letters (the string's matrix is imaginary iff this is odd)."""
        return _popcount(self.x & self.z)

    def is_identity(self) -> bool:
        return self.x == 0 and self.z == 0

    def letters(self) -> dict[int, str]:
        """``{qubit: letter}`` for the non-identity letters, in qubit order."""
        out = {}
        sup = self.support
        q = 0
        while sup >> q:
            if (sup >> q) & 1:
                out[q] = _BITS_LETTER[((self.x >> q) & 1, (self.z >> q) & 1)]
            q += 1
        return out

    def label(self) -> str:
        """OpenFermion-style label, ``""`` for the identity."""
        return " ".join(f"{c}{q}" for q, c in self.letters().items())

    def dense_label(self, n_qubits: int) -> str:
        """Dense label of length ``n_qubits`` (character ``k`` acts on qubit ``k``)."""
        self.check_qubits(n_qubits)
        let = self.letters()
        return "".join(let.get(q, "I") for q in range(n_qubits))

    def __repr__(self) -> str:
        return f"PauliString({self.label()!r})"

    def __str__(self) -> str:
        return self.label() or "I"

    # ------------------------------------------------------------------ algebra
    def commutes(self, other: PauliString) -> bool:
        """True when the two strings commute (an even number of anticommuting positions)."""
        return _popcount((self.x & other.z) ^ (self.z & other.x)) % 2 == 0

    def qubitwise_commutes(self, other: PauliString) -> bool:
        """True when on every qubit the two letters are equal or one is the identity."""
        both = self.support & other.support
        return ((self.x ^ other.x) & both) == 0 and ((self.z ^ other.z) & both) == 0

    def multiply(self, other: PauliString) -> tuple[complex, PauliString]:
        """``self @ other = phase * result`` with ``phase`` in ``{1, i, -1, -i}``.

        With ``P = i**(x.z) X**x Z**z`` per qubit, moving ``Z**z1`` past ``X**x2`` costs
        ``(-1)**(z1.x2)``; the phase exponent (mod 4) is
        ``|x1&z1| + |x2&z2| - |x3&z3| + 2 |z1&x2|`` with ``x3 = x1^x2``, ``z3 = z1^z2``.
        """
        x3, z3 = self.x ^ other.x, self.z ^ other.z
        k = (
            _popcount(self.x & self.z)
            + _popcount(other.x & other.z)
            - _popcount(x3 & z3)
            + 2 * _popcount(self.z & other.x)
        ) % 4
        return (1, 1j, -1, -1j)[k], PauliString(x3, z3)

    def __matmul__(self, other: PauliString) -> PauliSum:
        phase, p = self.multiply(other)
        return PauliSum({p: phase})

    # ------------------------------------------------------------------ rendering
    def basis_masks(self, n_qubits: int) -> tuple[int, int]:
        """``(xmask, zmask)`` over basis-index bits: qubit ``q`` is bit ``n-1-q`` of an index."""
        self.check_qubits(n_qubits)
        xm = zm = 0
        for q in range(self.max_qubit + 1):
            if (self.x >> q) & 1:
                xm |= 1 << (n_qubits - 1 - q)
            if (self.z >> q) & 1:
                zm |= 1 << (n_qubits - 1 - q)
        return xm, zm

    def to_sparse(self, n_qubits: int) -> sp.csr_array:
        """Sparse ``2**n x 2**n`` matrix.

        ``P|b> = i**(#Y) (-1)**popcount(b & zmask) |b ^ xmask>``.
        """
        d = 1 << n_qubits
        xm, zm = self.basis_masks(n_qubits)
        b = np.arange(d, dtype=np.int64)
        vals = phase_column(b, zm, self.n_y)
        return sp.csr_array(sp.coo_array((vals, (b ^ xm, b)), shape=(d, d)))

    def to_dense(self, n_qubits: int) -> np.ndarray:
        return self.to_sparse(n_qubits).toarray()


def parity(v: np.ndarray) -> np.ndarray:
    """Bit parity (popcount mod 2) of each non-negative integer in ``v`` (vectorised)."""
    v = np.asarray(v, dtype=np.uint64).copy()
    for shift in (32, 16, 8, 4, 2, 1):
        v ^= v >> np.uint64(shift)
    return (v & np.uint64(1)).astype(np.int8)


def phase_column(b: np.ndarray, zmask: int, n_y: int) -> np.ndarray:
    """Matrix elements ``<b ^ xmask| P |b> = i**n_y * (-1)**popcount(b & zmask)`` for all ``b``."""
    signs = 1.0 - 2.0 * parity(b & zmask)
    ph = (1, 1j, -1, -1j)[n_y % 4]
    if n_y % 2:
        return signs * ph
    return signs * float(ph.real if isinstance(ph, complex) else ph)


_PauliLike = str | PauliString


def _as_string(p: _PauliLike) -> PauliString:
    return p if isinstance(p, PauliString) else PauliString.parse(p)


class PauliSum:
    """A linear combination ``sum_s c_s P_s`` of Pauli strings (immutable by convention).

    Hermitian operators, which is what qeprop uses for Hamiltonian terms and observables, are sums
    with real coefficients; products of sums may carry complex coefficients. ``(1 + Z0)(1 - Z1)/4``
    is ``PauliSum.from_terms([(0.25, ""), (0.25, "Z0"), (-0.25, "Z1"), (-0.25, "Z0 Z1")])``.
    """

    __slots__ = ("_terms",)

    def __init__(self, terms: Mapping[PauliString, complex] | None = None) -> None:
        clean: dict[PauliString, complex] = {}
        for p, c in (terms or {}).items():
            if not isinstance(p, PauliString):
                raise PauliError(f"the strings of a Pauli sum must be PauliString, got {p!r}")
            c = _coefficient(c, p)
            if c != 0:
                clean[p] = clean.get(p, 0) + c
        _check_finite(clean)
        self._terms = {p: c for p, c in clean.items() if c != 0}

    @classmethod
    def from_terms(
        cls, terms: Iterable[tuple[complex, _PauliLike]], n_qubits: int | None = None
    ) -> PauliSum:
        """From ``[(coeff, "X0 Z1"), ...]``; repeated strings are added."""
        acc: dict[PauliString, complex] = {}
        for c, p in terms:
            ps = PauliString.parse(p, n_qubits) if isinstance(p, str) else _as_string(p)
            if n_qubits is not None:
                ps.check_qubits(n_qubits, p if isinstance(p, str) else None)
            acc[ps] = acc.get(ps, 0) + _coefficient(c, ps)
        _check_finite(acc)
        return cls(acc)

    @classmethod
    def projector(cls, bits: Mapping[int, int]) -> PauliSum:
        """Projector onto Z-basis values: ``prod_q (1 + (-1)**b_q Z_q) / 2`` for ``{q: b_q}``."""
        out = cls({PauliString(): 1.0})
        for q, b in bits.items():
            try:
                q = check_index(q, None)
            except PauliError:
                raise PauliError(
                    f"projector qubit index must be a non-negative integer below {MAX_QUBITS}, "
                    f"got {q!r}"
                ) from None
            if (
                isinstance(b, bool | np.bool_)
                or not isinstance(b, int | np.integer)
                or b
                not in (
                    0,
                    1,
                )
            ):
                raise PauliError(f"projector bit for qubit {q} must be 0 or 1, got {b!r}")
            out = out @ cls({PauliString(): 0.5, PauliString(0, 1 << q): 0.5 * (-1) ** b})
        return out

    # ------------------------------------------------------------------ container protocol
    def items(self) -> Iterator[tuple[PauliString, complex]]:
        return iter(self._terms.items())

    def strings(self) -> list[PauliString]:
        return list(self._terms)

    def coefficient(self, p: _PauliLike) -> complex:
        return self._terms.get(_as_string(p), 0)

    def __len__(self) -> int:
        return len(self._terms)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PauliSum):
            return NotImplemented
        keys = set(self._terms) | set(other._terms)
        return all(abs(self.coefficient(k) - other.coefficient(k)) <= 1e-12 for k in keys)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [f"{_fmt(c)}*{p!s}" for p, c in sorted(self._terms.items())]
        return f"PauliSum({' + '.join(parts) or '0'})"

    # ------------------------------------------------------------------ algebra
    def __add__(self, other: PauliSum) -> PauliSum:
        acc = dict(self._terms)
        for p, c in other._terms.items():
            acc[p] = acc.get(p, 0) + c
        return PauliSum(acc)

    def __sub__(self, other: PauliSum) -> PauliSum:
        return self + (-1.0) * other

    def __mul__(self, scalar: complex) -> PauliSum:
        return PauliSum({p: c * scalar for p, c in self._terms.items()})

    __rmul__ = __mul__

    def __matmul__(self, other: PauliSum) -> PauliSum:
        acc: dict[PauliString, complex] = {}
        for p1, c1 in self._terms.items():
            for p2, c2 in other._terms.items():
                ph, p3 = p1.multiply(p2)
                acc[p3] = acc.get(p3, 0) + ph * c1 * c2
        return PauliSum({p: _tidy(c) for p, c in acc.items()})

    def commutator(self, other: PauliSum) -> PauliSum:
        return self @ other - other @ self

    def is_hermitian(self, tol: float = 1e-12) -> bool:
        return all(abs(complex(c).imag) <= tol for c in self._terms.values())

    def real(self, tol: float = 1e-12, what: str = "operator") -> dict[PauliString, float]:
        """The real coefficients of a Hermitian sum; raises :class:`PauliError` otherwise."""
        out = {}
        for p, c in self._terms.items():
            cc = complex(c)
            if abs(cc.imag) > tol:
                raise PauliError(
                    f"{what} is not Hermitian: term {str(p)!r} has complex coefficient {cc}"
                )
            out[p] = cc.real
        return out

    @property
    def max_qubit(self) -> int:
        return max((p.max_qubit for p in self._terms), default=-1)

    def norm_bound(self) -> float:
        """``sum_s |c_s|``, an upper bound on the operator norm."""
        return float(sum(abs(c) for c in self._terms.values()))

    def spectrum_bounds(self, max_enumerate: int = 1 << 22) -> tuple[float, float] | None:
        """``(λ_min, λ_max)`` of a Hermitian sum when it can be decided cheaply, else ``None``.

        Only the qubits the sum acts on matter (``O ⊗ 1`` has the spectrum of ``O``). When all
        strings commute qubit-wise they are diagonal in one product basis, where string ``s`` has
        eigenvalue ``(-1)**popcount(b & support_s)`` on basis state ``b``; the spectrum is then
        enumerated over the ``2**k`` states of the ``k`` support qubits (when
        ``2**k * n_strings <= max_enumerate``). Otherwise, for ``k <= 8``, the spectrum of the
        ``2**k x 2**k`` matrix is computed. Raises :class:`PauliError` for a non-Hermitian sum.
        """
        coeffs = self.real(what="operator")
        if not coeffs:
            return 0.0, 0.0
        support = 0
        for p in coeffs:
            support |= p.support
        qubits = [q for q in range(support.bit_length()) if (support >> q) & 1]
        k = len(qubits)
        slot = {q: i for i, q in enumerate(qubits)}

        def compact(p: PauliString) -> PauliString:
            return PauliString.from_letters({slot[q]: c for q, c in p.letters().items()})

        strings = list(coeffs)
        qubitwise = all(a.qubitwise_commutes(b) for i, a in enumerate(strings) for b in strings[i:])
        if qubitwise and (1 << k) * len(strings) <= max_enumerate:
            b = np.arange(1 << k, dtype=np.int64)
            vals = np.zeros(1 << k)
            for p, c in coeffs.items():
                vals += c * (1.0 - 2.0 * parity(b & compact(p).support))
            return float(vals.min()), float(vals.max())
        if k <= 8:
            small = PauliSum({compact(p): c for p, c in coeffs.items()})
            ev = np.linalg.eigvalsh(small.to_dense(max(k, 1)))
            return float(ev[0]), float(ev[-1])
        return None

    def to_sparse(self, n_qubits: int) -> sp.csr_array:
        d = 1 << n_qubits
        dtype = (
            np.float64
            if self.is_hermitian() and all(p.n_y % 2 == 0 for p in self._terms)
            else np.complex128
        )
        out = sp.csr_array((d, d), dtype=dtype)
        for p, c in self._terms.items():
            m = p.to_sparse(n_qubits)
            out = out + (c.real if dtype == np.float64 else c) * m
        return sp.csr_array(out)

    def to_dense(self, n_qubits: int) -> np.ndarray:
        return self.to_sparse(n_qubits).toarray()


def _coefficient(c: object, p: PauliString) -> complex:
    """A finite real or complex coefficient of ``p`` (never ``bool`` or text such as ``"0.5"``)."""
    if isinstance(c, bool | np.bool_) or not isinstance(
        c, int | float | complex | np.integer | np.floating | np.complexfloating
    ):
        raise PauliError(f"coefficient {c!r} of {str(p)!r} must be a number")
    try:
        finite = cmath.isfinite(complex(c))
    except OverflowError:  # an int beyond the float range
        finite = False
    if not finite:
        raise PauliError(f"coefficient {c!r} of {str(p)!r} is not finite")
    return c  # type: ignore[return-value]


def _check_finite(terms: Mapping[PauliString, complex]) -> None:
    """Raise when adding coefficients overflowed (two coefficients of 1e308 sum to inf)."""
    for p, c in terms.items():
        if not cmath.isfinite(complex(c)):
            raise PauliError(
                f"the coefficient of {str(p)!r} overflows to {complex(c).real:g}: the "
                "coefficients given add up beyond the float range (about 1.8e308)"
            )


def _tidy(c: complex) -> complex:
    """Drop rounding residue from phase products (keeps exact zeros exact)."""
    c = complex(c)
    re_, im_ = c.real, c.imag
    if abs(re_) < 1e-15:
        re_ = 0.0
    if abs(im_) < 1e-15:
        im_ = 0.0
    return complex(re_, im_) if im_ else re_


def _fmt(c: complex) -> str:
    c = complex(c)
    return f"{c.real:g}" if c.imag == 0 else f"({c.real:g}{c.imag:+g}j)"


def as_pauli_sum(obj: PauliSum | PauliString | str | Iterable[tuple[float, str]]) -> PauliSum:
    """Coerce a string, a :class:`PauliString` or ``[(coeff, string), ...]`` to a PauliSum."""
    if isinstance(obj, PauliSum):
        return obj
    if isinstance(obj, PauliString):
        return PauliSum({obj: 1.0})
    if isinstance(obj, str):
        return PauliSum({PauliString.parse(obj): 1.0})
    return PauliSum.from_terms(obj)


def qubitwise_commute_groups(strings: Iterable[PauliString]) -> list[list[PauliString]]:
    """Partition strings into qubit-wise commuting groups (greedy, heaviest strings first).

    Strings in one group can be measured from the same shots: on each qubit all of them show the
    same letter or the identity, so one single-qubit basis rotation per qubit serves them all. The
    identity is left out (its expectation is 1 without measurement).
    """
    todo = sorted({p for p in strings if not p.is_identity()}, key=lambda p: (-p.weight, p))
    groups: list[list[PauliString]] = []
    bases: list[PauliString] = []  # the union "basis string" of each group
    for p in todo:
        for idx, base in enumerate(bases):
            if base.qubitwise_commutes(p):
                groups[idx].append(p)
                bases[idx] = PauliString(base.x | p.x, base.z | p.z)
                break
        else:
            groups.append([p])
            bases.append(p)
    return groups
