"""Time and peak memory of one centred QEP gradient against qubit count, per solver backend.

The problem is :func:`chain_sensor_problem.chain_sensor_problem` (an ``N``-site cluster-Ising chain
with a 2-qubit sensor, ``N + 2`` qubits, 51 trainable couplings, centred nudge 0.4, no shots). For
every qubit count ``10, 12, ..., --max-qubits`` (default 26; 12 with ``--quick``) and every backend
(the state's ``method`` key: ``dense``, ``sparse``, ``matrix-free``, and ``auto``), the problem is
written to a temporary file and ``qeprop gradient FILE --json`` runs in its own process, capped at
``--max-seconds`` of wall clock (default 600; 60 with ``--quick``). Measured per point: the wall
time of the process (interpreter start-up and imports included) and its peak resident memory
(``ru_maxrss`` of that child from ``os.wait4``). A backend whose problem file is refused with
"unknown solver method" is skipped with a note; once a backend fails, runs out of time or is
refused for memory (exit status 2 with a memory message, which is recorded), its larger sizes
are skipped. ``auto`` records the backend it chose (the ``backend`` key of the JSON output, when
the command reports one). The gradients of the backends at the same size are compared (largest
relative difference).

Output: a table (qubits x backend: seconds, peak GiB, status), the plot ``scaling.png`` next to
the results file (time and peak memory against qubits, log scale, one line per backend) and the
size where ``auto`` switches from ``sparse`` to ``matrix-free``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain_sensor_problem import chain_sensor_problem
from common import Report, fmt_time

DESCRIPTION = "time and peak memory of one centred gradient vs qubit count, per backend"
BACKENDS = ("dense", "sparse", "matrix-free")
AUTO = "auto"
MIN_QUBITS = 10
STEP = 2
MAX_QUBITS = 26
QUICK_MAX_QUBITS = 12
MAX_SECONDS = 600.0
QUICK_MAX_SECONDS = 60.0
# Backends agree if the largest gradient difference is below this fraction of the largest
# gradient component: every backend solves to a residual of tol = 1e-12, so eigenvector errors
# of ~1e-12 / gap move expectation values far less than this even at gaps ~1e-3.
AGREE_RTOL = 1e-6
PLOT = "scaling.png"
#: wall-clock targets (seconds) of one gradient process, qubits -> limit
TARGETS = {22: 60.0, 24: 240.0}
UNKNOWN_METHOD = "unknown solver method"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("scaling")
    g.add_argument(
        "--max-qubits",
        type=int,
        default=None,
        help=f"largest qubit count of the scaling sweep (default {MAX_QUBITS}, "
        f"{QUICK_MAX_QUBITS} with --quick)",
    )
    g.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help=f"wall-clock cap of one scaling run, seconds (default {MAX_SECONDS:g}, "
        f"{QUICK_MAX_SECONDS:g} with --quick)",
    )
    g.add_argument(
        "--backend-caps",
        default="",
        help="per-backend wall-clock caps overriding --max-seconds, e.g. "
        "'dense=120,matrix-free=5400'",
    )
    g.add_argument(
        "--auto-max-qubits",
        type=int,
        default=None,
        help="largest size run with method auto (beyond the sparse/matrix-free switch auto runs "
        "the matrix-free backend; its larger sizes are not run twice). Default: all sizes",
    )


@dataclass
class Point:
    """One ``qeprop gradient`` process: backend, size and what came of it.

    ``status``: ``ok``, ``timeout``, ``memory`` (refused: not enough memory), ``unknown method``,
    ``killed`` (by a signal, e.g. the OOM killer), ``error`` or ``skipped``.
    """

    backend: str
    qubits: int
    status: str
    seconds: float | None = None
    peak_gib: float | None = None
    message: str = ""
    chosen: str | None = None  # the backend ``auto`` chose (JSON ``backend`` key), if reported
    gradient: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def qeprop_command() -> str:
    """The ``qeprop`` console script of the interpreter running this (the project's .venv)."""
    here = Path(sys.executable).parent / "qeprop"
    if here.exists():
        return str(here)
    found = shutil.which("qeprop")
    if found is None:
        raise FileNotFoundError("no qeprop command next to this interpreter or on PATH")
    return found


def run_process(
    cmd: list[str], cap: float, stdout: Path, stderr: Path
) -> tuple[int, float, float, bool]:
    """Run ``cmd`` with its output in files; kill its process group after ``cap`` seconds.

    Returns ``(exit status, wall seconds, peak RSS in GiB, timed out)``; the exit status is
    negative for a signal (as :mod:`subprocess`), the peak RSS is that child's ``ru_maxrss``.
    """
    with stdout.open("wb") as out, stderr.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True)
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - ended meanwhile
                pass

        timer = threading.Timer(cap, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here (for its rusage), not by Popen
    return code, wall, usage.ru_maxrss / 2**20, expired.is_set()  # ru_maxrss: KiB on Linux


def is_memory_message(message: str) -> bool:
    """Whether a one-line error refuses the problem for its memory (``ProblemTooLargeError``:
    "... needs about 12.0 GiB, more than the 9.6 GiB available ...")."""
    return "memory" in message.lower() or "GiB" in message


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def measure(backend: str, qubits: int, cap: float, workdir: Path, qeprop: str) -> Point:
    """Write the problem of ``qubits`` qubits for ``backend`` and time its gradient process."""
    problem = chain_sensor_problem(qubits - 2, backend)
    path = workdir / f"q{qubits}-{backend}.json"
    path.write_text(json.dumps(problem), encoding="utf-8")
    out, err = workdir / "stdout", workdir / "stderr"
    code, wall, peak, timed_out = run_process(
        [qeprop, "gradient", str(path), "--json"], cap, out, err
    )
    message = last_line(err.read_text(encoding="utf-8", errors="replace"))
    point = Point(backend, qubits, "ok", wall, peak, message)
    if timed_out:
        point.status, point.message = "timeout", f"killed after the {cap:g} s cap"
    elif code == 0:
        try:
            obj = json.loads(out.read_text(encoding="utf-8"))
            point.gradient = {str(k): float(v) for k, v in obj["gradient"].items()}
            chosen = obj.get("backend")
            point.chosen = str(chosen) if chosen is not None else None
        except (ValueError, KeyError, TypeError) as exc:
            point.status, point.message = "error", f"unreadable JSON output ({exc})"
    elif code == 2 and UNKNOWN_METHOD in message:
        point.status = "unknown method"
    elif code == 2 and is_memory_message(message):
        point.status = "memory"
    elif code < 0:
        point.status = "killed"
        point.message = f"killed by signal {-code}" + (f" ({message})" if message else "")
    else:
        point.status = "error"
        point.message = f"exit status {code}: {message}"
    return point


def max_rel_diff(a: dict[str, float], ref: dict[str, float]) -> float:
    """``max_j |a_j - ref_j| / max_j |ref_j|`` over the parameters of ``ref``."""
    scale = max((abs(v) for v in ref.values()), default=0.0) or 1.0
    return max(abs(a.get(k, float("nan")) - v) for k, v in ref.items()) / scale


def run(report: Report, args: argparse.Namespace) -> None:
    max_q = args.max_qubits or (QUICK_MAX_QUBITS if args.quick else MAX_QUBITS)
    cap = float(args.max_seconds or (QUICK_MAX_SECONDS if args.quick else MAX_SECONDS))
    sizes = list(range(MIN_QUBITS, max_q + 1, STEP))
    if not sizes:
        raise ValueError(f"--max-qubits {max_q} is below the smallest size {MIN_QUBITS}")
    series = (*BACKENDS, AUTO)
    caps = parse_caps(getattr(args, "backend_caps", "") or "", cap)
    auto_max = getattr(args, "auto_max_qubits", None)
    qeprop = qeprop_command()
    report.intro.append(
        "Problem: `benchmarks/chain_sensor_problem.py`, an N-site open cluster-Ising chain with a "
        "2-qubit sensor (N + 2 qubits, 51 trainable couplings, 3 projector outputs, MSE loss), "
        "centred nudge 0.4, ground state, no shots; one `qeprop gradient FILE --json` process "
        f"per point, sizes {sizes[0]}-{sizes[-1]} qubits, wall-clock cap {cap:g} s per process."
    )
    report.repeats_note = (
        "one timed process per point, after one untimed warm-up process (imports, numba cache)"
    )
    points: dict[tuple[str, int], Point] = {}
    stopped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="qeprop-scaling-") as tmp:
        workdir = Path(tmp)
        report.stage(f"[scaling] warm-up: {sizes[0]} qubits, method auto (untimed)")
        measure(AUTO, sizes[0], cap, workdir, qeprop)
        for q in sizes:
            report.stage(f"[scaling] {q} qubits (dimension 2^{q})")
            for b in series:
                if b in stopped:
                    points[(b, q)] = Point(b, q, "skipped", message=stopped[b])
                    continue
                if b == AUTO and auto_max is not None and q > auto_max:
                    points[(b, q)] = Point(b, q, "not run", message="same backend as matrix-free")
                    continue
                p = measure(b, q, caps.get(b, cap), workdir, qeprop)
                points[(b, q)] = p
                print(f"  {b:<12} {describe(p)}", flush=True)
                if p.status == "unknown method":
                    stopped[b] = "the solver method is unknown to this qeprop"
                    report.note(f"backend `{b}` skipped: {p.message}")
                elif not p.ok:
                    stopped[b] = f"skipped after {p.status} at {q} qubits"
                    if p.status != "timeout":
                        report.note(f"`{b}` at {q} qubits: {p.status}: {p.message}")
                    else:
                        report.note(f"`{b}` at {q} qubits: {p.message}")
        if report.monitor is not None:
            report.monitor.sample()

    if auto_max is not None and max_q > auto_max:
        report.note(
            f"`auto` was run up to {auto_max} qubits; beyond the sparse/matrix-free switch it "
            "runs the matrix-free backend (its JSON `backend` key says so at every size run), so "
            "the larger sizes were not run twice"
        )
    for b, c in caps.items():
        if c != cap:
            report.note(f"wall-clock cap of `{b}`: {c:g} s")
    for q, limit in TARGETS.items():
        mf = points.get(("matrix-free", q))
        if mf is not None and mf.ok and mf.seconds is not None:
            report.limit(
                f"one centred gradient at {q} qubits (matrix-free, 1 thread)", mf.seconds, limit
            )
    tabulate(report, points, sizes, series)
    agreement(report, points, sizes, series)
    auto_switch(report, points, sizes)
    plot_path = Path(args.results).parent / PLOT
    if plot(points, sizes, series, plot_path):
        report.figure("time and peak memory against qubits, per backend", PLOT)
        print(f"  wrote {plot_path}", flush=True)
    report.describe(
        "*seconds*: wall clock of the whole `qeprop gradient FILE --json` process (interpreter "
        "start-up, imports, problem parsing, the free and both nudged solves, expectations), "
        "`time.perf_counter` around `os.wait4`.",
        "*peak GiB*: the process's peak resident set (`ru_maxrss` from `os.wait4`), "
        "interpreter and imports included (the floor seen at the smallest sizes).",
        "*status*: `ok`; `timeout` (killed at the cap); `memory` (refused before allocating, "
        "exit status 2, message in the notes); `killed` (a signal, e.g. the OOM killer); "
        "`unknown method` (the backend does not exist in this qeprop); `skipped` (a smaller "
        "size of this backend failed); `not run` (`auto` above `--auto-max-qubits`).",
        "*auto chose*: the `backend` key of the JSON output of the `auto` run (absent when the "
        "command does not report it).",
        "*max rel. Δ*: `max_j |g_j - g_ref,j| / max_j |g_ref,j|` over the backends that "
        "succeeded at that size, the reference being the first of dense, sparse, matrix-free "
        "that succeeded.",
    )


