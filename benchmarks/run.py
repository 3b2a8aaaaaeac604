"""qeprop benchmark suite: the Wanjura-Marquardt phase sensor (10 qubits, 51 couplings).

Run with ``make bench`` (or ``.venv/bin/python benchmarks/run.py [--quick] [--profile]``). Every
timing is the median of ``--repeats`` runs (``time.perf_counter``) after one warm-up run. The
results go to stdout and to ``benchmarks/RESULTS.md`` (overwritten).

Measurements
------------
* qeprop ``centered`` gradient (no shots) of the MSE loss, averaged over a batch of 10 inputs,
  at the nudges β = 0.01 and the paper's β = 0.4;
* (a) a naive baseline in the style of published QEP research code (:mod:`naive`), whose gradient
  must agree with qeprop's (cosine > 0.999);
* (b) qeprop ``finite_difference`` on the same batch (time and preparations);
* (c) warm (guess = free state) vs cold nudged solves with ``qeprop.solvers.solve``;
* (d) dense vs Lanczos free solve at dimension 1024 with ``blas_threads=1`` vs ``None``, and the
  naive baseline's ``eigsh`` with default vs single-threaded BLAS.

Slow workloads (naive baseline, finite differences) warm up on one sample instead of the batch.
Each row also records this process's CPU/wall ratio and the cores other processes used meanwhile
(from ``/proc/stat``), because this 2-core machine is shared and the timings depend on it.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import platform
import pstats
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from threadpoolctl import ThreadpoolController, threadpool_info

import qeprop
from qeprop import NudgeWindowWarning, estimate_gradient
from qeprop.measurement import expectations
from qeprop.solvers import StateSpec, solve

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import naive  # noqa: E402
import sensor  # noqa: E402

RESULTS = HERE / "RESULTS.md"
NUDGES = (0.01, 0.4)
TARGET_SPEEDUP = 20.0
TARGET_PREP_RATIO = 25.0
TARGET_WARM = 2.0
COSINE_MIN = 0.999


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


@dataclass
class Timing:
    """Wall-clock times (seconds) of the repeats, after untimed warm-up runs.

    ``cpu`` is this process's CPU time and ``busy`` the whole machine's over the timed repeats,
    so ``(busy - cpu) / wall`` is the average number of cores other processes used meanwhile.
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
    def combine(cls, parts: list[Timing], times: list[float]) -> Timing:
        """A summary over several benches (``times`` chosen by the caller)."""
        t = cls(times)
        total = sum(p.wall for p in parts)
        t.cpu = sum(p.cpu for p in parts) * (t.wall / total if total else 1.0)
        t.busy = sum(p.busy for p in parts) * (t.wall / total if total else 1.0)
        return t


def bench(fn: Callable[[], Any], repeats: int, warmup: Callable[[], Any] | None = None) -> Timing:
    """Time ``repeats`` calls of ``fn`` after one untimed warm-up call (of ``warmup`` if given,
    e.g. a single sample of a slow batch workload, else of ``fn``)."""
    first = (warmup or fn)()
    times = []
    result = None
    cpu0, busy0 = time.process_time(), busy_seconds()
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    cpu, busy = time.process_time() - cpu0, busy_seconds() - busy0
    return Timing(times, result, first, cpu, busy)


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


@dataclass
class Row:
    name: str
    timing: Timing | None
    detail: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    ratios: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # name, value, target, verdict
    checks: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, timing: Timing | None, detail: str = "") -> None:
        self.rows.append(Row(name, timing, detail))
        med = fmt_time(timing.median) if timing else "-"
        reps = f"(n={timing.repeats}, min {fmt_time(timing.min)})" if timing else ""
        load = f"[other load {fmt_load(timing.other_cores)} cores]" if timing else ""
        print(f"  {name:<58} {med:>10} {reps:<24} {load} {detail}", flush=True)

    def ratio(self, name: str, value: float, target: float | None, unit: str = "x") -> None:
        if target is None:
            tgt, verdict = "-", "-"
        else:
            tgt = f">= {target:g}{unit}"
            verdict = "MET" if value >= target else "MISSED"
        self.ratios.append((name, f"{value:.1f}{unit}", tgt, verdict))
        verdict_text = f"  target {tgt}: {verdict}" if target is not None else ""
        print(f"  RATIO {name}: {value:.2f}{unit}{verdict_text}", flush=True)

    def check(self, name: str, text: str) -> None:
        self.checks.append((name, text))
        print(f"  CHECK {name}: {text}", flush=True)


