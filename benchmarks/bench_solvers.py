"""Dense against Lanczos free solves at dimension 1024, and BLAS threading (same run).

Measurements: ``qeprop.solvers.solve`` of sample 0's free Hamiltonian of the phase sensor with
``method`` in (dense, lanczos) and ``blas_threads`` in (1, None); and the naive baseline's
``eigsh`` (:mod:`naive`) on the 10 free Hamiltonians with the default BLAS threads and limited to 1.
"""

from __future__ import annotations

import argparse
from functools import partial

import naive
import numpy as np
import sensor
from common import Report, Timing, bench
from threadpoolctl import ThreadpoolController
from workloads import SENSOR_INTRO

from qeprop.solvers import StateSpec, solve

DESCRIPTION = "dense vs Lanczos free solve, BLAS threads 1 vs default (phase sensor, dim 1024)"


def _free_solve(method: str, threads: int | None) -> str:
    return f"free solve sample 0, method={method}, blas_threads={threads}"


def _naive_eigsh(threads: int | None) -> str:
    return f"naive eigsh of the 10 free Hamiltonians, BLAS threads={threads or 'default'}"


def run(report: Report, args: argparse.Namespace) -> None:
    repeats: int = args.repeats
    report.intro.append(SENSOR_INTRO)
    report.repeats_note = (
        f"median of {repeats} timed runs after 1 untimed warm-up (time.perf_counter)"
    )
    system = sensor.build_system()
    batch = sensor.make_batch()
    dim = system.full.dim

    report.stage(f"[d] free solve at dim {dim}: dense vs Lanczos, blas_threads 1 vs None")
    v0 = system.full_values(batch.values(0))
    dl: dict[tuple[str, int | None], Timing] = {}
    # baselines: each method's single-threaded solve; the dense one for Lanczos
    baselines = {
        ("dense", 1): None,
        ("dense", None): _free_solve("dense", 1),
        ("lanczos", 1): _free_solve("dense", 1),
        ("lanczos", None): _free_solve("lanczos", 1),
    }
    for method in ("dense", "lanczos"):
        for threads in (1, None):
            spec = StateSpec(method=method, blas_threads=threads)
            t = bench(partial(solve, system.full, v0, spec), repeats)
            dl[(method, threads)] = t
            report.add(
                _free_solve(method, threads),
                t,
                f"E0 {t.result.energies[0]:.10f}, gap {t.result.gap:.6f}, "
                f"matvecs {t.result.matvecs}",
                baseline=baselines[(method, threads)],
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
        t = bench(partial(naive_solves, threads), repeats)
        ne[threads] = t
        report.add(
            _naive_eigsh(threads),
            t,
            "scipy eigsh(k=1, which='SA') on complex H = ARPACK znaupd, cold start",
            baseline=_naive_eigsh(None) if threads == 1 else None,
        )

    for method in ("dense", "lanczos"):
        report.ratio(
            f"{method} free solve: blas_threads=None / blas_threads=1 time",
            dl[(method, None)].median / dl[(method, 1)].median,
            None,
        )
    report.ratio(
        "naive eigsh: default BLAS threads / 1 thread time",
        ne[None].median / ne[1].median,
        None,
    )
    report.ratio(
        "dense / lanczos free solve time (blas_threads=1)",
        dl[("dense", 1)].median / dl[("lanczos", 1)].median,
        None,
    )
    report.describe(
        "*free solve*: `solve` of sample 0's free Hamiltonian with `method` and `blas_threads` "
        "forced.",
        "*naive eigsh*: the baseline's `eigsh` alone on the 10 free Hamiltonians, with the "
        "default BLAS threads and limited to 1 (threadpoolctl). scipy solves complex Hermitian "
        "matrices with ARPACK's complex Arnoldi (znaupd), whose small BLAS calls suffer badly "
        "from multi-threading when other processes compete for the cores, so the naive baseline "
        "is much slower on a loaded machine (see *other load*), which inflates the naive/qeprop "
        "ratio there. qeprop limits BLAS to 1 thread around its Lanczos calls.",
    )
