"""Phase exploration and sensitivity optimisation (Wanjura & Marquardt Fig. 3), maps and CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qeprop.cli import main
from qeprop.errors import ProblemError
from qeprop.experiments import get_experiment
from qeprop.experiments.unsupervised import PHASE_EXPLORATION, SENSITIVITY
from qeprop.mapcache import cached_map
from qeprop.maps import MapSpec, compute_map
from qeprop.models import cluster_ising
from qeprop.runs import read_metrics, resume_run, start_run


def _drive(exp: Any, **overrides: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run an experiment in memory: (metrics per step, final summary)."""
    config = exp.resolve(overrides)
    state = exp.init(config)
    records = [{"step": 0, **exp.evaluate(config, state)}]
    for _ in range(config["steps"]):
        state = exp.step(config, state)
        records.append({"step": state.step, **exp.evaluate(config, state)})
    return records, exp.finish(config, state)[0]


@pytest.fixture(scope="module")
def exploration() -> dict[int, tuple[list[dict[str, Any]], dict[str, Any]]]:
    return {s: _drive(PHASE_EXPLORATION, start=s) for s in (1, 2)}


@pytest.fixture(scope="module")
def sensitivity() -> dict[int, tuple[list[dict[str, Any]], dict[str, Any]]]:
    return {s: _drive(SENSITIVITY, start=s, steps=60, cut_points=11) for s in (1, 2)}


@pytest.mark.parametrize("start", [1, 2])
def test_exploration_goes_to_gzz_zero_and_into_the_paramagnet(exploration, start: int) -> None:
    records, final = exploration[start]
    losses = np.array([r["loss"] for r in records])
    # exact loss, normalised steps of 0.1 on a smooth landscape: strictly decreasing
    assert np.all(np.diff(losses) < 0)
    assert abs(final["g_zz"]) < 1e-3
    assert final["phases"] == ["paramagnet"]
    assert final["y_chain"] > 0.98
    # QEP (one-sided, nudge 0.1, no shots) against exact linear response at every step
    cos = [r["gradient_cosine"] for r in records if "gradient_cosine" in r]
    assert len(cos) == 30 and min(cos) >= 0.99


@pytest.mark.parametrize("start", [1, 2])
def test_sensitivity_ends_at_the_phase_boundary(sensitivity, start: int) -> None:
    records, final = sensitivity[start]
    losses = np.array([r["loss"] for r in records])
    apart = np.array([abs(r["g_x1"] - r["g_x2"]) >= 0.1 for r in records])
    approach = losses[: int(np.argmin(apart)) + 1] if not apart.all() else losses
    # approach (points >= 0.1 apart): decreasing up to 0.05 (normalised steps of 0.1 overshoot
    # a little); then the points straddle the boundary within ~0.02 of each other and the
    # secant jitters (edge-state level crossings of the open chain), but stays far below start
    assert len(approach) >= 8 and np.all(np.diff(approach) < 0.05)
    assert losses[0] - np.median(losses[-20:]) > 1.0
    # both points within 0.1 (Euclidean, in the (g_x, g_zz) plane) of an exact L -> inf
    # critical line; the finite-size shift of the 10-site maximum slope is in docs/unsupervised.md
    assert max(final["boundary_distance"]) < 0.1


def test_sensitivity_qep_gradient_agrees_while_the_points_are_apart(sensitivity) -> None:
    """Cosine with linear response >= 0.99 wherever |g_x1 - g_x2| >= 0.4. Closer together the
    two ~1/|Δ| terms of eq. 8-9 cancel and the O(β) bias of one-sided nudging at β = 0.1
    dominates: measured 0.95-0.99 down to |Δ| ~ 0.1, lower when the points meet (docs)."""
    for records, _ in sensitivity.values():
        apart = [
            r["gradient_cosine"]
            for prev, r in itertools.pairwise(records)
            if abs(prev["g_x1"] - prev["g_x2"]) >= 0.4
        ]
        assert len(apart) >= 8 and min(apart) >= 0.99


def test_sensitivity_cuts(sensitivity) -> None:
    config = SENSITIVITY.resolve({"steps": 3, "cut_points": 7})
    hist = np.array([[-0.2, -1.5, -1.5], [-0.3, -1.4, -1.4], [-0.4, -1.3, -1.3]])
    cuts = SENSITIVITY.cuts(config, hist, count=2)
    assert cuts["cut_steps"].tolist() == [0, 2]
    assert cuts["cut_values"].shape == (2, 7)
    assert np.all(np.abs(cuts["cut_values"]) <= 1 + 1e-12)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("start", 3, "starting points"),
        ("initial", [0.1], "finite numbers"),
        ("observable", "X0 X12", "beyond"),
        ("observable", "Q3", "observable"),
        ("map_x", [1.0, -1.0], "lo < hi"),
        ("estimator", "cost_observable", "must be one of"),
        ("nudge", float("nan"), "finite"),
        ("bogus", 1, "unknown key"),
    ],
)
def test_config_errors(key: str, value: Any, match: str) -> None:
    with pytest.raises(ProblemError, match=match):
        SENSITIVITY.resolve({key: value})


