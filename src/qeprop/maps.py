"""Phase-diagram maps: an expectation value (or its derivative) over a 2-D slice of couplings.

A :class:`MapSpec` names a cluster-Ising chain, the coupling held fixed, the two couplings on
the axes (ranges and resolution), an observable ``O`` and optionally a coupling ``p`` to
differentiate by. :func:`compute_map` returns, on the grid,

* ``values``: ``⟨O⟩`` in the ground state, or ``∂⟨O⟩/∂p`` by exact linear response
  (:func:`qeprop.gradients.response`; no finite differences);
* ``phases``: the exact free-fermion phase index
  (:func:`~qeprop.models.cluster_ising.phase_indices`,
  0 cluster, 1 ferromagnet, 2 paramagnet, -1 critical);
* the exact critical lines of the slice (:func:`~qeprop.models.cluster_ising.slice_boundaries`).

The ground state follows the same degeneracy prescription as the trajectories drawn over it
(``degeneracy_tol``: levels closer than this to the lowest one are mixed with equal weights).
This module computes and returns arrays; caching on disk is :mod:`qeprop.mapcache`'s job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import check_value
from .errors import ProblemError, QEPError
from .gradients import response
from .measurement import expectations
from .models import cluster_ising
from .pauli import as_pauli_sum
from .solvers import StateSpec, solve
from .solvers.exact import blas_threads
from .system import QEPSystem

__all__ = ["MAX_COUPLING", "MapSpec", "compute_map"]

_MAX_SITES = 14
#: largest |coupling| anywhere on a map (and of the unsupervised tasks): the cluster-Ising
#: couplings are O(1), and far larger values only overflow the solvers
MAX_COUPLING = 1000.0


@dataclass(frozen=True)
class MapSpec:
    """What to map (all fields plain values, so the spec is its own cache key).

    ``x``/``y`` are coupling names of :data:`~qeprop.models.cluster_ising.PARAMS`; ``fixed``
    gives the third. ``derivative`` is a coupling name or ``""`` for the expectation value.
    """

    chain_length: int = 10
    boundary: str = "open"
    fixed: Mapping[str, float] = field(default_factory=lambda: {"g_zxz": -0.5})
    x: str = "g_x"
    y: str = "g_zz"
    x_range: tuple[float, float] = (-3.0, 3.0)
    y_range: tuple[float, float] = (-2.0, 2.0)
    resolution: int = 61
    observable: str = "X0 X4"
    derivative: str = ""
    degeneracy_tol: float = 1e-6
    tol: float = 1e-10

    def __post_init__(self) -> None:
        names = cluster_ising.PARAMS
        length = check_value(self.chain_length, "chain_length", int, ge=3, le=_MAX_SITES)
        object.__setattr__(self, "chain_length", length)
        check_value(self.boundary, "boundary", str, choices=("open", "periodic"))
        check_value(self.x, "x", str, choices=names)
        check_value(self.y, "y", str, choices=names)
        if self.x == self.y:
            raise ProblemError(f"x and y must be two different couplings of {list(names)}")
        (third,) = [p for p in names if p not in (self.x, self.y)]
        if not isinstance(self.fixed, Mapping) or set(self.fixed) != {third}:
            raise ProblemError(
                f"must give the third coupling a value, e.g. {{{third} = -0.5}}, "
                f"got {self.fixed!r}",
                where="fixed",
            )
        value = check_value(
            self.fixed[third], f"fixed.{third}", float, ge=-MAX_COUPLING, le=MAX_COUPLING
        )
        object.__setattr__(self, "fixed", {third: value})
        for name in ("x_range", "y_range"):
            r = getattr(self, name)
            if isinstance(r, str | bytes | Mapping) or not isinstance(r, list | tuple):
                raise ProblemError(f"must be [lo, hi], got {r!r}", where=name)
            if len(r) != 2:
                raise ProblemError(f"must be [lo, hi], got {len(r)} values", where=name)
            lo, hi = (
                check_value(v, f"{name}[{i}]", float, ge=-MAX_COUPLING, le=MAX_COUPLING)
                for i, v in enumerate(r)
            )
            if not lo < hi:
                raise ProblemError(f"must be [lo, hi] with lo < hi, got {[lo, hi]}", where=name)
            object.__setattr__(self, name, (lo, hi))
        res = check_value(self.resolution, "resolution", int, ge=2, le=401)
        object.__setattr__(self, "resolution", res)
        check_value(self.observable, "observable", str)
        if self.derivative:
            check_value(self.derivative, "derivative", str, choices=names)
        deg = check_value(self.degeneracy_tol, "degeneracy_tol", float, gt=0, le=1)
        tol = check_value(self.tol, "tol", float, ge=1e-15, le=0.1)
        object.__setattr__(self, "degeneracy_tol", deg)
        object.__setattr__(self, "tol", tol)
        try:
            op = as_pauli_sum(self.observable)
        except QEPError as e:
            raise ProblemError(e.message, where="observable") from None
        if op.max_qubit >= self.chain_length:
            raise ProblemError(
                f"{self.observable!r} acts beyond the {self.chain_length}-site chain",
                where="observable",
            )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fixed"] = dict(self.fixed)
        d["x_range"] = list(self.x_range)
        d["y_range"] = list(self.y_range)
        return d

    def key(self) -> str:
        """Content hash of the spec (with the package version): the cache file name."""
        from . import __version__

        text = json.dumps({"spec": self.as_dict(), "version": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.linspace(*self.x_range, self.resolution),
            np.linspace(*self.y_range, self.resolution),
        )

    def title(self) -> str:
        what = f"⟨{self.observable}⟩"
        if self.derivative:
            what = f"∂{what}/∂{self.derivative}"
        return what


def _values(spec: MapSpec, u: float, v: float) -> np.ndarray:
    point = {**spec.fixed, spec.x: u, spec.y: v}
    return np.array([point[p] for p in cluster_ising.PARAMS])


def compute_map(
    spec: MapSpec, progress: Callable[[int, int], None] | None = None
) -> dict[str, np.ndarray]:
    """Evaluate the map; returns ``x (nx,)``, ``y (ny,)``, ``values (ny, nx)``, ``phases``,
    ``gaps (ny, nx)`` and the critical lines as ``boundary_<i> (m, 2)`` arrays.

    ``progress(done, total)`` is called after every row.
    """
    ham = cluster_ising.hamiltonian(spec.chain_length, boundary=spec.boundary)
    system = QEPSystem(ham, {"observable": spec.observable})
    h = system.full
    ident, coef = system.output_coefficients
    state = StateSpec(tol=spec.tol, degeneracy="mixture", degeneracy_tol=spec.degeneracy_tol)
    xs, ys = spec.grid
    values = np.empty((len(ys), len(xs)))
    gaps = np.empty_like(values)
    b_coef = h.derivative_coefficients[h.param_index[spec.derivative]] if spec.derivative else None
    with blas_threads(1, 0):
        for i, v in enumerate(ys):
            for j, u in enumerate(xs):
                full = system.full_values(_values(spec, u, v))
                st = solve(h, full, state)
                gaps[i, j] = st.gap
                if b_coef is None:
                    values[i, j] = expectations(h, st, ident, coef)[0]
                else:
                    values[i, j] = response(h, full, st, coef, b_coef, state)[0]
            if progress is not None:
                progress(i + 1, len(ys))
    pts = np.array([[_values(spec, u, v) for u in xs] for v in ys]).reshape(-1, 3)
    phases = cluster_ising.phase_indices(pts).reshape(len(ys), len(xs))
    out = {"x": xs, "y": ys, "values": values, "phases": phases, "gaps": gaps}
    lines = cluster_ising.slice_boundaries(
        dict(spec.fixed), spec.x, spec.y, spec.x_range, spec.y_range
    )
    for k, line in enumerate(lines):
        out[f"boundary_{k}"] = line
    return out