# ------------------------------------------------------------------------------ workloads
def qeprop_batch(
    system: qeprop.QEPSystem, batch: sensor.Batch, estimator: str, **opts: Any
) -> dict[str, Any]:
    """Batch-averaged gradient with qeprop: one ``estimate_gradient`` per sample."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NudgeWindowWarning)
        recs = [
            estimate_gradient(system, batch.values(i), batch.loss(i), estimator=estimator, **opts)
            for i in range(len(batch))
        ]
    return {
        "gradient": np.mean([r.gradient for r in recs], axis=0),
        "per_sample": np.array([r.gradient for r in recs]),
        "loss": float(np.mean([r.loss for r in recs])),
        "preparations": int(sum(r.preparations for r in recs)),
        "solves": int(sum(r.solves for r in recs)),
        "gaps": np.array([r.gap for r in recs]),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, NudgeWindowWarning)],
    }


def naive_batch(batch: sensor.Batch, beta: float, stages: dict[str, float]) -> dict[str, Any]:
    recs = [
        naive.centered_gradient(batch.inputs[i], batch.theta, batch.targets[i], beta, stages)
        for i in range(len(batch))
    ]
    return {
        "gradient": np.mean([r.gradient for r in recs], axis=0),
        "per_sample": np.array([r.gradient for r in recs]),
        "loss": float(np.mean([r.loss for r in recs])),
        "solves": int(sum(r.solves for r in recs)),
    }


def nudged_values(
    system: qeprop.QEPSystem, batch: sensor.Batch, i: int, beta: float, spec: StateSpec
) -> tuple[np.ndarray, np.ndarray, qeprop.Equilibrium]:
    """Free parameter vector, nudged vector ``ν = β ε`` on the outputs, and the free state."""
    h = system.full
    v = system.full_values(batch.values(i))
    free = solve(h, v, spec)
    ident, coef = system.output_coefficients
    _, eps = batch.loss(i)(expectations(h, free, ident, coef))
    vn = v.copy()
    vn[system.output_index] += beta * eps
    return v, vn, free


# ------------------------------------------------------------------------------ machine
def machine_info() -> list[tuple[str, str]]:
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
    return [
        ("platform", platform.platform()),
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
        ("python", platform.python_version()),
        (
            "numpy / scipy / qeprop",
            f"{np.__version__} / {scipy.__version__} / {qeprop.__version__}",
        ),
        ("BLAS (threadpoolctl)", "; ".join(blas) or "none found"),
        ("git commit", commit),
    ]


def section(t_start: float, title: str) -> None:
    elapsed = time.perf_counter() - t_start
    print(f"\n{title}  [t = {elapsed:.0f} s, load average {loadavg():.2f}]", flush=True)


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def command_line(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL") and not argv:
        return "make bench"
    return " ".join([".venv/bin/python", "benchmarks/run.py", *map(shlex.quote, argv)])


# ------------------------------------------------------------------------------ profile
def profile_centered(
    system: qeprop.QEPSystem, batch: sensor.Batch, beta: float, top: int = 25
) -> str:
    """cProfile of the qeprop centered gradient over the batch (after a warm-up)."""
    qeprop_batch(system, batch, "centered", nudge=beta)
    prof = cProfile.Profile()
    prof.enable()
    qeprop_batch(system, batch, "centered", nudge=beta)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats instead of 5 (smoke test)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of qeprop")
    ap.add_argument("--output", type=Path, default=RESULTS, help="markdown report path")
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    t_start = time.perf_counter()
    load_start = loadavg()
    started = dt.datetime.now(dt.UTC)
    rep = Report()

    print("qeprop benchmark: Wanjura-Marquardt phase sensor", flush=True)
    machine = machine_info()
    for k, v in machine:
        print(f"  {k}: {v}")

    # ---------------------------------------------------------------- problem
    setup = bench(sensor.build_system, repeats)
    system = setup.result
    batch = sensor.make_batch()
    n_train = len(system.trainable)
    dim = system.full.dim
    print(
        f"\nproblem: {system.full.n_qubits} qubits (dim {dim}), {n_train} trainable couplings, "
        f"{len(system.full.strings)} Pauli strings, batch of {len(batch)}, labels "
        f"{[sensor.PHASES[k] for k in batch.labels]}",
        flush=True,
    )
    structure = bench(
        lambda: sensor.build_system().full.structure, repeats
    )  # system + its sparse structure

    section(t_start, "[qeprop] centered gradient, batch of 10, no shots")
    rep.add("qeprop: build QEPSystem (Pauli terms)", setup, "once per model")
    rep.add("qeprop: build QEPSystem + sparse structure", structure, "once per model")
    qe: dict[float, Timing] = {}
    for beta in NUDGES:
        t = bench(lambda beta=beta: qeprop_batch(system, batch, "centered", nudge=beta), repeats)
        qe[beta] = t
        r = t.result
        rep.add(
            f"qeprop centered gradient, β={beta:g} (10 samples)",
            t,
            f"{r['preparations']} preparations, {r['solves']} solves, "
            f"{len(r['warnings'])} NudgeWindowWarning",
        )
        for msg in sorted(set(r["warnings"])):
            rep.notes.append(f"β={beta:g}: NudgeWindowWarning: {msg}")
    gaps = qe[NUDGES[0]].result["gaps"]
    rep.notes.append(
        "free-state gaps over the batch: " + ", ".join(f"{g:.3g}" for g in gaps) + " (all samples"
        f" non-degenerate; smallest {gaps.min():.3g})"
    )

    # ---------------------------------------------------------------- (a) naive baseline
    section(t_start, "[a] naive baseline (sparse kron rebuild + cold eigsh + kron observables)")
    nv: dict[float, Timing] = {}
    for beta in NUDGES:
        stages: dict[str, float] = {}
        t = bench(
            lambda beta=beta, stages=stages: naive_batch(batch, beta, stages),
            repeats,
            warmup=lambda beta=beta: naive.centered_gradient(
                batch.inputs[0], batch.theta, batch.targets[0], beta
            ),
        )
        nv[beta] = t
        total = sum(stages.values())
        share = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in stages.items())
        rep.add(
            f"naive baseline centered gradient, β={beta:g} (10 samples)",
            t,
            f"{t.result['solves']} eigsh solves; time split: {share}",
        )
        c = cosine(t.result["gradient"], qe[beta].result["gradient"])
        worst = min(
            cosine(a, b)
            for a, b in zip(t.result["per_sample"], qe[beta].result["per_sample"], strict=True)
        )
        diff = float(np.max(np.abs(t.result["gradient"] - qe[beta].result["gradient"])))
        ok = "OK" if c > COSINE_MIN and worst > COSINE_MIN else "FAILED"
        rep.check(
            f"baseline vs qeprop gradient, β={beta:g}",
            f"cosine {c:.9f} (worst sample {worst:.9f}), max |Δ| {diff:.2e}: {ok} "
            f"(need > {COSINE_MIN})",
        )
        if ok != "OK":
            rep.notes.append(f"β={beta:g}: the baseline and qeprop gradients DISAGREE")

    # ---------------------------------------------------------------- (b) finite differences
    section(t_start, "[b] qeprop finite_difference (fd_step 1e-4), same batch")
    fd = bench(
        lambda: qeprop_batch(system, batch, "finite_difference"),
        repeats,
        warmup=lambda: estimate_gradient(
            system, batch.values(0), batch.loss(0), estimator="finite_difference"
        ),
    )
    rep.add(
        "qeprop finite_difference gradient (10 samples)",
        fd,
        f"{fd.result['preparations']} preparations, {fd.result['solves']} solves",
    )
    c_fd = cosine(fd.result["gradient"], qe[NUDGES[0]].result["gradient"])
    rep.check("finite_difference vs centered β=0.01 gradient", f"cosine {c_fd:.9f}")
    c_beta = cosine(qe[0.4].result["gradient"], qe[0.01].result["gradient"])
    rep.check("centered β=0.4 vs β=0.01 gradient", f"cosine {c_beta:.9f}")

    # ---------------------------------------------------------------- (c) warm vs cold
    section(t_start, "[c] nudged solves, warm (guess = free state) vs cold, all 10 samples")
    warm_cold: dict[tuple[str, float], tuple[float, float]] = {}
    for method in ("lanczos", "auto"):
        spec = StateSpec(method=method)
        for beta in NUDGES:
            res: dict[str, list[tuple[Timing, int, str]]] = {"cold": [], "warm": []}
            for i in range(len(batch)):
                _, vn, free = nudged_values(system, batch, i, beta, spec)
                for kind, guess in (("cold", None), ("warm", free)):
                    t = bench(
                        lambda vn=vn, guess=guess, spec=spec: solve(system.full, vn, spec, guess),
                        repeats,
                    )
                    res[kind].append((t, t.result.matvecs, t.result.method))
            totals = {}
            for kind in ("cold", "warm"):
                times = [t.median for t, _, _ in res[kind]]
                mvs = [m for _, m, _ in res[kind]]
                used = sorted({m for _, _, m in res[kind]})
                totals[kind] = float(np.sum(times))
                # summary timing: per-sample medians (one entry per sample)
                summary = Timing.combine([t for t, _, _ in res[kind]], times)
                rep.add(
                    f"nudged solve {kind}, method={method}, β={beta:g}",
                    summary,
                    f"median over {len(times)} samples of the per-sample median of {repeats}; "
                    f"matvecs median {np.median(mvs):.0f} (range {min(mvs)}-{max(mvs)}); "
                    f"ran as {'/'.join(used)}",
                )
            warm_cold[(method, beta)] = (totals["cold"], totals["warm"])

    # ---------------------------------------------------------------- (d) dense vs Lanczos
    section(t_start, f"[d] free solve at dim {dim}: dense vs Lanczos, blas_threads 1 vs None")
    v0 = system.full_values(batch.values(0))
    dl: dict[tuple[str, int | None], Timing] = {}
    for method in ("dense", "lanczos"):
        for threads in (1, None):
            spec = StateSpec(method=method, blas_threads=threads)
            t = bench(lambda spec=spec: solve(system.full, v0, spec), repeats)
            dl[(method, threads)] = t
            rep.add(
                f"free solve sample 0, method={method}, blas_threads={threads}",
                t,
                f"E0 {t.result.energies[0]:.10f}, gap {t.result.gap:.6f}, "
                f"matvecs {t.result.matvecs}",
            )
    # the same effect in the naive baseline: complex ARPACK (znaupd) calls multi-threaded BLAS
    free_h = [naive.hamiltonian(batch.inputs[i], batch.theta, None) for i in range(len(batch))]
    controller = ThreadpoolController()

    def naive_solves(limit: int | None) -> list[np.ndarray]:
        if limit is None:
            return [naive.ground_state(h) for h in free_h]
        with controller.limit(limits=limit, user_api="blas"):
            return [naive.ground_state(h) for h in free_h]

    ne: dict[int | None, Timing] = {}
    for threads in (None, 1):
        t = bench(lambda threads=threads: naive_solves(threads), repeats)
        ne[threads] = t
        rep.add(
            f"naive eigsh of the 10 free Hamiltonians, BLAS threads={threads or 'default'}",
            t,
            "scipy eigsh(k=1, which='SA') on complex H = ARPACK znaupd, cold start",
        )

    # ---------------------------------------------------------------- ratios
    print("\nratios (same run)", flush=True)
    for beta in NUDGES:
        rep.ratio(
            f"naive / qeprop centered time, β={beta:g}",
            nv[beta].median / qe[beta].median,
            TARGET_SPEEDUP,
        )
    preps = fd.result["preparations"] / qe[NUDGES[0]].result["preparations"]
    rep.ratio("finite_difference / centered preparations", preps, TARGET_PREP_RATIO)
    rep.ratio(
        "finite_difference / centered time (β=0.01)",
        fd.median / qe[NUDGES[0]].median,
        None,
    )
    for (method, beta), (cold, warm) in warm_cold.items():
        rep.ratio(
            f"cold / warm nudged solve time, method={method}, β={beta:g} (sum over samples)",
            cold / warm,
            TARGET_WARM,
        )
    for method in ("dense", "lanczos"):
        rep.ratio(
            f"{method} free solve: blas_threads=None / blas_threads=1 time",
            dl[(method, None)].median / dl[(method, 1)].median,
            None,
        )
    rep.ratio(
        "naive eigsh: default BLAS threads / 1 thread time",
        ne[None].median / ne[1].median,
        None,
    )
    rep.ratio(
        "dense / lanczos free solve time (blas_threads=1)",
        dl[("dense", 1)].median / dl[("lanczos", 1)].median,
        None,
    )

    elapsed = time.perf_counter() - t_start
    machine.append(("load average (1 min) at start / end", f"{load_start:.2f} / {loadavg():.2f}"))
    worst = max(
        (
            (r.timing.other_cores, r.name)
            for r in rep.rows
            if r.timing is not None and np.isfinite(r.timing.other_cores)
        ),
        default=None,
    )
    if worst is not None and worst[0] > 0.2:
        msg = (
            f"other processes used up to {worst[0]:.2f} cores during the measurements "
            f"({worst[1]}): timings are disturbed, rerun on an idle machine"
        )
        rep.notes.insert(0, "WARNING: " + msg)
        print(f"\nWARNING: {msg}", flush=True)
    text = render(rep, machine, started, command_line(argv), repeats, elapsed, system, batch)
    args.output.write_text(text)
    print(f"\nwrote {args.output} ({elapsed:.0f} s in total)", flush=True)

    if args.profile:
        print("\ncProfile: qeprop centered gradient, β=0.01, 10 samples\n")
        print(profile_centered(system, batch, 0.01))
    return 0


def render(
    rep: Report,
    machine: list[tuple[str, str]],
    started: dt.datetime,
    command: str,
    repeats: int,
    elapsed: float,
    system: qeprop.QEPSystem,
    batch: sensor.Batch,
) -> str:
    lines = [
        "# qeprop benchmark results",
        "",
        "Generated by `benchmarks/run.py` (overwritten on every run). Problem: the",
        "Wanjura-Marquardt phase sensor, an 8-site periodic cluster-Ising chain (qubits 0-7)",
        f"with 2 sensor qubits (8, 9): {system.full.n_qubits} qubits, dimension {system.full.dim}, "
        f"{len(system.trainable)} trainable couplings, 3 projector outputs,",
        "MSE loss against one-hot phase labels, a batch of "
        f"{len(batch)} inputs on the triangle g_zxz + g_zz + g_x = 4.",
        "Ground states; gradients without shot noise.",
        "",
        "## Run",
        "",
        "| | |",
        "|---|---|",
        f"| date (UTC) | {started.strftime('%Y-%m-%d %H:%M:%S')} |",
        f"| command | `{command}` |",
        f"| repeats | median of {repeats} timed runs after 1 untimed warm-up (time.perf_counter);"
        " the slow naive and finite-difference workloads warm up on one sample |",
        f"| total runtime | {elapsed:.0f} s |",
    ]
    lines += [f"| {k} | {v} |" for k, v in machine]
    lines += [
        "",
        "## Measurements",
        "",
        "| measurement | median | min | repeats | CPU/wall | other load | details |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rep.rows:
        t = r.timing
        if t is None:
            lines.append(f"| {r.name} | - | - | - | - | - | {r.detail} |")
            continue
        lines.append(
            f"| {r.name} | {fmt_time(t.median)} | {fmt_time(t.min)} | {t.repeats} "
            f"| {t.cpu_per_wall:.2f} | {fmt_load(t.other_cores)} | {r.detail} |"
        )
    lines += [
        "",
        "Rows `nudged solve ...` summarise one entry per sample (each the median of the repeats),",
        "so their `repeats` column counts samples. *CPU/wall*: CPU time of this process (all its",
        "threads) per wall second over the timed repeats (above 1: several BLAS threads busy).",
        "*other load*: average number of cores used by other processes meanwhile (`/proc/stat`",
        "minus this process); on this 2-core machine anything above ~0.2 disturbs the timing.",
        "",
        "## Ratios (measured in this run)",
        "",
        "| ratio | value | target | verdict |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rep.ratios]
    lines += ["", "## Correctness checks", ""]
    lines += [f"- {name}: {text}" for name, text in rep.checks]
    if rep.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {n}" for n in rep.notes]
    lines += [
        "",
        "## What is measured",
        "",
        "- *qeprop centered gradient*: `estimate_gradient(system, values, MeanSquaredError(t),",
        '  estimator="centered", nudge=β)` for each of the 10 samples, gradients averaged. Default',
        "  `StateSpec` (ground state, `method=auto` = Lanczos at dim 1024, tol 1e-12).",
        "- *naive baseline* (`benchmarks/naive.py`): per sample and phase (free, +β, -β) H is",
        "  rebuilt term by term from `scipy.sparse.kron` chains of 2x2 Paulis, solved by",
        "  `eigsh(k=1, which='SA')` from ARPACK's random start with default BLAS threading, and",
        "  the 51 coupling operators are built as sparse Kronecker products for `ψ†Aψ`.",
        "- *finite_difference*: central differences of the loss, step 1e-4, 2P+1 = 103",
        "  preparations per sample.",
        "- *nudged solve*: `qeprop.solvers.solve(system.full, values + βε on the outputs, spec,",
        "  guess)` with guess = the free state (warm) or None (cold).",
        "- *free solve*: `solve` of sample 0's free Hamiltonian with `method` and `blas_threads`",
        "  forced.",
        "- *naive eigsh*: the baseline's `eigsh` alone on the 10 free Hamiltonians, with the",
        "  default BLAS threads and limited to 1 (threadpoolctl). scipy solves complex",
        "  Hermitian matrices with ARPACK's complex Arnoldi (znaupd), whose small BLAS calls",
        "  suffer badly from multi-threading when other processes compete for the cores, so the",
        "  naive baseline is much slower on a loaded machine (see *other load*), which inflates",
        "  the naive/qeprop ratio there. qeprop limits BLAS to 1 thread around its Lanczos calls.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
