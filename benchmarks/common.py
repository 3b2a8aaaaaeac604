"""Shared helpers of the benchmark comparisons: timing, machine load, the report and RESULTS.md.

Every comparison (``benchmarks/bench_<name>.py``) fills one :class:`Report`; the runner
(``benchmarks/run.py``) stamps it with the date, command and machine and renders it as one section
of ``RESULTS.md`` between the markers ``<!-- bench:NAME begin -->`` and ``<!-- bench:NAME end -->``.
:func:`write_results` replaces the sections of the comparisons that ran and keeps the others.

Timing (:func:`bench`): one untimed warm-up call, then ``repeats`` calls timed with
``time.perf_counter``; a row reports their median. Each timing also records this process's CPU
time and the whole machine's busy time (``/proc/stat``) over the timed calls, so that
``(busy - cpu) / wall`` is the average number of cores other processes used meanwhile: the
benchmark machine is shared and the timings depend on it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
LOAD_WARNING_CORES = 0.2  # other processes above this many cores disturb a timing (2 cores)

# ------------------------------------------------------------------------------ timing
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_seconds() -> float:
    """CPU seconds spent by all processes of the machine (``/proc/stat``; 0 if unavailable)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    return (user + nice + system + irq + softirq) / _CLK_TCK


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished child processes (a benchmark that runs
    ``qeprop`` in subprocesses must not count their work as other processes' load)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


@dataclass
class Timing:
    """Wall-clock times (seconds) of the repeats, after untimed warm-up runs.

    ``cpu`` is the CPU time of this process and its children, ``busy`` the whole machine's over
    the timed repeats, so ``(busy - cpu) / wall`` is the average number of cores other processes
    used meanwhile.
    """

    times: list[float]
    result: Any = None
    warmup_result: Any = None
    cpu: float = 0.0
    busy: float = 0.0

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def min(self) -> float:
        return float(np.min(self.times))

    @property
    def repeats(self) -> int:
        return len(self.times)

    @property
    def wall(self) -> float:
        return float(np.sum(self.times))

    @property
    def cpu_per_wall(self) -> float:
        return self.cpu / self.wall if self.wall > 0 else float("nan")

    @property
    def other_cores(self) -> float:
        """Average cores used by other processes while this was timed (``nan`` below 0.2 s of
        timed wall-clock: ``/proc/stat`` counts in jiffies of 10 ms)."""
        if self.wall < 0.2:
            return float("nan")
        return max(0.0, self.busy - self.cpu) / self.wall

    @classmethod
    def combine(cls, parts: Sequence[Timing], times: list[float]) -> Timing:
        """A summary over several benches (``times`` chosen by the caller)."""
        t = cls(times)
        total = sum(p.wall for p in parts)
        t.cpu = sum(p.cpu for p in parts) * (t.wall / total if total else 1.0)
        t.busy = sum(p.busy for p in parts) * (t.wall / total if total else 1.0)
        return t


def bench(fn: Callable[[], Any], repeats: int, warmup: Callable[[], Any] | None = None) -> Timing:
    """Time ``repeats`` calls of ``fn`` after one untimed warm-up call (of ``warmup`` if given,
    e.g. a single sample of a slow batch workload, else of ``fn``)."""
    return bench_interleaved([fn], repeats, [warmup or fn])[0]


def bench_interleaved(
    fns: Sequence[Callable[[], Any]],
    repeats: int,
    warmups: Sequence[Callable[[], Any]] | None = None,
) -> list[Timing]:
    """Time ``repeats`` calls of each of ``fns`` in alternation (``fns[0]``, ``fns[1]``, ...,
    then again), after one untimed warm-up call of each (of ``warmups[i]`` if given).

    For a ratio of two timings on a machine whose speed drifts over minutes: timed one after
    the other, each side would see a different phase of the machine; interleaved, both see the
    same ones. This process's CPU time and the machine's busy time are summed over each
    function's timed calls.
    """
    firsts = [w() for w in (warmups if warmups is not None else fns)]
    times: list[list[float]] = [[] for _ in fns]
    results: list[Any] = [None] * len(fns)
    cpu = [0.0] * len(fns)
    busy = [0.0] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            cpu0, busy0 = own_cpu_seconds(), busy_seconds()
            t0 = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - t0)
            cpu[i] += own_cpu_seconds() - cpu0
            busy[i] += busy_seconds() - busy0
    rows = zip(times, results, firsts, cpu, busy, strict=True)
    return [Timing(t, r, f, c, b) for t, r, f, c, b in rows]


def fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_load(cores: float) -> str:
    return f"{cores:.2f}" if np.isfinite(cores) else "n/a"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


