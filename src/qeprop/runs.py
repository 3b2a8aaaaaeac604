"""Run directories: configuration, metrics, checkpoints, resumption and provenance (layer 5).

An :class:`~qeprop.experiments.Experiment` is a pure step-wise computation; this module owns
everything around it. :func:`start_run` creates a run directory, :func:`resume_run` continues one,
and both drive the experiment through the same loop. The layout (see ``docs/runs.md``)::

    DIR/
      config.toml        {"experiment": name, ...resolved configuration}
      provenance.json    version, git revision, command line, platform, times, resumes, timings
      metrics.jsonl      {"step": int, ...experiment.evaluate()} per evaluation (step 0 included)
      checkpoint.npz     TrainState arrays, plus "__step__", "__meta__" (JSON text), "__run__"
                         (JSON: experiment, configuration, qeprop version) and "__dicts__"
      checkpoint.json    {"step", "meta"}: written after the .npz; both name the same step
      results.npz        arrays from experiment.finish()
      summary.json       {"experiment", "final", "steps"}: written last, marks a finished run
      .lock              while a process writes the directory: its pid

Guarantees
----------
* One writer: a run or resume holds an exclusive ``flock`` on the run directory for its whole
  life; a second ``qeprop run --resume DIR`` is refused in one line naming the holder's pid. The
  kernel drops the lock when its process dies (even by ``SIGKILL``), so no stale lock remains.
* A run directory is never overwritten: :func:`start_run` refuses an existing path. It builds the
  directory under a temporary name next to it (configuration, provenance, the step-0 evaluation
  and checkpoint) and renames it into place only then, so a failure at the start (a bad value, a
  full disk, Ctrl-C) leaves nothing behind and the same command can simply be run again.
* Every file is replaced atomically (written to a temporary file in the same directory, flushed,
  ``fsync``-ed, then ``os.replace``-d), so a crash (even ``SIGKILL``) leaves either the old or the
  new version of each file, never half of one. ``metrics.jsonl`` grows by one ``write`` of a whole
  line per evaluation, ``fsync``-ed, and a failed append is cut back off, so it never keeps half a
  line (a torn last line, which only a power cut could leave, is dropped on resume: it belongs to
  a step after the checkpoint).
* ``--resume`` verifies what it reads and never restarts or truncates silently: the checkpoint
  must be present and readable (an ``.npz`` archive, loaded without pickle), the metrics must hold
  every evaluation up to the checkpoint's step, and the configuration and qeprop version must be
  those the checkpoint was written with (a changed version is accepted only with
  ``force_version``, and recorded). Every refusal is one :class:`~qeprop.errors.QEPError` line
  that says how to proceed.
* Determinism: all randomness lives in the :class:`TrainState` (its RNG state in ``meta``), the
  experiments evaluate without caches that outlive a call, and the configuration the experiment
  sees is always the one read back from ``config.toml``; so an interrupted and resumed run
  produces byte for byte the same ``metrics.jsonl``, ``results.npz`` arrays and ``summary.json``
  as an uninterrupted one.
* ``Ctrl-C`` (``SIGINT``) and ``SIGTERM`` write a checkpoint of the last completed step (a copy
  taken after the step's evaluation, so a half-done step never reaches the disk) and raise
  :class:`RunInterrupted`; the command line prints ``interrupted at step N; continue with:
  qeprop run --resume DIR`` and exits with status 130.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import glob
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from . import __version__
from .config import Config
from .errors import ProblemError, QEPError
from .experiments import Experiment, get_experiment
from .problem import load_toml
from .training import TrainState

try:  # POSIX; elsewhere a run directory is not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHECKPOINT_EVERY",
    "RunInUse",
    "RunInterrupted",
    "dump_toml",
    "load_checkpoint",
    "load_config",
    "parse_overrides",
    "read_metrics",
    "read_npz",
    "resume_run",
    "run_finished",
    "save_checkpoint",
    "start_run",
]

#: default of the ``checkpoint_every`` configuration key
CHECKPOINT_EVERY = 100

CONFIG = "config.toml"
PROVENANCE = "provenance.json"
METRICS = "metrics.jsonl"
CHECKPOINT_NPZ = "checkpoint.npz"
CHECKPOINT_JSON = "checkpoint.json"
RESULTS = "results.npz"
SUMMARY = "summary.json"
LOCK = ".lock"

_STEP_KEY = "__step__"
_META_KEY = "__meta__"
_RUN_KEY = "__run__"
_DICTS_KEY = "__dicts__"
_RESERVED = (_STEP_KEY, _META_KEY, _RUN_KEY, _DICTS_KEY)
_SEP = "/"  # "optimiser/m": entry "m" of the dict-valued array entry "optimiser"
_PARTIAL = ".partial"  # suffix of a run directory being created


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by ``SIGINT``/``SIGTERM`` after checkpointing its last completed step.

    Derives from :class:`KeyboardInterrupt`, so code that handles Ctrl-C keeps working. ``str()``
    is the one-line hint printed by the command line.
    """

    def __init__(self, step: int, run_dir: Path) -> None:
        self.step = step
        self.run_dir = run_dir
        super().__init__(
            f"interrupted at step {step}; continue with: "
            f"qeprop run --resume {shlex.quote(str(run_dir))}"
        )


class RunInUse(QEPError):
    """The run directory is locked by another live process (which holds its ``flock``)."""


class _Terminated(KeyboardInterrupt):
    """Raised by the ``SIGTERM`` handler while a run is being written."""


