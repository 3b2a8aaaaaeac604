"""One centred QEP gradient on the dmrg backend against chain length (same run).

Problem: :mod:`dmrg_sensor_problem`, the 2-qubit sensor with 51 trainable couplings attached to
the middle of an open cluster-Ising chain of ``L`` sites (``L + 2`` qubits; bond dimension 64,
cutoff 1e-10; the chain's couplings put it in the cluster phase, whose edge modes, coupled
through the sensor, leave a small gap), centred nudge 0.4, no shots. Measured:

* one centred gradient (``qeprop.gradients.estimate_gradient``: the free solve with its gap
  estimate, both nudged solves warm-started from it, the expectation values) at
  ``L = 16, 32, 64, 128, 256`` (``--dmrg-sizes``), against the targets 5 s at ``L = 64`` and
  15 s at ``L = 128``;
* the same gradient on the exact ``matrix-free`` backend where a state vector fits in a few
  seconds (``L <= 16``): the baseline of the ``L = 16`` row, and the reference of its accuracy;
* at ``L = 64``: a nudged solve (outputs nudged by 0.4) warm-started from the free state against
  the same solve from scratch (target: warm at least 3 times faster);
* at ``L = 64``: the same gradient with the opt-in ``state.threads = 2`` (both nudged solves at
  once), for reference; the targets are judged on the default (one thread).

The sizes from 128 on time at most 3 repeats after a warm-up at ``L = 16`` (each gradient takes
tens of seconds; the MPO structure and site order of a Hamiltonian are built in its first timed
call, which costs milliseconds).
"""

from __future__ import annotations

import argparse
import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import dmrg_sensor_problem
import numpy as np
from common import Report, Timing, bench, bench_interleaved, fmt_time

from qeprop.gradients import estimate_gradient
from qeprop.problem import parse_problem
from qeprop.solvers import StateSpec, solve

DESCRIPTION = "dmrg backend: one centred gradient of the chain sensor against chain length"
SIZES = (16, 32, 64, 128, 256)
QUICK_SIZES = (16, 32, 64)
#: chain lengths -> wall-clock target (seconds) of one centred gradient
TARGETS = {64: 5.0, 128: 15.0}
TARGET_WARM = 3.0  # cold / warm nudged solve time at L = 64
EXACT_MAX_SITES = 16  # matrix-free baseline up to this chain length
LARGE = 128  # from this length on: at most 3 repeats, warm-up at the smallest size
PLOT = "dmrg.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("dmrg")
    g.add_argument(
        "--dmrg-sizes",
        default=None,
        help=f"comma-separated chain lengths (default {','.join(map(str, SIZES))}; "
        f"{','.join(map(str, QUICK_SIZES))} with --quick)",
    )


def _problem(sites: int) -> Any:
    return parse_problem(dmrg_sensor_problem.dmrg_sensor_problem(sites))


def _gradient(prob: Any, state: StateSpec | None = None) -> Any:
    opts = (
        prob.options if state is None else type(prob.options)(nudge=prob.options.nudge, state=state)
    )
    return estimate_gradient(prob.system, prob.values, prob.loss, estimator="centered",
                             options=opts)  # fmt: skip


