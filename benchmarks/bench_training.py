"""One phase-recognition training step: qeprop against a naive step (same run).

One training step of :mod:`qeprop.experiments.phase_recognition` with its defaults (batch of 10,
centred nudge 0.4, 10 shots with Gaussian noise, Adam 0.01): qeprop's ``EXPERIMENT.step`` (the
first step of the process alone, then each of ``2 x eval_every`` steps after 3 warm-up steps, then
one block on one numba thread) and ``EXPERIMENT.evaluate`` (200 test points, cold and
warm-started), against a naive step in the style of published research code with single-threaded
BLAS (:mod:`training`; kron rebuild: median of 3 steps, 1 with ``--quick``; operators prebuilt:
median of the repeats), with the projected time of a full 5000-step run. ``--quick`` times blocks
of 10 steps instead of ``eval_every`` = 50.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import training
from common import Report, Timing, bench, cosine, fmt_time
from threadpoolctl import threadpool_info, threadpool_limits
from workloads import COSINE_MIN

from qeprop.experiments import phase_recognition
from qeprop.experiments.phase_recognition import EXPERIMENT
from qeprop.models import cluster_ising

DESCRIPTION = "phase-recognition training step: qeprop vs a naive step (1 BLAS thread)"
TARGET_STEP_S = 0.03  # qeprop training step, seconds
TARGET_STEP_SPEEDUP = 10.0  # naive / qeprop training step
TRAIN_WARMUP = 3  # untimed qeprop training steps (the first one timed separately)
TRAIN_BLOCKS = 2  # timed blocks of eval_every steps, each followed by a timed evaluation
NAIVE_STEPS = 3  # timed naive training steps (1 with --quick)

QEPROP_STEP = "qeprop training step (batch 10, centred β=0.4, 10 shots, Adam)"
QEPROP_ONE_THREAD = "qeprop training step, 1 numba thread"
NAIVE_PREBUILT = "naive training step, operators prebuilt, 1 BLAS thread"


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


def run(report: Report, args: argparse.Namespace) -> None:
    repeats: int = args.repeats
    report.intro.append(
        "Problem: one step of the `phase-recognition` experiment with its defaults (the "
        "Wanjura-Marquardt phase sensor, 10 qubits, 51 couplings; random batch of 10 triangle "
        "points, centred nudge 0.4, 10 shots per expectation with Gaussian noise, Adam 0.01)."
    )
    report.repeats_note = (
        "per row (see its repeats column and details): single steps timed with "
        "time.perf_counter; evaluations and the prebuilt naive step: median of "
        f"{repeats} timed runs after 1 untimed warm-up"
    )
    report.stage("[e] phase-recognition training step: qeprop vs naive (1 BLAS thread)")
    tr = bench_training(report, repeats, args.quick)

    step = tr["steps"].median
    report.ratio(
        "naive training step (kron rebuild, 1 BLAS thread) / qeprop training step",
        tr["naive"].median / step,
        TARGET_STEP_SPEEDUP,
    )
    report.ratio(
        "naive training step (operators prebuilt, 1 BLAS thread) / qeprop training step",
        tr["naive_prebuilt"].median / step,
        TARGET_STEP_SPEEDUP,
    )
    report.ratio(
        "naive training step (operators prebuilt) / qeprop training step with 1 numba thread",
        tr["naive_prebuilt"].median / tr["one_thread"].median,
        None,
    )
    report.limit("qeprop training step (median)", step, TARGET_STEP_S)
    n_steps = int(tr["cfg"]["steps"])
    n_evals = n_steps // int(tr["cfg"]["eval_every"]) + 1  # step 0 included
    projected = n_steps * step + tr["cold"].median + (n_evals - 1) * tr["warm"].median
    report.value(
        f"projected {n_steps}-step qeprop run: {n_steps} x median step + 1 cold + "
        f"{n_evals - 1} warm evaluations (without finish())",
        f"{projected:.0f} s ({projected / 60:.1f} min)",
    )
    for key, what in (("naive", "kron rebuild"), ("naive_prebuilt", "operators prebuilt")):
        hours = n_steps * tr[key].median / 3600
        report.value(f"projected {n_steps} naive training steps ({what})", f"{hours:.2f} h")

    report.describe(
        "*qeprop training step*: `EXPERIMENT.step(cfg, state)` of "
        "`qeprop.experiments.phase_recognition` with `cfg = EXPERIMENT.resolve({})`: a batch of "
        "10 random triangle points, all 10 free and 20 nudged ground states solved together by "
        "the numba batch-Lanczos kernel (tol 1e-6; nudged ones warm-started from the free ones), "
        "Gaussian shot noise (M = 10) on the 51 coupling expectations, Adam. The first step of "
        "the process is timed alone (numba loads the kernel from its cache, or compiles it); "
        f"then, after {TRAIN_WARMUP} warm-up steps, every step of {TRAIN_BLOCKS} blocks of "
        "`eval_every` = 50 steps (10 with `--quick`) is timed separately; then one more block "
        "with `numba.set_num_threads(1)` (qeprop on one core, like the naive step).",
        "*test-set evaluation*: `EXPERIMENT.evaluate` (exact readout probabilities at 200 fixed "
        "points). *cold*: a fresh experiment object (no earlier states), as the step-0 "
        "evaluation of a run; *warm*: after each block of steps, warm-started from the states of "
        "the previous evaluation, as the evaluations every 50 steps of a run.",
        "*naive training step* (`benchmarks/training.py`): the same step in the style of "
        "published research code, single-threaded BLAS (`threadpoolctl.threadpool_limits(1)`): "
        "per sample, build H, cold `eigsh` for the free state, outputs and ε = 2(y - t), then "
        "for ν = ±βε build H + Σ ν_l O_l, cold `eigsh`, ⟨A_j⟩ = ψ†A_jψ for the 51 couplings plus "
        "Gaussian noise of variance (1 - ⟨A_j⟩²)/M; centred gradient, batch mean, Adam. *kron "
        "rebuild*: every operator from a `scipy.sparse.kron` chain each time it is used (as "
        "`benchmarks/naive.py`); *operators prebuilt*: the Kronecker operators built once, H "
        "re-summed from them for every solve. Its noiseless gradient is checked against "
        "`EXPERIMENT.batch_gradient` with `shots=None` at the same couplings and inputs.",
        "*projected run*: `steps` x median step + 1 cold + `steps / eval_every` warm evaluations "
        "(101 evaluations in all for 5000 steps; `finish()`, checkpoints and logging are not "
        "included).",
    )


def bench_training(rep: Report, repeats: int, quick: bool) -> dict[str, Any]:
    """qeprop's phase-recognition training step and evaluation vs a naive step."""
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

    def cold_evaluation() -> dict[str, Any]:
        # a fresh experiment, and none of the readout probabilities the module memoises for
        # repeated requests of the same couplings and points (evaluate, then finish)
        phase_recognition._PROBS.clear()
        return type(EXPERIMENT)().evaluate(cfg, holder["state"])

    cold = bench(cold_evaluation, repeats)
    phase_recognition._PROBS.clear()
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
        QEPROP_STEP,
        steps,
        f"EXPERIMENT.step with defaults, each of {steps.repeats} steps ({TRAIN_BLOCKS} blocks of "
        f"{block}) after {TRAIN_WARMUP} warm-up steps; mean {fmt_time(float(np.mean(steps.times)))}"
        f", 90th percentile {fmt_time(float(np.percentile(steps.times, 90)))}, max "
        f"{fmt_time(float(np.max(steps.times)))}; numba {threads} threads ({layer})",
        baseline=NAIVE_PREBUILT,
    )
    rep.add(
        QEPROP_ONE_THREAD,
        one,
        f"as above, {one.repeats} steps with numba.set_num_threads(1) (one core, for comparison "
        "with the single-threaded naive step)",
        baseline=NAIVE_PREBUILT,
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
        baseline="qeprop test-set evaluation, cold (200 points)",
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
            NAIVE_PREBUILT if prebuilt else "naive training step, kron rebuild, 1 BLAS thread",
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