# ------------------------------------------------------------------------------------ TOML
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    if not isinstance(key, str):
        raise ProblemError(f"TOML keys must be strings, got {key!r}")
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest repr that round-trips; always has "." or "e"
    if isinstance(value, str):
        # JSON string escapes (\" \\ \n \t \uXXXX) are valid TOML basic-string escapes
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    raise ProblemError(
        f"cannot be written to TOML: {type(value).__name__} {value!r} "
        "(use a string, integer, float, boolean, list or table)",
        where=where,
    )


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text of a mapping of strings, numbers, booleans, (nested) lists and tables.

    A minimal writer for configuration files: plain values first, then one ``[table]`` per nested
    mapping (recursively, with dotted headers). ``None`` has no TOML form: such keys are left out
    (and written as a comment), so they read back as "not given". ``tomllib.loads(dump_toml(d))``
    equals ``d`` for every such ``d`` without ``None`` (floats round-trip exactly, ``nan`` and
    ``inf`` included; tuples read back as lists).
    """
    lines: list[str] = []
    _dump_table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(data: Mapping[str, Any], prefix: list[str], lines: list[str]) -> None:
    tables = []
    if prefix:
        lines.extend(["", "[" + ".".join(_toml_key(k) for k in prefix) + "]"])
    for key, value in data.items():
        where = ".".join([*prefix, str(key)])
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {_toml_key(key)} = (none)")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value, where)}")
    for key, value in tables:
        _dump_table(value, [*prefix, key], lines)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration file (top-level keys) into a dict.

    Errors (missing file, not UTF-8, invalid TOML) raise :class:`ProblemError` naming the file.
    """
    return load_toml(path)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--set key=value`` items into a dict (a later key wins).

    The value is read as a TOML literal where it is one (``100`` -> int, ``0.4`` -> float,
    ``true`` -> bool, ``[0, 1]`` -> list, ``"x"`` -> str) and kept as the plain string otherwise
    (``couplings=xz`` -> ``"xz"``). Nothing is evaluated as code.

    >>> parse_overrides(["steps=100", "couplings=xz", "nudge=0.4", "sites=[0, 2]"])
    {'steps': 100, 'couplings': 'xz', 'nudge': 0.4, 'sites': [0, 2]}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ProblemError(f"expected key=value, got {item!r}", where="--set")
        if not _BARE_KEY.match(key):
            raise ProblemError(
                f"invalid key {key!r} in {item!r} (letters, digits, '_' and '-' only)",
                where="--set",
            )
        out[key] = _parse_value(text.strip())
    return out


def _parse_value(text: str) -> Any:
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    if _plain(value):
        return value
    return text  # dates and times, inline tables: keep what was typed


def _plain(value: Any) -> bool:
    if isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False


# ------------------------------------------------------------------------------------ files
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _dumps(obj: Any, **kwargs: Any) -> str:
    try:
        return json.dumps(obj, default=_json_default, **kwargs)
    except (TypeError, ValueError) as e:
        raise QEPError(f"cannot save as JSON: {e}") from None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / file system
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through ``write(binary file)`` on a temporary file, then ``os.replace`` it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _write_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    _atomic_write(path, lambda f: f.write(data))


def _write_json(path: Path, obj: Any) -> None:
    _write_text(path, _dumps(obj, indent=2) + "\n")


def _read_json(path: Path, what: str = "JSON") -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise QEPError("file not found", where=str(path)) from None
    except OSError as e:
        raise QEPError(f"cannot read: {e.strerror}", where=str(path)) from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise QEPError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): the file is damaged",
            where=str(path),
        ) from None
    except (ValueError, RecursionError) as e:
        raise QEPError(f"not valid {what}: {e}", where=str(path)) from None


