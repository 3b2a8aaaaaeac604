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
  naive baseline's ``eigsh`` with default vs single-threaded BLAS;
* (e) one training step of the phase-recognition experiment with its defaults (batch of 10,
  centred nudge 0.4, 10 shots with Gaussian noise, Adam 0.01): qeprop's ``EXPERIMENT.step`` (first
  step, then each of ``2 x eval_every`` steps after 3 warm-up steps) and ``EXPERIMENT.evaluate``
  (200 test points, cold and warm-started), against a naive step in the style of published
  research code with single-threaded BLAS (:mod:`training`; median of 3 steps), with the projected
  time of a full 5000-step run.

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
from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits

import qeprop
from qeprop import NudgeWindowWarning, estimate_gradient
from qeprop.experiments.phase_recognition import EXPERIMENT
from qeprop.measurement import expectations
from qeprop.models import cluster_ising
from qeprop.solvers import StateSpec, solve

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import naive  # noqa: E402
import sensor  # noqa: E402
import training  # noqa: E402

RESULTS = HERE / "RESULTS.md"
NUDGES = (0.01, 0.4)
TARGET_SPEEDUP = 20.0
TARGET_PREP_RATIO = 25.0
TARGET_WARM = 2.0
COSINE_MIN = 0.999
TARGET_STEP_S = 0.06  # qeprop training step, seconds
TARGET_STEP_SPEEDUP = 10.0  # naive / qeprop training step
TRAIN_WARMUP = 3  # untimed qeprop training steps (the first one timed separately)
TRAIN_BLOCKS = 2  # timed blocks of eval_every steps, each followed by a timed evaluation
NAIVE_STEPS = 3  # timed naive training steps (1 with --quick)


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
    monitor: CpuMonitor | None = None  # sampled after every row (outside the timed regions)

    def add(self, name: str, timing: Timing | None, detail: str = "") -> None:
        self.rows.append(Row(name, timing, detail))
        if self.monitor is not None:
            self.monitor.sample()
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


def numba_cache_state() -> str:
    """How the batched Lanczos kernel got its machine code: numba cache hits vs compilations."""
    try:
        from qeprop.solvers._lanczos_kernels import lanczos_batch

        hits = sum(lanczos_batch.stats.cache_hits.values())
        misses = sum(lanczos_batch.stats.cache_misses.values())
    except Exception as exc:  # pragma: no cover - numba internals
        return f"numba cache state unknown ({type(exc).__name__})"
    if misses:
        return f"numba compiled the Lanczos kernel ({misses} cache miss(es), {hits} hit(s))"
    return f"numba loaded the Lanczos kernel from its cache ({hits} hit(s))"


