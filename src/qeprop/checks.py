"""Shared input checks: one definition of "a positive integer", "a finite real", ... for qeprop.

Every check takes the value and ``where`` (the name of the input as the user wrote it: a problem
file key such as ``"shots"``, a keyword argument such as ``"nudge"``, a config key) and either
returns the value converted to a plain Python type or raises :class:`~qeprop.errors.ProblemError`
with a one-line message that starts with ``where``. The command line prints such errors as one line
and exits with status 2, so the same check serves the CLI, the problem files and the Python API.

Conventions
-----------
* ``bool`` is never a number (``True`` is not the integer 1 here), and text is never a number
  (``"0.5"`` is refused: numbers from files or the command line are converted where they are read).
* Integers are Python ``int`` or any numpy integer (``np.int64`` shots and seeds alike). A float
  with an integral value (``1e3`` as JSON writes it) is accepted only where ``integral_float=True``.
* Reals are ``int``/``float`` or numpy integers/floats (and 0-d arrays of them); NaN and ±inf are
  refused everywhere.
* Bounds are inclusive unless ``open_lo``/``open_hi`` say otherwise.

This module is layer 1: it imports only numpy and :mod:`qeprop.errors`.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Collection, Iterable
from typing import Any, TypeVar

import numpy as np

from .errors import ProblemError

__all__ = [
    "MAX_COEFFICIENT",
    "MAX_QUBITS",
    "MAX_VECTOR_QUBITS",
    "boolean",
    "choice",
    "finite_real",
    "index",
    "integer",
    "nonnegative_int",
    "positive_int",
    "positive_real",
    "probability",
    "readonly",
    "real_vector",
    "shown",
]

#: Largest number of qubits any qubit register may have (Pauli strings are bit masks of Python
#: integers; matrix product states of 1024 sites are far beyond what the dmrg backend is meant for).
#: State-vector backends need ``2**n`` amplitudes with 64-bit basis indices, so they stop at
#: :data:`MAX_VECTOR_QUBITS`; the memory a solve needs is checked separately and refuses far smaller
#: systems on real machines.
MAX_QUBITS = 1024

#: Largest number of qubits of a state vector (basis indices are signed 64-bit integers).
MAX_VECTOR_QUBITS = 62

#: Largest magnitude of a Hamiltonian coefficient, and of the sum of all of them (the scale of
#: ``H``). Eigensolvers form squared norms (``||H v||²``), which overflow the float range (about
#: 1.8e308) beyond about 1e154; 1e150 leaves room for sums over many strings.
MAX_COEFFICIENT = 1e150

T = TypeVar("T")


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40


def shown(v: Any, limit: int = 60) -> str:
    """A short ``repr`` of ``v`` for one-line messages about arbitrary input.

    Cut to about ``limit`` characters; safe for huge or deeply nested values (only the first
    levels and items are rendered). Text is marked ``(text)`` so that ``'0.5'`` is not mistaken
    for a number.
    """
    try:
        r = _REPR.repr(v)
    except Exception:  # a user object whose repr fails, an int too long to print
        r = f"<{type(v).__name__}>"
        if isinstance(v, int):
            r = f"<an integer of {v.bit_length()} bits>"
    r = " ".join(r.split())  # one line
    if len(r) > limit:
        r = r[: limit - 3] + "..."
    return f"{r} (text)" if isinstance(v, str) else r


def _fail(where: str | None, message: str) -> ProblemError:
    return ProblemError(message, where=where or None)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_real(v: Any) -> bool:
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def integer(
    v: Any,
    where: str | None,
    *,
    lo: int | None = None,
    hi: int | None = None,
    integral_float: bool = False,
    what: str = "an integer",
) -> int:
    """``v`` as a Python ``int`` with ``lo <= v <= hi`` (each bound optional).

    Parameters
    ----------
    v:
        The value to check: ``int`` or a numpy integer; with ``integral_float=True`` also a finite
        float with an integral value (``4.0``, ``1e3``).
    where:
        Name of the input, prefixed to the message.
    lo, hi:
        Inclusive bounds.
    integral_float:
        Accept integral floats (for numbers read from JSON/TOML, where ``1e3`` is a float).
    what:
        How the expected value is described in the message (``"a positive integer"``).
    """
    if not _is_int(v):
        ok_float = (
            integral_float and _is_real(v) and math.isfinite(float(v)) and float(v).is_integer()
        )
        if not ok_float:
            raise _fail(where, f"must be {what}, got {shown(v)}")
    n = int(v)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise _fail(where, f"must be {what}{_range_text(lo, hi)}, got {shown(n)}")
    return n


def _range_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" in {lo}..{hi}"
    if hi is not None:
        return f" at most {hi}"
    return f" at least {lo}" if lo is not None else ""


def positive_int(
    v: Any, where: str | None, maximum: int | None = None, *, integral_float: bool = False
) -> int:
    """``v`` as an ``int >= 1`` (and ``<= maximum`` if given); see :func:`integer`."""
    return integer(
        v, where, lo=1, hi=maximum, integral_float=integral_float, what="a positive integer"
    )


def nonnegative_int(
    v: Any, where: str | None, maximum: int | None = None, *, integral_float: bool = False
) -> int:
    """``v`` as an ``int >= 0`` (and ``<= maximum`` if given); see :func:`integer`."""
    return integer(
        v, where, lo=0, hi=maximum, integral_float=integral_float, what="a non-negative integer"
    )


def index(v: Any, size: int, where: str | None, *, what: str = "index") -> int:
    """``v`` as an index ``0 <= v < size`` (a qubit, a level, a position); no float accepted."""
    if not _is_int(v):
        raise _fail(where, f"{what} must be an integer, got {shown(v)}")
    n = int(v)
    if not 0 <= n < size:
        valid = f"valid: 0..{size - 1}" if size > 0 else "there is nothing to index"
        raise _fail(where, f"{what} {shown(n)} is out of range ({valid})")
    return n


def finite_real(
    v: Any,
    where: str | None,
    lo: float | None = None,
    hi: float | None = None,
    *,
    open_lo: bool = False,
    open_hi: bool = False,
) -> float:
    """``v`` as a finite Python ``float`` with ``lo <= v <= hi`` (``<`` where open).

    Refuses ``bool``, text (``"0.5"``), complex numbers, NaN and ±inf.
    """
    if not _is_real(v):
        raise _fail(where, f"must be a real number, got {shown(v)}")
    try:
        x = float(v)
    except OverflowError:  # a Python int beyond the float range
        raise _fail(where, f"must be a finite real number, got {shown(v)}") from None
    if not math.isfinite(x):
        raise _fail(where, f"must be a finite real number, got {x!r}")
    below = lo is not None and (x <= lo if open_lo else x < lo)
    above = hi is not None and (x >= hi if open_hi else x > hi)
    if below or above:
        raise _fail(where, f"must be {_interval_text(lo, hi, open_lo, open_hi)}, got {x!r}")
    return x


def _interval_text(lo: float | None, hi: float | None, open_lo: bool, open_hi: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
    if lo is not None:
        return f"{'>' if open_lo else '>='} {lo:g}"
    return f"{'<' if open_hi else '<='} {hi:g}"


def positive_real(v: Any, where: str | None, maximum: float | None = None) -> float:
    """``v`` as a finite float ``> 0`` (and ``<= maximum`` if given)."""
    return finite_real(v, where, 0.0, maximum, open_lo=True)


def probability(v: Any, where: str | None) -> float:
    """``v`` as a finite float in ``[0, 1]``."""
    return finite_real(v, where, 0.0, 1.0)


def boolean(v: Any, where: str | None) -> bool:
    """``v`` as a ``bool``: only ``True``/``False`` (or numpy booleans), never 0/1 or text."""
    if not isinstance(v, bool | np.bool_):
        raise _fail(where, f"must be true or false, got {shown(v)}")
    return bool(v)


def choice(v: Any, options: Collection[T] | Iterable[T], where: str | None) -> T:
    """``v`` if it is one of ``options`` (compared by equality, text case-sensitive)."""
    opts = list(options)
    try:  # same kind of value (np.str_ is text, True is not the option 1) and equal
        hit = [
            o
            for o in opts
            if isinstance(v, type(o)) and isinstance(v, bool) == isinstance(o, bool) and o == v
        ]
    except Exception:  # an oddly comparing value is simply not an option
        hit = []
    if not hit:
        raise _fail(where, f"must be one of {opts}, got {shown(v)}")
    return hit[0]


def real_vector(
    v: Any, where: str | None, length: int | None = None, *, what: str = "values"
) -> np.ndarray:
    """``v`` as a new read-only 1-d float array of finite reals (of ``length`` entries if given).

    Refuses text entries, booleans, complex numbers, ragged or nested input, NaN and ±inf; the
    message names the first offending entry ``where[i]``.
    """
    if isinstance(v, str | bytes) or isinstance(v, dict):
        raise _fail(where, f"{what} must be a list of real numbers, got {shown(v)}")
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "iuf":
            raise _fail(where, f"{what} must be real numbers, got an array of {v.dtype}")
        arr = np.array(v, dtype=float).reshape(-1) if v.ndim <= 1 else None
        if arr is None:
            raise _fail(where, f"{what} must be a flat list, got shape {v.shape}")
    else:
        try:
            items = list(v)
        except TypeError:
            raise _fail(where, f"{what} must be a list of real numbers, got {shown(v)}") from None
        vals = []
        for i, x in enumerate(items):
            w = f"{where}[{i}]" if where else f"[{i}]"
            vals.append(finite_real(x, w))
        arr = np.array(vals, dtype=float)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        w = f"{where}[{bad[0]}]" if where else f"[{bad[0]}]"
        raise _fail(w, f"must be a finite real number, got {arr[bad[0]]!r}")
    if length is not None and arr.size != length:
        raise _fail(where, f"expected {length} {what}, got {arr.size}")
    return readonly(arr)


def readonly(a: np.ndarray) -> np.ndarray:
    """Mark ``a`` read-only in place and return it (cached results cannot be changed by callers).

    A caller that needs to modify the values takes a copy (``a.copy()`` is writeable).
    """
    a.flags.writeable = False
    return a
