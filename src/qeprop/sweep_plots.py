"""Figures of a sweep directory (layer 5): the statistics of many runs, from their saved files.

Like :mod:`qeprop.plotting` (whose figures and style it reuses), this reads only files:
``sweep.json`` (the points, their varied values and variants) and each run directory's
``metrics.jsonl``, ``summary.json`` and ``results.npz``; it can draw while a sweep is going.
A *variant* is a point's name without its replicate keys (``seed``, ``init_seed``, ...), so the
runs of one variant differ only in their random numbers and give its statistics.

* phase-recognition: ``accuracy_curves.png`` (Fig. 2c; mean, 50 % and 80 % bands over the runs
  of each variant) and ``accuracy_histograms.png`` (Fig. 2g; final accuracy per variant);
* gradient-quality: ``overlaps.png`` (Fig. 2d, 2e; median overlap of QEP and exact gradients
  against the nudge and against the shots, bands over the batches of all runs of a variant);
* tfim-network, oscillator-network, kitaev-sensor: the learning curves of every finished run
  with its twin or readouts (``tfim_curves.png``, ``oscillator_curves.png``,
  ``kitaev_curves.png``, as :func:`qeprop.plotting.plot_runs` draws them);
* every experiment: ``sweep_KEY.png`` for each varied key that is not a replicate key (or the
  group): every numeric final metric against the key's values, one panel per metric, the mean
  over the replicates with their standard deviation as error bars and each run as a dot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import QEPError
from .plotting import (
    _OVERLAP_KEYS,
    _colours,
    _figure,
    _quantile_bands,
    _results,
    _save,
    _style,
    plot_accuracy_curves,
    plot_accuracy_histograms,
    plot_kitaev_curves,
    plot_oscillator_curves,
    plot_tfim_curves,
)
from .runs import METRICS, SUMMARY, _read_json_object
from .sweeps import RUNS, SWEEP_JSON, is_replicate

__all__ = ["plot_overlap_variants", "plot_sweep", "plot_sweep_metrics"]

#: at most this many metrics (panels) per summary figure
MAX_PANELS = 12


def _record(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / SWEEP_JSON
    rec = _read_json_object(path)
    points = rec.get("points")
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise QEPError("has no list of points: the file is damaged", where=str(path))
    return rec


def _variants(points: Sequence[Mapping[str, Any]], dirs: Mapping[str, Path]) -> dict[str, list]:
    """variant -> run directories (of the points in ``dirs``), in sweep order."""
    out: dict[str, list[Path]] = {}
    for p in points:
        if p["name"] in dirs:
            out.setdefault(str(p.get("variant") or p["name"]), []).append(dirs[p["name"]])
    return out


def plot_sweep(sweep_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw the figures of a sweep directory into ``out_dir`` (see the module docstring);
    returns the paths written. Runs that have not finished appear only in the accuracy curves
    (from their metrics so far); a sweep with no finished run yet is an error."""
    d = Path(sweep_dir)
    rec = _record(d)
    points = rec["points"]
    experiment = rec.get("experiment")
    runs = d / RUNS
    started = {p["name"]: runs / p["name"] for p in points if (runs / p["name"] / METRICS).exists()}
    done = {n: r for n, r in started.items() if (r / SUMMARY).exists()}
    out = Path(out_dir)
    written: list[Path] = []
    if experiment == "phase-recognition" and started:
        variants = _variants(points, started)
        dirs = [r for members in variants.values() for r in members]
        written.append(plot_accuracy_curves(dirs, out / "accuracy_curves.png", variants))
    if not done:
        if written:
            return written
        raise QEPError("nothing to plot yet (no run has finished)", where=str(d))
    if experiment == "phase-recognition":
        variants = _variants(points, done)
        dirs = [r for members in variants.values() for r in members]
        written.append(plot_accuracy_histograms(dirs, out / "accuracy_histograms.png", variants))
    if experiment == "gradient-quality":
        written.append(plot_overlap_variants(_variants(points, done), out / "overlaps.png"))
    curves = {
        "tfim-network": (plot_tfim_curves, "tfim_curves.png"),
        "oscillator-network": (plot_oscillator_curves, "oscillator_curves.png"),
        "kitaev-sensor": (plot_kitaev_curves, "kitaev_curves.png"),
    }
    if experiment in curves:
        draw, file = curves[str(experiment)]
        written.append(draw(list(done.values()), out / file))
    written += plot_sweep_metrics(d, out)
    return written


