"""Figures from saved run directories (layer 5).

Every function here reads only the files a run directory holds (``config.toml``,
``metrics.jsonl``, ``results.npz``, ``summary.json``; see :mod:`qeprop.runs`), never a live
experiment, so figures can be redrawn at any time, also while a run is still going.

The figures follow Fig. 2 of Wanjura & Marquardt, "Quantum equilibrium propagation":

* :func:`plot_accuracy_curves` (Fig. 2c): test accuracy vs training step;
* :func:`plot_overlaps` (Fig. 2d, 2e): overlap of QEP and exact gradients vs nudge and shots;
* :func:`plot_phase_map` (Fig. 2f): the trained sensor's phase probabilities on the triangle;
* :func:`plot_accuracy_histograms` (Fig. 2g): final accuracies of many runs, per variant.

matplotlib is imported inside the functions (``import qeprop`` stays light) and only through its
object-oriented API (``matplotlib.figure.Figure`` rendered by the Agg canvas): no pyplot, so no
global figure state and no change of the user's interactive backend.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import QEPError, QEPWarning
from .runs import CONFIG, METRICS, RESULTS, SUMMARY, load_config, read_metrics, read_npz

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_accuracy_curves",
    "plot_accuracy_histograms",
    "plot_cuts",
    "plot_kitaev_curves",
    "plot_kitaev_map",
    "plot_loss_curves",
    "plot_map",
    "plot_oscillator_curves",
    "plot_oscillator_springs",
    "plot_overlaps",
    "plot_phase_map",
    "plot_runs",
    "plot_tfim_curves",
    "plot_trajectories",
]

DPI = 150
#: the three phases in the column order of ``grid_probs`` / ``test_probs`` (labels 0, 1, 2)
PHASES = ("cluster", "ferromagnet", "paramagnet")
PHASE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c")  # red, blue, green
_STYLE: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "axes.grid": False,
    "savefig.dpi": DPI,
}


# ------------------------------------------------------------------------------------ reading
def _config(run_dir: Path) -> dict[str, Any]:
    return load_config(run_dir / CONFIG)


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QEPError("file not found (has the run finished?)", where=str(path)) from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise QEPError(f"cannot read: {' '.join(str(e).split())}", where=str(path)) from None
    if not isinstance(data, dict):
        raise QEPError("expected a JSON object", where=str(path))
    return data


def _results(run_dir: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    path = run_dir / RESULTS
    if not path.exists():
        raise QEPError("file not found (has the run finished?)", where=str(path))
    data = read_npz(path, "results file")
    missing = [k for k in keys if k not in data]
    if missing:
        raise QEPError(f"no array {missing[0]!r} (has {sorted(data)})", where=str(path))
    return data


def _metric_series(run_dir: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """``{"step": steps, key: values}`` from ``metrics.jsonl`` (NaN where a record lacks one)."""
    records = read_metrics(run_dir)
    path = run_dir / METRICS
    if not records:
        raise QEPError("no evaluations recorded yet", where=str(path))
    for key in keys:
        if not any(key in r for r in records):
            raise QEPError(f"no metric {key!r} in any record", where=str(path))
    out = {"step": np.array([r["step"] for r in records], dtype=float)}
    for key in keys:
        out[key] = np.array([_number(r.get(key)) for r in records])
    order = np.argsort(out["step"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _number(value: Any) -> float:
    """A metric as a float; NaN for a missing or non-numeric (e.g. null) value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def _label(run_dir: Path) -> str:
    """The variant a run belongs to: summary["final"]["label"], config label, couplings/region."""
    if (run_dir / SUMMARY).exists():
        final = _summary(run_dir).get("final")
        if isinstance(final, dict) and final.get("label"):
            return str(final["label"])
    cfg = _config(run_dir)
    if cfg.get("label"):
        return str(cfg["label"])
    parts = [str(cfg[k]) for k in ("couplings", "training_region") if k in cfg]
    return "/".join(parts) if parts else str(cfg.get("experiment", "run"))


def _group_by_label(run_dirs: Sequence[Path]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for d in run_dirs:
        groups.setdefault(_label(d), []).append(d)
    return groups


def _given_groups(variants: Mapping[str, Sequence[str | Path]]) -> dict[str, list[Path]]:
    return {str(k): [Path(d) for d in v] for k, v in variants.items() if v}


# ------------------------------------------------------------------------------------ drawing
@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
        yield


def _figure(**kwargs: Any) -> Figure:
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def _save(fig: Figure, path: str | Path) -> Path:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=DPI)
    except OSError as e:
        raise QEPError(f"cannot write the figure: {e.strerror or e}", where=str(p)) from None
    except ValueError as e:  # an image format matplotlib does not know
        raise QEPError(f"cannot write the figure: {e}", where=str(p)) from None
    return p


_BAND_ALPHA = {80: 0.13, 50: 0.28}


def _quantile_bands(
    ax: Axes, x: np.ndarray, runs: np.ndarray, colour: str, noun: str | None
) -> None:
    """Shaded 50 % and 80 % bands of ``runs`` (n_runs, len(x)) across runs; legend entries
    "80% of <noun>" unless ``noun`` is None."""
    q10, q25, q75, q90 = np.nanquantile(runs, [0.10, 0.25, 0.75, 0.90], axis=0)
    for (lo, hi), pct in (((q10, q90), 80), ((q25, q75), 50)):
        label = f"{pct}% of {noun}" if noun else None
        ax.fill_between(x, lo, hi, color=colour, alpha=_BAND_ALPHA[pct], lw=0, label=label)


def _band_proxies(ax: Axes, noun: str) -> None:
    """Grey legend entries for the bands when several colours carry them."""
    for pct in (80, 50):
        ax.fill_between([], [], [], color="0.3", alpha=_BAND_ALPHA[pct] * 1.5, lw=0,
                        label=f"{pct}% of {noun}")  # fmt: skip


