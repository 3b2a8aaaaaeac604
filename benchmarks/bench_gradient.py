"""qeprop's centred gradient of the phase sensor against a naive baseline (same run).

Measurements: building the ``QEPSystem`` (Pauli terms; with its sparse structure); qeprop's
``centered`` gradient (no shots) of the MSE loss averaged over the batch of 10 inputs at the nudges
β = 0.01 and the paper's β = 0.4; the naive baseline in the style of published QEP research code
(:mod:`naive`) on the same batch, whose gradient must agree with qeprop's (cosine > 0.999). The
naive baseline warms up on one sample instead of the batch. With ``--profile``, a cProfile of
qeprop's centred gradient is printed afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from functools import partial

import naive
import numpy as np
import sensor
from common import Report, Timing, bench, cosine
from workloads import COSINE_MIN, NUDGES, SENSOR_INTRO, naive_batch, qeprop_batch

import qeprop

DESCRIPTION = "qeprop centred gradient vs a naive baseline (phase sensor, batch of 10)"
TARGET_SPEEDUP = 20.0  # naive / qeprop centred gradient time


def run(report: Report, args: argparse.Namespace) -> None:
    repeats: int = args.repeats
    report.intro.append(SENSOR_INTRO)
    report.repeats_note = (
        f"median of {repeats} timed runs after 1 untimed warm-up (time.perf_counter); the naive "
        "baseline warms up on one sample"
    )
    setup = bench(sensor.build_system, repeats)
    system = setup.result
    batch = sensor.make_batch()
    print(
        f"\nproblem: {system.full.n_qubits} qubits (dim {system.full.dim}), "
        f"{len(system.trainable)} trainable couplings, {len(system.full.strings)} Pauli strings, "
        f"batch of {len(batch)}, labels {[sensor.PHASES[k] for k in batch.labels]}",
        flush=True,
    )
    structure = bench(lambda: sensor.build_system().full.structure, repeats)

    report.stage("[qeprop] centered gradient, batch of 10, no shots")
    report.add("qeprop: build QEPSystem (Pauli terms)", setup, "once per model")
    report.add("qeprop: build QEPSystem + sparse structure", structure, "once per model")
    qe: dict[float, Timing] = {}
    for beta in NUDGES:
        t = bench(partial(qeprop_batch, system, batch, "centered", nudge=beta), repeats)
        qe[beta] = t
        r = t.result
        report.add(
            f"qeprop centered gradient, β={beta:g} (10 samples)",
            t,
            f"{r['preparations']} preparations, {r['solves']} solves, "
            f"{len(r['warnings'])} NudgeWindowWarning",
            baseline=f"naive baseline centered gradient, β={beta:g} (10 samples)",
        )
        for msg in sorted(set(r["warnings"])):
            report.notes.append(f"β={beta:g}: NudgeWindowWarning: {msg}")
    gaps = qe[NUDGES[0]].result["gaps"]
    report.notes.append(
        "free-state gaps over the batch: " + ", ".join(f"{g:.3g}" for g in gaps) + " (all samples"
        f" non-degenerate; smallest {gaps.min():.3g})"
    )
    c_beta = cosine(qe[0.4].result["gradient"], qe[0.01].result["gradient"])
    report.check("centered β=0.4 vs β=0.01 gradient", f"cosine {c_beta:.9f}")

    report.stage("[a] naive baseline (sparse kron rebuild + cold eigsh + kron observables)")
    nv: dict[float, Timing] = {}
    for beta in NUDGES:
        stages: dict[str, float] = {}
        t = bench(
            partial(naive_batch, batch, beta, stages),
            repeats,
            warmup=partial(
                naive.centered_gradient, batch.inputs[0], batch.theta, batch.targets[0], beta
            ),
        )
        nv[beta] = t
        total = sum(stages.values())
        share = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in stages.items())
        report.add(
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
        report.check(
            f"baseline vs qeprop gradient, β={beta:g}",
            f"cosine {c:.9f} (worst sample {worst:.9f}), max |Δ| {diff:.2e}: {ok} "
            f"(need > {COSINE_MIN})",
        )
        if ok != "OK":
            report.notes.append(f"β={beta:g}: the baseline and qeprop gradients DISAGREE")

    for beta in NUDGES:
        report.ratio(
            f"naive / qeprop centered time, β={beta:g}",
            nv[beta].median / qe[beta].median,
            TARGET_SPEEDUP,
        )
    report.describe(
        "*qeprop centered gradient*: `estimate_gradient(system, values, MeanSquaredError(t), "
        'estimator="centered", nudge=β)` for each of the 10 samples, gradients averaged. Default '
        "`StateSpec` (ground state, `method=auto` = Lanczos at dim 1024, tol 1e-12).",
        "*naive baseline* (`benchmarks/naive.py`): per sample and phase (free, +β, -β) H is "
        "rebuilt term by term from `scipy.sparse.kron` chains of 2x2 Paulis, solved by "
        "`eigsh(k=1, which='SA')` from ARPACK's random start with default BLAS threading, and "
        "the 51 coupling operators are built as sparse Kronecker products for `ψ†Aψ`.",
    )
    if args.profile:
        print("\ncProfile: qeprop centered gradient, β=0.01, 10 samples\n")
        print(profile_centered(system, batch, 0.01))


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
