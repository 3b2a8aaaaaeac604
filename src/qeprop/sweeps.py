"""Sweeps: many runs of one experiment over a grid of settings, on Dask distributed (layer 5).

A *sweep file* (TOML) names an experiment, a base configuration and the settings to vary; every
point of the sweep becomes an ordinary run directory (:mod:`qeprop.runs`), and the runs go to the
workers of a Dask cluster (a local one by default). See ``docs/sweeps.md``::

    experiment = "phase-recognition"
    config = "../phase-recognition-demo.toml"   # optional, relative to this file

    [base]                        # optional: values over those of `config`
    steps = 200

    [grid]                        # the cartesian product of these lists
    seed = [0, 1, 2]
    couplings = ["xyz", "xz"]

    [zip]                         # lists taken together (equal lengths), crossed with the grid
    nudge = [0.1, 0.4]
    shots = [100, 10]

    [[group]]                     # optional: a union of sub-sweeps (variants), each with its own
    name = "patches"              # fixed values (`set`) and axes, crossed with the top-level ones
    set = { training_region = "patches", soft_bound = true }
    grid = { seed = [0, 1] }

The sweep directory ``DIR``::

    DIR/
      sweep.json     the sweep file's text and every point (name, varied values, configuration)
      results.csv    one row per run: run, [group], varied values, status, error, final metrics
      runs/NAME/     one run directory per point, exactly as ``qeprop run`` writes it
      .lock          while a ``qeprop sweep`` works on DIR: its pid

Guarantees
----------
* Everything is checked before anything runs (:func:`load_sweep`): unknown experiment or keys,
  empty axes, zipped lists of different lengths, a key varied in two places, duplicate points,
  and every point's configuration through the experiment's own ``resolve``. Errors are one
  :class:`~qeprop.errors.ProblemError` line naming the file and the place (``grid.nudge``).
* A sweep directory belongs to one sweep: a later start must describe the same points
  (``sweep.json``), and one ``qeprop sweep`` at a time works on it (a lock on the directory).
* Restarting finishes a sweep: finished runs (:func:`~qeprop.runs.run_finished`) are skipped,
  started ones continue from their checkpoints (:func:`~qeprop.runs.resume_run`), the others
  start. A worker that dies loses only the steps since the last checkpoint of the runs it held;
  Dask gives those tasks to another worker, where they resume. The kernel releases a run's
  ``flock`` when its process dies, so no stale lock blocks the resumed run; a run whose lock is
  still held (a lagging NFS lease, a worker wrongly declared dead) is waited for.
* A failed run is a row with status ``failed`` and its one-line error; the other runs go on.
* Runs execute in Dask worker *threads*: :mod:`qeprop.runs` installs signal handlers only in a
  main thread, so none are touched there. Each run uses one BLAS and one numba thread, set inside
  the task (:func:`run_point`), so runs side by side do not oversubscribe the cores.

``import qeprop.sweeps`` does not import Dask; :func:`run_sweep` does, when it runs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .errors import ProblemError, QEPError
from .experiments import Experiment, get_experiment
from .problem import load_toml, read_text
from .runs import (
    CHECKPOINT_JSON,
    CONFIG,
    PROVENANCE,
    SUMMARY,
    RunInUse,
    dump_toml,
    resume_run,
    run_finished,
    start_run,
)

__all__ = [
    "LOCK_WAIT",
    "RESULTS_CSV",
    "RUNS",
    "SWEEP_JSON",
    "Point",
    "Sweep",
    "SweepInterrupted",
    "SweepOutcome",
    "describe_points",
    "format_outcome",
    "is_replicate",
    "is_sweep_dir",
    "load_sweep",
    "parse_sweep",
    "read_results",
    "run_point",
    "run_sweep",
]

SWEEP_JSON = "sweep.json"
RESULTS_CSV = "results.csv"
RUNS = "runs"
#: seconds a task waits for a run directory whose lock another live process holds
LOCK_WAIT = 300.0

_TOP_KEYS = ("experiment", "config", "description", "base", "grid", "zip", "group")
_GROUP_KEYS = ("name", "set", "grid", "zip")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=,+-]+")
_MAX_NAME = 120


# ------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Point:
    """One run of a sweep.

    ``name`` is its directory under ``DIR/runs``; ``group`` the ``[[group]]`` it comes from (its
    name, or ``None``); ``values`` the values that vary across the sweep (a group's ``set``
    values and the axes' values), in the sweep file's order; ``overrides`` what goes to
    :func:`~qeprop.runs.start_run` (base, then ``set``, then the axes); ``config`` the resolved
    configuration as ``config.toml`` holds it; ``variant`` the name without the replicate keys
    (``seed`` and keys ending in ``seed``): runs of one variant differ only in their seeds, and
    plots draw their statistics.
    """

    name: str
    group: str | None
    values: dict[str, Any]
    overrides: dict[str, Any]
    config: dict[str, Any]
    variant: str = ""


@dataclass(frozen=True)
class Sweep:
    """A checked sweep: its experiment, its points, the keys that vary across them (``varied``)
    and those of them that grids or zipped lists vary (``axis_keys``; the others are set by
    groups)."""

    experiment: str
    points: tuple[Point, ...]
    varied: tuple[str, ...]
    has_groups: bool
    source: str = "sweep"
    text: str = ""
    axis_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepOutcome:
    """What :func:`run_sweep` did: the status of every run and the counts."""

    out_dir: Path
    status: dict[str, str]
    errors: dict[str, str]
    ran: int
    skipped: int

    @property
    def failed(self) -> list[str]:
        return [n for n, s in self.status.items() if s == "failed"]

    @property
    def done(self) -> list[str]:
        return [n for n, s in self.status.items() if s == "done"]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or ``SIGTERM`` stopped a sweep; ``str()`` is the hint the command line prints."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


# ------------------------------------------------------------------------------------ parsing
@dataclass(frozen=True)
class _Axis:
    """One independent direction of a sweep: a grid key, or a block of zipped keys."""

    keys: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    places: tuple[str, ...]  # where each key is written, e.g. "grid.seed", "group[1].zip.nudge"


@dataclass(frozen=True)
class _Group:
    name: str | None
    fixed: dict[str, Any]
    axes: tuple[_Axis, ...]
    place: str  # "" for the implicit group, else "group[i]"


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (see the module docstring); errors are one line naming it."""
    p = Path(path)
    text = read_text(p)
    data = load_toml(p)
    return parse_sweep(data, source=str(p), base_dir=p.parent, text=text)


def parse_sweep(
    data: Mapping[str, Any],
    *,
    source: str = "sweep",
    base_dir: str | Path = ".",
    text: str = "",
) -> Sweep:
    """Check a sweep given as a mapping (a parsed sweep file) and expand it into its points.

    ``source`` names the sweep in error messages and ``base_dir`` is where a relative
    ``config`` path is looked up. Every point's configuration goes through the experiment's
    ``resolve`` (and must survive ``config.toml``), so a value the experiment refuses is
    reported here, naming the place it came from.
    """

    def fail(message: str, place: str = "") -> ProblemError:
        return ProblemError(message, where=f"{source}: {place}" if place else source)

    if not isinstance(data, Mapping):
        raise fail("a sweep file is a table of keys")
    for key in data:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key; allowed: {list(_TOP_KEYS)}", str(key))
    name = data.get("experiment")
    if not isinstance(name, str) or not name:
        raise fail(
            'name the experiment to sweep, e.g. experiment = "phase-recognition"', "experiment"
        )
    try:
        experiment = get_experiment(name)
    except QEPError as e:
        raise fail(e.message, "experiment") from None
    if "description" in data and not isinstance(data["description"], str):
        raise fail("must be text", "description")
    known = _config_keys(experiment)

    # the base configuration: a config file, then the inline [base] table
    origin: dict[str, str] = {}
    base: dict[str, Any] = {}
    if "config" in data:
        file = data["config"]
        if not isinstance(file, str) or not file:
            raise fail("must be the path of a TOML configuration file", "config")
        path = Path(file) if Path(file).is_absolute() else Path(base_dir) / file
        try:
            from_file = load_toml(path)
        except QEPError as e:
            raise fail(str(e), "config") from None
        named = from_file.pop("experiment", name)
        if named != name:
            raise fail(f"{path} is a configuration of {named!r}, not of {name!r}", "config")
        for key, value in from_file.items():
            base[key] = value
            origin[key] = f"config ({path}): {key}"
    if "base" in data:
        inline = data["base"]
        if not isinstance(inline, Mapping):
            raise fail("must be a table of configuration values ([base])", "base")
        for key, value in inline.items():
            base[key] = value
            origin[key] = f"base.{key}"
    for key, place in origin.items():
        _check_key(key, known, name, fail, place)

    top_axes = _axes(data, "", known, name, fail)
    groups: list[_Group] = []
    if "group" in data:
        raw = data["group"]
        if not isinstance(raw, list) or not raw or not all(isinstance(g, Mapping) for g in raw):
            raise fail("write each variant as a [[group]] table", "group")
        names: set[str] = set()
        for i, g in enumerate(raw):
            place = f"group[{i}]"
            for key in g:
                if key not in _GROUP_KEYS:
                    raise fail(f"unknown key; allowed: {list(_GROUP_KEYS)}", f"{place}.{key}")
            gname = g.get("name")
            if gname is not None:
                if not isinstance(gname, str) or not _NAME_CHARS.sub("", gname).strip(".-"):
                    raise fail(
                        "must be a short name (letters, digits, '.', '_', '-')", f"{place}.name"
                    )
                if gname in names:
                    raise fail(f"two groups are named {gname!r}", f"{place}.name")
                names.add(gname)
            fixed = g.get("set", {})
            if not isinstance(fixed, Mapping):
                raise fail("must be a table of configuration values", f"{place}.set")
            for key in fixed:
                _check_key(key, known, name, fail, f"{place}.set.{key}")
            axes = _axes(g, f"{place}.", known, name, fail)
            groups.append(_Group(gname, dict(fixed), axes, place))
    else:
        groups.append(_Group(None, {}, (), ""))

    points: list[tuple[str, Point]] = []  # (label, point) before names are made unique
    varied: list[str] = []
    axis_keys: list[str] = []
    seen: dict[str, str] = {}  # canonical configuration -> label of its first point
    for group in groups:
        axes = (*top_axes, *group.axes)
        where: dict[str, str] = {}
        for ax in axes:
            for key, place in zip(ax.keys, ax.places, strict=True):
                if key in where:
                    raise fail(f"is also varied at {where[key]}", place)
                where[key] = place
        for key in group.fixed:
            if key in where:
                raise fail(f"is also varied at {where[key]}", f"{group.place}.set.{key}")
            where[key] = f"{group.place}.set.{key}"
        for key in (*group.fixed, *(k for ax in axes for k in ax.keys)):
            if key not in varied:
                varied.append(key)
        for key in (k for ax in axes for k in ax.keys):
            if key not in axis_keys:
                axis_keys.append(key)
        for combo in itertools.product(*(ax.rows for ax in axes)):
            values = dict(group.fixed)
            for ax, row in zip(axes, combo, strict=True):
                values.update(zip(ax.keys, row, strict=True))
            named_values = values
            if group.name is not None:
                named_values = {k: v for k, v in values.items() if k not in group.fixed}
            label = _label(group.name, named_values)
            overrides = {**base, **values}
            config = _resolve_point(experiment, name, overrides, label, where, origin, fail)
            canon = _canonical(config)
            if canon in seen:
                raise fail(
                    f"runs {seen[canon]!r} and {label!r} have the same configuration (each point "
                    "of a sweep must differ)",
                    group.place or "grid",
                )
            seen[canon] = label
            kept = {k: v for k, v in named_values.items() if not is_replicate(k)}
            variant = _label(group.name, kept) if group.name or kept else "all runs"
            point = Point(label, group.name, values, overrides, config, variant)
            points.append((label, point))
    if not points:
        raise fail("the sweep has no points")
    unique = _unique_names([label for label, _ in points])
    final = tuple(
        Point(n, p.group, p.values, p.overrides, p.config, p.variant)
        for n, (_, p) in zip(unique, points, strict=True)
    )
    return Sweep(
        experiment=name,
        points=final,
        varied=tuple(varied),
        axis_keys=tuple(axis_keys),
        has_groups="group" in data,
        source=source,
        text=text,
    )


def is_replicate(key: str) -> bool:
    """Whether a varied key only repeats a run with other random numbers (``seed``,
    ``init_seed``, ...): plots average over such keys and show their spread."""
    return key == "seed" or key.endswith("seed")


def _config_keys(experiment: Experiment) -> tuple[str, ...] | None:
    """The experiment's configuration keys, where it declares them."""
    config_type = getattr(experiment, "Config", None)
    fields = getattr(config_type, "fields", None)
    if callable(fields):
        return tuple(fields())
    defaults = getattr(experiment, "defaults", None)
    if callable(defaults):
        return tuple(defaults())
    return None


def _check_key(key: Any, known: tuple[str, ...] | None, name: str, fail: Any, place: str) -> None:
    if key == "experiment":
        raise fail("'experiment' is the sweep's top-level key, not a configuration value", place)
    if known is not None and key not in known:
        raise fail(f"unknown configuration key of {name}; allowed: {list(known)}", place)


def _axes(
    table: Mapping[str, Any], prefix: str, known: tuple[str, ...] | None, name: str, fail: Any
) -> tuple[_Axis, ...]:
    """The axes of a ``grid`` table and of one or more ``zip`` tables."""
    axes: list[_Axis] = []
    seen: dict[str, str] = {}

    def values(place: str, key: str, v: Any) -> list[Any]:
        _check_key(key, known, name, fail, place)
        if key in seen:
            raise fail(f"is also varied at {seen[key]}", place)
        seen[key] = place
        if not isinstance(v, list):
            raise fail("must be a list of the values to run (write [x] for a single value)", place)
        if not v:
            raise fail("is empty: nothing to run", place)
        return v

    def distinct(rows: Sequence[tuple[Any, ...]], places: Sequence[str]) -> None:
        firsts: dict[str, int] = {}
        for i, row in enumerate(rows):
            canon = json.dumps(list(row), sort_keys=True, default=str)
            if canon in firsts:
                shown = row[0] if len(row) == 1 else list(row)
                raise fail(
                    f"value {json.dumps(shown, default=str)} appears twice (entries "
                    f"{firsts[canon] + 1} and {i + 1})",
                    places[0],
                )
            firsts[canon] = i

    grid = table.get("grid", {})
    if not isinstance(grid, Mapping):
        raise fail("must be a table of key = [values]", f"{prefix}grid")
    for key, v in grid.items():
        place = f"{prefix}grid.{key}"
        rows = tuple((x,) for x in values(place, key, v))
        distinct(rows, (place,))
        axes.append(_Axis((key,), rows, (place,)))
    blocks = table.get("zip", [])
    if isinstance(blocks, Mapping):
        blocks = [blocks]
    if not isinstance(blocks, list) or not all(isinstance(b, Mapping) for b in blocks):
        raise fail("must be a table of key = [values] (or several [[zip]] tables)", f"{prefix}zip")
    for i, block in enumerate(blocks):
        at = f"{prefix}zip" if len(blocks) == 1 else f"{prefix}zip[{i}]"
        if not block:
            raise fail("is empty: nothing to run", at)
        keys: list[str] = []
        columns: list[list[Any]] = []
        places: list[str] = []
        for key, v in block.items():
            place = f"{at}.{key}"
            column = values(place, key, v)
            if columns and len(column) != len(columns[0]):
                raise fail(
                    f"has {len(column)} values but {places[0]} has {len(columns[0])}: zipped "
                    "lists must have the same length",
                    place,
                )
            keys.append(key)
            columns.append(column)
            places.append(place)
        rows = tuple(zip(*columns, strict=True))
        distinct(rows, places if len(places) == 1 else (at,))
        axes.append(_Axis(tuple(keys), rows, tuple(places)))
    return tuple(axes)


def _resolve_point(
    experiment: Experiment,
    name: str,
    overrides: dict[str, Any],
    label: str,
    where: dict[str, str],
    origin: dict[str, str],
    fail: Any,
) -> dict[str, Any]:
    """The point's configuration as ``config.toml`` will hold it; errors name their place."""
    from .runs import _plain_config, _resolve, _schedule

    def place_of(e: QEPError) -> str:
        key = re.split(r"[.\[:\s]", e.where or "", maxsplit=1)[0]
        return (
            where.get(key) or origin.get(key) or (f"run {label}: {key}" if key else f"run {label}")
        )

    try:
        config = _resolve(experiment, overrides, "config")
        _schedule(experiment, config)
        plain = _plain_config(config)
        back = tomllib.loads(dump_toml({"experiment": name, **plain}))
        back.pop("experiment")
        again = _plain_config(_resolve(experiment, back, CONFIG))
    except QEPError as e:
        inner = e
        if e.where and e.where.startswith("config: "):  # _resolve's prefix
            inner = QEPError(e.message, where=e.where[len("config: ") :])
        raise fail(f"{e.message} (run {label})", place_of(inner)) from None
    if _canonical(again) != _canonical(plain):
        raise fail(
            "the resolved configuration does not survive config.toml (values must be TOML "
            "strings, numbers, booleans or lists)",
            f"run {label}",
        )
    return plain


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True, default=str)


