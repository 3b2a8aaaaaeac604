"""Run directories: configuration, metrics, checkpoints, resumption and provenance (layer 5).

An :class:`~qeprop.experiments.Experiment` is a pure step-wise computation; this module owns
everything around it. :func:`start_run` creates a run directory, :func:`resume_run` continues one,
and both drive the experiment through the same loop. The layout (see ``RUNS.md``)::

    DIR/
      config.toml        {"experiment": name, ...resolved configuration}
      provenance.json    version, git revision, command line, platform, times, resumes, timings
      metrics.jsonl      {"step": int, ...experiment.evaluate()} per evaluation (step 0 included)
      checkpoint.npz     TrainState arrays, plus "__step__" and "__meta__" (JSON text)
      checkpoint.json    {"step", "meta"}: written after the .npz; both name the same step
      results.npz        arrays from experiment.finish()
      summary.json       {"experiment", "final", "steps"}: written last, marks a finished run

Guarantees
----------
* A run directory is never overwritten: :func:`start_run` refuses an existing path.
* Every file is replaced atomically (written to a temporary file in the same directory, flushed,
  ``fsync``-ed, then ``os.replace``-d), so a crash (even ``SIGKILL``) leaves either the old or the
  new version of each file, never half of one. ``metrics.jsonl`` is append-only and fsync-ed per
  line; a torn last line (a crash while appending) is dropped on resume.
* Determinism: all randomness lives in the :class:`TrainState` (its RNG state in ``meta``) and the
  configuration the experiment sees is always the one read back from ``config.toml``, so an
  interrupted and resumed run produces exactly the same ``metrics.jsonl`` and ``results.npz`` as
  an uninterrupted one.
* ``Ctrl-C`` (``SIGINT``) and ``SIGTERM`` write a checkpoint of the last completed step (a copy
  taken after the step's evaluation, so a half-done step never reaches the disk) and raise
  :class:`RunInterrupted`; the command line prints ``interrupted at step N; continue with:
  qeprop run --resume DIR`` and exits with status 130.
"""

from __future__ import annotations

import contextlib
import copy
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
from .errors import ProblemError, QEPError
from .experiments import Experiment, TrainState, get_experiment
from .problem import load_toml