# ------------------------------------------------------------------------------ machine
def reference_seconds() -> float:
    """Seconds of a fixed single-threaded workload (50 complex products ``(4096, 64) @ (64, 64)``,
    best of 3): the speed of this machine at the moment, which on a shared virtual machine
    varies by tens of percent over minutes without showing as load. Sections record it at
    their start and end, so an absolute time can be read against the machine's pace."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 64)) + 1j * rng.standard_normal((4096, 64))
    b = rng.standard_normal((64, 64)) + 0j
    best = np.inf
    with threadpool_limits(1):
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(50):
                a @ b
            best = min(best, time.perf_counter() - t)
    return best


def machine_info() -> list[tuple[str, str]]:
    """``(key, value)`` rows describing this machine, its libraries and the git revision."""
    import scipy
    from threadpoolctl import threadpool_info

    import qeprop

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = os.cpu_count() or 0
    blas = []
    for info in threadpool_info():
        blas.append(
            f"{info.get('internal_api')} {info.get('version')} "
            f"({info.get('user_api')}, {info.get('num_threads')} threads, "
            f"{info.get('threading_layer', '?')}, {info.get('architecture', '?')}, "
            f"{Path(str(info.get('filepath'))).name})"
        )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit += " (src/ modified)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory = f"{mem:.1f} GiB"
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        memory = "unknown"
    return [
        ("platform", platform.platform()),
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
        ("memory", memory),
        ("python", platform.python_version()),
        (
            "numpy / scipy / qeprop",
            f"{np.__version__} / {scipy.__version__} / {qeprop.__version__}",
        ),
        ("BLAS (threadpoolctl)", "; ".join(blas) or "none found"),
        ("git commit", commit),
    ]


def process_cpu() -> dict[int, tuple[float, str]]:
    """CPU seconds (user + system, all threads) and command line of every other process."""
    out: dict[int, tuple[float, str]] = {}
    me = os.getpid()
    try:
        entries = [p for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != me]
    except OSError:
        return out
    for p in entries:
        try:
            stat = (p / "stat").read_text()
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # fields 3.. of proc(5); comm may hold spaces
        try:
            seconds = (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
        except (IndexError, ValueError):
            continue
        comm = stat[stat.find("(") : stat.rfind(")") + 1]
        out[int(p.name)] = (seconds, " ".join(cmd.split()) or comm)
    return out


class CpuMonitor:
    """CPU seconds used by each other process, from :func:`process_cpu` snapshots.

    :meth:`sample` adds the CPU time each process used since the previous snapshot (all of it for
    a process born in between); a process that starts and ends between two snapshots is missed.
    """

    def __init__(self, start: dict[int, tuple[float, str]] | None = None) -> None:
        self.last = process_cpu() if start is None else start
        self.used: dict[int, tuple[float, str]] = {}

    def sample(self) -> None:
        now = process_cpu()
        for pid, (sec, cmd) in now.items():
            prev = self.last.get(pid)
            delta = sec - prev[0] if prev is not None and prev[1] == cmd else sec
            self.used[pid] = (self.used.get(pid, (0.0, ""))[0] + max(0.0, delta), cmd)
        self.last = now

    def users(self, wall: float, min_cores: float = 0.01) -> list[tuple[float, int, str]]:
        """``(average cores over wall, pid, command)`` of the processes above ``min_cores``."""
        return cpu_users({}, self.used, wall, min_cores)


def cpu_users(
    before: dict[int, tuple[float, str]],
    after: dict[int, tuple[float, str]],
    wall: float,
    min_cores: float = 0.01,
) -> list[tuple[float, int, str]]:
    """``(average cores, pid, command)`` of the other processes that used at least ``min_cores``
    between two :func:`process_cpu` snapshots ``wall`` seconds apart, busiest first (processes
    that ended in between are missed; new ones count from 0)."""
    users = []
    for pid, (sec, cmd) in after.items():
        prev = before.get(pid)
        used = sec - prev[0] if prev is not None and prev[1] == cmd else sec
        cores = used / wall if wall > 0 else 0.0
        if cores >= min_cores:
            users.append((cores, pid, cmd))
    return sorted(users, reverse=True)


def describe_users(users: list[tuple[float, int, str]], top: int = 4) -> str:
    """``"N processes: 0.93 cores pid 123 `cmd`; ..."`` (busiest ``top``; markdown-safe)."""
    if not users:
        return "none (below 0.01 cores each)"
    parts = [
        f"{c:.2f} cores pid {pid} `{cmd[:110] + ('...' if len(cmd) > 110 else '')}`"
        for c, pid, cmd in users[:top]
    ]
    more = f"; {len(users) - top} more" if len(users) > top else ""
    n = f"{len(users)} process{'es' if len(users) > 1 else ''}"
    return f"{n}: {'; '.join(parts)}{more}".replace("|", "\\|")


def sample_users(seconds: float = 1.0) -> tuple[str, dict[int, tuple[float, str]]]:
    """The other processes using CPU over a ``seconds`` sample (text) and the final snapshot."""
    before = process_cpu()
    time.sleep(seconds)
    after = process_cpu()
    return describe_users(cpu_users(before, after, seconds)), after


def command_line(argv: Sequence[str], script: str = "benchmarks/run.py") -> str:
    """The command that produced a report (``make bench [BENCH=...]`` when run by make)."""
    if os.environ.get("MAKELEVEL"):
        return "make bench" + (f' BENCH="{" ".join(argv)}"' if argv else "")
    return " ".join([".venv/bin/python", script, *map(shlex.quote, argv)])


# ------------------------------------------------------------------------------ report
@dataclass
class Row:
    """A timed measurement; ``baseline`` names the row of the same report it is compared with."""

    name: str
    timing: Timing | None
    detail: str = ""
    baseline: str | None = None


@dataclass
class Table:
    """A free-form table of a report (e.g. a scaling sweep)."""

    title: str
    header: list[str]
    rows: list[list[str]]
    legend: str = ""


@dataclass
class Report:
    """The results of one comparison, rendered as one section of ``RESULTS.md``.

    A comparison module fills it with timed rows (:meth:`add`; a row may name a ``baseline`` row
    measured in the same run, and the rendered table shows ``baseline median / row median``),
    ratios against targets (:meth:`ratio`, :meth:`limit`, :meth:`value`), correctness checks
    (:meth:`check`), notes, free-form tables, figures and the bullets of *What is measured*.
    The runner sets ``stamp`` (date, command, machine, load) before rendering.
    """

    name: str
    title: str = ""
    intro: list[str] = field(default_factory=list)
    repeats_note: str = ""
    rows: list[Row] = field(default_factory=list)
    # (name, value, target, verdict)
    ratios: list[tuple[str, str, str, str]] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (name, text)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (alt text, relative path)
    measured: list[str] = field(default_factory=list)
    stamp: list[tuple[str, str]] = field(default_factory=list)
    monitor: CpuMonitor | None = None  # sampled after every row (outside the timed regions)
    t_start: float = field(default_factory=time.perf_counter)

    # ---------------------------------------------------------------- filling
    def stage(self, title: str) -> None:
        """Print a progress header (elapsed time and load average)."""
        elapsed = time.perf_counter() - self.t_start
        print(f"\n{title}  [t = {elapsed:.0f} s, load average {loadavg():.2f}]", flush=True)

    def add(
        self, name: str, timing: Timing | None, detail: str = "", baseline: str | None = None
    ) -> None:
        """A timed row; ``baseline`` is the name of another row of this report (checked by
        :meth:`validate` once the comparison has run)."""
        self.rows.append(Row(name, timing, detail, baseline))
        if self.monitor is not None:
            self.monitor.sample()
        med = fmt_time(timing.median) if timing else "-"
        reps = f"(n={timing.repeats}, min {fmt_time(timing.min)})" if timing else ""
        load = f"[other load {fmt_load(timing.other_cores)} cores]" if timing else ""
        print(f"  {name:<58} {med:>10} {reps:<24} {load} {detail}", flush=True)

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)

    def ratio(self, name: str, value: float, target: float | None, unit: str = "x") -> None:
        if target is None:
            tgt, verdict = "-", "-"
        else:
            tgt = f">= {target:g}{unit}"
            verdict = "MET" if value >= target else "MISSED"
        self.ratios.append((name, f"{value:.1f}{unit}", tgt, verdict))
        verdict_text = f"  target {tgt}: {verdict}" if target is not None else ""
        print(f"  RATIO {name}: {value:.2f}{unit}{verdict_text}", flush=True)

    def limit(self, name: str, seconds: float, limit: float) -> None:
        """A time that must stay at or below ``limit`` seconds."""
        verdict = "MET" if seconds <= limit else "MISSED"
        target = f"<= {limit:g} s"
        self.ratios.append((f"{name} {target}", fmt_time(seconds), target, verdict))
        print(f"  LIMIT {name}: {fmt_time(seconds)}  target <= {limit:g} s: {verdict}", flush=True)

    def value(self, name: str, text: str) -> None:
        """A derived quantity without a target."""
        self.ratios.append((name, text, "-", "-"))
        print(f"  VALUE {name}: {text}", flush=True)

    def check(self, name: str, text: str) -> None:
        self.checks.append((name, text))
        print(f"  CHECK {name}: {text}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  NOTE {text}", flush=True)

    def table(self, title: str, header: list[str], rows: list[list[str]], legend: str = "") -> None:
        self.tables.append(Table(title, header, rows, legend))

    def figure(self, alt: str, path: str) -> None:
        """A figure, ``path`` relative to the directory of the results file."""
        self.figures.append((alt, path))

    def describe(self, *bullets: str) -> None:
        """Bullets of the section's *What is measured*."""
        self.measured.extend(bullets)

    def load_warning(self, other_cores: float = 0.0) -> None:
        """Prepend a warning note if other processes disturbed any timed row or, for a report
        without timed rows, used more than the threshold on average (``other_cores``)."""
        worst = max(
            (
                (r.timing.other_cores, r.name)
                for r in self.rows
                if r.timing is not None and np.isfinite(r.timing.other_cores)
            ),
            default=None,
        )
        msg = ""
        if worst is not None and worst[0] > LOAD_WARNING_CORES:
            msg = (
                f"other processes used up to {worst[0]:.2f} cores during the measurements "
                f"({worst[1]}): timings are disturbed, rerun on an idle machine"
            )
        elif worst is None and other_cores > LOAD_WARNING_CORES:
            msg = (
                f"other processes used {other_cores:.2f} cores on average during this "
                "comparison: timings are disturbed, rerun on an idle machine"
            )
        if msg:
            self.notes.insert(0, "WARNING: " + msg)
            print(f"\nWARNING: {msg}", flush=True)

    # ---------------------------------------------------------------- rendering
    def validate(self) -> None:
        """Raise ``KeyError`` if a row names a baseline that is not a row of this report."""
        for r in self.rows:
            if r.baseline is not None and self.row(r.baseline) is None:
                raise KeyError(f"baseline {r.baseline!r} of row {r.name!r} is not in {self.name}")

    def baseline_labels(self) -> dict[str, str]:
        """``B1``, ``B2``, ... for the rows used as a baseline, in row order."""
        used = {r.baseline for r in self.rows if r.baseline is not None}
        labels: dict[str, str] = {}
        for r in self.rows:
            if r.name in used:
                labels[r.name] = f"B{len(labels) + 1}"
        return labels

    def baseline_cell(self, r: Row, labels: dict[str, str]) -> str:
        """``"B1"`` for a baseline row, ``"36.3x vs B1"`` for a row with a baseline."""
        parts = [labels[r.name]] if r.name in labels else []
        base = self.row(r.baseline) if r.baseline is not None else None
        if r.baseline is not None and base is not None:
            if base.timing is not None and r.timing is not None and r.timing.median > 0:
                parts.append(f"{base.timing.median / r.timing.median:.3g}x vs {labels[base.name]}")
        return "; ".join(parts) or "-"

    def render(self) -> str:
        """The section's markdown, between its begin/end markers."""
        heading = f"## {self.name}" + (f": {self.title}" if self.title else "")
        lines = [section_begin(self.name), heading, ""]
        for par in self.intro:
            lines += [par, ""]
        lines += ["| run | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.stamp]
        if self.repeats_note:
            lines.append(f"| repeats | {self.repeats_note} |")
        lines.append("")
        if self.rows:
            labels = self.baseline_labels()
            lines += [
                "### Measurements",
                "",
                "| measurement | median | min | repeats | CPU/wall | other load "
                "| baseline / this | details |",
                "|---|---:|---:|---:|---:|---:|---:|---|",
            ]
            for r in self.rows:
                t = r.timing
                base = self.baseline_cell(r, labels)
                if t is None:
                    lines.append(f"| {r.name} | - | - | - | - | - | {base} | {r.detail} |")
                    continue
                lines.append(
                    f"| {r.name} | {fmt_time(t.median)} | {fmt_time(t.min)} | {t.repeats} "
                    f"| {t.cpu_per_wall:.2f} | {fmt_load(t.other_cores)} | {base} | {r.detail} |"
                )
            lines += [
                "",
                "*baseline / this*: median of the baseline row (marked B1, B2, ...; measured in",
                "this run) divided by this row's median; above 1 this row is faster. *CPU/wall*:",
                "CPU time of this process (all its threads, and any child processes it ran)",
                "per wall second over the timed repeats (above 1: several threads busy). *other",
                "load*: average number of cores used by other processes meanwhile (`/proc/stat`",
                "minus this process and its children); on a 2-core machine anything above ~0.2",
                "disturbs the timing.",
                "",
            ]
        if self.ratios:
            lines += [
                "### Ratios (measured in this run)",
                "",
                "| ratio | value | target | verdict |",
                "|---|---:|---|---|",
            ]
            lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.ratios]
            lines.append("")
        for tab in self.tables:
            lines += [f"### {tab.title}", ""]
            lines.append("| " + " | ".join(tab.header) + " |")
            lines.append("|" + "|".join("---" for _ in tab.header) + "|")
            lines += ["| " + " | ".join(cells) + " |" for cells in tab.rows]
            lines.append("")
            if tab.legend:
                lines += [tab.legend, ""]
        for alt, path in self.figures:
            lines += [f"![{alt}]({path})", ""]
        if self.checks:
            lines += ["### Correctness checks", ""]
            lines += [f"- {name}: {text}" for name, text in self.checks]
            lines.append("")
        if self.notes:
            lines += ["### Notes", ""]
            lines += [f"- {n}" for n in self.notes]
            lines.append("")
        if self.measured:
            lines += ["### What is measured", ""]
            lines += [f"- {m}" for m in self.measured]
            lines.append("")
        lines.append(section_end(self.name))
        return "\n".join(lines)