def parse_caps(text: str, default: float) -> dict[str, float]:
    """``"dense=120,matrix-free=5400"`` -> per-backend caps (seconds); others get ``default``."""
    caps = {b: default for b in (*BACKENDS, AUTO)}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if name not in caps or not value:
            raise ValueError(
                f"--backend-caps: expected BACKEND=SECONDS with BACKEND in {list(caps)}, "
                f"got {item!r}"
            )
        caps[name] = float(value)
    return caps


def describe(p: Point) -> str:
    if p.ok and p.seconds is not None and p.peak_gib is not None:
        chosen = f" (chose {p.chosen})" if p.chosen else ""
        return f"{fmt_time(p.seconds):>10}  {p.peak_gib:7.3f} GiB  ok{chosen}"
    return f"{p.status}: {p.message}"


def cell(p: Point | None) -> str:
    if p is None:
        return "-"
    if p.ok and p.seconds is not None and p.peak_gib is not None:
        return f"{p.seconds:.3g} s, {p.peak_gib:.3g} GiB"
    if p.seconds is not None and p.status != "skipped":
        return f"{p.status} ({p.seconds:.3g} s)"
    return p.status


def reference(points: dict[tuple[str, int], Point], q: int) -> Point | None:
    return next((points[(b, q)] for b in BACKENDS if (b, q) in points and points[(b, q)].ok), None)