def _colours(n: int) -> list[str]:
    base = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#17becf", "#7f7f7f", "#bcbd22"]  # fmt: skip
    return [base[i % len(base)] for i in range(n)]


# ------------------------------------------------------------------------------------ Fig. 2c
ACCURACY_PANELS = (
    ("max_choice_accuracy", "max-choice accuracy (many queries)"),
    ("single_shot_accuracy", "single-shot accuracy"),
)


def plot_accuracy_curves(
    run_dirs: Sequence[str | Path],
    path: str | Path,
    variants: Mapping[str, Sequence[str | Path]] | None = None,
) -> Path:
    """Test accuracy vs training step (Fig. 2c): max-choice and single-shot panels.

    Each run is a thin line, the mean over the runs of a variant (label) a bold line, and with at
    least 3 runs the 50 % and 80 % quantile bands across runs are shaded. Runs with different
    evaluation steps are interpolated onto the steps of the longest run (up to the shortest
    run's last step). The dashed line is chance level, 1/3. ``variants`` (name -> run
    directories, e.g. the variants of a sweep) replaces the grouping by label. Returns ``path``.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise QEPError("no run directories to plot")
    keys = [k for k, _ in ACCURACY_PANELS]
    groups = _group_by_label(dirs) if variants is None else _given_groups(variants)
    series = {d: _metric_series(d, keys) for d in dirs}
    with _style():
        fig = _figure(figsize=(12, 4.6))
        axes = fig.subplots(1, 2, sharey=True)
        for (label, members), colour in zip(groups.items(), _colours(len(groups)), strict=True):
            longest = max(members, key=lambda d: len(series[d]["step"]))
            end = min(series[d]["step"][-1] for d in members)
            grid = series[longest]["step"]
            grid = grid[grid <= end]
            for ax, key in zip(axes, keys, strict=True):
                runs = []
                for d in members:
                    s, v = series[d]["step"], series[d][key]
                    ax.plot(s, v, color=colour, lw=0.7, alpha=0.35)
                    ok = np.isfinite(v)
                    runs.append(np.interp(grid, s[ok], v[ok]) if ok.any() else grid * np.nan)
                stack = np.array(runs)
                if len(members) >= 3:
                    noun = "runs" if len(groups) == 1 else None
                    _quantile_bands(ax, grid, stack, colour, noun)
                name = f"{label}: mean of {len(members)}" if len(members) > 1 else label
                ax.plot(grid, np.nanmean(stack, axis=0), color=colour, lw=2.4, label=name)
        for ax, (_, title) in zip(axes, ACCURACY_PANELS, strict=True):
            ax.axhline(1 / 3, color="0.4", ls="--", lw=1, label="chance (1/3)")
            ax.set_title(title)
            ax.set_xlabel("training step")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("test accuracy")
        if len(groups) > 1 and any(len(m) >= 3 for m in groups.values()):
            _band_proxies(axes[1], "runs (variants with >= 3 runs)")
        axes[1].legend(loc="best")
        n = len(dirs)
        fig.suptitle(f"Phase recognition: test accuracy during training ({n} run{'s' * (n > 1)})")
        return _save(fig, path)


# ------------------------------------------------------------------------------------ Fig. 2f
def _triangle_raster(
    x: np.ndarray, y: np.ndarray, values: np.ndarray, total: float, n: int = 300
) -> np.ndarray:
    """Values (m, k) at scattered (x, y) interpolated linearly onto an n x n raster over
    [0, total]^2; NaN outside the points' hull and outside the triangle x + y <= total."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    tri = Triangulation(x, y)
    xs = np.linspace(0, total, n)
    gx, gy = np.meshgrid(xs, xs)
    out = np.full((n, n, values.shape[1]), np.nan)
    for k in range(values.shape[1]):
        z = LinearTriInterpolator(tri, values[:, k])(gx, gy)
        out[..., k] = np.ma.filled(z.astype(float), np.nan)
    out[gx + gy > total * (1 + 1e-9)] = np.nan
    return out


def _draw_triangle(ax: Axes, total: float, labels: bool) -> None:
    from .models.cluster_ising import triangle_boundaries

    b = triangle_boundaries(total=total)
    ax.plot(b["outline"][:, 2], b["outline"][:, 1], color="k", lw=1.0)
    for name in ("ferromagnet_boundary", "cluster_paramagnet_boundary"):
        ax.plot(b[name][:, 2], b[name][:, 1], color="k", lw=1.6)
    if labels:
        s = total / 4
        box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75}
        for text, (gx, gzz) in (("cluster", (0.45, 1.0)), ("ferro-\nmagnet", (0.8, 2.75)),
                                ("para-\nmagnet", (2.35, 0.75))):  # fmt: skip
            ax.text(gx * s, gzz * s, text, ha="center", va="center", fontsize=10, bbox=box)
    ax.set_xlim(-0.03 * total, 1.03 * total)
    ax.set_ylim(-0.03 * total, 1.03 * total)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$g_X$")
    ax.set_ylabel(r"$g_{ZZ}$")