def test_registered_and_custom_start() -> None:
    assert get_experiment("phase-exploration") is PHASE_EXPLORATION
    assert get_experiment("sensitivity") is SENSITIVITY
    cfg = PHASE_EXPLORATION.resolve({"initial": [0.5, -0.5]})
    assert PHASE_EXPLORATION.start_point(cfg).tolist() == [0.5, -0.5]


def test_run_resume_and_plot(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run interrupted mid-way and resumed equals an uninterrupted one; plot draws Fig. 3."""
    small = {"steps": 6, "start": 2, "cut_points": 5, "map_resolution": 4, "chain_length": 6,
             "observable": "X0 X4"}  # fmt: skip
    ref = start_run("sensitivity", small, tmp_path / "ref", progress=False)
    exp = SENSITIVITY
    calls = {"n": 0}
    original = type(exp).step

    def flaky(self: Any, config: dict[str, Any], state: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, config, state)

    monkeypatch.setattr(type(exp), "step", flaky)
    from qeprop.runs import RunInterrupted

    with pytest.raises(RunInterrupted):
        start_run("sensitivity", small, tmp_path / "cut", progress=False)
    monkeypatch.setattr(type(exp), "step", original)
    resume_run(tmp_path / "cut", progress=False)
    assert read_metrics(tmp_path / "cut") == read_metrics(ref)
    a = np.load(ref / "results.npz")
    b = np.load(tmp_path / "cut" / "results.npz")
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
    rec = read_metrics(ref)[-1]
    assert {"step", "loss", "g_x1", "g_x2", "g_zz"} <= set(rec)
    assert json.loads((ref / "summary.json").read_text())["steps"] == 6
    capsys.readouterr()
    cache = tmp_path / "cache"
    assert main(["plot", str(ref), "--out", str(tmp_path / "plots"), "--cache", str(cache)]) == 0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["sensitivity_cuts.png", "sensitivity_loss.png", "sensitivity_trajectories.png"]
    assert "computing the map" in capsys.readouterr().err
    # the second time the cached map is used
    assert main(["plot", str(ref), "--out", str(tmp_path / "plots2"), "--cache", str(cache)]) == 0
    assert "computing" not in capsys.readouterr().err


def test_slice_boundaries_are_critical() -> None:
    """Every point of the exact critical lines has a zero of f on the unit circle."""
    lines = cluster_ising.slice_boundaries({"g_zxz": -0.5}, "g_x", "g_zz", (-3, 3), (-2, 2))
    assert len(lines) == 3
    for line in lines:
        pts = np.column_stack([np.full(len(line), -0.5), line[:, 1], line[:, 0]])
        assert np.all(cluster_ising.phase_indices(pts, tol=1e-6) == -1)
    other = cluster_ising.slice_boundaries({"g_zz": 1.0}, "g_zxz", "g_x", (-2, 2), (-2, 2))
    for line in other:
        pts = np.column_stack([line[:, 0], np.ones(len(line)), line[:, 1]])
        assert np.all(cluster_ising.phase_indices(pts, tol=1e-6) == -1)


def test_map_values_and_derivative() -> None:
    """Map entries equal direct solves; the derivative map equals central differences of the
    value map's function (h = 1e-5: error ~1e-9)."""
    spec = MapSpec(chain_length=6, resolution=3, x_range=(-1.0, 1.0), y_range=(-1.0, 1.0))
    m = compute_map(spec)
    d = compute_map(MapSpec(**{**spec.as_dict(), "derivative": "g_x"}))
    h = 1e-5
    for i, v in enumerate(m["y"]):
        for j, u in enumerate(m["x"]):
            up = compute_map(
                MapSpec(
                    **{
                        **spec.as_dict(),
                        "resolution": 2,
                        "x_range": (u + h, u + 2 * h),
                        "y_range": (v, v + 1),
                    }
                )
            )
            base = {**spec.as_dict(), "resolution": 2, "y_range": (v, v + 1)}
            down = compute_map(MapSpec(**{**base, "x_range": (u - h, u)}))
            fd = (up["values"][0, 0] - down["values"][0, 0]) / (2 * h)
            assert d["values"][i, j] == pytest.approx(fd, abs=1e-6)
    assert m["phases"].shape == (3, 3)


def test_map_cache_and_cli(tmp_path: Path, capsys) -> None:
    spec = MapSpec(chain_length=5, resolution=3, observable="X0 X2")
    data, path, computed = cached_map(spec, tmp_path)
    assert computed and path.exists()
    again, path2, computed2 = cached_map(spec, tmp_path)
    assert not computed2 and path2 == path
    np.testing.assert_array_equal(again["values"], data["values"])
    assert again["spec"]["observable"] == "X0 X2"
    sets = ["chain_length=5", "resolution=3", "observable=X0 X2"]
    argv = ["map", *[a for s in sets for a in ("--set", s)], "--cache", str(tmp_path)]
    argv += ["--plot", str(tmp_path / "m.png")]
    assert main(argv) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(path), str(tmp_path / "m.png")]
    assert main(["map", "--set", "resolution=1", "--cache", str(tmp_path)]) == 2
    assert "resolution" in capsys.readouterr().err
    assert main(["map", "--set", "colour=red", "--cache", str(tmp_path)]) == 2
    assert "unknown map setting" in capsys.readouterr().err
