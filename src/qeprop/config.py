"""Typed experiment configurations, checked in one place before anything runs (layer 4).

An experiment declares its configuration as a frozen dataclass deriving from :class:`Config`;
every field is made with :func:`option`, which records its default, bounds or choices and a
one-line description::

    @dataclass(frozen=True)
    class ToyConfig(Config):
        steps: int = option(60, "optimisation steps", ge=1, le=10**6)
        rate: float = option(0.05, "learning rate", gt=0, le=10)
        shots: int | None = option(None, "shots per expectation value (none: exact)", ge=1)
        sites: tuple[int, ...] = option((0, 1), "chain sites the sensor touches", ge=0)
        kind: str = option("a", "which variant", choices=("a", "b"))

        def check(self) -> None:  # combinations of fields, derived defaults
            if self.kind == "b" and self.shots is not None:
                raise ProblemError("variant b is exact and takes no shots", where="shots")

Construction validates every field (``ToyConfig(steps=0)`` raises), then calls :meth:`Config.check`
for combinations. :meth:`Config.from_mapping` builds a configuration from ``config.toml`` /
``--set`` values and refuses unknown keys. Every error is a :class:`~qeprop.errors.ProblemError`
whose ``where`` is the key (``steps: must be an integer >= 1 and <= 1000000, got 0``), so the
command line reports it in one line with exit status 2.

Types (the field annotations)
-----------------------------
``int``, ``float``, ``bool``, ``str``; ``T | None`` (optional: ``None``, or the text ``"none"``
from ``--set key=none`` and ``config.toml``); ``tuple[T, ...]`` (a list of any length, bounds and
choices apply to every item, ``min_len``/``max_len`` to the length) and ``tuple[T, T]`` (a list of
exactly that length). What counts as an integer, a real number or a boolean is
:mod:`qeprop.checks`'s definition: ``bool`` is never a number, text is never a number
(``"0.5"`` is refused), numpy scalars are accepted, NaN and ±inf are refused. Floats are stored
as ``float``, lists as tuples (a configuration is hashable).

A configuration is also a read-only mapping (``config["steps"]``, ``dict(config)``);
:meth:`Config.to_dict` gives the TOML-able form written to ``config.toml`` (lists, ``None`` as
``"none"``), and ``type(config).from_mapping(config.to_dict()) == config``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Self

from . import checks
from .errors import ProblemError

__all__ = ["NONE", "Config", "check_value", "describe", "option"]

#: how ``None`` is written in ``config.toml`` and given with ``--set key=none``
NONE = "none"

#: names a field may not have: they are methods of every configuration
_RESERVED = frozenset(
    {"keys", "items", "values", "get", "check", "to_dict", "replace", "from_mapping",
     "defaults", "fields"}
)  # fmt: skip
_META = "qeprop"


def option(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    min_len: int | None = None,
    max_len: int | None = None,
) -> Any:
    """A configuration field: its default, a one-line description and its allowed values.

    Parameters
    ----------
    default:
        The default value (a list is stored as a tuple).
    doc:
        One line saying what the key means (shown by ``qeprop run EXPERIMENT --help``).
    ge, gt, le, lt:
        Bounds of a number (``>=``, ``>``, ``<=``, ``<``); for lists, of every item.
    choices:
        The allowed values (of every item, for lists).
    min_len, max_len:
        Bounds of the length of a list.
    """
    if isinstance(default, list):
        default = tuple(default)
    meta = {
        "doc": doc,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
        "choices": tuple(choices) if choices is not None else None,
        "min_len": min_len,
        "max_len": max_len,
    }
    return dataclasses.field(default=default, metadata={_META: meta})


# ------------------------------------------------------------------------------------ field specs
@dataclasses.dataclass(frozen=True)
class _Spec:
    """What a field accepts: base type, optional, list form and bounds."""

    name: str
    base: type
    optional: bool
    length: int | None  # None: a scalar; -1: a list of any length; n: exactly n items
    doc: str
    default: Any
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int | None = None
    max_len: int | None = None

    # -------------------------------------------------------------- descriptions
    def item_text(self) -> str:
        """What one value must be, e.g. ``an integer >= 1`` or ``one of ['a', 'b']``."""
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.base is bool:
            return "true or false"
        if self.base is str:
            return "text"
        noun = "an integer" if self.base is int else "a finite number"
        if self.base is int and self.le is None and self.lt is None and self.gt is None:
            if self.ge == 1:
                return "a positive integer"
            if self.ge == 0:
                return "a non-negative integer"
        parts = [
            f"{op} {_num(b)}"
            for op, b in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if b is not None
        ]
        return noun + (" " + " and ".join(parts) if parts else "")

    def text(self) -> str:
        """What the whole value must be (list and optional forms included)."""
        item = self.item_text()
        if self.length is None:
            out = item
        elif self.length >= 0:
            out = f"a list of {self.length} values, each {item}"
        else:
            n = ""
            if self.min_len is not None and self.max_len is not None:
                n = f"{self.min_len} to {self.max_len} "
            elif self.min_len is not None:
                n = f"at least {self.min_len} "
            elif self.max_len is not None:
                n = f"at most {self.max_len} "
            out = f"a list of {n}values, each {item}"
        return out + (f" or {NONE}" if self.optional else "")

    # -------------------------------------------------------------- conversion
    def convert(self, value: Any) -> Any:
        if self.optional and (value is None or (isinstance(value, str) and value.lower() == NONE)):
            return None
        if self.length is None:
            return self._item(value, self.name)
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
            raise ProblemError(f"must be {self.text()}, got {checks.shown(value)}", where=self.name)
        n = len(value)
        if (
            (self.length >= 0 and n != self.length)
            or (self.min_len is not None and n < self.min_len)
            or (self.max_len is not None and n > self.max_len)
        ):
            raise ProblemError(
                f"must be {self.text()}, got {n} value{'s' * (n != 1)}", where=self.name
            )
        return tuple(self._item(v, f"{self.name}[{i}]") for i, v in enumerate(value))

    def _item(self, value: Any, where: str) -> Any:
        def fail() -> ProblemError:
            what = self.item_text() if self.length is not None else self.text()
            return ProblemError(f"must be {what}, got {checks.shown(value)}", where=where)

        out: Any
        try:
            if self.base is bool:
                out = checks.boolean(value, where)
            elif self.base is int:
                out = checks.integer(value, where)
            elif self.base is float:
                out = checks.finite_real(value, where)
            elif isinstance(value, str):
                out = value
            else:
                raise fail()
        except ProblemError:
            raise fail() from None
        if self.choices is not None:
            if not any(type(c) is type(out) and c == out for c in self.choices):
                raise fail()
            return out
        if self.base in (int, float) and not (
            (self.ge is None or out >= self.ge)
            and (self.gt is None or out > self.gt)
            and (self.le is None or out <= self.le)
            and (self.lt is None or out < self.lt)
        ):
            raise fail()
        return out

    def toml(self, value: Any) -> Any:
        """``value`` as written to ``config.toml``."""
        if value is None:
            return NONE
        return list(value) if isinstance(value, tuple) else value


def _num(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e16):
        return str(int(x))
    return f"{x:g}"


def _parse_annotation(tp: Any, name: str) -> tuple[type, bool, int | None]:
    """(base type, optional, list length) of an annotation; see the module docstring."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(args) == len(typing.get_args(tp)):
            raise TypeError(f"config field {name!r}: only 'T | None' unions are supported")
        optional, tp = True, args[0]
        origin = typing.get_origin(tp)
    length: int | None = None
    if origin is tuple:
        items = typing.get_args(tp)
        if len(items) == 2 and items[1] is Ellipsis:
            length, tp = -1, items[0]
        elif items and all(a == items[0] for a in items):
            length, tp = len(items), items[0]
        else:
            raise TypeError(f"config field {name!r}: use tuple[T, ...] or tuple[T, T, ...]")
    if tp not in (int, float, bool, str):
        raise TypeError(f"config field {name!r}: unsupported type {tp!r}")
    return tp, optional, length


