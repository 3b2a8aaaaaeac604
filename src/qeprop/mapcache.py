"""Phase-diagram maps cached on disk (layer 5).

A map (:func:`qeprop.maps.compute_map`) takes a minute or so; it depends only on its
:class:`~qeprop.maps.MapSpec` and the package version, whose hash names the file::

    <cache>/maps/<key>.npz     x, y, values, phases, gaps, boundary_<i>, spec (JSON text)

The cache directory is ``--cache DIR``, else ``$QEPROP_CACHE``, else
``$XDG_CACHE_HOME/qeprop`` (``~/.cache/qeprop``). Files are written atomically, so an
interrupted computation leaves no partial map behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import QEPError
from .maps import MapSpec, compute_map
from .runs import _write_npz, read_npz

__all__ = ["cached_map", "default_cache_dir", "load_map", "map_path"]


def default_cache_dir() -> Path:
    if os.environ.get("QEPROP_CACHE"):
        return Path(os.environ["QEPROP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qeprop"


def map_path(spec: MapSpec, cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "maps" / f"{spec.key()}.npz"


def load_map(path: str | Path) -> dict[str, Any]:
    """Arrays of a saved map plus ``"spec"`` (a dict)."""
    p = Path(path)
    out: dict[str, Any] = dict(read_npz(p, "map"))
    if "spec" not in out or "values" not in out or out["spec"].dtype.kind != "U":
        raise QEPError("not a qeprop map (no 'spec' or 'values')", where=str(p))
    try:
        spec = json.loads(str(out["spec"]))
    except ValueError as e:
        raise QEPError(f"damaged map: its spec is not JSON ({e})", where=str(p)) from None
    if not isinstance(spec, dict):
        raise QEPError("damaged map: its spec is not a JSON object", where=str(p))
    out["spec"] = spec
    return out


def cached_map(
    spec: MapSpec,
    cache_dir: str | Path | None = None,
    *,
    compute: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any] | None, Path, bool]:
    """``(map, path, computed)``: the cached map, computing and saving it if needed.

    With ``compute=False`` a missing map gives ``(None, path, False)``.
    """
    path = map_path(spec, cache_dir)
    if path.exists():
        try:
            return load_map(path), path, False
        except QEPError:
            if not compute:
                raise
            # a damaged cache file (a crash cannot leave one: writes are atomic) is recomputed
    if not compute:
        return None, path, False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QEPError(f"cannot create the map cache: {e.strerror}", where=str(path.parent)) from e
    arrays = compute_map(spec, progress=progress)
    spec_text = json.dumps(spec.as_dict(), sort_keys=True)
    _write_npz(path, {**arrays, "spec": np.array(spec_text)})
    return load_map(path), path, True