def _short(value: Any) -> str:
    """A value as it appears in a run name: ``0.1``, ``true``, ``xz``, ``0-2`` (lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "-".join(_short(v) for v in value) or "empty"
    if isinstance(value, Mapping):
        return "-".join(f"{k}-{_short(v)}" for k, v in value.items())
    if value is None:
        return "none"
    return str(value)


def _label(group: str | None, values: Mapping[str, Any]) -> str:
    parts = [group] if group else []
    parts += [f"{k}={_short(v)}" for k, v in values.items()]
    return ",".join(parts) or "run"


def _sanitise(label: str) -> str:
    name = _NAME_CHARS.sub("-", label).strip(".-") or "run"
    if len(name) > _MAX_NAME:
        import hashlib

        digest = hashlib.sha1(label.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: _MAX_NAME - 9].rstrip('.-')}-{digest}"
    return name


def _unique_names(labels: Sequence[str]) -> list[str]:
    """File-system-safe, distinct (also ignoring case) directory names for the labels."""
    used: set[str] = set()
    out = []
    for label in labels:
        base = _sanitise(label)
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name.lower())
        out.append(name)
    return out


# ------------------------------------------------------------------------------------ worker task
@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread and one numba thread in the calling thread for the duration.

    Set in the task itself (not through environment variables of the worker process): numba's
    thread count is per thread, and threadpoolctl changes the loaded libraries' settings.
    """
    from threadpoolctl import threadpool_limits

    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        numba = None  # type: ignore[assignment]
    before = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        if numba is not None and before is not None:
            numba.set_num_threads(before)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_point(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one point of a sweep to its end: the function a Dask worker executes.

    ``task`` holds ``run_dir``, ``experiment``, ``overrides``, ``config`` (the resolved
    configuration the run directory must hold), ``command_line`` and ``lock_wait``. A finished
    run is left alone, a started one is resumed from its checkpoint (after checking that it is a
    run of this point), a new one is started. Returns ``{"status": "done" | "failed", "error",
    "action": "started" | "resumed" | "skipped", "seconds", "host", "pid"}``: a run that fails is
    a result, not an exception (it would fail again). Only a run directory locked by another
    live process for longer than ``lock_wait`` seconds raises (:class:`~qeprop.runs.RunInUse`),
    so that Dask retries the task later.
    """
    d = Path(task["run_dir"])
    started = time.monotonic()
    deadline = started + float(task.get("lock_wait", LOCK_WAIT))
    out: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "error": ""}
    with _one_thread():
        while True:
            try:
                out["action"] = _run_once(d, task)
                out["status"] = "done"
                break
            except RunInUse:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
            except QEPError as e:
                out.update(status="failed", action="failed", error=_one_line(str(e)))
                break
            except Exception as e:  # a bug or an unexpected failure: report it, go on
                out.update(
                    status="failed", action="failed", error=_one_line(f"{type(e).__name__}: {e}")
                )
                break
    out["seconds"] = round(time.monotonic() - started, 3)
    return out


def _run_once(d: Path, task: Mapping[str, Any]) -> str:
    if run_finished(d):
        return "skipped"
    if not d.exists():
        try:
            start_run(
                task["experiment"],
                task["overrides"],
                d,
                command_line=task["command_line"],
                progress=False,
            )
            return "started"
        except QEPError as e:
            # another process created it meanwhile (start_run refuses an existing directory
            # before doing anything): continue that run below; any other error is the run's
            if not (d.exists() and e.message.startswith("already exists")):
                raise
    _check_run_config(d, task)
    resume_run(d, progress=False)
    return "resumed"


def _check_run_config(d: Path, task: Mapping[str, Any]) -> None:
    """Refuse to resume a run directory that holds another configuration than the point's."""
    from .runs import _config_changes, _plain_config, _read_run_config

    name, experiment, config = _read_run_config(d)
    if name != task["experiment"]:
        raise QEPError(
            f"holds a run of {name!r}, not of {task['experiment']!r}: move it away and start "
            "the sweep again",
            where=str(d),
        )
    defaults = experiment.Config.defaults() if hasattr(experiment, "Config") else {}
    changes = _config_changes(task["config"], _plain_config(config), defaults, experiment)
    if changes:
        shown = "; ".join(changes[:3]) + ("; ..." if len(changes) > 3 else "")
        raise QEPError(
            f"holds a run of another configuration than the sweep's (sweep -> directory: "
            f"{shown}): move it away "
            "and start the sweep again",
            where=str(d / CONFIG),
        )


# ------------------------------------------------------------------------------------ sweep dir
def is_sweep_dir(path: str | Path) -> bool:
    """Whether ``path`` is a sweep directory (it has a ``sweep.json``)."""
    return (Path(path) / SWEEP_JSON).is_file()


def _points_record(sweep: Sweep) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "group": p.group,
            "variant": p.variant,
            "values": p.values,
            "config": p.config,
        }
        for p in sweep.points
    ]