def run(report: Report, args: argparse.Namespace) -> None:
    repeats: int = args.repeats
    if getattr(args, "dmrg_sizes", None):
        sizes = tuple(int(x) for x in args.dmrg_sizes.split(","))
    else:
        sizes = QUICK_SIZES if args.quick else SIZES
    report.intro.append(
        "Problem: `benchmarks/dmrg_sensor_problem.py`, a 2-qubit sensor (51 trainable couplings, "
        "3 projector outputs, MSE loss) attached to the middle of an open cluster-Ising chain of "
        "L sites (L + 2 qubits), `state.method = dmrg`, bond dimension 64, cutoff 1e-10, centred "
        "nudge 0.4, no shots, single-threaded BLAS (`blas_threads = 1`, the default)."
    )
    report.repeats_note = (
        f"median of {repeats} timed runs after 1 untimed warm-up (time.perf_counter); from "
        f"L = {LARGE} on at most 3 runs after a warm-up at L = {min(sizes)}; the cold and warm "
        "nudged solves are timed in alternation"
    )
    problems = {sites: _problem(sites) for sites in sizes}  # parsed once, shared by the sections
    smallest = problems[min(sizes)]
    rows: list[list[str]] = []
    times: dict[int, Timing] = {}
    exact_rows: dict[int, str] = {}
    for sites in sizes:
        report.stage(f"[d] centred gradient, L = {sites} ({sites + 2} qubits)")
        prob = problems[sites]
        large = sites >= LARGE
        t = bench(
            partial(_gradient, prob),
            min(repeats, 3) if large else repeats,
            warmup=partial(_gradient, smallest) if large else None,
        )
        times[sites] = t
        rec = t.result
        free = solve(prob.system.full, prob.system.full_values(prob.values), prob.options.state)
        detail = (
            f"free solve: {free.sweeps} half-sweeps, {free.matvecs} local products, bond "
            f"dimension {free.bond_dim}, gap {free.gap:.2e}, energy variance {free.variance:.1e}"
        )
        name = f"gradient L={sites} ({sites + 2} qubits), dmrg"
        baseline = None
        if sites <= EXACT_MAX_SITES:
            exact = bench(partial(_gradient, prob, StateSpec(method="matrix-free")), repeats)
            ref = exact.result.gradient
            diff = float(np.max(np.abs(rec.gradient - ref)) / np.max(np.abs(ref)))
            base = f"gradient L={sites} ({sites + 2} qubits), matrix-free"
            report.add(base, exact, "exact backend, the same estimator")
            baseline = base
            exact_rows[sites] = fmt_time(exact.median)
            report.check(
                f"dmrg vs matrix-free gradient at L = {sites}",
                f"max |Δg| / max |g| = {diff:.1e}: {'OK' if diff <= 1e-5 else 'FAILED'} "
                "(need <= 1e-5)",
            )
        report.add(name, t, detail, baseline=baseline)
        rows.append(
            [
                str(sites),
                str(sites + 2),
                fmt_time(t.median),
                fmt_time(t.min),
                str(t.repeats),
                str(free.sweeps),
                str(free.matvecs),
                str(free.bond_dim),
                f"{free.gap:.2e}",
                exact_rows.get(sites, "-"),
            ]
        )
    if 64 in sizes:
        # the opt-in threads of the state spec: the two nudged solves of the gradient at once
        prob = problems[64]
        spec = dataclasses.replace(prob.options.state, threads=2)
        t2 = bench(partial(_gradient, prob, spec), repeats)
        report.add(
            "gradient L=64 (66 qubits), dmrg, threads = 2",
            t2,
            "opt-in (`state.threads = 2`): the two nudged solves run at once; not the default",
            baseline="gradient L=64 (66 qubits), dmrg",
        )
    for sites, limit in TARGETS.items():
        if sites in times:
            report.limit(f"one centred gradient at L = {sites}", times[sites].median, limit)
    report.table(
        "Time of one centred gradient against chain length",
        [
            "L",
            "qubits",
            "median",
            "min",
            "repeats",
            "free half-sweeps",
            "free local products",
            "bond dim",
            "gap estimate",
            "matrix-free",
        ],
        rows,
        "*free half-sweeps*, *free local products*, *bond dim*, *gap estimate*: the cold free "
        "solve of the gradient (state-averaged sweeps for the gap included); each nudged solve "
        "adds two one-site half-sweeps (see the rows above). *matrix-free*: the exact backend's "
        "gradient, where a state vector fits.",
    )

    mid = 64 if 64 in sizes else max(s for s in sizes if s <= 64)
    report.stage(f"[d] nudged solve at L = {mid}: warm (free state) vs cold")
    prob = problems[mid]
    h, values, spec = prob.system.full, prob.system.full_values(prob.values), prob.options.state
    free = solve(h, values, spec)
    nudged = values.copy()
    nudged[prob.system.output_index] = 0.4
    # interleaved, so that both sides of the ratio see the same phases of the machine's pace
    cold, warm = bench_interleaved(
        [partial(solve, h, nudged, spec), partial(solve, h, nudged, spec, free)], repeats
    )
    report.add(
        f"nudged solve cold, L={mid}",
        cold,
        f"{cold.result.sweeps} half-sweeps, {cold.result.matvecs} local products (gap included)",
    )
    report.add(
        f"nudged solve warm (free state), L={mid}",
        warm,
        f"{warm.result.sweeps} half-sweeps, {warm.result.matvecs} local products",
        baseline=f"nudged solve cold, L={mid}",
    )
    report.ratio(f"cold / warm nudged solve time, L = {mid}", cold.median / warm.median,
                 TARGET_WARM)  # fmt: skip
    de = abs(warm.result.energy - cold.result.energy) / abs(cold.result.energy)
    report.check(
        f"warm and cold nudged energies at L = {mid}",
        f"relative difference {de:.1e}: {'OK' if de <= 1e-8 else 'FAILED'} (need <= 1e-8)",
    )

    plot_path = Path(args.results).parent / PLOT
    if _plot(times, plot_path):
        report.figure("time of one centred gradient against chain length (dmrg)", PLOT)
        print(f"  wrote {plot_path}", flush=True)
    report.describe(
        "*gradient*: `estimate_gradient(system, values, loss, estimator='centered')` on the "
        "parsed problem: one cold free solve (with the gap estimate), two nudged solves "
        "warm-started from it, the expectation values of the couplings and outputs.",
        "*nudged solve*: `qeprop.solvers.solve(system.full, values with every output nudge "
        "0.4, spec, guess)`, guess = the free state (warm) or None (cold: a full cold solve, "
        "gap estimate included).",
        "the free-solve columns come from one extra untimed solve per size (the solver is "
        "deterministic: a seeded random start).",
    )


def _plot(times: dict[int, Timing], path: Path) -> bool:
    """Median time against chain length (log-log) with the targets; ``False`` if nothing ran."""
    if not times:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(times)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.plot(sizes, [times[s].median for s in sizes], marker="o", label="dmrg, median")
    ax.plot(sizes, [times[s].min for s in sizes], marker=".", linestyle=":", label="dmrg, min")
    for sites, limit in TARGETS.items():
        ax.plot([sites], [limit], marker="*", markersize=12, linestyle="none", color="C3",
                label="target" if sites == min(TARGETS) else None)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("chain length L (L + 2 qubits)")
    ax.set_ylabel("wall time per centred gradient [s]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("one centred QEP gradient, chain sensor, bond dimension 64")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