def bench_training(rep: Report, repeats: int, quick: bool) -> dict[str, Any]:
    """Section (e): qeprop's phase-recognition training step and evaluation vs a naive step."""
    cfg = EXPERIMENT.resolve({})
    t0 = time.perf_counter()
    state = EXPERIMENT.init(cfg)
    t_init = time.perf_counter() - t0
    holder = {"state": state}

    def advance() -> None:
        holder["state"] = EXPERIMENT.step(cfg, holder["state"])

    first = bench(advance, 1, warmup=lambda: None)
    rep.add(
        "qeprop training step: first step (includes JIT compile or cache load)",
        first,
        f"after EXPERIMENT.init ({fmt_time(t_init)}); {numba_cache_state()}",
    )
    for _ in range(TRAIN_WARMUP - 1):
        advance()
    cold = bench(lambda: type(EXPERIMENT)().evaluate(cfg, holder["state"]), repeats)
    EXPERIMENT.evaluate(cfg, holder["state"])  # seeds the warm starts, like a run's step-0 eval
    block = 10 if quick else int(cfg["eval_every"])
    step_parts, warm_parts = [], []
    for _ in range(TRAIN_BLOCKS):
        step_parts.append(bench(advance, block, warmup=lambda: None))
        warm_parts.append(
            bench(lambda: EXPERIMENT.evaluate(cfg, holder["state"]), 1, warmup=lambda: None)
        )
    steps = Timing.combine(step_parts, [t for p in step_parts for t in p.times])
    warm = Timing.combine(warm_parts, [t for p in warm_parts for t in p.times])
    metrics = warm_parts[-1].result
    import numba  # a dependency of qeprop; loaded by the first step

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = bench(advance, block, warmup=lambda: None)
    finally:
        numba.set_num_threads(threads)
    layer = numba.threading_layer()
    rep.add(
        "qeprop training step (batch 10, centred β=0.4, 10 shots, Adam)",
        steps,
        f"EXPERIMENT.step with defaults, each of {steps.repeats} steps ({TRAIN_BLOCKS} blocks of "
        f"{block}) after {TRAIN_WARMUP} warm-up steps; mean {fmt_time(float(np.mean(steps.times)))}"
        f", 90th percentile {fmt_time(float(np.percentile(steps.times, 90)))}, max "
        f"{fmt_time(float(np.max(steps.times)))}; numba {threads} threads ({layer})",
    )
    rep.add(
        "qeprop training step, 1 numba thread",
        one,
        f"as above, {one.repeats} steps with numba.set_num_threads(1) (one core, for comparison "
        "with the single-threaded naive step)",
    )
    rep.add(
        "qeprop test-set evaluation, cold (200 points)",
        cold,
        "EXPERIMENT.evaluate on a fresh experiment (no warm starts), as at step 0 of a run",
    )
    rep.add(
        "qeprop test-set evaluation, warm (200 points)",
        warm,
        f"EXPERIMENT.evaluate after each block of {block} steps, warm-started from the previous "
        f"evaluation's states (a run evaluates every {cfg['eval_every']} steps); max-choice "
        f"accuracy {metrics['max_choice_accuracy']:.3f} after {holder['state'].step} steps",
    )

    # ---- naive steps, single-threaded BLAS (prebuilt operators: the same with kron done once)
    model = EXPERIMENT.model(cfg)
    labels = [str(t.pauli) for t in model.layout.terms]
    theta0 = EXPERIMENT.init(cfg).arrays["params"]
    naive_t: dict[bool, Timing] = {}
    for prebuilt in (False, True):
        t0 = time.perf_counter()
        trainer = training.NaiveTrainer(
            theta0,
            labels,
            prebuilt=prebuilt,
            batch_size=cfg["batch_size"],
            shots=cfg["shots"],
            nudge=cfg["nudge"],
            learning_rate=cfg["learning_rate"],
        )
        t_setup = time.perf_counter() - t0

        def warmup(trainer: training.NaiveTrainer = trainer) -> None:
            trainer.sample_gradient(np.array([1.0, 1.0, 2.0]), np.eye(3)[2])
            trainer.stages.clear()

        n = (1 if quick else NAIVE_STEPS) if not prebuilt else repeats
        with threadpool_limits(limits=1):
            blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
            t = bench(trainer.step, n, warmup=warmup)
        naive_t[prebuilt] = t
        total = sum(trainer.stages.values())
        share = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in trainer.stages.items())
        how = (
            f"Kronecker operators built once ({fmt_time(t_setup)}), H re-summed per solve"
            if prebuilt
            else "every operator rebuilt from scipy.sparse.kron chains when used"
        )
        rep.add(
            f"naive training step, {'operators prebuilt' if prebuilt else 'kron rebuild'}, "
            "1 BLAS thread",
            t,
            f"{how}; {t.result['solves']} cold eigsh per step; BLAS threads {blas}; "
            f"time split: {share}",
        )
        # noiseless gradient of the last step vs qeprop's at the same couplings and inputs
        res = t.result
        q_labels = cluster_ising.phase_indices(res["inputs"])
        exact_cfg = EXPERIMENT.resolve({"shots": None})
        q_grad, q_loss = EXPERIMENT.batch_gradient(
            exact_cfg, res["theta"], res["inputs"], q_labels, None
        )
        c = cosine(res["exact_gradient"], q_grad)
        ok = "OK" if c > COSINE_MIN and np.array_equal(q_labels, res["labels"]) else "FAILED"
        rep.check(
            f"naive training step ({'prebuilt' if prebuilt else 'kron rebuild'}) vs qeprop, "
            "noiseless batch gradient",
            f"cosine {c:.9f}, max |Δ| {np.max(np.abs(res['exact_gradient'] - q_grad)):.2e}, "
            f"loss {res['loss']:.6f} vs {q_loss:.6f}, labels "
            f"{'agree' if np.array_equal(q_labels, res['labels']) else 'DIFFER'}: {ok} "
            f"(need cosine > {COSINE_MIN})",
        )
    return {
        "cfg": cfg,
        "first": first,
        "steps": steps,
        "cold": cold,
        "warm": warm,
        "one_thread": one,
        "naive": naive_t[False],
        "naive_prebuilt": naive_t[True],
    }


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
    before = process_cpu()
    time.sleep(1.0)
    procs_start = process_cpu()
    users_start = describe_users(cpu_users(before, procs_start, 1.0))
    t_start = time.perf_counter()
    cpu_start, busy_start = time.process_time(), busy_seconds()
    load_start = loadavg()
    started = dt.datetime.now(dt.UTC)
    monitor = CpuMonitor(procs_start)
    rep = Report(monitor=monitor)

    print("qeprop benchmark: Wanjura-Marquardt phase sensor", flush=True)
    machine = machine_info()
    for k, v in machine:
        print(f"  {k}: {v}")
    print(f"  other processes using CPU now (1 s sample): {users_start}", flush=True)

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

    # ---------------------------------------------------------------- (e) training step
    section(t_start, "[e] phase-recognition training step: qeprop vs naive (1 BLAS thread)")
    tr = bench_training(rep, repeats, args.quick)

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

    step = tr["steps"].median
    rep.ratio(
        "naive training step (kron rebuild, 1 BLAS thread) / qeprop training step",
        tr["naive"].median / step,
        TARGET_STEP_SPEEDUP,
    )
    rep.ratio(
        "naive training step (operators prebuilt, 1 BLAS thread) / qeprop training step",
        tr["naive_prebuilt"].median / step,
        TARGET_STEP_SPEEDUP,
    )
    rep.ratio(
        "naive training step (operators prebuilt) / qeprop training step with 1 numba thread",
        tr["naive_prebuilt"].median / tr["one_thread"].median,
        None,
    )
    rep.limit("qeprop training step (median)", step, TARGET_STEP_S)
    n_steps = int(tr["cfg"]["steps"])
    n_evals = n_steps // int(tr["cfg"]["eval_every"]) + 1  # step 0 included
    projected = n_steps * step + tr["cold"].median + (n_evals - 1) * tr["warm"].median
    rep.value(
        f"projected {n_steps}-step qeprop run: {n_steps} x median step + 1 cold + "
        f"{n_evals - 1} warm evaluations (without finish())",
        f"{projected:.0f} s ({projected / 60:.1f} min)",
    )
    for key, what in (("naive", "kron rebuild"), ("naive_prebuilt", "operators prebuilt")):
        hours = n_steps * tr[key].median / 3600
        rep.value(f"projected {n_steps} naive training steps ({what})", f"{hours:.2f} h")

    elapsed = time.perf_counter() - t_start
    monitor.sample()
    other = max(0.0, busy_seconds() - busy_start - (time.process_time() - cpu_start)) / elapsed
    machine.append(("load average (1 min) at start / end", f"{load_start:.2f} / {loadavg():.2f}"))
    machine.append(("other processes using CPU at start (1 s sample)", users_start))
    machine.append(
        (
            "other processes using CPU during the run",
            f"{describe_users(monitor.users(elapsed))} (average cores over the whole run, "
            f"from /proc snapshots after each measurement); all other processes together "
            f"{other:.2f} cores on average (/proc/stat)",
        )
    )
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
        "Ground states; gradients without shot noise, except in the training step (section (e)),",
        "which is one step of the `phase-recognition` experiment with its defaults (random batch",
        "of 10, centred nudge 0.4, 10 shots per expectation with Gaussian noise, Adam 0.01).",
        "",
        "## Run",
        "",
        "| | |",
        "|---|---|",
        f"| date (UTC) | {started.strftime('%Y-%m-%d %H:%M:%S')} |",
        f"| command | `{command}` |",
        f"| repeats | median of {repeats} timed runs after 1 untimed warm-up (time.perf_counter);"
        " the slow naive and finite-difference workloads warm up on one sample; the training"
        " step (e) has its own counts (see its rows) |",
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
        "- *qeprop training step*: `EXPERIMENT.step(cfg, state)` of",
        "  `qeprop.experiments.phase_recognition` with `cfg = EXPERIMENT.resolve({})`: a batch",
        "  of 10 random triangle points, all 10 free and 20 nudged ground states solved together",
        "  by the numba batch-Lanczos kernel (tol 1e-6; nudged ones warm-started from the free",
        "  ones), Gaussian shot noise (M = 10) on the 51 coupling expectations, Adam. The first",
        "  step of the process is timed alone (numba loads the kernel from its cache, or compiles",
        "  it); then, after 3 warm-up steps, every step of 2 blocks of `eval_every` = 50 steps",
        "  (10 with `--quick`) is timed separately; then one more block with",
        "  `numba.set_num_threads(1)` (qeprop on one core, like the naive step).",
        "- *test-set evaluation*: `EXPERIMENT.evaluate` (exact readout probabilities at 200",
        "  fixed points). *cold*: a fresh experiment object (no earlier states), as the step-0",
        "  evaluation of a run; *warm*: after each block of steps, warm-started from the states",
        "  of the previous evaluation, as the evaluations every 50 steps of a run.",
        "- *naive training step* (`benchmarks/training.py`): the same step in the style of",
        "  published research code, single-threaded BLAS (`threadpoolctl.threadpool_limits(1)`):",
        "  per sample, build H, cold `eigsh` for the free state, outputs and ε = 2(y - t), then",
        "  for ν = ±βε build H + Σ ν_l O_l, cold `eigsh`, ⟨A_j⟩ = ψ†A_jψ for the 51 couplings",
        "  plus Gaussian noise of variance (1 - ⟨A_j⟩²)/M; centred gradient, batch mean, Adam.",
        "  *kron rebuild*: every operator from a `scipy.sparse.kron` chain each time it is used",
        "  (as `benchmarks/naive.py`); *operators prebuilt*: the Kronecker operators built once,",
        "  H re-summed from them for every solve. Its noiseless gradient is checked against",
        "  `EXPERIMENT.batch_gradient` with `shots=None` at the same couplings and inputs.",
        "- *projected run*: `steps` x median step + 1 cold + `steps / eval_every` warm",
        "  evaluations (101 evaluations in all for 5000 steps; `finish()`, checkpoints and",
        "  logging are not included).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