def _prepare(out: Path, sweep: Sweep, command_line: Sequence[str]) -> Any:
    """Create or check the sweep directory; returns its lock (held until the sweep ends)."""
    from .runs import _Lock, _lock_holder, _now, _read_json_object, _write_json

    if out.exists() and not out.is_dir():
        raise QEPError("exists and is not a directory", where=str(out))
    record = out / SWEEP_JSON
    if out.is_dir() and not record.exists():
        # what a start killed before writing sweep.json may leave: the lock file, runs/ empty
        empty_runs = (out / RUNS).is_dir() and not any((out / RUNS).iterdir())
        extra = sorted(
            p.name
            for p in out.iterdir()
            if p.name != ".lock" and not (p.name == RUNS and empty_runs)
        )
        if extra:
            raise QEPError(
                f"exists and is not a sweep directory (it holds {extra[:3]} but no {SWEEP_JSON})"
                "; choose a new --out directory",
                where=str(out),
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QEPError(f"cannot create the sweep directory: {e.strerror}", where=str(out)) from None
    try:
        lock = _Lock(out)
    except RunInUse:
        raise QEPError(
            f"in use by {_lock_holder(out)}, which is running this sweep; wait until it has "
            "finished (or stop it) and try again",
            where=str(out),
        ) from None
    try:
        if record.exists():
            _verify_record(_read_json_object(record), sweep, record)
        else:
            _write_json(
                record,
                {
                    "experiment": sweep.experiment,
                    "sweep_file": sweep.source,
                    "sweep_text": sweep.text,
                    "varied": list(sweep.varied),
                    "axes": list(sweep.axis_keys),
                    "groups": sweep.has_groups,
                    "points": _points_record(sweep),
                    "qeprop_version": __version__,
                    "command_line": list(command_line),
                    "created": _now(),
                },
            )
        (out / RUNS).mkdir(exist_ok=True)
    except OSError as e:
        lock.release()
        raise QEPError(f"cannot write the sweep directory: {e.strerror}", where=str(out)) from None
    except BaseException:
        lock.release()
        raise
    return lock


def _verify_record(recorded: Mapping[str, Any], sweep: Sweep, path: Path) -> None:
    """Refuse a sweep directory made by another sweep (other experiment or points)."""
    from .runs import _config_changes

    hint = (
        f"finish that sweep with its own sweep file (its text is 'sweep_text' in {SWEEP_JSON}), "
        "or choose a new --out directory"
    )
    if recorded.get("experiment") != sweep.experiment:
        raise QEPError(
            f"holds a sweep of {recorded.get('experiment')!r}, not of {sweep.experiment!r}; "
            + hint,
            where=str(path),
        )
    old = recorded.get("points")
    if not isinstance(old, list) or not all(isinstance(p, dict) for p in old):
        raise QEPError("has no list of points: the file is damaged", where=str(path))
    before = {str(p.get("name")): p.get("config") for p in old}
    now = {p.name: p.config for p in sweep.points}
    diffs = [f"run {n} is new" for n in now if n not in before]
    diffs += [f"run {n} is gone" for n in before if n not in now]
    experiment = get_experiment(sweep.experiment)
    defaults = experiment.Config.defaults() if hasattr(experiment, "Config") else {}
    for n, config in now.items():
        if n in before:
            prev = before[n] if isinstance(before[n], dict) else {}
            changes = _config_changes(prev, config, defaults, experiment)
            if changes:
                diffs.append(f"run {n}: {changes[0]}")
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise QEPError(f"was written by another sweep ({shown}); {hint}", where=str(path))


# ------------------------------------------------------------------------------------ results.csv
def _summary_of(run_dir: Path) -> dict[str, Any]:
    from .runs import _read_json_object

    with contextlib.suppress(QEPError):
        return _read_json_object(run_dir / SUMMARY)
    return {}


def _wall_seconds(run_dir: Path) -> float | None:
    from .runs import _read_json_object

    with contextlib.suppress(QEPError):
        t = _read_json_object(run_dir / PROVENANCE).get("timings")
        if isinstance(t, dict) and isinstance(t.get("wall_seconds"), int | float):
            return float(t["wall_seconds"])
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


def _write_results(
    out: Path, sweep: Sweep, status: Mapping[str, str], errors: Mapping[str, str]
) -> Path:
    """Write ``results.csv`` atomically: one row per point (see :func:`read_results`)."""
    from .runs import _write_text

    runs_dir = out / RUNS
    finals: dict[str, dict[str, Any]] = {}
    walls: dict[str, float | None] = {}
    metric_keys: list[str] = []
    for p in sweep.points:
        if status.get(p.name) != "done":
            continue
        summary = _summary_of(runs_dir / p.name)
        final = summary.get("final")
        final = {k: v for k, v in final.items() if _scalar(v)} if isinstance(final, dict) else {}
        final["steps"] = summary.get("steps")
        finals[p.name] = final
        walls[p.name] = _wall_seconds(runs_dir / p.name)
        for k in final:
            if k not in metric_keys:
                metric_keys.append(k)
    head = ["run", *(["group"] if sweep.has_groups else []), *sweep.varied, "status", "error"]
    # a final value that repeats a varied key's value (the experiment echoes its settings) is
    # left out; one that differs from it keeps its own column, as final_KEY
    configs = {p.name: p.config for p in sweep.points}
    metric_keys = [
        k
        for k in metric_keys
        if k not in sweep.varied
        or any(_cell(f.get(k)) != _cell(configs[n].get(k)) for n, f in finals.items())
    ]
    columns = {k: (f"final_{k}" if k in head or k == "wall_seconds" else k) for k in metric_keys}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*head, *columns.values(), "wall_seconds"])
    for p in sweep.points:
        row: list[Any] = [p.name]
        if sweep.has_groups:
            row.append(p.group or "")
        row += [p.config.get(k) for k in sweep.varied]
        row += [status.get(p.name, "pending"), errors.get(p.name, "")]
        final = finals.get(p.name, {})
        row += [final.get(k) for k in columns]
        row.append(walls.get(p.name))
        w.writerow([_cell(v) for v in row])
    path = out / RESULTS_CSV
    _write_text(path, buf.getvalue())
    return path