@cache
def _specs(cls: type[Config]) -> tuple[_Spec, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            raise TypeError(f"config field {cls.__name__}.{f.name} must be made with option()")
        if f.name in _RESERVED or f.name.startswith("_"):
            raise TypeError(f"config field name {f.name!r} is reserved")
        base, optional, length = _parse_annotation(hints[f.name], f.name)
        out.append(
            _Spec(f.name, base, optional, length, meta["doc"], f.default, **{
                k: meta[k] for k in ("ge", "gt", "le", "lt", "choices", "min_len", "max_len")
            })
        )  # fmt: skip
    return tuple(out)


# ------------------------------------------------------------------------------------ Config
@dataclasses.dataclass(frozen=True)
class Config(Mapping[str, Any]):
    """Base class of experiment configurations (see the module docstring)."""

    def __post_init__(self) -> None:
        for spec in _specs(type(self)):
            object.__setattr__(self, spec.name, spec.convert(getattr(self, spec.name)))
        self.check()

    def check(self) -> None:
        """Check combinations of fields and fill in derived defaults (override in subclasses).

        Raise :class:`~qeprop.errors.ProblemError` with ``where`` set to the key to blame; set
        derived values with ``self._set(key, value)``.
        """

    def _set(self, key: str, value: Any) -> None:
        """Set a field from :meth:`check` (the dataclass is frozen)."""
        object.__setattr__(self, key, value)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """A configuration from plain values (``config.toml``, ``--set``); missing keys take
        their defaults, unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ProblemError(f"must be a table of key = value pairs, got {checks.shown(data)}")
        names = [s.name for s in _specs(cls)]
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise ProblemError(f"unknown key; allowed: {names}", where=unknown[0])
        return cls(**data)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The configuration keys, in declaration order."""
        return tuple(s.name for s in _specs(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The declared defaults, in their ``config.toml`` form (before :meth:`check`)."""
        return {s.name: s.toml(s.default) for s in _specs(cls)}

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain TOML-able values (what ``config.toml`` holds)."""
        return {s.name: s.toml(getattr(self, s.name)) for s in _specs(type(self))}

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -------------------------------------------------------------- read-only mapping
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).fields():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(type(self).fields())

    def __len__(self) -> int:
        return len(type(self).fields())


def check_value(
    value: Any,
    where: str,
    kind: type,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """Check one value the way a configuration field of type ``kind`` checks it.

    For settings that are not :class:`Config` fields (e.g. :class:`qeprop.maps.MapSpec`): the
    same types, bounds and one-line messages.
    """
    spec = _Spec(where, kind, False, None, "", None, ge, gt, le, lt, choices)
    return spec.convert(value)


def describe(cls: type[Config]) -> str:
    """A table of the keys of ``cls``: name, type and allowed values, default, meaning."""
    rows = [("KEY", "TYPE", "DEFAULT", "MEANING")]
    for s in _specs(cls):
        rows.append((s.name, _type_cell(s), _toml_text(s.toml(s.default)), s.doc))
    w = [min(max(len(r[i]) for r in rows), cap) for i, cap in enumerate((24, 30, 18))]
    return "\n".join(
        f"  {r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}".rstrip() for r in rows
    )


def _type_cell(s: _Spec) -> str:
    """Compact type and allowed values: ``int 2..200``, ``float in (0, 100]``, ``a|b``."""
    if s.choices is not None:
        kind = "|".join(str(c) for c in s.choices)
    else:
        kind = "text" if s.base is str else s.base.__name__
        lo = (s.ge, "[") if s.ge is not None else (s.gt, "(")
        hi = (s.le, "]") if s.le is not None else (s.lt, ")")
        if s.base is int and s.ge is not None and s.le is not None:
            kind += f" {_num(s.ge)}..{_num(s.le)}"
        elif lo[0] is not None and hi[0] is not None:
            kind += f" in {lo[1]}{_num(lo[0])}, {_num(hi[0])}{hi[1]}"
        elif lo[0] is not None:
            kind += f" {'>=' if lo[1] == '[' else '>'} {_num(lo[0])}"
        elif hi[0] is not None:
            kind += f" {'<=' if hi[1] == ']' else '<'} {_num(hi[0])}"
    if s.length is not None:
        kind = f"list of {kind}" if s.length < 0 else f"{s.length} × {kind}"
    return kind + (f" or {NONE}" if s.optional else "")


def _toml_text(value: Any) -> str:
    """``value`` as TOML writes it (for the help table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_text(v) for v in value) + "]"
    return str(value)
