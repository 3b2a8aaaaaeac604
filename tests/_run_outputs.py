"""What a run directory must reproduce byte for byte (shared by the run and sweep tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def outputs(d: Path) -> dict[str, Any]:
    """What must be byte-identical between a disturbed and an undisturbed run."""
    with np.load(d / "results.npz", allow_pickle=False) as z:
        arrays = {k: (z[k].dtype.str, z[k].shape, z[k].tobytes()) for k in z.files}
    return {
        "metrics": (d / "metrics.jsonl").read_bytes(),
        "summary": (d / "summary.json").read_bytes(),
        "results": arrays,
    }
