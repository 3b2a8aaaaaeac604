"""Summarise the β-sign study of the tfim-network experiment into docs/results/tfim-network.md.

Reads the sweep directory written by `qeprop sweep examples/sweeps/tfim-network.toml --out
runs/tfim-network` (run directories SWEEP_DIR/runs/NAME: summary.json, config.toml,
metrics.jsonl, provenance.json), writes the tables of final accuracies per nudging variant and
nudge size between the markers `<!-- study:begin -->` and `<!-- study:end -->` of the document,
and copies the small per-run files (no arrays) next to it (DOC without .md/NAME/) so that every
number can be checked.

Usage: .venv/bin/python studies/summarize_tfim_network.py [SWEEP_DIR] [DOC]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tomllib
from pathlib import Path

VARIANTS = ("positive", "negative", "centered")
BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"
KEEP = ("summary.json", "config.toml", "metrics.jsonl", "provenance.json")


def _runs(sweep: Path) -> list[dict]:
    """Every finished run: its configuration, final metrics and CPU-side timings."""
    out = []
    for d in sorted((sweep / "runs").iterdir()):
        if not (d / "summary.json").exists():
            continue
        final = json.loads((d / "summary.json").read_text())["final"]
        cfg = tomllib.loads((d / "config.toml").read_text())
        prov = json.loads((d / "provenance.json").read_text())
        out.append({"dir": d, "group": d.name.split(",")[0], "cfg": cfg, "final": final,
                    "seconds": prov["timings"]["wall_seconds"]})  # fmt: skip
    return out


def _pm(values: list[float], percent: bool = True, digits: int = 1) -> str:
    """Mean ± sample standard deviation (in % for accuracies)."""
    scale = 100.0 if percent else 1.0
    if not values:
        return "–"
    mean = scale * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def tables(runs: list[dict]) -> str:
    lines = []
    default = [r for r in runs if r["group"] == "default"]
    seeds = sorted({r["cfg"]["seed"] for r in default})
    lines += [
        "Final test accuracy (%) of the QEP-trained network / its exact twin, per seed "
        f"(β = {default[0]['cfg']['nudge'] if default else '?'}, M = "
        f"{default[0]['cfg']['shots'] if default else '?'} shots):",
        "",
        "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd QEP | "
        "mean ± sd exact twin | mean QEP − twin (pp) | largest QEP − twin (pp) |",
        "|---|" + "---:|" * (len(seeds) + 4),
    ]
    for v in VARIANTS:
        rs = {r["cfg"]["seed"]: r for r in default if r["cfg"]["variant"] == v}
        cells = []
        for s in seeds:
            f = rs[s]["final"] if s in rs else None
            cells.append(
                f"{100 * f['test_accuracy']:.1f} / {100 * f['exact_twin_test_accuracy']:.1f}"
                if f
                else "–"
            )
        qep = [r["final"]["test_accuracy"] for r in rs.values()]
        twin = [r["final"]["exact_twin_test_accuracy"] for r in rs.values()]
        diff = [100 * (a - b) for a, b in zip(qep, twin, strict=True)]
        mean = f"{statistics.fmean(diff):+.1f}" if diff else "–"
        worst = f"{max(diff, key=abs):+.1f}" if diff else "–"
        lines.append(
            f"| {v} | " + " | ".join(cells) + f" | {_pm(qep)} | {_pm(twin)} | {mean} | {worst} |"
        )
    lines += [
        "",
        "All runs by nudge size (mean ± sd over seeds; accuracies in %; `train loss` = mean "
        "⟨C⟩ over the training set, exact; `twin distance` = ‖θ_QEP − θ_twin‖ at the end):",
        "",
        "| nudge β | variant | seeds | test QEP | test exact twin | train QEP | train twin | "
        "train loss ⟨C⟩ QEP | train loss twin | twin distance |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nudges = sorted({r["cfg"]["nudge"] for r in runs})
    for b in nudges:
        for v in VARIANTS:
            rs = [r for r in runs if r["cfg"]["nudge"] == b and r["cfg"]["variant"] == v]
            if not rs:
                continue
            f = [r["final"] for r in rs]
            lines.append(
                f"| {b:g} | {v} | {len(rs)} | {_pm([x['test_accuracy'] for x in f])} | "
                f"{_pm([x['exact_twin_test_accuracy'] for x in f])} | "
                f"{_pm([x['train_accuracy'] for x in f])} | "
                f"{_pm([x['exact_twin_train_accuracy'] for x in f])} | "
                f"{_pm([x['train_loss'] for x in f], percent=False, digits=2)} | "
                f"{_pm([x['exact_twin_train_loss'] for x in f], percent=False, digits=2)} | "
                f"{_pm([x['twin_distance'] for x in f], percent=False, digits=2)} |"
            )
    secs = [r["seconds"] for r in runs]
    lines += [
        "",
        f"{len(runs)} runs; wall time per run {min(secs):.0f}–{max(secs):.0f} s "
        f"(two at a time on the two cores, sharing them with other work).",
    ]
    return "\n".join(lines)


def main(sweep: Path, doc: Path) -> None:
    runs = _runs(sweep)
    if not runs:
        raise SystemExit(f"no finished runs in {sweep}/runs")
    text = tables(runs)
    print(text)
    body = doc.read_text()
    if BEGIN not in body or END not in body:
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} markers")
    head, rest = body.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    keep = doc.with_suffix("")
    for r in runs:
        target = keep / "runs" / r["dir"].name
        target.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            shutil.copyfile(r["dir"] / name, target / name)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        Path(args[0]) if args else Path("runs/tfim-network"),
        Path(args[1]) if len(args) > 1 else Path("docs/results/tfim-network.md"),
    )