def _read_json_object(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise QEPError(
            f"expected a JSON object, got a {type(data).__name__}: the file is damaged",
            where=str(path),
        )
    return data


class _WriteError(QEPError):
    """A file of the run could not be written (a full disk, a missing permission)."""


def _oserror(e: OSError, hint: str = "") -> QEPError:
    """A one-line error for a failed file operation (a full disk, a missing permission)."""
    name = e.filename2 or e.filename  # os.replace(temporary, target): name the target
    what = f"{name}: " if name else ""
    return _WriteError(f"{what}{e.strerror or e}{'; ' + hint if hint else ''}")


def read_npz(path: str | Path, what: str = "archive") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, loaded without pickle; errors in one line.

    A missing, empty, truncated or altered file (the archive's CRC checks catch flipped bits)
    raises :class:`~qeprop.errors.QEPError` naming the file; so does an archive that holds Python
    objects (qeprop never writes them, and never unpickles).
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise QEPError("file not found", where=str(p)) from None
    except IsADirectoryError:
        raise QEPError(f"is a directory, not a {what}", where=str(p)) from None
    except OSError as e:
        raise QEPError(f"cannot read: {e.strerror}", where=str(p)) from None
    if head != b"PK\x03\x04":
        why = "the file is empty" if not head else "not an .npz archive"
        raise QEPError(f"damaged {what}: {why}", where=str(p))
    try:  # np.load given a path leaks the file when the archive is unreadable: pass it open
        with p.open("rb") as f, np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # BadZipFile, EOFError, zlib.error, ValueError, OSError, ...
        text = str(e).split("\n")[0]
        if "pickle" in text:
            text = "it holds Python objects (qeprop never writes them, and does not unpickle)"
        raise QEPError(f"damaged {what}: {type(e).__name__}: {text}", where=str(p)) from None


def _flatten(arrays: Mapping[str, Any], where: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays for an ``.npz``: dict-valued entries (the optimiser state) become ``name/key``."""
    out: dict[str, np.ndarray] = {}
    dicts: list[str] = []
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or _SEP in name or name in _RESERVED:
            raise QEPError(f"invalid array name {name!r}", where=where)
        if isinstance(value, Mapping):
            dicts.append(name)
            for key, v in value.items():
                if not isinstance(key, str) or not key or _SEP in key:
                    raise QEPError(f"invalid array name {name!r}[{key!r}]", where=where)
                out[f"{name}{_SEP}{key}"] = _plain_array(v, f"{name}{_SEP}{key}", where)
        else:
            out[name] = _plain_array(value, name, where)
    return out, dicts


def _plain_array(value: Any, name: str, where: str) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.hasobject:
        raise QEPError(
            f"array {name!r} has dtype object; save numbers or strings only", where=where
        )
    return a


def _unflatten(data: dict[str, np.ndarray], dicts: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dicts:
        out[name] = {}
    for key, value in data.items():
        head, sep, tail = key.partition(_SEP)
        if sep and head in out:
            out[head][tail] = value
        else:
            out[key] = value
    return out


def _check_arrays(arrays: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
    return _flatten(arrays, where)[0]


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    named: dict[str, Any] = dict(arrays)
    _atomic_write(path, lambda f: np.savez(f, **named))


# ------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(
    run_dir: str | Path, state: TrainState, run: Mapping[str, Any] | None = None
) -> None:
    """Write ``checkpoint.npz`` and then ``checkpoint.json`` atomically.

    The ``.npz`` holds the arrays (dict-valued entries such as the optimiser state as
    ``name/key``) plus ``__step__``, ``__meta__`` (the metadata as JSON text), ``__dicts__`` and,
    given ``run``, ``__run__`` (JSON: experiment, configuration, qeprop version, which
    :func:`resume_run` checks), so it is complete on its own; ``checkpoint.json``
    (``{"step", "meta"}``) is the readable copy, written second.
    """
    d = Path(run_dir)
    arrays, dicts = _flatten(state.arrays, str(d / CHECKPOINT_NPZ))
    meta_text = _dumps(state.meta)
    step = int(state.step)
    extra = {
        _STEP_KEY: np.array(step),
        _META_KEY: np.array(meta_text),
        _DICTS_KEY: np.array(json.dumps(dicts)),
    }
    if run is not None:
        extra[_RUN_KEY] = np.array(_dumps(dict(run)))
    _write_npz(d / CHECKPOINT_NPZ, {**arrays, **extra})
    _write_json(d / CHECKPOINT_JSON, {"step": step, "meta": json.loads(meta_text)})


def load_checkpoint(run_dir: str | Path) -> TrainState:
    """Read the checkpoint written by :func:`save_checkpoint`, checking that both files agree.

    Both files name their step. They can only disagree after a crash between the two renames,
    and then the ``.npz`` (renamed first) is the newer, complete checkpoint: it is used and
    ``checkpoint.json`` is rewritten from it. A ``checkpoint.json`` ahead of its ``.npz`` is an
    error; so is anything unreadable (in one line, see :func:`read_npz`).
    """
    return _load_checkpoint(Path(run_dir))[0]


def _text_entry(data: dict[str, np.ndarray], key: str, where: str) -> str:
    a = data.pop(key)
    if a.shape != () or a.dtype.kind != "U":
        raise QEPError(f"not a qeprop checkpoint ({key} is not text)", where=where)
    return str(a)


def _load_checkpoint(d: Path) -> tuple[TrainState, dict[str, Any] | None]:
    npz_path, json_path = d / CHECKPOINT_NPZ, d / CHECKPOINT_JSON
    where = str(npz_path)
    if not npz_path.exists() and not npz_path.is_symlink():
        raise QEPError(
            "file not found: the run cannot continue without its checkpoint (it never restarts "
            "from step 0); start a new run, e.g. qeprop run --config "
            f"{shlex.quote(str(d / CONFIG))} --out NEW_DIR",
            where=where,
        )
    data = read_npz(npz_path, "checkpoint")
    if _STEP_KEY not in data or _META_KEY not in data:
        raise QEPError("not a qeprop checkpoint (no step/meta inside)", where=where)
    step_a = data.pop(_STEP_KEY)
    if step_a.shape != () or step_a.dtype.kind not in "iu" or int(step_a) < 0:
        raise QEPError(f"not a qeprop checkpoint (step {step_a!r})", where=where)
    step = int(step_a)
    try:
        meta = json.loads(_text_entry(data, _META_KEY, where))
        dicts = json.loads(_text_entry(data, _DICTS_KEY, where)) if _DICTS_KEY in data else []
        run = json.loads(_text_entry(data, _RUN_KEY, where)) if _RUN_KEY in data else None
    except ValueError as e:
        raise QEPError(f"not a qeprop checkpoint (invalid JSON inside: {e})", where=where) from None
    if (
        not isinstance(meta, dict)
        or not isinstance(dicts, list)
        or not (run is None or isinstance(run, dict))
    ):
        raise QEPError("not a qeprop checkpoint (malformed metadata)", where=where)
    js: Any = None
    if json_path.is_dir():
        raise QEPError("is a directory, not a file", where=str(json_path))
    if json_path.exists():
        with contextlib.suppress(QEPError):  # the readable copy; the .npz is authoritative
            js = _read_json(json_path)
    js_step = js.get("step") if isinstance(js, dict) else None
    if js_step != step:
        if isinstance(js_step, int) and js_step > step:
            raise QEPError(
                f"checkpoint.npz is at step {step} but checkpoint.json at step {js_step}",
                where=str(d),
            )
        _write_json(json_path, {"step": step, "meta": meta})  # crash between the two renames
    return TrainState(step=step, arrays=_unflatten(data, dicts), meta=meta), run


def _copy_state(state: TrainState) -> TrainState:
    def copied(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: np.array(x, copy=True) for k, x in v.items()}
        return np.array(v, copy=True)

    return TrainState(
        step=int(state.step),
        arrays={k: copied(v) for k, v in state.arrays.items()},
        meta=copy.deepcopy(state.meta),
    )


# ------------------------------------------------------------------------------------ metrics
def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (a torn last line from a crash is ignored)."""
    path = Path(run_dir) / METRICS
    return _parse_metrics(path)[0]


def _parse_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, their raw lines) of a metrics file.

    A last line without its newline that does not parse was torn by a crash while appending (as
    older versions appended) and is dropped; any other bad line is an error naming it.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise QEPError("file not found", where=str(path)) from None
    except IsADirectoryError:
        raise QEPError("is a directory, not a file", where=str(path)) from None
    except OSError as e:
        raise QEPError(f"cannot read: {e.strerror}", where=str(path)) from None
    lines = data.split(b"\n")
    records: list[dict[str, Any]] = []
    raw: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        torn = i == len(lines) - 1  # no newline after it
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            if torn:
                break
            raise QEPError(
                f"line {i + 1}: not UTF-8 text (byte 0x{line[e.start]:02x} at column "
                f"{e.start + 1}): the file is damaged",
                where=str(path),
            ) from None
        try:
            rec = json.loads(text)
        except (ValueError, RecursionError) as e:
            if torn:
                break
            raise QEPError(f"line {i + 1}: not a JSON record: {e}", where=str(path)) from None
        step = rec.get("step") if isinstance(rec, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            if torn:
                break
            raise QEPError(
                f"line {i + 1}: not a metrics record (needs an object with an integer 'step' >= 0)",
                where=str(path),
            )
        records.append(rec)
        raw.append(text)
    return records, raw


class _Metrics:
    """``metrics.jsonl`` as written by a run.

    Each record is appended with one ``write`` and ``fsync``-ed; if the append fails (a full
    disk) the file is cut back to its previous length, so it never keeps half a line. Rewrites
    (the empty file of a new run, the records kept on resume) are atomic replacements.
    """

    def __init__(self, path: Path, lines: list[str]) -> None:
        self.path = path
        self.lines = list(lines)

    def write(self) -> None:
        _write_text(self.path, "".join(ln + "\n" for ln in self.lines))

    def append(self, record: Mapping[str, Any]) -> None:
        line = _dumps(dict(record))
        _append_line(self.path, line)
        self.lines.append(line)


def _append_line(path: Path, line: str) -> None:
    data = memoryview((line + "\n").encode("utf-8"))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            if isinstance(e, OSError):
                raise OSError(e.errno, e.strerror, str(path)) from None
            raise
    finally:
        os.close(fd)


def _verify_metrics(path: Path, step: int, every: int, total: int) -> list[str]:
    """The raw lines of the records up to ``step``, after checking that every evaluation up
    to ``step`` (steps ``0, every, 2 every, ...`` and ``total``) is recorded exactly once; that of
    ``step`` itself may be missing (it is made on resume). Records after ``step`` belong to steps
    the run will repeat, and are dropped."""
    records, raw = _parse_metrics(path)
    steps = [r["step"] for r in records]
    for k in range(1, len(steps)):
        if steps[k] <= steps[k - 1]:
            twice = "recorded twice" if steps[k] in steps[:k] else "out of order"
            raise QEPError(
                f"step {steps[k]} is {twice} (record {k + 1}); the file is damaged and the run "
                "cannot continue from it",
                where=str(path),
            )
    have = [s for s in steps if s <= step]
    extra = [s for s in have if s % every and s != total]
    if extra:
        raise QEPError(
            f"step {extra[0]} is not an evaluation step of this run (every {every} steps); the "
            "file does not belong to the checkpoint",
            where=str(path),
        )
    expected = step // every + 1 + (total <= step and total % every != 0)
    own = (step % every == 0 or step == total) and step not in have  # made on resume
    missing: list[int] = []
    seen = set(have)
    s = 0 if len(have) + own < expected else step + 1  # walk only to name what is missing
    while s <= step and len(missing) < 6:
        if s not in seen and s != step:
            missing.append(s)
        s += every
    if total <= step and total not in seen and total != step and len(missing) < 6:
        missing.append(total)
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise QEPError(
            f"the records of steps {shown} are missing (the checkpoint is at step {step}); "
            "continuing would lose them: restore the file, or start a new run",
            where=str(path),
        )
    return raw[: len(have)]


# ------------------------------------------------------------------------------------ lock
class _Lock:
    """An exclusive ``flock`` on a run directory, with the holder's pid in ``.lock``.

    The lock is on the directory itself (its inode), so it survives the directory being renamed
    into place, and the kernel releases it when the holder exits or is killed; ``.lock`` only
    names the holder for the message another process prints, and is removed on release.
    """

    def __init__(self, run_dir: Path) -> None:
        self.fd: int | None = None
        try:
            fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            raise QEPError("no such run directory", where=str(run_dir)) from None
        except NotADirectoryError:
            raise QEPError("not a run directory (a file)", where=str(run_dir)) from None
        except OSError as e:
            raise QEPError(
                f"cannot open the run directory: {e.strerror}", where=str(run_dir)
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunInUse(
                    f"in use by {_lock_holder(run_dir)}, which is writing this run; wait until it "
                    "has finished (or stop it) and try again",
                    where=str(run_dir),
                ) from None
            except OSError as e:
                os.close(fd)
                raise QEPError(
                    f"cannot lock the run directory: {e.strerror}", where=str(run_dir)
                ) from None
        self.fd = fd
        with contextlib.suppress(OSError):  # the name of the holder is a courtesy
            info = os.open(LOCK, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
            try:
                os.write(info, f"{os.getpid()} {socket.gethostname()}\n".encode())
            finally:
                os.close(info)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(LOCK, dir_fd=self.fd)
        os.close(self.fd)  # releases the flock
        self.fd = None


def _lock_holder(run_dir: Path) -> str:
    try:
        pid, host = (run_dir / LOCK).read_text(encoding="utf-8").split()[:2]
        int(pid)
    except (OSError, ValueError, UnicodeDecodeError):
        return "another process"
    return f"process {pid}" + ("" if host == socket.gethostname() else f" on {host}")


def _stale_partials(parent: Path, name: str, age: float = 60.0) -> None:
    """Remove directories left by starts of ``name`` that were killed before renaming theirs
    into place (``.NAME.*.partial``, unlocked and untouched for ``age`` seconds); a start still
    in progress holds its lock."""
    with contextlib.suppress(OSError):
        for p in parent.glob(f".{glob.escape(name)}.*{_PARTIAL}"):
            if time.time() - p.stat().st_mtime < age:
                continue
            try:
                lock = _Lock(p)
            except QEPError:
                continue
            try:
                shutil.rmtree(p, ignore_errors=True)
            finally:
                lock.release()


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, failing with ``FileExistsError`` if ``dst`` exists (also an
    empty directory, which ``os.rename`` would replace): ``renameat2(RENAME_NOREPLACE)`` where
    the system has it, else ``os.rename`` after a check."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            renameat2 = libc.renameat2
        except (OSError, AttributeError):
            renameat2 = None
        if renameat2 is not None:
            at_fdcwd, noreplace = -100, 1
            rc = renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace)
            if rc == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.ENOSYS, errno.EINVAL):
                raise OSError(err, os.strerror(err), str(dst))
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        raise


# ------------------------------------------------------------------------------------ provenance
def _git(directory: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """(revision, dirty) of the git work tree holding the qeprop source, or ``(None, None)``.

    The package directory must be tracked by that work tree (an installed copy inside some
    unrelated repository's ignored virtual environment does not count). ``dirty`` means tracked
    files differ from the revision (untracked files are not counted).
    """
    src = Path(__file__).resolve().parent
    if _git(src, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    rev = _git(src, "rev-parse", "HEAD")
    if rev is None:
        return None, None
    status = _git(src, "status", "--porcelain", "--untracked-files=no")
    return rev.strip(), (None if status is None else bool(status.strip()))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _provenance(config: Mapping[str, Any], command_line: Sequence[str] | None) -> dict[str, Any]:
    import scipy

    rev, dirty = git_state()
    return {
        "qeprop_version": __version__,
        "git_revision": rev,
        "git_dirty": dirty,
        "seed": config.get("seed"),
        "command_line": list(sys.argv if command_line is None else command_line),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "started": _now(),
        "finished": None,
        "resumed_at": [],
        "timings": {"wall_seconds": 0.0, "steps_run": 0, "seconds_per_step": None},
    }


def _number(value: Any, default: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else default


def _add_timings(run_dir: Path, seconds: float, steps: int, finished: bool) -> None:
    path = run_dir / PROVENANCE
    prov = _read_json_object(path)
    t = prov.get("timings")
    t = t if isinstance(t, dict) else {}
    wall = _number(t.get("wall_seconds"), 0.0) + seconds
    n = int(_number(t.get("steps_run"), 0)) + steps
    prov["timings"] = {
        "wall_seconds": round(wall, 6),
        "steps_run": n,
        "seconds_per_step": round(wall / n, 6) if n else None,
    }
    if finished:
        prov["finished"] = _now()
    _write_json(path, prov)


# ------------------------------------------------------------------------------------ config
def _plain_config(config: Any) -> dict[str, Any]:
    """The configuration as written to ``config.toml`` (typed or, for experiments written
    against the earlier protocol, a dict)."""
    if isinstance(config, Config):
        return config.to_dict()
    return dict(config)


def _canonical(config: Mapping[str, Any]) -> str:
    return _dumps(dict(config), sort_keys=True)


def _checkpoint_every(config: Mapping[str, Any]) -> int:
    n = config.get("checkpoint_every", CHECKPOINT_EVERY)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ProblemError(f"must be a positive integer, got {n!r}", where="checkpoint_every")
    return n


def _schedule(experiment: Experiment, config: Any) -> tuple[int, int, int]:
    """``(total_steps, eval_every, checkpoint_every)``, checked."""
    total = experiment.total_steps(config)
    every = experiment.eval_every(config)
    for what, v, low in (("total_steps", total, 0), ("eval_every", every, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ProblemError(f"the experiment's {what} must be an integer >= {low}, got {v!r}")
    return total, every, _checkpoint_every(config)


def _resolve(experiment: Experiment, data: Mapping[str, Any], where: str) -> Any:
    try:
        config = experiment.resolve(dict(data))
    except QEPError as e:
        raise type(e)(e.message, where=f"{where}: {e.where}" if e.where else where) from None
    if not isinstance(config, Mapping):
        raise ProblemError(
            f"the experiment's resolve() returned a {type(config).__name__}, not a configuration",
            where=where,
        )
    if "experiment" in config:
        raise ProblemError("'experiment' is reserved for the experiment's name", where=where)
    return config


def _read_run_config(run_dir: Path) -> tuple[str, Experiment, Any]:
    """(name, experiment, resolved configuration) of a run directory."""
    path = run_dir / CONFIG
    data = load_config(path)
    name = data.pop("experiment", None)
    if not isinstance(name, str):
        raise QEPError("no 'experiment' name", where=str(path))
    try:
        experiment = get_experiment(name)
    except QEPError as e:
        raise type(e)(e.message, where=f"{path}: experiment") from None
    return name, experiment, _resolve(experiment, data, str(path))


def _run_record(name: str, config: Any) -> dict[str, Any]:
    """What a checkpoint records about its run (checked by :func:`resume_run`)."""
    return {"experiment": name, "config": _plain_config(config), "qeprop_version": __version__}


def _config_changes(
    recorded: Mapping[str, Any],
    current: Mapping[str, Any],
    defaults: Mapping[str, Any],
    experiment: Experiment | None = None,
) -> list[str]:
    """``key: old -> new`` for every key whose value differs.

    A key the recorded run did not know (a key added to the experiment since) counts only when
    its current value differs from what the recorded configuration resolves to today (with
    ``experiment``; a default of ``None`` may resolve to a number), or else from its default.
    """
    baseline = dict(defaults)
    if experiment is not None and any(key not in recorded for key in current):
        with contextlib.suppress(Exception):  # a recorded key it no longer knows: defaults only
            baseline.update(_plain_config(experiment.resolve(dict(recorded))))
    out = []
    for key in sorted(set(recorded) | set(current), key=str):
        old, new = recorded.get(key, "(absent)"), current.get(key, "(absent)")
        if (
            key not in recorded
            and key in baseline
            and _canonical({"v": new}) == _canonical({"v": baseline[key]})
        ):
            continue
        if _canonical({"v": old}) != _canonical({"v": new}):
            out.append(f"{key}: {json.dumps(old, default=str)} -> {json.dumps(new, default=str)}")
    return out


# ------------------------------------------------------------------------------------ runs
def _check_out_dir(run_dir: Path) -> None:
    """Refuse an existing ``--out`` path, and one whose parent cannot be a directory."""
    if run_dir.exists() or run_dir.is_symlink():
        raise QEPError(
            "already exists; choose a new --out directory, or continue that run with "
            f"'qeprop run --resume {shlex.quote(str(run_dir))}'",
            where=str(run_dir),
        )
    for parent in run_dir.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise QEPError(
                    f"cannot create the run directory: {parent} is a file, not a directory",
                    where=str(run_dir),
                )
            break


def start_run(
    experiment_name: str,
    config_overrides: Mapping[str, Any],
    out_dir: str | Path,
    *,
    command_line: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Create the run directory ``out_dir`` and run the experiment to the end.

    ``config_overrides`` (from ``--config`` and ``--set``) go through ``experiment.resolve``; the
    resolved configuration is written to ``config.toml`` and read back, and the run uses what
    was read back (exactly what :func:`resume_run` will see). Refuses an existing ``out_dir``.
    The directory appears under its name only once its configuration, provenance, step-0
    evaluation and checkpoint are written; a failure before that leaves nothing behind, and a
    failure before the first step completes removes it again. Returns the run directory.
    Raises :class:`RunInterrupted` after Ctrl-C/``SIGTERM``.
    """
    run_dir = Path(out_dir)
    overrides = dict(config_overrides)
    given = overrides.pop("experiment", experiment_name)
    if given != experiment_name:
        raise ProblemError(
            f"the configuration names experiment {given!r}, not {experiment_name!r}",
            where="experiment",
        )
    experiment = get_experiment(experiment_name)
    config = _resolve(experiment, overrides, "config")
    _schedule(experiment, config)
    _check_out_dir(run_dir)
    text = dump_toml({"experiment": experiment_name, **_plain_config(config)})
    # the run uses the configuration as resume_run will read it back from config.toml
    back = tomllib.loads(text)
    back.pop("experiment")
    back = _resolve(experiment, back, CONFIG)
    plain, plain_back = _plain_config(config), _plain_config(back)
    if _canonical(plain_back) != _canonical(plain):
        diff = sorted(k for k in set(plain) | set(plain_back) if plain.get(k) != plain_back.get(k))
        raise ProblemError(
            f"the resolved configuration does not survive {CONFIG} (keys {diff}): values must "
            "be TOML strings, numbers, booleans or lists, and resolve() must be idempotent",
            where="config",
        )
    parent = run_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QEPError(f"cannot create the run directory: {e.strerror}", where=str(run_dir)) from e
    _stale_partials(parent, run_dir.name)
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{run_dir.name}.", suffix=_PARTIAL))
    except OSError as e:
        raise QEPError(f"cannot create the run directory: {e.strerror}", where=str(run_dir)) from e
    lock = _Lock(tmp)
    run = _run_record(experiment_name, back)
    try:
        try:
            with _sigterm_raises():
                _write_text(tmp / CONFIG, text)
                prov = _provenance(back, command_line)
                metrics = _Metrics(tmp / METRICS, [])
                metrics.write()
                began = time.perf_counter()
                state = experiment.init(back)
                if not isinstance(state, TrainState):
                    raise QEPError(f"the experiment's init() returned a {type(state).__name__}")
                metrics.append(_record(experiment, back, state))
                save_checkpoint(tmp, state, run)
                # the initial evaluation is part of the run's wall time (for an evaluation-only
                # run, most of it): the provenance is written once it is known
                prov["timings"]["wall_seconds"] = round(time.perf_counter() - began, 6)
                _write_json(tmp / PROVENANCE, prov)
                _rename_noreplace(tmp, run_dir)
        except BaseException as e:
            with _signals_ignored():
                shutil.rmtree(tmp, ignore_errors=True)
                lock.release()
            if (
                isinstance(e, OSError)
                and e.errno in (errno.EEXIST, errno.ENOTEMPTY)
                and e.filename == str(run_dir)
            ):
                raise QEPError(
                    "already exists (another run was started there meanwhile)", where=str(run_dir)
                ) from None
            if isinstance(e, OSError):
                raise _oserror(e, "nothing was kept") from None
            raise
        metrics.path = run_dir / METRICS
        try:
            _drive(run_dir, experiment, back, state, metrics, run, progress=progress)
        except _WriteError:
            raise  # the run can continue once there is space: keep it
        except Exception:
            # failed before the first checkpoint after step 0: nothing worth keeping, and the
            # same command should work once the cause is fixed
            with contextlib.suppress(QEPError):
                if load_checkpoint(run_dir).step == 0:
                    shutil.rmtree(run_dir, ignore_errors=True)
            raise
    finally:
        lock.release()
    return run_dir


def run_finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` has finished (it has a ``summary.json``)."""
    return (Path(run_dir) / SUMMARY).exists()


def resume_run(run_dir: str | Path, *, progress: bool = True, force_version: bool = False) -> Path:
    """Continue the run in ``run_dir`` from its checkpoint to ``total_steps``.

    Holds the directory's lock throughout, and first verifies the run (see the module
    docstring): readable ``config.toml``, ``provenance.json`` and checkpoint; the configuration
    and qeprop version the checkpoint was written with (a different version only with
    ``force_version``); every evaluation up to the checkpoint's step in ``metrics.jsonl``.
    Records after the checkpoint's step are dropped (the resumed run makes them again, the same),
    and the step goes into ``provenance["resumed_at"]`` (and ``"resumes"``, with the version).
    A finished run is left untouched (a note goes to stderr). Returns the run directory.
    """
    d = Path(run_dir)
    if not d.is_dir():
        what = "not a run directory (a file)" if d.exists() else "no such run directory"
        raise QEPError(what, where=str(d))
    lock = _Lock(d)
    try:
        name, experiment, config = _read_run_config(d)
        if run_finished(d):
            summary = _read_json_object(d / SUMMARY)
            sys.stderr.write(
                f"qeprop: {d} already finished (step {summary.get('steps')}); nothing to do\n"
            )
            return d
        total, every, _ = _schedule(experiment, config)
        prov_path = d / PROVENANCE
        prov = _read_json_object(prov_path)
        state, run = _load_checkpoint(d)
        _verify_run(d, name, experiment, config, prov, run, force_version)
        _verify_state(d, experiment, config, state, total)
        lines = _verify_metrics(d / METRICS, state.step, every, total)
        metrics = _Metrics(d / METRICS, lines)
        try:
            with _sigterm_raises():
                if "\n".join(lines) != "\n".join(_parse_metrics(d / METRICS)[1]):
                    metrics.write()
                resumed = prov.get("resumed_at")
                prov["resumed_at"] = [*(resumed if isinstance(resumed, list) else []), state.step]
                rev, dirty = git_state()
                entry = {"step": state.step, "qeprop_version": __version__, "git_revision": rev,
                         "git_dirty": dirty, "at": _now()}  # fmt: skip
                if force_version:
                    entry["forced"] = True
                resumes = prov.get("resumes")
                prov["resumes"] = [*(resumes if isinstance(resumes, list) else []), entry]
                _write_json(prov_path, prov)
        except OSError as e:
            raise _oserror(e, "the run is unchanged") from None
        _drive(d, experiment, config, state, metrics, _run_record(name, config), progress=progress)
    finally:
        lock.release()
    return d


def _verify_run(
    d: Path,
    name: str,
    experiment: Experiment,
    config: Any,
    prov: Mapping[str, Any],
    run: Mapping[str, Any] | None,
    force_version: bool,
) -> None:
    """Refuse to resume with another configuration, or (unless forced) another version."""
    again = f"qeprop run --resume {shlex.quote(str(d))} --force-version"
    new_run = (
        f"qeprop run {shlex.quote(name)} --config {shlex.quote(str(d / CONFIG))} --out NEW_DIR"
    )
    if run is None:
        if not force_version:
            raise QEPError(
                "the checkpoint does not record the configuration and version it was written "
                f"with (an older qeprop wrote it); continue anyway with '{again}', or start a "
                f"new run: {new_run}",
                where=str(d / CHECKPOINT_NPZ),
            )
    else:
        if run.get("experiment") != name:
            raise QEPError(
                f"config.toml names experiment {name!r} but the checkpoint was written by "
                f"{run.get('experiment')!r}; restore config.toml",
                where=str(d / CONFIG),
            )
        recorded = run.get("config")
        defaults = experiment.Config.defaults() if hasattr(experiment, "Config") else {}
        changes = _config_changes(
            recorded if isinstance(recorded, dict) else {},
            _plain_config(config),
            defaults,
            experiment,
        )
        if changes:
            shown = "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "")
            raise QEPError(
                f"changed after the run started ({shown}): a resumed run must keep its "
                f"configuration. Restore it to continue, or start a new run: {new_run}",
                where=str(d / CONFIG),
            )
    versions = {
        "provenance.json": prov.get("qeprop_version"),
        "the checkpoint": run.get("qeprop_version") if run is not None else __version__,
    }
    other = {k: v for k, v in versions.items() if v != __version__}
    if other and not force_version:
        said = ", ".join(f"{k} records qeprop {v}" for k, v in other.items())
        raise QEPError(
            f"{said}, but this is qeprop {__version__}: the resumed run may differ from an "
            f"uninterrupted one. Continue anyway with '{again}' (recorded in provenance.json), "
            f"or start a new run: {new_run}",
            where=str(d),
        )


def _verify_state(
    d: Path, experiment: Experiment, config: Any, state: TrainState, total: int
) -> None:
    """The checkpoint holds the arrays the experiment's state has (names, shapes, kinds)."""
    where = str(d / CHECKPOINT_NPZ)
    if state.step > total:
        raise QEPError(f"is at step {state.step}, beyond the run's {total} steps", where=where)
    fresh = experiment.init(config)
    want, _ = _flatten(fresh.arrays, where)
    have, _ = _flatten(state.arrays, where)
    if set(want) != set(have):
        lost = sorted(set(want) - set(have))
        alien = sorted(set(have) - set(want))
        raise QEPError(
            f"does not match the experiment's state (missing {lost}, unexpected {alien}): "
            "written by another version, or damaged",
            where=where,
        )
    for key, a in want.items():
        b = have[key]
        if a.shape != b.shape or (a.dtype.kind in "biufc") != (b.dtype.kind in "biufc"):
            raise QEPError(
                f"array {key!r} has shape {b.shape} ({b.dtype}), the experiment's has {a.shape} "
                f"({a.dtype}): written by another version, or damaged",
                where=where,
            )
    if "rng" in fresh.meta and not isinstance(state.meta.get("rng"), dict):
        raise QEPError("has no random-generator state", where=where)


def _record(experiment: Experiment, config: Any, state: TrainState) -> dict[str, Any]:
    metrics = experiment.evaluate(config, state)
    if not isinstance(metrics, Mapping):
        raise QEPError(f"the experiment's evaluate() returned a {type(metrics).__name__}")
    return {"step": int(state.step), **metrics}


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn ``SIGTERM`` into an exception for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while the final checkpoint is written (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _postfix(metrics: Mapping[str, Any]) -> dict[str, str]:
    """Short progress-bar fields: every ``*accuracy`` key and ``loss``."""
    out = {}
    for key, value in metrics.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if key.endswith("accuracy"):
            stem = key[: -len("accuracy")].strip("_")
            short = "".join(w[0] for w in stem.split("_") if w)
            out[f"{short}_acc" if short else "acc"] = f"{value:.3g}"
        elif key == "loss":
            out["loss"] = f"{value:.3g}"
    return out


def _progress_bar(
    progress: bool, name: str, initial: int, total: int
) -> Any:  # a tqdm object or None
    if not progress or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )


def _drive(
    run_dir: Path,
    experiment: Experiment,
    config: Any,
    state: TrainState,
    metrics: _Metrics,
    run: Mapping[str, Any],
    progress: bool = True,
) -> TrainState:
    """Advance ``state`` to ``total_steps``: evaluate, log, checkpoint; then finish the run.

    After each step ``s`` (and at the starting step if no record for it exists yet): evaluate if
    ``s % eval_every == 0`` or ``s == total`` (and at step 0), then checkpoint if
    ``s % checkpoint_every == 0``. Finally checkpoint, ``results.npz``, provenance timings and
    ``summary.json`` (last: it marks the run finished). A failed write (a full disk) stops the
    run with a one-line :class:`~qeprop.errors.QEPError`; its last checkpoint stays intact.
    """
    total, every, ck_every = _schedule(experiment, config)

    def is_eval_step(s: int) -> bool:
        return s == 0 or s % every == 0 or s == total

    def evaluate(s: TrainState) -> dict[str, Any]:
        rec = _record(experiment, config, s)
        metrics.append(rec)
        return rec

    last: dict[str, Any] = json.loads(metrics.lines[-1]) if metrics.lines else {}
    bar = _progress_bar(progress, getattr(experiment, "name", "run"), state.step, total)
    started = time.perf_counter()
    first_step = state.step
    done = _copy_state(state)  # the last completed step, as it goes into a checkpoint
    try:
        with _sigterm_raises():
            if is_eval_step(state.step) and last.get("step") != state.step:
                last = evaluate(state)
                done = _copy_state(state)
            if bar is not None:
                bar.set_postfix(_postfix(last), refresh=True)
            for _ in range(state.step, total):
                state = experiment.step(config, state)
                if is_eval_step(state.step):
                    last = evaluate(state)
                    if bar is not None:
                        bar.set_postfix(_postfix(last), refresh=False)
                if state.step % ck_every == 0:
                    save_checkpoint(run_dir, state, run)
                done = _copy_state(state)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            if state.step != total:
                raise QEPError(f"the experiment ended at step {state.step}, expected {total}")
            if state.step % ck_every != 0:
                save_checkpoint(run_dir, state, run)
            summary, arrays = experiment.finish(config, state)
            with _signals_ignored():
                _write_npz(run_dir / RESULTS, _check_arrays(arrays, str(run_dir / RESULTS)))
                _add_timings(
                    run_dir, time.perf_counter() - started, state.step - first_step, finished=True
                )
                _write_json(
                    run_dir / SUMMARY,
                    {"experiment": run.get("experiment"), "final": summary, "steps": state.step},
                )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        with _signals_ignored():
            try:
                save_checkpoint(run_dir, done, run)
                _add_timings(
                    run_dir, time.perf_counter() - started, done.step - first_step, finished=False
                )
            except OSError as e:
                hint = f"the run keeps an earlier checkpoint; {_resume_hint(run_dir)}"
                raise _oserror(e, hint) from None
        raise RunInterrupted(done.step, run_dir) from None
    except OSError as e:
        raise _oserror(
            e, f"the run keeps its last checkpoint; free space and {_resume_hint(run_dir)}"
        ) from None
    finally:
        if bar is not None:
            bar.close()
    return state


def _resume_hint(run_dir: Path) -> str:
    return f"continue with: qeprop run --resume {shlex.quote(str(run_dir))}"
