"""Phase recognition on long open chains: an 8-site-trained sensor at L = 8 ... 128, fine-tuned
and trained from scratch through the dmrg backend (docs/phase-recognition-scale.md).

Pieces, each a normal ``qeprop run`` directory under ``OUT_DIR/runs`` (rerunning the script skips
finished runs and resumes interrupted ones):

``source``
    Only when ``--source`` holds no couplings (the default, the study's committed 8-site sensor
    ``docs/results/phase-recognition-scale/source``, keeps them; the summaries of
    ``docs/results/phase-recognition/*`` do not): its ``config.toml`` run again.
``trained-setting``
    The source's own setting (8-site periodic chain, exact), ``steps = 0``: the reference.
``eval-L{L}``
    The source's couplings on an open ``L``-site chain (``method = dmrg``, sensor on the middle
    sites ``L//2 - 1, L//2``, edge terms 1), ``steps = 0``: max-choice and single-shot accuracy
    on the fixed test set and the phase map, no retraining.
``finetune-L{L}``
    The source's couplings fine-tuned with QEP (centred nudging, shots) on ``--finetune-length``
    for ``--finetune-steps`` steps of ``--batch-size`` points.
``scratch-L{L}``
    A sensor trained from scratch on ``--scratch-length`` for ``--scratch-steps`` steps of
    ``--scratch-batch-size`` points (evaluated every ``--scratch-eval-every`` steps).

Outputs: ``OUT_DIR/scale.md`` (table: accuracies, steps, wall seconds), ``OUT_DIR/timings.json``,
``OUT_DIR/accuracy-vs-length.png`` and the phase maps ``OUT_DIR/map-<run>.png``.

Usage::

    .venv/bin/python studies/phase_recognition_scale.py OUT_DIR \\
        [--source docs/results/phase-recognition-scale/source] \\
        [--lengths 8 16 32 64 128] [--finetune-length 64 --finetune-steps 100 --batch-size 10] \\
        [--scratch-length 128 --scratch-steps 1000 --scratch-batch-size 2] [--map-lengths 64] \\
        [--only PIECE ...] [--tiny]

``--only evals finetune scratch`` runs just those pieces (the reference and ``eval-L*``, the
fine-tuning, the scratch run) and writes the table and figures of those, so that two processes
can share the work; a last call without ``--only`` finds every run finished and writes the
whole table and the figures. The
eval runs draw the full phase map (``--map-resolution``) only at ``--map-lengths`` (default: the
fine-tuning length), a 2-per-side one elsewhere; the table's times come from each run's
provenance (start to finish, or the summed wall seconds of a resumed run's calls).

``--tiny`` (timing): 4 test points, a 2-per-side map, 2 training steps of 2 points, lengths
16 32 64; it also times one training step and one evaluated point at each length directly
(through the experiment, outside the runs) and writes them to ``OUT_DIR/timings.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from qeprop.experiments.phase_recognition import EXPERIMENT, triangle_grid
from qeprop.runs import resume_run, run_finished, start_run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "docs" / "results" / "phase-recognition-scale" / "source"


def _run(name: str, overrides: dict[str, Any], out: Path) -> tuple[Path, float]:
    """Start, resume or skip the run ``out/runs/name``; returns it and the seconds spent now."""
    d = out / "runs" / name
    t = time.perf_counter()
    if d.exists() and run_finished(d):
        print(f"{name}: finished earlier", flush=True)
        return d, 0.0
    if d.exists():
        print(f"{name}: resuming", flush=True)
        resume_run(d, progress=False)
    else:
        print(f"{name}: {overrides}", flush=True)
        start_run("phase-recognition", overrides, d, progress=False)
    return d, time.perf_counter() - t


def _has_couplings(d: Path) -> bool:
    return (d / "results.npz").is_file() or (d / "checkpoint.npz").is_file()


def _source(arg: Path, out: Path) -> tuple[Path, dict[str, Any], float]:
    """A run directory with couplings, its configuration, and the seconds spent training it."""
    with open(arg / "config.toml", "rb") as f:
        config = tomllib.load(f)
    config.pop("experiment", None)
    if _has_couplings(arg) and run_finished(arg):
        return arg, config, 0.0
    print(f"{arg} keeps no final couplings: training its configuration again", flush=True)
    d, sec = _run("source", config, out)
    return d, config, sec


def _summary(d: Path) -> dict[str, Any]:
    return json.loads((d / "summary.json").read_text())["final"]


def _time_pieces(
    lengths: list[int], batch_size: int, src: Path, extra: dict[str, Any]
) -> list[str]:
    """Seconds of one training step (``batch_size`` samples, the source's couplings) and of
    one evaluated test point (mean over 4), at each length, as markdown lines."""
    lines = [
        f"| L | s per step (batch {batch_size}) | s per sample | s per evaluated point |",
        "|---:|---:|---:|---:|",
    ]
    for length in lengths:
        over = {**extra, "chain_length": length, "batch_size": batch_size, "init_from": str(src)}
        config = EXPERIMENT.resolve(over)
        state = EXPERIMENT.init(config)
        t = time.perf_counter()
        state = EXPERIMENT.step(config, state)
        step = time.perf_counter() - t
        pts = EXPERIMENT.test_set(config)[0][:4]
        t = time.perf_counter()
        EXPERIMENT.probabilities(config, np.asarray(state.arrays["params"]), pts)
        point = (time.perf_counter() - t) / len(pts)
        lines.append(f"| {length} | {step:.2f} | {step / batch_size:.2f} | {point:.2f} |")
        print(lines[-1], flush=True)
    return lines


def _figures(out: Path, rows: list[dict[str, Any]], maps: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qeprop.plotting import plot_phase_map

    evals = sorted((r for r in rows if r["kind"] == "eval"), key=lambda r: r["L"])
    fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
    ls = [r["L"] for r in evals]
    ax.plot(ls, [r["max_choice_accuracy"] for r in evals], "o-", label="max-choice")
    ax.plot(ls, [r["single_shot_accuracy"] for r in evals], "s-", label="single-shot")
    for r in rows:
        if r["kind"] == "reference":
            ax.axhline(r["max_choice_accuracy"], color="C0", ls=":", lw=1)
            ax.axhline(r["single_shot_accuracy"], color="C1", ls=":", lw=1)
        if r["kind"] in ("finetune", "scratch"):
            mark = "*" if r["kind"] == "finetune" else "x"
            ax.plot([r["L"]], [r["max_choice_accuracy"]], mark, color="C0", ms=10)
            ax.plot([r["L"]], [r["single_shot_accuracy"]], mark, color="C1", ms=10,
                    label=f"{r['kind']} (max-choice, single-shot)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("open chain length L")
    ax.set_ylabel("test accuracy")
    ax.set_title("8-site sensor on long chains (dotted: 8-site ring)")
    ax.legend(fontsize=7)
    fig.savefig(out / "accuracy-vs-length.png", dpi=150)
    plt.close(fig)
    for d in maps:
        plot_phase_map(d, out / f"map-{d.name}.png")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--lengths", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--finetune-length", type=int, default=64)
    ap.add_argument("--finetune-steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--scratch-length", type=int, default=128)
    ap.add_argument("--scratch-steps", type=int, default=1000)
    ap.add_argument("--scratch-batch-size", type=int, default=2)
    ap.add_argument("--scratch-eval-every", type=int, default=500)
    ap.add_argument("--test-size", type=int, default=200)
    ap.add_argument("--map-resolution", type=int, default=24)
    ap.add_argument("--bond-dim", type=int, default=64)
    ap.add_argument("--map-lengths", type=int, nargs="*", default=None)
    ap.add_argument("--only", nargs="+", choices=("evals", "finetune", "scratch"), default=None)
    ap.add_argument("--tiny", action="store_true", help="timing settings (see the docstring)")
    a = ap.parse_args(argv)
    if a.tiny:
        a.lengths, a.test_size, a.map_resolution = [16, 32, 64], 4, 2
        a.finetune_steps = a.scratch_steps = a.batch_size = a.scratch_batch_size = 2
        a.eval_every, a.scratch_eval_every, a.scratch_length = 2, 2, 16
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    src, src_config, src_sec = _source(a.source, out)
    map_lengths = set([a.finetune_length] if a.map_lengths is None else a.map_lengths)
    pieces = set(a.only or ("evals", "finetune", "scratch"))
    common = {"test_size": a.test_size, "map_resolution": a.map_resolution}
    dmrg = {"boundary": "open", "method": "dmrg", "bond_dim": a.bond_dim, "sensor_sites": "none"}
    dmrg["couplings"] = src_config.get("couplings", "xyz")
    rows: list[dict[str, Any]] = []
    if a.tiny:
        timing = _time_pieces(a.lengths, a.batch_size, src, {**common, **dmrg})
        (out / "timings.md").write_text("\n".join(timing) + "\n")

    def row(kind: str, d: Path, length: int, steps: int, batch: int | None = None) -> None:
        """A table row; times from the run's provenance (start to finish for a run made in one
        call, else the summed wall seconds of its calls)."""
        prov = json.loads((d / "provenance.json").read_text())
        timings = prov.get("timings", {})
        wall = float(timings.get("wall_seconds", float("nan")))
        if not prov.get("resumed_at") and prov.get("finished"):
            # one call: start to finish (older runs left the initial evaluation out of
            # wall_seconds)
            began, ended = (datetime.fromisoformat(prov[k]) for k in ("started", "finished"))
            wall = (ended - began).total_seconds()
        r: dict[str, Any] = {"kind": kind, "run": d.name, "L": length, "steps": steps,
                             "batch_size": batch, "seconds": wall}  # fmt: skip
        r |= {k: _summary(d)[k] for k in ("max_choice_accuracy", "single_shot_accuracy", "loss")}
        config = tomllib.loads((d / "config.toml").read_text())
        test, grid = int(config["test_size"]), len(triangle_grid(int(config["map_resolution"])))
        r["test_size"], r["map_points"] = test, grid
        if not steps:  # the test set and the map, start-up included
            r["s_per_point"] = wall / (test + grid)
        else:
            r["s_per_step"] = float(timings.get("seconds_per_step", float("nan")))
        rows.append(r)

    def maps(length: int) -> dict[str, Any]:
        return common if length in map_lengths else {**common, "map_resolution": 2}

    if "evals" in pieces and not a.tiny:
        over = {**src_config, **common, "steps": 0, "init_from": str(src)}
        d, _ = _run("trained-setting", over, out)
        row("reference", d, int(src_config.get("chain_length", 8)), 0)
    if "evals" in pieces:
        for length in a.lengths:
            over = {**maps(length), **dmrg, "chain_length": length, "steps": 0,
                    "init_from": str(src)}  # fmt: skip
            d, _ = _run(f"eval-L{length}", over, out)
            row("eval", d, length, 0)
    n = a.finetune_length
    fine = out / "runs" / f"finetune-L{n}"
    if "finetune" in pieces:
        over = {**maps(n), **dmrg, "batch_size": a.batch_size, "eval_every": a.eval_every,
                "chain_length": n, "steps": a.finetune_steps, "init_from": str(src)}  # fmt: skip
        fine, _ = _run(fine.name, over, out)
        row("finetune", fine, n, a.finetune_steps, a.batch_size)
    n = a.scratch_length
    if "scratch" in pieces:
        over = {**maps(n), **dmrg, "batch_size": a.scratch_batch_size,
                "eval_every": a.scratch_eval_every, "chain_length": n,
                "steps": a.scratch_steps}  # fmt: skip
        scratch, _ = _run(f"scratch-L{n}", over, out)
        row("scratch", scratch, n, a.scratch_steps, a.scratch_batch_size)

    lines = [
        f"# Phase recognition on long open chains (source: {src}, trained "
        f"{src_sec:.0f} s in this call)",
        "",
        f"Test set: {a.test_size} points (test_seed of the defaults); bond dimension "
        f"{a.bond_dim}; phase maps {a.map_resolution} per side at L in {sorted(map_lengths)}.",
        "",
        "| run | L | steps | batch | max-choice | single-shot | loss | wall s | s/step | s/point |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sp = f"{r['s_per_point']:.2f}" if "s_per_point" in r else ""
        ss = f"{r['s_per_step']:.2f}" if "s_per_step" in r else ""
        lines.append(
            f"| {r['run']} | {r['L']} | {r['steps']} | {r['batch_size'] or ''} | "
            f"{r['max_choice_accuracy']:.3f} | {r['single_shot_accuracy']:.3f} | "
            f"{r['loss']:.4f} | {r['seconds']:.0f} | {ss} | {sp} |"
        )
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    (out / "timings.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    drawn = [fine, *(out / "runs" / f"eval-L{n}" for n in a.lengths if n in map_lengths)]
    drawn = [d for d in drawn if d.is_dir() and run_finished(d)]
    try:
        _figures(out, rows, drawn)
    except ImportError as e:  # matplotlib is optional
        print(f"no figures: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