def plot_phase_map(run_dir: str | Path, path: str | Path) -> Path:
    """The trained sensor's phase probabilities on the triangle (Fig. 2f).

    Reads ``grid_points`` (G, 3) = (g_ZXZ, g_ZZ, g_X) and ``grid_probs`` (G, 3) = probabilities of
    the (cluster, ferromagnet, paramagnet) readouts from ``results.npz``. Axes: x = g_X,
    y = g_ZZ (g_ZXZ = total − g_X − g_ZZ). The first panel mixes the three phase colours with
    the probabilities as weights (white for the probability of no phase readout); the other
    three show each probability. Black lines: the exact phase boundaries
    (:func:`qeprop.models.cluster_ising.triangle_boundaries`). With ``test_points``,
    ``test_labels`` and ``test_probs`` saved, misclassified test points are marked. Returns
    ``path``.
    """
    d = Path(run_dir)
    res = _results(d, ["grid_points", "grid_probs"])
    pts, probs = res["grid_points"].astype(float), res["grid_probs"].astype(float)
    if pts.ndim != 2 or pts.shape[1] != 3 or probs.shape != pts.shape:
        raise QEPError(
            f"grid_points {pts.shape} and grid_probs {probs.shape} must both be (G, 3)",
            where=str(d / RESULTS),
        )
    total = float(np.round(np.mean(pts.sum(axis=1)), 9))
    x, y = pts[:, 2], pts[:, 1]
    raster = _triangle_raster(x, y, np.clip(probs, 0, 1), total)
    inside = np.isfinite(raster[..., 0])
    colours = np.array([_rgb(c) for c in PHASE_COLOURS])
    mix = raster @ colours + (1 - np.clip(raster.sum(axis=-1), 0, 1))[..., None]
    rgba = np.concatenate([np.clip(np.nan_to_num(mix), 0, 1), inside[..., None] * 1.0], axis=-1)
    extent = (0.0, total, 0.0, total)
    label = _label(d)
    with _style():
        fig = _figure(figsize=(16, 4.6))
        axes = fig.subplots(1, 4, sharex=True, sharey=True)
        ax = axes[0]
        ax.imshow(rgba, origin="lower", extent=extent, interpolation="nearest")
        _draw_triangle(ax, total, labels=True)
        ax.set_title("phase probabilities (colour mix)")
        if {"test_points", "test_labels", "test_probs"} <= set(res):
            tp, tl = res["test_points"].astype(float), res["test_labels"].astype(int)
            wrong = np.argmax(res["test_probs"], axis=1) != tl
            ax.scatter(tp[wrong, 2], tp[wrong, 1], marker="x", s=18, lw=1.0, color="k",
                       label=f"misclassified test points ({wrong.sum()}/{len(tl)})")  # fmt: skip
            ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
        image = None
        for k, ax in enumerate(axes[1:]):
            z = np.ma.masked_invalid(raster[..., k])
            image = ax.imshow(z, origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=1,
                              interpolation="nearest")  # fmt: skip
            _draw_triangle(ax, total, labels=False)
            ax.set_title(f"P({PHASES[k]})", color=PHASE_COLOURS[k])
            ax.set_ylabel("")
            ax.tick_params(labelleft=False)
        assert image is not None
        fig.colorbar(image, ax=list(axes[1:]), shrink=0.85, label="probability", pad=0.01)
        fig.suptitle(
            f"Trained sensor on the cluster-Ising triangle, {label} "
            rf"($g_{{ZXZ}} = {total:g} - g_X - g_{{ZZ}}$; black: exact phase boundaries)"
        )
        return _save(fig, path)


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return r, g, b


# ------------------------------------------------------------------------------------ Fig. 2g
def _final_accuracy(run_dir: Path) -> float:
    final = _summary(run_dir).get("final")
    if isinstance(final, dict) and isinstance(final.get("max_choice_accuracy"), int | float):
        return float(final["max_choice_accuracy"])
    raise QEPError('no "final": {"max_choice_accuracy": ...}', where=str(run_dir / SUMMARY))