# ------------------------------------------------------------------------------------ Fig. 2d/e
def plot_overlap_variants(variants: Mapping[str, Sequence[Path]], path: str | Path) -> Path:
    """Gradient quality per variant (Fig. 2d, 2e) from gradient-quality runs.

    Left: median cosine overlap of the QEP and the exact gradient against the nudge β, with the
    50 % and 80 % bands over the batches of all runs of a variant. Right: the median overlap
    against the shots M, one panel per nudge of ``shot_nudges`` (runs of a variant must share
    ``nudges``, ``shots`` and ``shot_nudges``). Returns ``path``.
    """
    pooled: dict[str, dict[str, np.ndarray]] = {}
    for name, members in variants.items():
        arrays = [_results(Path(r), _OVERLAP_KEYS) for r in members]
        first = arrays[0]
        for key in ("nudges", "shots", "shot_nudges"):
            for r, a in zip(members, arrays, strict=True):
                if not np.array_equal(a[key], first[key]):
                    raise QEPError(
                        f"{key} differs from that of {members[0].name} (variant {name})",
                        where=str(r),
                    )
        pooled[name] = {
            "nudges": first["nudges"].astype(float),
            "shots": first["shots"].astype(float),
            "shot_nudges": first["shot_nudges"].astype(float),
            "vs_nudge": np.concatenate([a["overlap_vs_nudge"] for a in arrays], axis=-1),
            "vs_shots": np.concatenate([a["overlap_vs_shots"] for a in arrays], axis=-1),
        }
    if not pooled:
        raise QEPError("no finished gradient-quality runs to plot")
    panels = max(v["shot_nudges"].size for v in pooled.values())
    with _style():
        fig = _figure(figsize=(6 + 5 * panels, 4.6))
        axes = np.atleast_1d(fig.subplots(1, 1 + panels))
        colours = _colours(len(pooled))
        for (name, v), colour in zip(pooled.items(), colours, strict=True):
            ovn = v["vs_nudge"]
            label = f"{name} ({ovn.shape[1]} batches)"
            _median_and_bands(axes[0], v["nudges"], ovn, colour, label)
            for j, nudge in enumerate(v["shot_nudges"]):
                ax = axes[1 + j]
                _median_and_bands(ax, v["shots"], v["vs_shots"][j], colour, name)
                ax.set_title(rf"overlap vs shots, $\beta$ = {nudge:g}")
        axes[0].set_xscale("log")
        axes[0].set_xlabel(r"nudge $\beta$")
        axes[0].set_title("overlap vs nudge (exact expectation values)")
        for ax in axes:
            ax.set_ylabel(r"overlap $\cos\angle(g_\mathrm{QEP}, g_\mathrm{exact})$")
            ax.grid(alpha=0.3, which="both")
        for ax in axes[1:]:
            ax.set_xscale("log")
            ax.set_xlabel("shots M per expectation value")
        axes[0].legend(loc="lower left")
        fig.suptitle("Gradient quality by variant: median, 50 % and 80 % of the batches")
        return _save(fig, path)