def rel_diffs(points: dict[tuple[str, int], Point], q: int, series: tuple[str, ...]) -> float:
    ref = reference(points, q)
    if ref is None or ref.gradient is None:
        return float("nan")
    diffs = [
        max_rel_diff(p.gradient, ref.gradient)
        for b in series
        if (p := points.get((b, q))) is not None and p.ok and p.gradient is not None
    ]
    return max(diffs) if len(diffs) > 1 else float("nan")


def tabulate(
    report: Report,
    points: dict[tuple[str, int], Point],
    sizes: list[int],
    series: tuple[str, ...],
) -> None:
    rows = []
    for q in sizes:
        auto = points.get((AUTO, q))
        chosen = auto.chosen if auto is not None and auto.chosen else "-"
        diff = rel_diffs(points, q, series)
        rows.append(
            [
                str(q),
                f"2^{q}",
                *(cell(points.get((b, q))) for b in series),
                chosen,
                f"{diff:.2e}" if diff == diff else "-",
            ]
        )
    report.table(
        "Time and peak memory (qubits x backend)",
        ["qubits", "dimension", *series, "auto chose", "max rel. Δ gradient"],
        rows,
        legend="Each cell: wall seconds of the process and its peak resident memory, or the "
        "status of a run that did not finish (see the notes and *What is measured*).",
    )
    base = "sparse"
    for q in reversed(sizes):
        b = points.get((base, q))
        mf = points.get(("matrix-free", q))
        if b is not None and b.ok and mf is not None and mf.ok and b.seconds and mf.seconds:
            report.value(
                f"{base} / matrix-free time at {q} qubits (largest size where both ran)",
                f"{b.seconds / mf.seconds:.2f}x",
            )
            if b.peak_gib and mf.peak_gib:
                report.value(
                    f"{base} / matrix-free peak memory at {q} qubits",
                    f"{b.peak_gib / mf.peak_gib:.2f}x",
                )
            break
    for name in series:
        ok = [q for q in sizes if (p := points.get((name, q))) is not None and p.ok]
        report.value(f"largest size `{name}` finished", f"{max(ok)} qubits" if ok else "none")