# ------------------------------------------------------------------------------ stamps
@dataclass
class RunContext:
    """What every section of one runner invocation is stamped with."""

    command: str
    machine: list[tuple[str, str]]
    users_start: str
    procs_start: dict[int, tuple[float, str]]


@dataclass
class SectionClock:
    """Start of one comparison: wall clock, CPU, machine busy time and load (for its stamp)."""

    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    t0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=own_cpu_seconds)
    busy0: float = field(default_factory=busy_seconds)
    load0: float = field(default_factory=loadavg)
    pace0: float = field(default_factory=reference_seconds)

    def stamp(self, ctx: RunContext, monitor: CpuMonitor) -> tuple[list[tuple[str, str]], float]:
        """The stamp rows of a section that ran from this clock's start until now, and the
        average number of cores other processes used meanwhile."""
        elapsed = time.perf_counter() - self.t0
        monitor.sample()
        cpu = own_cpu_seconds() - self.cpu0
        other = max(0.0, busy_seconds() - self.busy0 - cpu) / elapsed if elapsed > 0 else 0.0
        rows = [
            ("date (UTC)", self.started.strftime("%Y-%m-%d %H:%M:%S")),
            ("command", f"`{ctx.command}`"),
            ("runtime", f"{elapsed:.0f} s"),
            *ctx.machine,
            ("load average (1 min) at start / end", f"{self.load0:.2f} / {loadavg():.2f}"),
            (
                "machine pace at start / end (`common.reference_seconds`: a fixed workload, "
                "lower is faster)",
                f"{1e3 * self.pace0:.0f} ms / {1e3 * reference_seconds():.0f} ms",
            ),
            ("other processes using CPU when the run started (1 s sample)", ctx.users_start),
            (
                "other processes using CPU during this comparison",
                f"{describe_users(monitor.users(elapsed))} (average cores, from /proc snapshots "
                f"after each measurement); all other processes together {other:.2f} cores on "
                "average (/proc/stat)",
            ),
        ]
        return rows, other