def plot_accuracy_histograms(
    run_dirs: Sequence[str | Path],
    path: str | Path,
    variants: Mapping[str, Sequence[str | Path]] | None = None,
) -> Path:
    """Histograms of the final max-choice accuracy, one panel per variant (Fig. 2g).

    The variant is ``summary["final"]["label"]`` (falling back to the configured label, then to
    ``couplings/training_region``), or given as ``variants`` (name -> run directories); the
    dashed line marks each variant's median. Returns ``path``.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise QEPError("no run directories to plot")
    groups = _group_by_label(dirs) if variants is None else _given_groups(variants)
    acc = {label: np.array([_final_accuracy(d) for d in members]) for label, members in
           groups.items()}  # fmt: skip
    values = np.concatenate(list(acc.values()))
    width = 0.02
    lo = min(np.floor(values.min() / width) * width, 1 - 5 * width)
    bins = np.arange(lo, 1 + width + 1e-9, width)
    with _style():
        rows = len(groups)
        fig = _figure(figsize=(7.5, 1.2 + 1.9 * rows))
        axes = np.atleast_1d(fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0])
        for ax, (label, a), colour in zip(axes, acc.items(), _colours(rows), strict=True):
            ax.hist(a, bins=bins, color=colour, alpha=0.75, edgecolor="white", lw=0.6)
            med = float(np.median(a))
            ax.axvline(med, color="k", ls="--", lw=1.2, label=f"median {med:.3f}")
            ax.set_title(f"{label} ({len(a)} run{'s' * (len(a) > 1)})", loc="left")
            ax.set_ylabel("runs")
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend
            ax.legend(loc="upper left")
            ax.grid(alpha=0.3, axis="x")
        axes[-1].set_xlabel("final max-choice test accuracy")
        axes[-1].set_xlim(bins[0] - width, bins[-1] + 0.5 * width)
        fig.suptitle("Phase recognition: final accuracy by variant")
        return _save(fig, path)


# ------------------------------------------------------------------------------------ Fig. 2d/e
_OVERLAP_KEYS = ("nudges", "overlap_vs_nudge", "shots", "shot_nudges", "overlap_vs_shots")


def plot_overlaps(run_dir: str | Path, path: str | Path) -> Path:
    """Quality of QEP gradients (Fig. 2d, 2e) from a gradient-quality run.

    Left: cosine overlap of the batch-averaged QEP gradient with the exact gradient vs nudge β
    (log axis): median over batches, 50 % and 80 % bands, every batch as a dot. Right: histograms
    of the overlap for each number of shots M, one panel per nudge in ``shot_nudges``.
    Reads ``nudges`` (K,), ``overlap_vs_nudge`` (K, B), ``shots`` (S,), ``shot_nudges`` (2,),
    ``overlap_vs_shots`` (2, S, B) from ``results.npz``. Returns ``path``.
    """
    d = Path(run_dir)
    res = _results(d, _OVERLAP_KEYS)
    nudges, ovn = res["nudges"].astype(float), res["overlap_vs_nudge"].astype(float)
    shots, shot_nudges = res["shots"], res["shot_nudges"].astype(float)
    ovs = res["overlap_vs_shots"].astype(float)
    where = str(d / RESULTS)
    if ovn.ndim != 2 or ovn.shape[0] != nudges.size:
        raise QEPError(f"overlap_vs_nudge {ovn.shape} must be (K={nudges.size}, B)", where=where)
    if ovs.ndim != 3 or ovs.shape[:2] != (shot_nudges.size, shots.size):
        raise QEPError(
            f"overlap_vs_shots {ovs.shape} must be ({shot_nudges.size}, {shots.size}, B)",
            where=where,
        )
    with _style():
        fig = _figure(figsize=(16, 4.6))
        axes = fig.subplots(1, 1 + shot_nudges.size, width_ratios=[1.25] + [1] * shot_nudges.size)
        ax = axes[0]
        rng = np.random.default_rng(0)  # jitter of the dots only
        jitter = np.exp(rng.uniform(-0.06, 0.06, ovn.shape))
        ax.scatter((nudges[:, None] * jitter).ravel(), ovn.ravel(), s=5, color="0.55", alpha=0.35,
                   lw=0, label="single batches")  # fmt: skip
        if ovn.shape[1] >= 3:
            _quantile_bands(ax, nudges, ovn.T, "#1f77b4", "batches")
        ax.plot(nudges, np.nanmedian(ovn, axis=1), "o-", color="#1f77b4", lw=2.2, ms=4,
                label="median")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(r"nudge $\beta$")
        ax.set_ylabel(r"overlap $\cos\angle(g_\mathrm{QEP}, g_\mathrm{exact})$")
        ax.set_title("overlap vs nudge (exact expectation values)")
        lo = float(np.nanmin(ovn)) if np.isfinite(ovn).any() else 0.0
        pad = 0.06 * max(1.0 - lo, 0.01)
        ax.set_ylim(max(-1.0, lo) - pad, 1.0 + pad)  # zoom in where the overlaps lie
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower left")
        finite = ovs[np.isfinite(ovs)]
        lo = float(np.quantile(finite, 0.005)) if finite.size else -1.0
        bins = np.linspace(max(-1.0, lo - 0.02), 1.0, 41)
        import matplotlib as mpl

        cmap = mpl.colormaps["viridis"]
        shade = [cmap(0.9 * i / max(1, shots.size - 1)) for i in range(shots.size)]
        for j, ax in enumerate(axes[1:]):
            for i, m in enumerate(shots):
                v = ovs[j, i][np.isfinite(ovs[j, i])]
                ax.hist(v, bins=bins, density=True, histtype="stepfilled", alpha=0.18,
                        color=shade[i])  # fmt: skip
                ax.hist(v, bins=bins, density=True, histtype="step", lw=1.6, color=shade[i],
                        label=f"M = {m:g}, median {np.median(v):.3f}")  # fmt: skip
            ax.set_title(rf"overlap histograms, $\beta$ = {shot_nudges[j]:g}")
            ax.set_xlabel(r"overlap $\cos\angle(g_\mathrm{QEP}, g_\mathrm{exact})$")
            ax.set_ylabel("density")
            ax.legend(loc="best", title="shots per expectation value")
            ax.grid(alpha=0.3)
        fig.suptitle(f"Gradient quality: QEP vs exact gradient ({d.name})")
        return _save(fig, path)


# ------------------------------------------------------------------------------------ dispatch
def _unique_names(dirs: Sequence[Path]) -> dict[Path, str]:
    names: dict[Path, str] = {}
    used: set[str] = set()
    for d in dirs:
        base = d.resolve().name or "run"
        name, k = base, 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        names[d] = name
    return names


def plot_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    backgrounds: dict[str, dict[str, Any]] | None = None,
) -> list[Path]:
    """Draw every figure that fits the given run directories into ``out_dir``; return the paths.

    Dispatches on ``experiment`` in each ``config.toml``:

    * ``phase-recognition``: ``accuracy_curves.png`` (all runs together),
      ``accuracy_histograms.png`` (with at least 2 finished runs) and ``phase_map[_NAME].png``
      per finished run;
    * ``gradient-quality``: ``overlaps[_NAME].png`` per finished run;
    * ``phase-exploration`` / ``sensitivity``: ``<experiment>_trajectories.png`` over the map
      ``backgrounds[experiment]`` (if given), ``<experiment>_loss.png`` (all runs together) and,
      for finished sensitivity runs, ``sensitivity_cuts[_NAME].png``;
    * ``tfim-network``: ``tfim_curves.png`` (all runs together; each with its exact twin);
    * ``oscillator-network``: ``oscillator_curves.png`` (all runs together; each with its
      classical twin) and ``oscillator_springs[_NAME].png`` per finished run.

    (``_NAME``, the run directory's name, is added when there are several runs.) Runs that have
    not finished yet (no ``summary.json``) appear in the accuracy curves only; a
    :class:`~qeprop.errors.QEPWarning` says what was left out. Missing or unreadable files and
    unknown experiments raise :class:`~qeprop.errors.QEPError` naming the file.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise QEPError("no run directories to plot")
    for d in dirs:
        if not d.is_dir():
            raise QEPError("no such run directory", where=str(d))
    by_experiment: dict[str, list[Path]] = {}
    for d in dirs:
        name = _config(d).get("experiment")
        if name not in (
            "phase-recognition", "gradient-quality", "kitaev-sensor", "tfim-network",
            "oscillator-network", *UNSUPERVISED,
        ):  # fmt: skip
            raise QEPError(
                f"cannot plot experiment {name!r} (phase-recognition, gradient-quality, "
                f"kitaev-sensor, tfim-network, oscillator-network, {', '.join(UNSUPERVISED)})",
                where=str(d / CONFIG),
            )
        by_experiment.setdefault(str(name), []).append(d)
    out = Path(out_dir)
    names = _unique_names(dirs)
    several = len(dirs) > 1
    written: list[Path] = []

    def finished(members: list[Path], what: str) -> list[Path]:
        done = [d for d in members if (d / SUMMARY).exists()]
        for d in members:
            if d not in done:
                warnings.warn(f"{d}: not finished (no {SUMMARY}); {what}", QEPWarning, stacklevel=3)
        return done

    # check every file first, so that a bad run directory fails before anything is drawn
    members = by_experiment.get("phase-recognition", [])
    done = finished(members, "only its accuracy curves are drawn")
    for d in members:
        _metric_series(d, [k for k, _ in ACCURACY_PANELS])
    for d in done:
        _results(d, ["grid_points", "grid_probs"])
        if len(done) >= 2:
            _final_accuracy(d)
    gq = finished(by_experiment.get("gradient-quality", []), "nothing to draw")
    for d in gq:
        _results(d, _OVERLAP_KEYS)
    unsup = {e: by_experiment.get(e, []) for e in UNSUPERVISED if by_experiment.get(e)}
    for e, runs in unsup.items():
        for d in runs:
            _trajectory(d, e)
            _metric_series(d, ["loss"])
    cuts = finished(by_experiment.get("sensitivity", []), "its cuts are not drawn")
    for d in cuts:
        _results(d, ["cut_steps", "cut_g_x", "cut_values", "trajectory"])
    kitaev = by_experiment.get("kitaev-sensor", [])
    tfim = by_experiment.get("tfim-network", [])
    for d in tfim:
        _metric_series(d, TFIM_KEYS)
    oscillators = by_experiment.get("oscillator-network", [])
    for d in oscillators:
        _metric_series(d, OSCILLATOR_KEYS)
    springs = finished(oscillators, "only its learning curves are drawn")
    for d in springs:
        _results(d, ["params", "twin_params", "teacher_params", "param_names"])
    if not members and not gq and not unsup and not kitaev and not tfim and not oscillators:
        raise QEPError("nothing to plot yet (no run has finished)", where=str(dirs[0]))

    if members:
        written.append(plot_accuracy_curves(members, out / "accuracy_curves.png"))
        if len(done) >= 2:
            written.append(plot_accuracy_histograms(done, out / "accuracy_histograms.png"))
        for d in done:
            file = f"phase_map_{names[d]}.png" if several else "phase_map.png"
            written.append(plot_phase_map(d, out / file))
    for d in gq:
        file = f"overlaps_{names[d]}.png" if several else "overlaps.png"
        written.append(plot_overlaps(d, out / file))
    for e, runs in unsup.items():
        bg = (backgrounds or {}).get(e)
        written.append(plot_trajectories(runs, out / f"{e}_trajectories.png", bg))
        written.append(plot_loss_curves(runs, out / f"{e}_loss.png"))
    for d in cuts:
        file = f"sensitivity_cuts_{names[d]}.png" if several else "sensitivity_cuts.png"
        written.append(plot_cuts(d, out / file))
    written += _plot_kitaev_runs(kitaev, out, names, several)
    if tfim:
        written.append(plot_tfim_curves(tfim, out / "tfim_curves.png"))
    if oscillators:
        written.append(plot_oscillator_curves(oscillators, out / "oscillator_curves.png"))
        for d in springs:
            file = f"oscillator_springs_{names[d]}.png" if several else "oscillator_springs.png"
            written.append(plot_oscillator_springs(d, out / file))
    return written


# ------------------------------------------------------------------------------------ Fig. 3
#: global parameters of the unsupervised tasks and the (g_x, g_zz) paths they trace
TRAJECTORY_PATHS = {
    "phase-exploration": (("g_x", "g_zz"),),
    "sensitivity": (("g_x1", "g_zz"), ("g_x2", "g_zz")),
}
UNSUPERVISED = tuple(TRAJECTORY_PATHS)


def _trajectory(run_dir: Path, experiment: str) -> list[np.ndarray]:
    """The ``(g_x, g_zz)`` paths of a run, one ``(n, 2)`` array per point, from metrics.jsonl."""
    paths = TRAJECTORY_PATHS[experiment]
    keys = sorted({k for pair in paths for k in pair})
    series = _metric_series(run_dir, keys)
    return [np.column_stack([series[x], series[y]]) for x, y in paths]


def _draw_background(ax: Axes, background: dict[str, Any]) -> Any:
    """The map as a colour mesh (diverging, centred on 0) with the exact critical lines."""
    values = np.asarray(background["values"])
    vmax = float(np.nanmax(np.abs(values))) or 1.0
    mesh = ax.pcolormesh(background["x"], background["y"], values, cmap="RdBu_r",
                         vmin=-vmax, vmax=vmax, shading="auto", rasterized=True)  # fmt: skip
    first = True
    for key in sorted(k for k in background if str(k).startswith("boundary_")):
        line = np.asarray(background[key])
        ax.plot(line[:, 0], line[:, 1], color="k", lw=1.2,
                label="exact phase boundary (L → ∞)" if first else None)  # fmt: skip
        first = False
    spec = background["spec"]
    ax.set_xlim(*spec["x_range"])
    ax.set_ylim(*spec["y_range"])
    return mesh


def _map_title(spec: dict[str, Any]) -> str:
    what = f"⟨{spec['observable']}⟩"
    if spec.get("derivative"):
        what = f"∂{what}/∂{spec['derivative']}"
    return what


def plot_map(background: dict[str, Any], path: str | Path) -> Path:
    """A phase-diagram map alone: values, exact critical lines and phase labels."""
    spec = background["spec"]
    with _style():
        fig = _figure(figsize=(6.0, 4.8))
        ax = fig.add_subplot()
        mesh = _draw_background(ax, background)
        fig.colorbar(mesh, ax=ax, label=_map_title(spec))
        ax.contour(background["x"], background["y"], np.asarray(background["phases"]),
                   levels=[-0.5, 0.5, 1.5], colors="0.4", linewidths=0.6,
                   linestyles=":")  # fmt: skip
        ax.set_xlabel(spec["x"])
        ax.set_ylabel(spec["y"])
        fixed = ", ".join(f"{k} = {v}" for k, v in spec["fixed"].items())
        ax.set_title(f"{_map_title(spec)}: {spec['chain_length']}-site {spec['boundary']} chain, "
                     f"{fixed}")  # fmt: skip
        ax.legend(loc="upper right", framealpha=0.85)
        return _save(fig, path)


def plot_trajectories(
    run_dirs: Sequence[str | Path], path: str | Path, background: dict[str, Any] | None = None
) -> Path:
    """Trajectories in the ``(g_x, g_zz)`` plane over a phase-diagram map (Fig. 3b, 3e).

    Every run draws one path per equilibrium point (two for the sensitivity task), starting
    at ``×`` and ending at ``●``; ``background`` is a map from :mod:`qeprop.mapcache`
    (``⟨X0 X4⟩`` or its derivative, with the exact critical lines), or ``None``.
    """
    dirs = [Path(d) for d in run_dirs]
    experiment = str(_config(dirs[0]).get("experiment"))
    with _style():
        fig = _figure(figsize=(6.4, 5.0))
        ax = fig.add_subplot()
        if background is not None:
            mesh = _draw_background(ax, background)
            fig.colorbar(mesh, ax=ax, label=_map_title(background["spec"]))
            cfg = background["spec"]
            ax.set_title(
                f"{experiment}: {cfg['chain_length']}-site {cfg['boundary']} chain, "
                f"{next(iter(cfg['fixed']))} = {next(iter(cfg['fixed'].values()))}"
            )
        else:
            ax.set_title(experiment)
        colours = _colours(len(dirs))
        markers = ("-", "--")
        for d, colour in zip(dirs, colours, strict=True):
            for k, xy in enumerate(_trajectory(d, experiment)):
                name = TRAJECTORY_PATHS[experiment][k][0]
                ax.plot(xy[:, 0], xy[:, 1], markers[k % 2], color=colour, lw=1.6, marker=".",
                        ms=3, label=f"{_label(d)}: {name}")  # fmt: skip
                ax.plot(*xy[0], "x", color=colour, ms=10, mew=2.5)
                ax.plot(*xy[-1], "o", color=colour, ms=7, mec="k")
        ax.set_xlabel("g_X")
        ax.set_ylabel("g_ZZ")
        ax.legend(loc="upper right", framealpha=0.85)
        return _save(fig, path)


def plot_loss_curves(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    """Loss against step (Fig. 3c, 3f), one line per run."""
    dirs = [Path(d) for d in run_dirs]
    experiment = str(_config(dirs[0]).get("experiment"))
    with _style():
        fig = _figure(figsize=(6.0, 4.0))
        ax = fig.add_subplot()
        for d, colour in zip(dirs, _colours(len(dirs)), strict=True):
            s = _metric_series(d, ["loss"])
            ax.plot(s["step"], s["loss"], color=colour, lw=1.6, label=_label(d))
        ax.set_xlabel("step")
        ax.set_ylabel("loss L (exact, at the current couplings)")
        what = "L = -⟨X0 X4⟩" if experiment == "phase-exploration" else "L = -|Δ⟨X0 X4⟩ / Δg_X|"
        ax.set_title(f"{experiment}: {what}")
        ax.legend()
        return _save(fig, path)


def plot_cuts(run_dir: str | Path, path: str | Path) -> Path:
    """Cuts ``⟨X0 X4⟩(g_X)`` at the shared ``g_ZZ`` of several steps (Fig. 3g), with the two
    points of each step marked and the exact critical ``g_X`` of the cut dashed."""
    from .models import cluster_ising

    d = Path(run_dir)
    res = _results(d, ["cut_steps", "cut_g_x", "cut_values", "trajectory"])
    cfg = _config(d)
    traj = res["trajectory"]
    gx = res["cut_g_x"]
    with _style():
        fig = _figure(figsize=(6.4, 4.4))
        ax = fig.add_subplot()
        colours = _colours(len(res["cut_steps"]))
        for s, values, colour in zip(res["cut_steps"], res["cut_values"], colours, strict=True):
            g1, g2, zz = traj[int(s)]
            ax.plot(gx, values, color=colour, lw=1.5, label=f"step {int(s)}: g_ZZ = {zz:.2f}")
            for g in (g1, g2):
                ax.plot(g, np.interp(g, gx, values), "o", color=colour, mec="k", ms=6)
            pts = np.column_stack([np.full_like(gx, cfg["g_zxz"]), np.full_like(gx, zz), gx])
            idx = cluster_ising.phase_indices(pts, tol=1e-12)
            for j in np.flatnonzero(np.diff(idx) != 0):
                ax.axvline(0.5 * (gx[j] + gx[j + 1]), color=colour, ls=":", lw=1.0)
        ax.set_xlabel("g_X")
        ax.set_ylabel(f"⟨{cfg['observable']}⟩")
        ax.set_title(f"{_label(d)}: cuts along g_X (dotted: exact boundaries, L → ∞)")
        ax.legend(fontsize=8)
        return _save(fig, path)


# ------------------------------------------------------------------------------------ Kitaev
#: readout columns of the Kitaev sensor's ``grid_probs`` / ``test_probs``: P(A), P(B)
KITAEV_PHASES = ("A (gapped)", "B (gapless)")


def _kitaev_triangle(ax: Axes) -> None:
    """Outline of ``J_x + J_y + J_z = 1`` and the exact A/B boundaries ``J_a = 1/2``."""
    from .models.kitaev import triangle_coordinates

    corners = triangle_coordinates(np.eye(3))
    outline = np.vstack([corners, corners[:1]])
    ax.plot(outline[:, 0], outline[:, 1], color="k", lw=1.0)
    mids = triangle_coordinates(np.array([[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]]))
    inner = np.vstack([mids, mids[:1]])
    ax.plot(inner[:, 0], inner[:, 1], color="k", lw=1.8)
    for (x, y), text, ha in zip(corners, ("$J_x = 1$", "$J_y = 1$", "$J_z = 1$"),
                                ("right", "left", "center"), strict=True):  # fmt: skip
        ax.text(x + (-0.02 if ha == "right" else 0.02 if ha == "left" else 0),
                y + (0.03 if ha == "center" else -0.04), text, ha=ha, fontsize=10)  # fmt: skip
    ax.set_aspect("equal")
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.1, 0.97)
    ax.axis("off")


def plot_kitaev_map(run_dir: str | Path, path: str | Path) -> Path:
    """The trained Kitaev sensor's probability of the A readout over the triangle.

    Reads ``grid_points`` (G, 3) = (J_x, J_y, J_z) and ``grid_probs`` (G, 2) = (P(A), P(B)) and
    the test set (``test_points``, ``test_labels``, ``test_probs``) from ``results.npz``. The
    colour is ``P(Z = +1)`` of the readout qubit, interpolated linearly between the grid points;
    black lines: the outline and the exact A/B boundaries ``J_a = 1/2``; markers: the test points
    (circles A, squares B; filled white when the most probable readout is right, red when wrong;
    points off the plane ``Σ J = 1`` are drawn at their normalised couplings). Returns ``path``.
    """
    from matplotlib.tri import Triangulation

    from .models.kitaev import triangle_coordinates

    d = Path(run_dir)
    res = _results(d, ["grid_points", "grid_probs", "test_points", "test_labels", "test_probs"])
    xy = triangle_coordinates(res["grid_points"])
    p_a = res["grid_probs"][:, 0]
    txy = triangle_coordinates(res["test_points"])
    labels = res["test_labels"].astype(int)
    right = np.argmax(res["test_probs"], axis=1) == labels
    with _style():
        fig = _figure(figsize=(6.4, 5.4))
        ax = fig.add_subplot()
        mesh = ax.tripcolor(Triangulation(xy[:, 0], xy[:, 1]), p_a, shading="gouraud",
                            cmap="RdBu_r", vmin=0.0, vmax=1.0)  # fmt: skip
        fig.colorbar(mesh, ax=ax, shrink=0.8, label="P(A readout) = P(Z = +1)")
        _kitaev_triangle(ax)
        for lab, marker in ((0, "o"), (1, "s")):
            for ok, face in ((True, "white"), (False, "#d62728")):
                sel = (labels == lab) & (right == ok)
                if sel.any():
                    name = f"test {'A' if lab == 0 else 'B'}: {'right' if ok else 'wrong'}"
                    ax.scatter(txy[sel, 0], txy[sel, 1], marker=marker, s=42, c=face,
                               edgecolors="k", linewidths=1.0, zorder=3, label=name)  # fmt: skip
        ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
        s = _summary(d).get("final", {}) if (d / SUMMARY).exists() else {}
        acc = s.get("max_choice_accuracy")
        ax.set_title(
            f"{_label(d)}: "
            + (
                f"max-choice {100 * acc:.1f} % of {len(labels)} test points"
                if acc is not None
                else "trained sensor"
            )
        )
        return _save(fig, path)


def plot_kitaev_curves(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    """Test max-choice and single-shot accuracy and loss of Kitaev-sensor runs vs step."""
    dirs = [Path(d) for d in run_dirs]
    keys = ["max_choice_accuracy", "single_shot_accuracy", "loss"]
    with _style():
        fig = _figure(figsize=(12, 4.2))
        axes = fig.subplots(1, 3)
        for d, colour in zip(dirs, _colours(len(dirs)), strict=True):
            s = _metric_series(d, keys)
            for ax, key in zip(axes, keys, strict=True):
                ax.plot(s["step"], s[key], color=colour, lw=1.8, marker=".", label=_label(d))
        for ax, title in zip(axes, ("max-choice accuracy", "single-shot accuracy", "test loss"),
                             strict=True):  # fmt: skip
            ax.set_title(title)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
        for ax in axes[:2]:
            ax.axhline(0.5, color="0.4", ls="--", lw=1, label="chance (1/2)")
            ax.set_ylim(0, 1.02)
        axes[0].legend(loc="lower right")
        fig.suptitle("Kitaev phase sensor: authors' 18 test points during training")
        return _save(fig, path)


def _plot_kitaev_runs(
    dirs: Sequence[Path], out: Path, names: dict[Path, str], several: bool
) -> list[Path]:
    """``kitaev_curves.png`` (all runs) and ``kitaev_map[_NAME].png`` per finished run."""
    if not dirs:
        return []
    written = [plot_kitaev_curves(dirs, out / "kitaev_curves.png")]
    for d in dirs:
        if (d / SUMMARY).exists():
            file = f"kitaev_map_{names[d]}.png" if several else "kitaev_map.png"
            written.append(plot_kitaev_map(d, out / file))
        else:
            warnings.warn(f"{d}: not finished (no {SUMMARY}); no map", QEPWarning, stacklevel=3)
    return written


# ------------------------------------------------------------------------------------ TFIM networks
#: metrics of a tfim-network run drawn by :func:`plot_tfim_curves` (each also as exact_twin_KEY)
TFIM_KEYS = ("test_accuracy", "train_accuracy", "test_loss")


def plot_tfim_curves(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    """Learning curves of tfim-network runs and their exact twins.

    Three panels against the training step: test accuracy, train accuracy and test loss
    ``⟨C⟩`` (all from exact expectation values, ``metrics.jsonl``). Each run has one colour; its
    QEP-trained network is the solid line, its exact twin (linear-response gradients, same
    batches) the dashed one. Returns ``path``.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise QEPError("no run directories to plot")
    keys = [*TFIM_KEYS, *(f"exact_twin_{k}" for k in TFIM_KEYS)]
    titles = ("test accuracy", "train accuracy", "test loss ⟨C⟩ (mean over points)")
    with _style():
        fig = _figure(figsize=(14, 4.4))
        axes = fig.subplots(1, 3)
        many = len(dirs) > 8
        for d, colour in zip(dirs, _colours(len(dirs)), strict=True):
            s = _metric_series(d, keys)
            for ax, key in zip(axes, TFIM_KEYS, strict=True):
                ax.plot(s["step"], s[key], color=colour, lw=1.8,
                        label=None if many else f"{_label(d)}: QEP")  # fmt: skip
                ax.plot(s["step"], s[f"exact_twin_{key}"], color=colour, lw=1.4, ls="--",
                        label=None if many else f"{_label(d)}: exact twin")  # fmt: skip
        for ax, title in zip(axes, titles, strict=True):
            ax.set_title(title)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
        for ax in axes[:2]:
            ax.set_ylim(0, 1.02)
        if many:
            axes[0].plot([], [], color="0.3", lw=1.8, label="QEP (solid)")
            axes[0].plot([], [], color="0.3", lw=1.4, ls="--", label="exact twin (dashed)")
        axes[0].legend(loc="lower right", fontsize=8)
        n = len(dirs)
        fig.suptitle(
            f"Transverse-field Ising network: QEP training and its exact twin "
            f"({n} run{'s' * (n > 1)})"
        )
        return _save(fig, path)


# ------------------------------------------------------------------------------------ oscillators
OSCILLATOR_KEYS = ("test_loss", "twin_test_loss", "spring_difference")


def plot_oscillator_curves(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    """Learning curves of oscillator-network runs and their classical twins.

    Two panels against the training step (``metrics.jsonl``): the test loss of the quantum
    network trained by QEP (solid) and of its classical twin trained by classical EP on the
    same batches (dashed), on a log scale; and ``spring_difference``, the relative distance
    ``||k - k_twin|| / ||k_twin||`` between the two networks' springs. Each run has one
    colour. Returns ``path``.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise QEPError("no run directories to plot")
    with _style():
        fig = _figure(figsize=(11, 4.4))
        ax_loss, ax_diff = fig.subplots(1, 2)
        many = len(dirs) > 8
        for d, colour in zip(dirs, _colours(len(dirs)), strict=True):
            s = _metric_series(d, OSCILLATOR_KEYS)
            label = None if many else _oscillator_label(d)
            ax_loss.plot(s["step"], s["test_loss"], color=colour, lw=1.8,
                         label=None if label is None else f"{label}: quantum (QEP)")  # fmt: skip
            ax_loss.plot(s["step"], s["twin_test_loss"], color=colour, lw=1.4, ls="--",
                         label=None if label is None else f"{label}: classical twin")  # fmt: skip
            ax_diff.plot(s["step"], s["spring_difference"], color=colour, lw=1.6, label=label)
        ax_loss.set_yscale("log")
        ax_loss.set_title("test loss")
        ax_diff.set_title("springs: ‖k − k_twin‖ / ‖k_twin‖")
        for ax in (ax_loss, ax_diff):
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3, which="both")
        if many:
            ax_loss.plot([], [], color="0.3", lw=1.8, label="quantum, QEP (solid)")
            ax_loss.plot([], [], color="0.3", lw=1.4, ls="--", label="classical twin (dashed)")
        ax_loss.legend(fontsize=8)
        n = len(dirs)
        fig.suptitle(
            f"Oscillator network: QEP training and its classical twin ({n} run{'s' * (n > 1)})"
        )
        return _save(fig, path)


def _oscillator_label(run_dir: Path) -> str:
    cfg = _config(run_dir)
    if cfg.get("label"):
        return str(cfg["label"])
    return f"ħ={cfg['hbar']}" if "hbar" in cfg else run_dir.name


def plot_oscillator_springs(run_dir: str | Path, path: str | Path) -> Path:
    """The trained springs of one finished oscillator-network run, and its test outputs.

    Left: the spring constants ``k_s`` of the quantum network (QEP), of its classical twin and
    of the teacher that made the targets, per spring (``results.npz``: ``params``,
    ``twin_params``, ``teacher_params``, ``param_names``). Right: the quantum network's test
    outputs against their targets (``test_outputs``, ``test_targets``: squared distances of
    the output pairs, one colour per output), with the diagonal. Returns ``path``.
    """
    d = Path(run_dir)
    r = _results(
        d,
        ["params", "twin_params", "teacher_params", "param_names", "test_outputs", "test_targets"],
    )
    names = [str(n) for n in r["param_names"]]
    x = np.arange(len(names))
    with _style():
        fig = _figure(figsize=(13, 4.6))
        ax_k, ax_y = fig.subplots(1, 2, width_ratios=(1.8, 1))
        width = 0.27
        for shift, key, label, colour in (
            (-width, "teacher_params", "teacher", "0.55"),
            (0.0, "twin_params", "classical twin (EP)", "#1f77b4"),
            (width, "params", "quantum network (QEP)", "#d62728"),
        ):
            ax_k.bar(x + shift, r[key], width, label=label, color=colour)
        ax_k.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax_k.set_ylabel("spring constant k")
        ax_k.set_title("trained springs")
        ax_k.legend(fontsize=8)
        ax_k.grid(alpha=0.3, axis="y")
        y, t = np.asarray(r["test_outputs"]), np.asarray(r["test_targets"])
        for j, colour in zip(range(y.shape[1]), _colours(y.shape[1]), strict=True):
            ax_y.scatter(t[:, j], y[:, j], s=14, color=colour, label=f"output {j}")
        lo, hi = float(min(t.min(), y.min())), float(max(t.max(), y.max()))
        ax_y.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls=":")
        ax_y.set_xlabel("target")
        ax_y.set_ylabel("quantum network ⟨output⟩")
        ax_y.set_title("test set")
        ax_y.legend(fontsize=8)
        ax_y.grid(alpha=0.3)
        fig.suptitle(f"Oscillator network {_oscillator_label(d)}: springs after training")
        return _save(fig, path)