# ------------------------------------------------------------------------------------ summary
def _median_and_bands(ax: Any, x: np.ndarray, runs: np.ndarray, colour: str, label: str) -> None:
    """The median over the columns of ``runs`` (``(len(x), n)``) against ``x``, with the 50 %
    and 80 % bands from three columns on."""
    if runs.shape[1] >= 3:
        _quantile_bands(ax, x, runs.T, colour, None)
    ax.plot(x, np.nanmedian(runs, axis=1), "o-", color=colour, lw=2, ms=4, label=label)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _finals(sweep_dir: Path, points: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """name -> numeric final metrics of each finished run (settings echoed by the experiment,
    i.e. keys of its configuration, left out)."""
    out: dict[str, dict[str, float]] = {}
    for p in points:
        path = sweep_dir / RUNS / p["name"] / SUMMARY
        if not path.exists():
            continue
        final = _read_json_object(path).get("final")
        config = p.get("config") or {}
        if isinstance(final, dict):
            nums = {k: _number(v) for k, v in final.items() if k not in config}
            out[p["name"]] = {k: v for k, v in nums.items() if v is not None}
    return out


def _key_text(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plot_sweep_metrics(sweep_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """``sweep_KEY.png`` for every varied key of the sweep that is not a replicate key (and
    ``sweep_group.png`` with several groups): each numeric final metric against the key's values
    (one panel per metric, at most :data:`MAX_PANELS`), one line per combination of the other
    varied keys, the mean over the replicates with their standard deviation as error bars, and
    each run as a dot. With only replicate keys varied, one figure against the first of them."""
    d = Path(sweep_dir)
    rec = _record(d)
    points = [p for p in rec["points"] if isinstance(p.get("name"), str)]
    finals = _finals(d, points)
    if not finals:
        raise QEPError("nothing to plot yet (no run has finished)", where=str(d))
    metrics: list[str] = []
    for f in finals.values():
        metrics += [k for k in f if k not in metrics]
    metrics = metrics[:MAX_PANELS]
    varied = [k for k in rec.get("varied", []) if isinstance(k, str)]

    def value(p: Mapping[str, Any], key: str) -> Any:
        if key == "group":
            return p.get("group") or ""
        return (p.get("config") or {}).get(key)

    axis_keys = rec.get("axes")
    if not isinstance(axis_keys, list):
        axis_keys = varied
    # keys that only groups set are drawn against the group
    axes_keys = [k for k in axis_keys if isinstance(k, str) and not is_replicate(k)]
    if rec.get("groups") and len({p.get("group") for p in points}) > 1:
        axes_keys.insert(0, "group")
    if not axes_keys and varied:
        axes_keys = varied[:1]
    out = Path(out_dir)
    written = []
    for key in axes_keys:
        others = [k for k in axes_keys if k != key]
        written.append(_metric_figure(d, points, finals, metrics, key, others, value, out))
    return written


def _metric_figure(
    d: Path,
    points: Sequence[Mapping[str, Any]],
    finals: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    key: str,
    others: Sequence[str],
    value: Any,
    out: Path,
) -> Path:
    xs_all = [value(p, key) for p in points]
    numeric = all(_number(x) is not None for x in xs_all)
    categories: list[str] = []
    if not numeric:
        for x in xs_all:
            if _key_text(x) not in categories:
                categories.append(_key_text(x))

    def x_of(p: Mapping[str, Any]) -> float:
        x = value(p, key)
        return float(x) if numeric else float(categories.index(_key_text(x)))

    series: dict[str, list[Mapping[str, Any]]] = {}
    for p in points:
        if p["name"] in finals:
            label = ", ".join(f"{k}={_key_text(value(p, k))}" for k in others) or "all runs"
            series.setdefault(label, []).append(p)
    if len(series) > len(_colours(10)):
        series = {"all runs": [p for members in series.values() for p in members]}
    positive = numeric and all(float(x) > 0 for x in xs_all)
    log = positive and max(map(float, xs_all)) / min(map(float, xs_all)) >= 20
    n = len(metrics)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    with _style():
        fig = _figure(figsize=(4.6 * cols, 3.4 * rows + 0.6))
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
        colours = _colours(len(series))
        for ax, metric in zip(axes, metrics, strict=False):
            for (label, members), colour in zip(series.items(), colours, strict=True):
                by_x: dict[float, list[float]] = {}
                for p in members:
                    v = finals[p["name"]].get(metric)
                    if v is not None:
                        by_x.setdefault(x_of(p), []).append(v)
                if not by_x:
                    continue
                xs = np.array(sorted(by_x))
                for x in xs:
                    ax.plot([x] * len(by_x[x]), by_x[x], ".", color=colour, alpha=0.35, ms=5)
                mean = np.array([np.mean(by_x[x]) for x in xs])
                std = np.array([np.std(by_x[x]) if len(by_x[x]) > 1 else 0.0 for x in xs])
                ax.errorbar(
                    xs,
                    mean,
                    yerr=std,
                    color=colour,
                    lw=1.8,
                    ls="-" if numeric else "none",  # no lines between categories
                    marker="o",
                    ms=5,
                    capsize=3,
                    label=label,
                )
            ax.set_title(metric)
            ax.set_xlabel(key)
            ax.grid(alpha=0.3)
            if log:
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
        for ax in axes[n:]:
            ax.set_visible(False)
        if len(series) > 1 or next(iter(series)) != "all runs":
            axes[0].legend(loc="best", fontsize=8)
        fig.suptitle(
            f"{d.name}: final metrics against {key} (mean ± standard deviation over seeds; "
            "dots: single runs)"
        )
        safe = "".join(c if c.isalnum() or c in "_-" else "-" for c in key)
        return _save(fig, out / f"sweep_{safe}.png")