# ------------------------------------------------------------------------------ RESULTS.md
_SECTION = re.compile(r"<!-- bench:([\w.-]+) begin -->\n.*?<!-- bench:\1 end -->", re.DOTALL)


def section_begin(name: str) -> str:
    return f"<!-- bench:{name} begin -->"


def section_end(name: str) -> str:
    return f"<!-- bench:{name} end -->"


def read_sections(path: Path) -> dict[str, str]:
    """The sections of an existing results file by name (empty if the file does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {m.group(1): m.group(0) for m in _SECTION.finditer(text)}


def merge_results(
    header: str, old: dict[str, str], new: dict[str, str], order: Sequence[str]
) -> str:
    """The results file: ``header``, then a section per comparison in ``order`` (the new text if
    it ran, else the old one), then any old sections of comparisons not in ``order``."""
    names = [n for n in order if n in new or n in old]
    names += sorted(n for n in old if n not in order)
    names += [n for n in new if n not in names]
    parts = [header.rstrip("\n"), ""]
    if names:
        parts += ["Sections: " + ", ".join(f"`{n}`" for n in names) + ".", ""]
    for n in names:
        parts += [new.get(n) or old[n], ""]
    return "\n".join(parts)


def write_results(path: Path, header: str, new: dict[str, str], order: Sequence[str]) -> None:
    """Write ``path`` with the sections in ``new`` replaced and every other section kept."""
    text = merge_results(header, read_sections(path), new, order)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