__all__ = [
    "CHECKPOINT_EVERY",
    "RunInterrupted",
    "dump_toml",
    "load_checkpoint",
    "load_config",
    "parse_overrides",
    "read_metrics",
    "resume_run",
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

_STEP_KEY = "__step__"
_META_KEY = "__meta__"


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


class _Terminated(KeyboardInterrupt):
    """Raised by the ``SIGTERM`` handler inside :func:`_drive`."""


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QEPError("file not found", where=str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise QEPError(f"cannot read: {e}", where=str(path)) from None


def _check_arrays(arrays: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
    out = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.hasobject:
            raise QEPError(
                f"array {name!r} has dtype object; save numbers or strings only", where=where
            )
        if name in (_STEP_KEY, _META_KEY):
            raise QEPError(f"array name {name!r} is reserved", where=where)
        out[name] = a
    return out


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    named: dict[str, Any] = dict(arrays)
    _atomic_write(path, lambda f: np.savez(f, **named))


# ------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(run_dir: str | Path, state: TrainState) -> None:
    """Write ``checkpoint.npz`` and then ``checkpoint.json`` atomically.

    The ``.npz`` holds the arrays plus ``__step__`` and ``__meta__`` (the metadata as JSON text),
    so it is complete on its own; ``checkpoint.json`` (``{"step", "meta"}``) is the readable copy,
    written second.
    """
    d = Path(run_dir)
    arrays = _check_arrays(state.arrays, str(d / CHECKPOINT_NPZ))
    meta_text = _dumps(state.meta)
    step = int(state.step)
    _write_npz(
        d / CHECKPOINT_NPZ, {**arrays, _STEP_KEY: np.array(step), _META_KEY: np.array(meta_text)}
    )
    _write_json(d / CHECKPOINT_JSON, {"step": step, "meta": json.loads(meta_text)})


def load_checkpoint(run_dir: str | Path) -> TrainState:
    """Read the checkpoint written by :func:`save_checkpoint`, checking that both files agree.

    Both files name their step. They can only disagree after a crash between the two renames,
    and then the ``.npz`` (renamed first) is the newer, complete checkpoint: it is used and
    ``checkpoint.json`` is rewritten from it. Any other disagreement is an error.
    """
    d = Path(run_dir)
    npz_path, json_path = d / CHECKPOINT_NPZ, d / CHECKPOINT_JSON
    if not npz_path.exists():
        raise QEPError("file not found (no checkpoint to resume from)", where=str(npz_path))
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise QEPError(f"cannot read checkpoint: {e}", where=str(npz_path)) from None
    if _STEP_KEY not in data or _META_KEY not in data:
        raise QEPError("not a qeprop checkpoint (no step/meta inside)", where=str(npz_path))
    step = int(data.pop(_STEP_KEY))
    meta = json.loads(str(data.pop(_META_KEY)))
    js = _read_json(json_path) if json_path.exists() else None
    js_step = js.get("step") if isinstance(js, dict) else None
    if js_step != step:
        if isinstance(js_step, int) and js_step > step:
            raise QEPError(
                f"checkpoint.npz is at step {step} but checkpoint.json at step {js_step}",
                where=str(d),
            )
        _write_json(json_path, {"step": step, "meta": meta})  # crash between the two renames
    return TrainState(step=step, arrays=data, meta=meta)


def _copy_state(state: TrainState) -> TrainState:
    return TrainState(
        step=int(state.step),
        arrays={k: np.array(v, copy=True) for k, v in state.arrays.items()},
        meta=copy.deepcopy(state.meta),
    )


# ------------------------------------------------------------------------------------ metrics
def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (a torn last line from a crash is ignored)."""
    path = Path(run_dir) / METRICS
    return _parse_metrics(path)[0]


def _parse_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, their raw lines) of a metrics file; an unreadable last line is dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QEPError("file not found", where=str(path)) from None
    lines = [ln for ln in text.split("\n") if ln.strip()]
    records, raw = [], []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                raise ValueError("no integer 'step'")
        except ValueError as e:
            if i == len(lines) - 1:  # torn by a crash while appending
                break
            raise QEPError(f"line {i + 1}: invalid record: {e}", where=str(path)) from None
        records.append(rec)
        raw.append(line)
    return records, raw


def _append_metrics(path: Path, record: Mapping[str, Any]) -> None:
    line = _dumps(dict(record))
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_metrics(path: Path, step: int) -> list[dict[str, Any]]:
    """Drop records after ``step`` (and a torn last line); return the records kept."""
    if not path.exists():
        path.touch()
        return []
    records, raw = _parse_metrics(path)
    keep = [i for i, r in enumerate(records) if r["step"] <= step]
    kept_raw = [raw[i] for i in keep]
    text = "".join(ln + "\n" for ln in kept_raw)
    if text != path.read_text(encoding="utf-8"):
        _write_text(path, text)
    return [records[i] for i in keep]


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


def _add_timings(run_dir: Path, seconds: float, steps: int, finished: bool) -> None:
    path = run_dir / PROVENANCE
    prov = _read_json(path)
    t = prov.get("timings") or {}
    wall = float(t.get("wall_seconds", 0.0)) + seconds
    n = int(t.get("steps_run", 0)) + steps
    prov["timings"] = {
        "wall_seconds": round(wall, 6),
        "steps_run": n,
        "seconds_per_step": round(wall / n, 6) if n else None,
    }
    if finished:
        prov["finished"] = _now()
    _write_json(path, prov)


# ------------------------------------------------------------------------------------ config
def _canonical(config: Mapping[str, Any]) -> str:
    return _dumps(config, sort_keys=True)


def _checkpoint_every(config: Mapping[str, Any]) -> int:
    n = config.get("checkpoint_every", CHECKPOINT_EVERY)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ProblemError(f"must be a positive integer, got {n!r}", where="checkpoint_every")
    return n


def _resolve(experiment: Experiment, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        config = experiment.resolve(dict(data))
    except QEPError as e:
        raise type(e)(e.message, where=f"{where}: {e.where}" if e.where else where) from None
    if "experiment" in config:
        raise ProblemError("'experiment' is reserved for the experiment's name", where=where)
    return config


def _read_run_config(run_dir: Path) -> tuple[str, Experiment, dict[str, Any]]:
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


# ------------------------------------------------------------------------------------ runs
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
    Returns the run directory. Raises :class:`RunInterrupted` after Ctrl-C/``SIGTERM``.
    """
    run_dir = Path(out_dir)
    overrides = dict(config_overrides)
    given = overrides.pop("experiment", experiment_name)
    if given != experiment_name:
        raise ProblemError(
            f"the configuration names experiment {given!r}, not {experiment_name!r}",
            where="experiment",
        )
    if run_dir.exists() or run_dir.is_symlink():
        raise QEPError(
            "already exists; choose a new --out directory, or continue that run with "
            f"'qeprop run --resume {shlex.quote(str(run_dir))}'",
            where=str(run_dir),
        )
    experiment = get_experiment(experiment_name)
    config = _resolve(experiment, overrides, "config")
    _checkpoint_every(config)
    text = dump_toml({"experiment": experiment_name, **config})
    # the run uses the configuration as resume_run will read it back from config.toml
    back = tomllib.loads(text)
    back.pop("experiment")
    back = _resolve(experiment, back, CONFIG)
    if _canonical(back) != _canonical(config):
        diff = sorted(k for k in set(config) | set(back) if config.get(k) != back.get(k))
        raise ProblemError(
            f"the resolved configuration does not survive {CONFIG} (keys {diff}): values must "
            "be TOML strings, numbers, booleans or lists, and resolve() must be idempotent",
            where="config",
        )
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
    except FileExistsError:
        raise QEPError("already exists (created concurrently?)", where=str(run_dir)) from None
    except OSError as e:
        raise QEPError(f"cannot create the run directory: {e.strerror}", where=str(run_dir)) from e
    _write_text(run_dir / CONFIG, text)
    _write_json(run_dir / PROVENANCE, _provenance(back, command_line))
    (run_dir / METRICS).touch()
    try:
        _drive(run_dir, experiment, back, experiment.init(back), progress=progress)
    except Exception:
        # failed before anything worth keeping (init or the step-0 evaluation): leave no
        # directory behind, so that the same command works once the cause is fixed
        if not (run_dir / CHECKPOINT_NPZ).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def run_finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` has finished (it has a ``summary.json``)."""
    return (Path(run_dir) / SUMMARY).exists()


def resume_run(run_dir: str | Path, *, progress: bool = True) -> Path:
    """Continue the run in ``run_dir`` from its checkpoint to ``total_steps``.

    Metrics recorded after the checkpoint's step are dropped first (they will be recomputed), and
    the step is appended to ``provenance["resumed_at"]``. A run stopped before its first
    checkpoint (written at step 0) starts again from ``experiment.init``. A finished run is left
    untouched (a note goes to stderr). Returns the run directory.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise QEPError("no such run directory", where=str(d))
    _, experiment, config = _read_run_config(d)
    if run_finished(d):
        summary = _read_json(d / SUMMARY)
        sys.stderr.write(
            f"qeprop: {d} already finished (step {summary.get('steps')}); nothing to do\n"
        )
        return d
    _checkpoint_every(config)
    if (d / CHECKPOINT_NPZ).exists():
        state = load_checkpoint(d)
    else:  # stopped before the step-0 checkpoint: start again from the beginning
        state = experiment.init(config)
    _truncate_metrics(d / METRICS, state.step)
    prov_path = d / PROVENANCE
    prov = _read_json(prov_path)
    prov.setdefault("resumed_at", []).append(int(state.step))
    _write_json(prov_path, prov)
    _drive(d, experiment, config, state, progress=progress)
    return d


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
    config: dict[str, Any],
    state: TrainState,
    progress: bool = True,
) -> TrainState:
    """Advance ``state`` to ``total_steps``: evaluate, log, checkpoint; then finish the run.

    After each step ``s`` (and at the starting step if no record for it exists yet): evaluate if
    ``s % eval_every == 0`` or ``s == total`` (and at step 0), then checkpoint if
    ``s % checkpoint_every == 0``. Finally checkpoint, ``results.npz``, provenance timings and
    ``summary.json`` (last: it marks the run finished).
    """
    total = int(experiment.total_steps(config))
    every = int(experiment.eval_every(config))
    if every < 1:
        raise ProblemError(f"eval_every must be >= 1, got {every}")
    ck_every = _checkpoint_every(config)
    metrics_path = run_dir / METRICS

    def is_eval_step(s: int) -> bool:
        return s == 0 or s % every == 0 or s == total

    def evaluate(s: TrainState) -> dict[str, Any]:
        rec = {"step": int(s.step), **experiment.evaluate(config, s)}
        _append_metrics(metrics_path, rec)
        return rec

    records = read_metrics(run_dir)
    last = records[-1] if records else {}
    bar = _progress_bar(progress, getattr(experiment, "name", "run"), state.step, total)
    started = time.perf_counter()
    first_step = state.step
    done = _copy_state(state)  # the last completed step, as it goes into a checkpoint
    try:
        with _sigterm_raises():
            if is_eval_step(state.step) and last.get("step") != state.step:
                last = evaluate(state)
            if not (run_dir / CHECKPOINT_NPZ).exists():
                save_checkpoint(run_dir, state)
            if bar is not None:
                bar.set_postfix(_postfix(last), refresh=True)
            for _ in range(state.step, total):
                state = experiment.step(config, state)
                if is_eval_step(state.step):
                    last = evaluate(state)
                    if bar is not None:
                        bar.set_postfix(_postfix(last), refresh=False)
                if state.step % ck_every == 0:
                    save_checkpoint(run_dir, state)
                done = _copy_state(state)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            if state.step != total:
                raise QEPError(f"the experiment ended at step {state.step}, expected {total}")
            if state.step % ck_every != 0:
                save_checkpoint(run_dir, state)
            summary, arrays = experiment.finish(config, state)
            with _signals_ignored():
                _write_npz(run_dir / RESULTS, _check_arrays(arrays, str(run_dir / RESULTS)))
                _add_timings(
                    run_dir, time.perf_counter() - started, state.step - first_step, finished=True
                )
                name = load_config(run_dir / CONFIG).get("experiment")
                _write_json(
                    run_dir / SUMMARY, {"experiment": name, "final": summary, "steps": state.step}
                )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        with _signals_ignored():
            save_checkpoint(run_dir, done)
            _add_timings(
                run_dir, time.perf_counter() - started, done.step - first_step, finished=False
            )
        raise RunInterrupted(done.step, run_dir) from None
    finally:
        if bar is not None:
            bar.close()
    return state
