"""Figures from saved run directories: synthetic run directories written per the contract
(config.toml, metrics.jsonl, results.npz, summary.json), plotted through the library and the
command line; matplotlib stays out of ``import qeprop.runs``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qeprop.cli import main
from qeprop.errors import QEPError, QEPWarning
from qeprop.plotting import plot_accuracy_curves, plot_accuracy_histograms, plot_runs
from qeprop.runs import dump_toml

MIN_PNG_BYTES = 10_000


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def triangle_grid(total: float = 4.0, n: int = 25) -> np.ndarray:
    """Points (g_zxz, g_zz, g_x) of a regular grid on the triangle sum = total."""
    pts = [
        (total - gx - gzz, gzz, gx)
        for i, gx in enumerate(np.linspace(0, total, n))
        for gzz in np.linspace(0, total, n)[: n - i]
    ]
    return np.clip(np.array(pts), 0, None)


def sensor_probs(pts: np.ndarray, sharpness: float, rng: np.random.Generator) -> np.ndarray:
    """Soft (cluster, ferro, para) probabilities around the exact boundaries, summing to < 1."""
    g_zxz, g_zz, g_x = pts.T
    p_fm = _sigmoid(sharpness * (g_zz - 2.0))
    p_cl = (1 - p_fm) * _sigmoid(sharpness * (g_zxz - g_x))
    p_pm = 1 - p_fm - p_cl
    probs = 0.9 * np.stack([p_cl, p_fm, p_pm], axis=1) + 0.03 * rng.random((len(pts), 3))
    return probs


def write_phase_run(
    d: Path, seed: int, label: str = "xyz/full", steps: int = 400, finished: bool = True
) -> Path:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    couplings, region = label.split("/")
    config = {
        "experiment": "phase-recognition",
        "steps": steps,
        "batch_size": 10,
        "shots": 10,
        "nudge": 0.4,
        "learning_rate": 0.01,
        "seed": seed,
        "couplings": couplings,
        "training_region": region,
        "chain_length": 8,
        "boundary": "periodic",
        "eval_every": 20,
        "label": "",
    }
    (d / "config.toml").write_text(dump_toml(config), encoding="utf-8")
    rate = rng.uniform(0.006, 0.02)
    final_mc = rng.uniform(0.8, 0.97)
    lines = []
    for s in range(0, steps + 1, 20):
        mc = 1 / 3 + (final_mc - 1 / 3) * (1 - np.exp(-rate * s)) + rng.normal(0, 0.02)
        ss = 1 / 3 + (0.75 * final_mc - 1 / 3) * (1 - np.exp(-rate * s)) + rng.normal(0, 0.015)
        loss = 0.7 * np.exp(-rate * s) + 0.1 + rng.normal(0, 0.01)
        rec = {
            "step": s,
            "max_choice_accuracy": float(np.clip(mc, 0, 1)),
            "single_shot_accuracy": float(np.clip(ss, 0, 1)),
            "loss": float(loss),
            "train_loss": float(loss + 0.02),
        }
        lines.append(json.dumps(rec))
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not finished:
        return d
    grid = triangle_grid()
    test = triangle_grid(n=15)
    test_labels = np.where(test[:, 1] > 2, 1, np.where(test[:, 0] > test[:, 2], 0, 2))
    np.savez(
        d / "results.npz",
        params=rng.normal(size=51),
        param_names=np.array([f"J{i}" for i in range(51)]),
        grid_points=grid,
        grid_probs=sensor_probs(grid, 3.0 + 3 * seed, rng),
        test_points=test,
        test_labels=test_labels,
        test_probs=sensor_probs(test, 3.0 + 3 * seed, rng),
    )
    summary = {
        "experiment": "phase-recognition",
        "steps": steps,
        "final": {
            "max_choice_accuracy": float(np.clip(final_mc + rng.normal(0, 0.01), 0, 1)),
            "single_shot_accuracy": 0.75 * final_mc,
            "loss": 0.1,
            "couplings": couplings,
            "training_region": region,
            "label": label,
        },
    }
    (d / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return d


def write_gradient_run(d: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    config = {"experiment": "gradient-quality", "seed": seed, "batches": 200}
    (d / "config.toml").write_text(dump_toml(config), encoding="utf-8")
    (d / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1}\n', encoding="utf-8")
    nudges = np.logspace(-3, 0.5, 12)
    b = 200
    err = 0.002 + 0.3 * nudges**2
    ovn = np.clip(1 - err[:, None] * rng.lognormal(0, 0.6, (nudges.size, b)), -1, 1)
    shots = np.array([1, 10, 100, 1000])
    shot_nudges = np.array([0.1, 0.4])
    spread = 1.5 / np.sqrt(shots)[None, :, None] / shot_nudges[:, None, None]
    ovs = np.clip(1 - np.abs(rng.normal(0, 1, (2, shots.size, b))) * 0.2 * spread, -1, 1)
    np.savez(
        d / "results.npz",
        nudges=nudges,
        overlap_vs_nudge=ovn,
        shots=shots,
        shot_nudges=shot_nudges,
        overlap_vs_shots=ovs,
    )
    summary = {"experiment": "gradient-quality", "steps": 1, "final": {"median_overlap": 0.99}}
    (d / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("runs")
    phase = [write_phase_run(root / f"pr{i}", seed=i) for i in range(3)]
    other = [write_phase_run(root / f"xz{i}", seed=7 + i, label="xz/full") for i in range(2)]
    return {"phase": phase, "other": other, "gradient": [write_gradient_run(root / "gq")]}


@pytest.fixture(scope="module")
def plotted(runs: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """plot_runs on 3 phase-recognition runs and 1 gradient-quality run."""
    out = tmp_path_factory.mktemp("plots")
    return plot_runs([*runs["phase"], *runs["gradient"]], out)


def assert_png(path: Path) -> None:
    assert path.exists(), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > MIN_PNG_BYTES, (path, path.stat().st_size)


def test_plot_runs_dispatches_on_experiment(plotted: list[Path]) -> None:
    names = sorted(p.name for p in plotted)
    assert names == sorted(
        [
            "accuracy_curves.png",
            "accuracy_histograms.png",
            "phase_map_pr0.png",
            "phase_map_pr1.png",
            "phase_map_pr2.png",
            "overlaps_gq.png",
        ]
    )
    assert len({p.parent for p in plotted}) == 1
    for p in plotted:
        assert_png(p)


def test_single_run_gets_curves_and_map_only(runs: dict[str, list[Path]], tmp_path: Path) -> None:
    single = plot_runs(runs["phase"][:1], tmp_path / "one")
    assert [p.name for p in single] == ["accuracy_curves.png", "phase_map.png"]
    for p in single:
        assert_png(p)


def test_figures_of_several_variants(runs: dict[str, list[Path]], tmp_path: Path) -> None:
    """Two labels (3 + 2 runs): one colour each in the curves, one histogram panel each."""
    dirs = [*runs["phase"], *runs["other"]]
    assert_png(plot_accuracy_curves(dirs, tmp_path / "curves.png"))
    assert_png(plot_accuracy_histograms(dirs, tmp_path / "hist.png"))


def test_cli_plot(runs: dict[str, list[Path]], tmp_path: Path, capsys, monkeypatch) -> None:
    gq = runs["gradient"][0]
    assert main(["plot", str(gq)]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(gq / "plots" / "overlaps.png")]
    assert_png(Path(out[0]))
    assert main(["plot", str(gq), "--out", str(tmp_path / "elsewhere")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "elsewhere" / "overlaps.png")
    # several directories go to ./plots by default; a run still going gets its curves only
    running = write_phase_run(tmp_path / "running", seed=1, finished=False)
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(running), str(gq)]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == ["plots/accuracy_curves.png", "plots/overlaps_gq.png"]
    assert captured.err.startswith("qeprop: warning: ") and "not finished" in captured.err
    for p in captured.out.split():
        assert_png(tmp_path / p)


def test_nothing_finished_is_an_error(tmp_path: Path) -> None:
    d = write_gradient_run(tmp_path / "gq")
    (d / "summary.json").unlink()
    with pytest.warns(QEPWarning, match="not finished"), pytest.raises(QEPError, match="yet"):
        plot_runs([d], tmp_path / "plots")
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize(
    ("breakage", "expect"),
    [
        ("no-config", "config.toml"),
        ("bad-experiment", "config.toml"),
        ("no-results", "results.npz"),
        ("no-grid", "grid_probs"),
        ("no-metrics", "metrics.jsonl"),
        ("not-a-dir", "no such run directory"),
    ],
)
def test_missing_files_give_clear_errors(tmp_path: Path, capsys, breakage: str, expect: str):
    d = write_phase_run(tmp_path / "r", seed=0)
    if breakage == "no-config":
        (d / "config.toml").unlink()
    elif breakage == "bad-experiment":
        (d / "config.toml").write_text('experiment = "nonsense"\n', encoding="utf-8")
    elif breakage == "no-results":
        (d / "results.npz").unlink()
    elif breakage == "no-grid":
        np.savez(d / "results.npz", grid_points=np.zeros((3, 3)))
    elif breakage == "no-metrics":
        (d / "metrics.jsonl").unlink()
    elif breakage == "not-a-dir":
        d = tmp_path / "nowhere"
    with pytest.raises(QEPError, match=expect):
        plot_runs([d], tmp_path / "plots")
    code = main(["plot", str(d)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("qeprop: error: ") and err.count("\n") == 1
    assert expect in err and "Traceback" not in err


def test_runs_and_cli_do_not_import_matplotlib() -> None:
    code = (
        "import sys, qeprop.runs, qeprop.cli, qeprop.plotting\n"
        "print(any(m == 'matplotlib' or m.startswith('matplotlib.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
