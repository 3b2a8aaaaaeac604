"""qeprop's ``finite_difference`` gradient against its ``centered`` QEP gradient (same run).

Measurements: qeprop ``centered`` gradient at β = 0.01 (the baseline, measured here again so that
the ratio compares timings of the same run) and qeprop ``finite_difference`` (central differences
of the loss, the parameter-shift baseline) on the phase sensor's batch of 10 inputs: time and
preparations. The finite-difference workload warms up on one sample instead of the batch.
"""

from __future__ import annotations

import argparse

import sensor
from common import Report, bench, cosine
from workloads import NUDGES, SENSOR_INTRO, qeprop_batch

from qeprop import estimate_gradient

DESCRIPTION = "qeprop finite_difference vs centred QEP gradient (phase sensor, batch of 10)"
TARGET_PREP_RATIO = 25.0  # finite_difference / centered preparations


def run(report: Report, args: argparse.Namespace) -> None:
    repeats: int = args.repeats
    report.intro.append(SENSOR_INTRO)
    report.repeats_note = (
        f"median of {repeats} timed runs after 1 untimed warm-up (time.perf_counter); the "
        "finite-difference workload warms up on one sample"
    )
    system = sensor.build_system()
    batch = sensor.make_batch()
    beta = NUDGES[0]
    centered = f"qeprop centered gradient, β={beta:g} (10 samples)"

    report.stage(f"[qeprop] centered gradient β={beta:g} (the baseline of this comparison)")
    qe = bench(lambda: qeprop_batch(system, batch, "centered", nudge=beta), repeats)
    r = qe.result
    report.add(
        centered,
        qe,
        f"{r['preparations']} preparations, {r['solves']} solves, "
        f"{len(r['warnings'])} NudgeWindowWarning",
    )

    report.stage("[b] qeprop finite_difference (fd_step 1e-4), same batch")
    fd = bench(
        lambda: qeprop_batch(system, batch, "finite_difference"),
        repeats,
        warmup=lambda: estimate_gradient(
            system, batch.values(0), batch.loss(0), estimator="finite_difference"
        ),
    )
    report.add(
        "qeprop finite_difference gradient (10 samples)",
        fd,
        f"{fd.result['preparations']} preparations, {fd.result['solves']} solves",
        baseline=centered,
    )
    c_fd = cosine(fd.result["gradient"], qe.result["gradient"])
    report.check(f"finite_difference vs centered β={beta:g} gradient", f"cosine {c_fd:.9f}")

    preps = fd.result["preparations"] / qe.result["preparations"]
    report.ratio("finite_difference / centered preparations", preps, TARGET_PREP_RATIO)
    report.ratio(f"finite_difference / centered time (β={beta:g})", fd.median / qe.median, None)
    report.describe(
        "*qeprop centered gradient*: `estimate_gradient(system, values, MeanSquaredError(t), "
        'estimator="centered", nudge=0.01)` for each of the 10 samples, gradients averaged '
        "(default `StateSpec`).",
        "*finite_difference*: central differences of the loss, step 1e-4, 2P+1 = 103 "
        "preparations per sample.",
    )