def agreement(
    report: Report,
    points: dict[tuple[str, int], Point],
    sizes: list[int],
    series: tuple[str, ...],
) -> None:
    worst = [(d, q) for q in sizes if (d := rel_diffs(points, q, series)) == d]
    if not worst:
        report.check("gradients of the backends agree", "fewer than two backends finished")
        return
    d, q = max(worst)
    verdict = "OK" if d < AGREE_RTOL else "DIFFER"
    report.check(
        "gradients of the backends agree",
        f"max relative difference {d:.2e} (at {q} qubits): {verdict} (need < {AGREE_RTOL:g})",
    )


def auto_switch(report: Report, points: dict[tuple[str, int], Point], sizes: list[int]) -> None:
    """The size where ``auto`` first chose ``matrix-free`` after choosing ``sparse``."""
    choices = [(q, p.chosen) for q in sizes if (p := points.get((AUTO, q))) is not None and p.ok]
    if not choices:
        report.value("auto: sparse → matrix-free switch", "unknown (no auto run finished)")
        return
    if all(c is None for _, c in choices):
        report.value(
            "auto: sparse → matrix-free switch",
            "unknown (the JSON output of `qeprop gradient` has no `backend` key)",
        )
        return
    seen_sparse = False
    for q, c in choices:
        if c == "sparse":
            seen_sparse = True
        elif c == "matrix-free" and seen_sparse:
            report.value("auto: sparse → matrix-free switch", f"at {q} qubits")
            return
    text = ", ".join(f"{q}: {c or '?'}" for q, c in choices)
    report.value(
        "auto: sparse → matrix-free switch",
        f"not within {choices[0][0]}-{choices[-1][0]} qubits (chose {text})",
    )


def plot(
    points: dict[tuple[str, int], Point],
    sizes: list[int],
    series: tuple[str, ...],
    path: Path,
) -> bool:
    """Time and peak memory against qubits (log scale), one line per backend; ``False`` if no
    point finished."""
    data: dict[str, list[Point]] = {
        b: [p for q in sizes if (p := points.get((b, q))) is not None and p.ok] for b in series
    }
    if not any(data.values()):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for b, pts in data.items():
        if not pts:
            continue
        style: dict[str, Any] = {"marker": "o", "label": b}
        if b == AUTO:
            style.update(linestyle="--", marker="x", color="black")
        qs = [p.qubits for p in pts]
        axes[0].plot(qs, [p.seconds for p in pts], **style)
        axes[1].plot(qs, [p.peak_gib for p in pts], **style)
    for ax, ylabel in zip(axes, ("wall time per gradient [s]", "peak memory [GiB]"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("qubits")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sizes)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("one centred QEP gradient of the chain-sensor problem")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
