"""Nudged ground-state solves warm-started from the free state against cold ones (same run).

For every sample of the phase sensor's batch and both nudges (β = 0.01, 0.4), and for
``method="lanczos"`` and ``"auto"``: ``qeprop.solvers.solve`` of the nudged Hamiltonian
(``ν = β ε`` on the outputs) with ``guess`` = the free state (warm) or ``None`` (cold). Each
sample is timed with the median of the repeats; a row summarises the per-sample medians.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import sensor
from common import Report, Timing, bench
from workloads import NUDGES, SENSOR_INTRO, nudged_values

from qeprop.solvers import StateSpec, solve

DESCRIPTION = "warm-started (guess = free state) vs cold nudged solves (phase sensor)"
TARGET_WARM = 2.0  # cold / warm nudged solve time


def run(report: Report, args: argparse.Namespace) -> None:
    repeats: int = args.repeats
    report.intro.append(SENSOR_INTRO)
    report.repeats_note = (
        f"median of {repeats} timed runs after 1 untimed warm-up (time.perf_counter), per sample"
    )
    system = sensor.build_system()
    batch = sensor.make_batch()

    report.stage("[c] nudged solves, warm (guess = free state) vs cold, all 10 samples")
    warm_cold: dict[tuple[str, float], tuple[float, float]] = {}
    for method in ("lanczos", "auto"):
        spec = StateSpec(method=method)
        for beta in NUDGES:
            res: dict[str, list[tuple[Timing, int, str]]] = {"cold": [], "warm": []}
            for i in range(len(batch)):
                _, vn, free = nudged_values(system, batch, i, beta, spec)
                for kind, guess in (("cold", None), ("warm", free)):
                    t = bench(partial(solve, system.full, vn, spec, guess), repeats)
                    res[kind].append((t, t.result.matvecs, t.result.method))
            totals = {}
            for kind in ("cold", "warm"):
                times = [t.median for t, _, _ in res[kind]]
                mvs = [m for _, m, _ in res[kind]]
                used = sorted({m for _, _, m in res[kind]})
                totals[kind] = float(np.sum(times))
                # summary timing: per-sample medians (one entry per sample)
                summary = Timing.combine([t for t, _, _ in res[kind]], times)
                report.add(
                    f"nudged solve {kind}, method={method}, β={beta:g}",
                    summary,
                    f"median over {len(times)} samples of the per-sample median of {repeats}; "
                    f"matvecs median {np.median(mvs):.0f} (range {min(mvs)}-{max(mvs)}); "
                    f"ran as {'/'.join(used)}",
                    baseline=(
                        f"nudged solve cold, method={method}, β={beta:g}"
                        if kind == "warm"
                        else None
                    ),
                )
            warm_cold[(method, beta)] = (totals["cold"], totals["warm"])

    for (method, beta), (cold, warm) in warm_cold.items():
        report.ratio(
            f"cold / warm nudged solve time, method={method}, β={beta:g} (sum over samples)",
            cold / warm,
            TARGET_WARM,
        )
    report.notes.append(
        "rows `nudged solve ...` summarise one entry per sample (each the median of the "
        "repeats), so their `repeats` column counts samples; the ratios use the sums of the "
        "per-sample medians, the *baseline / this* column the medians over samples"
    )
    report.describe(
        "*nudged solve*: `qeprop.solvers.solve(system.full, values + βε on the outputs, spec, "
        "guess)` with guess = the free state (warm) or None (cold).",
    )