def read_results(sweep_dir: str | Path) -> list[dict[str, str]]:
    """The rows of ``DIR/results.csv`` as dicts of text (column -> cell).

    Columns: ``run`` (the run directory under ``DIR/runs``), ``group`` (with ``[[group]]``
    tables), one column per varied key (the resolved value; lists as JSON), ``status``
    (``done``, ``failed``, ``unfinished``: started but not finished, ``pending``: not started),
    ``error`` (one line, for failed runs), the scalar final metrics of ``summary.json`` (a
    metric named like an earlier column gets the prefix ``final_``), ``steps`` and
    ``wall_seconds``.
    """
    path = Path(sweep_dir) / RESULTS_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QEPError("file not found (has the sweep been started?)", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise QEPError(f"cannot read: {e}", where=str(path)) from None
    return list(csv.DictReader(io.StringIO(text)))


# ------------------------------------------------------------------------------------ running
def _status_on_disk(run_dir: Path) -> str:
    if run_finished(run_dir):
        return "done"
    return "unfinished" if run_dir.exists() else "pending"


def _fmt_time(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _StepMeter:
    """The training steps of a sweep's runs, for its progress bar and estimate of the time left.

    A run's total is its experiment's ``total_steps`` of its configuration; its progress is the
    step of its last checkpoint (``checkpoint.json``, written atomically by the run), read again
    only when the file changed. The estimate is the steps left divided by the steps done in
    this session per second, so runs of different lengths, resumed runs and any number of
    workers count right. ``known`` is false when some total is unknown (the display then
    counts runs only).
    """

    def __init__(self, sweep: Sweep, runs_dir: Path, status: Mapping[str, str]) -> None:
        self.runs_dir = runs_dir
        self.total: dict[str, int] = {}
        try:
            exp = get_experiment(sweep.experiment)
            for p in sweep.points:
                self.total[p.name] = max(0, int(exp.total_steps(exp.resolve(p.config))))
        except Exception:  # an experiment without a step count: runs are counted instead
            self.total = {}
        self.known = bool(self.total)
        self._seen: dict[str, int] = {}
        self.step: dict[str, int] = {}
        self.open: set[str] = set()
        for p in sweep.points:
            if status.get(p.name) == "done":
                self.step[p.name] = self.total.get(p.name, 0)
            else:
                self.step[p.name] = self._read(p.name) or 0
                self.open.add(p.name)
        self.start = dict(self.step)

    def _read(self, name: str) -> int | None:
        path = self.runs_dir / name / CHECKPOINT_JSON
        try:
            mtime = path.stat().st_mtime_ns
            if self._seen.get(name) == mtime:
                return None
            step = json.loads(path.read_text(encoding="utf-8"))["step"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._seen[name] = mtime
        return int(step) if isinstance(step, int) and step >= 0 else None

    def poll(self) -> None:
        """Read the checkpoints of the runs still open that changed since the last poll."""
        if not self.known:
            return
        for name in self.open:
            step = self._read(name)
            if step is not None:
                self.step[name] = min(step, self.total[name])

    def close(self, name: str, done: bool) -> None:
        """A run ended: done (all its steps) or failed (its steps left are no longer work)."""
        self.open.discard(name)
        if name in self.total:
            if done:
                self.step[name] = self.total[name]
            else:
                self.total[name] = self.step[name] = max(self.step[name], self.start[name])

    @property
    def done_steps(self) -> int:
        return sum(self.step.values())

    @property
    def all_steps(self) -> int:
        return sum(self.total.values())

    def remaining(self, elapsed: float) -> float | None:
        """Seconds left at this session's rate; None before any step was made."""
        work = sum(self.step[n] - self.start[n] for n in self.step)
        left = self.all_steps - self.done_steps
        if not self.known or work <= 0 or elapsed <= 0:
            return None
        return left * elapsed / work


class _Display:
    """What the terminal shows: a live bar (on a terminal) and one line per finished run.

    The bar counts the training steps of all runs (its rate and time left are tqdm's), or the
    runs themselves when a step count is unknown; its postfix and the lines count runs."""

    def __init__(
        self, total: int, initial: int, stream: TextIO, live: bool, meter: _StepMeter | None = None
    ) -> None:
        self.stream = stream
        self.total = total
        self.meter = meter if meter is not None and meter.known else None
        self.bar: Any = None
        self.started = time.monotonic()
        self.completed = 0  # runs finished (done or failed) in this session
        if live and stream.isatty():
            from tqdm import tqdm

            steps = self.meter is not None
            self.bar = tqdm(
                total=self.meter.all_steps if self.meter else total,
                initial=self.meter.done_steps if self.meter else initial,
                desc="steps" if steps else "runs",
                unit="step" if steps else "run",
                file=stream,
                dynamic_ncols=True,
                leave=True,
                bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| [{elapsed}<{remaining}{postfix}]",
            )

    def counts_text(self, counts: Mapping[str, int], eta: bool) -> str:
        text = (
            f"done {counts['done']}, running {counts['running']}, failed {counts['failed']}, "
            f"pending {counts['pending']}"
        )
        if eta:
            elapsed = time.monotonic() - self.started
            left = counts["running"] + counts["pending"]
            if self.meter is not None:
                text += f"; steps {self.meter.done_steps}/{self.meter.all_steps}"
                remaining = self.meter.remaining(elapsed) if left else None
            else:
                remaining = elapsed / self.completed * left if self.completed and left else None
            text += f"; elapsed {_fmt_time(elapsed)}"
            if remaining is not None:
                text += f", remaining ~{_fmt_time(remaining)}"
        return text

    def update(self, counts: Mapping[str, int]) -> None:
        if self.meter is not None:
            self.meter.poll()
        if self.bar is not None:
            if self.meter is not None:
                if self.bar.total != self.meter.all_steps:  # a failed run's steps left
                    self.bar.total = self.meter.all_steps
                delta = self.meter.done_steps - self.bar.n
                if delta > 0:
                    self.bar.update(delta)
            prefix = f"runs {counts['done']}/{self.total} done, " if self.meter else ""
            self.bar.set_postfix_str(
                f"{prefix}running {counts['running']}, failed {counts['failed']}, "
                f"pending {counts['pending']}",
                refresh=True,
            )

    def event(self, line: str, counts: Mapping[str, int], advance: bool) -> None:
        if advance:
            self.completed += 1
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
            if advance and self.meter is None:
                self.bar.update(1)
            self.update(counts)
        else:
            if self.meter is not None:
                self.meter.poll()
            self.stream.write(f"{line}  [{self.counts_text(counts, eta=True)}]\n")
            self.stream.flush()

    def note(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _metric_text(final: Mapping[str, Any]) -> str:
    """A few final metrics for the line of a finished run."""
    items = [(k, v) for k, v in final.items() if isinstance(v, float)][:3]
    return "  ".join(f"{k}={v:.4g}" for k, v in items)


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
    command_line: Sequence[str] | None = None,
    lock_wait: float = LOCK_WAIT,
    retries: int = 2,
) -> SweepOutcome:
    """Run every point of ``sweep`` not yet finished into ``out_dir`` on a Dask cluster.

    With ``scheduler`` (an address such as ``tcp://host:8786``), the runs go to that cluster's
    workers, which must see ``out_dir`` at the same path (a shared file system) and have qeprop
    installed; otherwise a local cluster of ``workers`` processes (default: one per core this
    process may use, at most one per run) with one thread each is started and closed again.
    Every run is one task (:func:`run_point`): finished runs are skipped, started ones resumed.
    ``results.csv`` is rewritten (atomically) whenever a run ends. Progress goes to ``stream``
    (default ``sys.stderr``): a live bar on a terminal (unless ``progress`` is false) and one
    line per finished or failed run.

    Ctrl-C or ``SIGTERM`` cancels the remaining runs, closes the cluster, writes
    ``results.csv`` and raises :class:`SweepInterrupted`; runs in progress keep their last
    checkpoint, and the same call later finishes the sweep.
    """
    from .runs import _signals_ignored, _sigterm_raises, _stale_partials

    if workers is not None and scheduler is not None:
        raise QEPError(
            "give either --workers (a local cluster) or --scheduler, not both", where="--workers"
        )
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise QEPError(f"must be a positive integer, got {workers}", where="--workers")
    stream = sys.stderr if stream is None else stream
    out = Path(out_dir)
    command_line = list(sys.argv if command_line is None else command_line)
    lock = _prepare(out, sweep, command_line)
    runs_dir = out / RUNS
    status: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        for p in sweep.points:
            status[p.name] = _status_on_disk(runs_dir / p.name)
        todo = [p for p in sweep.points if status[p.name] != "done"]
        skipped = len(sweep.points) - len(todo)
        _write_results(out, sweep, status, errors)
        stream.write(
            f"qeprop sweep: {len(sweep.points)} runs of {sweep.experiment} in {out}: "
            f"{skipped} already done, {len(todo)} to run\n"
        )
        stream.flush()
        if not todo:
            return SweepOutcome(out, status, errors, 0, skipped)
        with _sigterm_raises():
            try:
                _execute(
                    sweep,
                    todo,
                    out,
                    status,
                    errors,
                    workers,
                    scheduler,
                    progress,
                    stream,
                    command_line,
                    lock_wait,
                    retries,
                )
            except KeyboardInterrupt:
                with _signals_ignored():
                    for p in todo:
                        if status[p.name] not in ("done", "failed"):
                            status[p.name] = _status_on_disk(runs_dir / p.name)
                    _write_results(out, sweep, status, errors)
                n_done = sum(s == "done" for s in status.values())
                note = (
                    " (runs already executing on the cluster's workers go on there)"
                    if scheduler
                    else ""
                )
                raise SweepInterrupted(
                    f"interrupted with {n_done} of {len(status)} runs done; runs in progress "
                    f"keep their last checkpoint{note}; continue with the same command"
                ) from None
        for p in sweep.points:
            _stale_partials(runs_dir, p.name, age=0.0)
        _write_results(out, sweep, status, errors)
        return SweepOutcome(out, status, errors, len(todo), skipped)
    finally:
        lock.release()


def _execute(
    sweep: Sweep,
    todo: Sequence[Point],
    out: Path,
    status: dict[str, str],
    errors: dict[str, str],
    workers: int | None,
    scheduler: str | None,
    progress: bool,
    stream: TextIO,
    command_line: Sequence[str],
    lock_wait: float,
    retries: int,
) -> None:
    """Submit the runs of ``todo`` to a Dask cluster and follow them to the end; raises
    ``KeyboardInterrupt`` after an orderly stop on ``SIGINT`` or ``SIGTERM``."""
    from ._dask_cluster import connect
    from .runs import _signals_ignored

    n_workers = min(workers or _cpu_count(), len(todo))
    with _stop_requested() as stop:
        client, cluster = connect(scheduler, n_workers)
        try:
            _follow(
                sweep,
                todo,
                out,
                status,
                errors,
                progress,
                stream,
                command_line,
                lock_wait,
                retries,
                client,
                cluster,
                stop,
            )
        finally:
            with _signals_ignored():  # a second Ctrl-C must not leave worker processes behind
                with contextlib.suppress(Exception):
                    client.close(timeout=10)
                if cluster is not None:
                    with contextlib.suppress(Exception):
                        cluster.close(timeout=20)
        if stop.is_set():
            raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_requested() -> Iterator[threading.Event]:
    """An event that ``SIGINT`` and ``SIGTERM`` set instead of raising (main thread only).

    Dask's synchronous calls wait on its event-loop thread; an exception raised by a signal
    handler in the middle of one leaves that thread with a half-cancelled call (and a logged
    traceback). The sweep therefore only notes the request and stops at its next poll (at most
    a second later), then closes the cluster in order.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _follow(
    sweep: Sweep,
    todo: Sequence[Point],
    out: Path,
    status: dict[str, str],
    errors: dict[str, str],
    progress: bool,
    stream: TextIO,
    command_line: Sequence[str],
    lock_wait: float,
    retries: int,
    client: Any,
    cluster: Any,
    stop: threading.Event,
) -> None:
    """Submit the runs of ``todo`` and collect them until all are done or ``stop`` is set;
    the runs not finished by then are cancelled."""
    from distributed import wait

    from ._dask_cluster import describe, killed_worker_type

    runs_dir = out / RUNS
    display: _Display | None = None
    futures: dict[Any, Point] = {}
    try:
        if stop.is_set():
            return
        stream.write(describe(client, cluster) + "\n")
        stream.flush()
        killed_worker = killed_worker_type()
        for p in todo:
            task = {
                "run_dir": str((runs_dir / p.name).absolute()),
                "experiment": sweep.experiment,
                "overrides": p.overrides,
                "config": p.config,
                "command_line": list(command_line),
                "lock_wait": lock_wait,
            }
            key = f"qeprop-run-{uuid.uuid4().hex}"
            futures[client.submit(run_point, task, key=key, retries=retries, pure=False)] = p
        total = len(sweep.points)
        meter = _StepMeter(sweep, runs_dir, status)
        display = _Display(total, total - len(todo), stream, progress, meter)
        remaining = set(futures)
        counts = _counts(status, client, remaining)
        display.update(counts)
        last = 0.0
        while remaining and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                wait(list(remaining), timeout=1.0, return_when="FIRST_COMPLETED")
            for f in [f for f in remaining if f.done()]:
                remaining.discard(f)
                p = futures[f]
                line = _collect(f, p, runs_dir, status, errors, killed_worker)
                meter.close(p.name, status[p.name] == "done")
                _write_results(out, sweep, status, errors)
                counts = _counts(status, client, remaining)
                display.event(line, counts, advance=True)
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                display.update(_counts(status, client, remaining))
        display.close()
        if stop.is_set():
            return
        failed = [p.name for p in sweep.points if status[p.name] == "failed"]
        stream.write(
            f"qeprop sweep: {sum(s == 'done' for s in status.values())} of {total} runs done"
            + (f", {len(failed)} failed" if failed else "")
            + f" in {_fmt_time(time.monotonic() - display.started)}\n"
        )
    finally:
        if display is not None:
            display.close()
        with contextlib.suppress(Exception):
            client.cancel(list(futures), force=True)


def _counts(status: Mapping[str, str], client: Any, remaining: set[Any]) -> dict[str, int]:
    """Runs done, failed, running (executing on a worker thread now) and pending."""
    done = sum(s == "done" for s in status.values())
    failed = sum(s == "failed" for s in status.values())
    left = len(remaining)
    try:
        ours = {f.key for f in remaining}
        threads = client.nthreads()
        running = sum(
            min(len(ours.intersection(keys)), threads.get(w, 1))
            for w, keys in client.processing().items()
        )
    except Exception:  # the scheduler is busy or gone: an estimate will do
        running = 0
    running = min(running, left)
    return {"done": done, "failed": failed, "running": running, "pending": left - running}


def _collect(
    future: Any,
    p: Point,
    runs_dir: Path,
    status: dict[str, str],
    errors: dict[str, str],
    killed_worker: type[BaseException] | None,
) -> str:
    """Record the outcome of a finished task; returns its line for the terminal."""
    if future.status == "finished":
        result = future.result()
        if result.get("status") == "done" and run_finished(runs_dir / p.name):
            status[p.name] = "done"
            errors.pop(p.name, None)
            final = _summary_of(runs_dir / p.name).get("final")
            metrics = _metric_text(final) if isinstance(final, dict) else ""
            how = "" if result.get("action") == "started" else f" ({result.get('action')})"
            return f"done    {p.name}{how}  {result.get('seconds', 0):.1f} s  {metrics}".rstrip()
        status[p.name] = "failed"
        errors[p.name] = result.get("error") or (
            f"a worker on {result.get('host')} finished it, but {runs_dir / p.name} has no "
            f"{SUMMARY} here: the workers must see the sweep directory at the same path (a "
            "shared file system)"
        )
    else:
        exc = None
        with contextlib.suppress(Exception):
            exc = future.exception(timeout=5)
        if killed_worker is not None and isinstance(exc, killed_worker):
            message = (
                "the workers running it died again and again (Dask gave up: KilledWorker); "
                "see the worker logs, e.g. for running out of memory"
            )
        elif exc is not None:
            message = f"{type(exc).__name__}: {exc}"
        else:
            message = f"the task ended as {future.status!r}"
        status[p.name] = "failed"
        errors[p.name] = _one_line(message)
    return f"FAILED  {p.name}: {errors[p.name]}"


def format_outcome(outcome: SweepOutcome, sweep: Sweep) -> str:
    """The closing table: counts, then one line per failed run with its error."""
    counts: dict[str, int] = {}
    for s in outcome.status.values():
        counts[s] = counts.get(s, 0) + 1
    shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [
        f"{outcome.out_dir}: {len(sweep.points)} runs ({shown}); {outcome.out_dir / RESULTS_CSV}"
    ]
    failed = outcome.failed
    if failed:
        w = max(len(n) for n in failed)
        lines.append("failed runs:")
        lines += [f"  {n:<{w}}  {outcome.errors.get(n, '')}" for n in failed]
    return "\n".join(lines) + "\n"


def describe_points(sweep: Sweep) -> str:
    """One line per point (``--dry-run``): its run name and its varied values."""
    lines = [f"{sweep.source}: {len(sweep.points)} runs of {sweep.experiment}"]
    w = max(len(p.name) for p in sweep.points)
    for p in sweep.points:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in p.values.items())
        lines.append(f"  {p.name:<{w}}  ({shown})" if shown else f"  {p.name}")
    return "\n".join(lines) + "\n"
