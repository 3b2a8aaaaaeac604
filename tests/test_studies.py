"""The study scripts under ``studies/`` on tiny settings (slow: each runs real solves)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_phase_recognition_scale_tiny_writes_its_table_and_figures(tmp_path: Path) -> None:
    """``--tiny``: the committed 8-site sensor at 16, 32 and 64 sites (dmrg), fine-tuned and
    trained from scratch for 2 steps; a second call finds every run finished and rewrites the
    same table (times come from the runs' provenance, not from the call)."""
    script = ROOT / "studies" / "phase_recognition_scale.py"
    out = tmp_path / "scale"
    cmd = [sys.executable, str(script), str(out), "--tiny"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=900)
    table = (out / "scale.md").read_text()
    for run in ("eval-L16", "eval-L32", "eval-L64", "finetune-L64", "scratch-L16"):
        assert f"| {run} |" in table
    rows = json.loads((out / "timings.json").read_text())
    assert {r["kind"] for r in rows} == {"eval", "finetune", "scratch"}
    assert all(0 <= r["max_choice_accuracy"] <= 1 and r["seconds"] > 0 for r in rows)
    assert (out / "accuracy-vs-length.png").stat().st_size > 0
    assert (out / "timings.md").read_text().count("\n") == 5  # header, rule, 3 lengths
    again = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    assert "finished earlier" in again.stdout
    assert (out / "scale.md").read_text() == table
