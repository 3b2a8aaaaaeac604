"""Quality of QEP gradients for the phase sensor (Wanjura & Marquardt, Fig. 2d-e).

For mini-batches of inputs drawn from the phase triangle, the batch-averaged QEP gradient
(centred nudging, finite β, optionally M shots per expectation value) is compared with the exact
batch-averaged gradient (linear response) through the cosine overlap
``g_QEP · g_exact / (|g_QEP| |g_exact|)``. One step of this study is one mini-batch; its results
are distributions over many batches:

* ``overlap_vs_nudge (K, B)``: no shot noise, for each nudge β in ``nudges`` (Fig. 2d);
* ``overlap_vs_shots (2, S, B)``: Gaussian shot noise with M in ``shots`` for the two nudges in
  ``shot_nudges`` (Fig. 2e).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config, option
from ..errors import ProblemError
from ..gradients import GradientOptions, batch_nudged_gradients, estimate_gradient
from ..losses import MeanSquaredError
from ..models import cluster_ising
from ..models.sensor import COUPLING_SETS
from ..solvers import StateSpec
from ..training import TrainState, deterministic, rng_of, with_rng
from . import ExperimentBase
from .phase_recognition import MAX_NUDGE, PhaseSensorModel, build_model

__all__ = ["EXPERIMENT", "GradientQuality", "GradientQualityConfig"]


@dataclass(frozen=True)
class GradientQualityConfig(Config):
    """Configuration of ``gradient-quality`` (defaults: the paper's Fig. 2d-e)."""

    batches: int = option(200, "mini-batches compared (one per step)", ge=1, le=10**6)
    batch_size: int = option(10, "points of the triangle per mini-batch", ge=1, le=1000)
    nudges: tuple[float, ...] = option(
        (0.01, 0.03, 0.1, 0.2, 0.4, 0.8, 1.6), "nudges β compared without shot noise (Fig. 2d)",
        gt=0, le=MAX_NUDGE, min_len=1, max_len=100,
    )  # fmt: skip
    shots: tuple[int, ...] = option(
        (1, 3, 10, 30, 100, 1000), "shots M per expectation value compared (Fig. 2e)",
        ge=1, le=10**9, min_len=1, max_len=100,
    )  # fmt: skip
    shot_nudges: tuple[float, ...] = option(
        (0.1, 0.4), "nudges of the shot-noise comparison", gt=0, le=MAX_NUDGE, min_len=1,
        max_len=10,
    )  # fmt: skip
    seed: int = option(0, "seed of the batches and the shot noise", ge=0)
    init_seed: int = option(1, "seed of the (untrained) sensor couplings", ge=0)
    couplings: str = option("xyz", "sensor-system coupling set", choices=tuple(COUPLING_SETS))
    chain_length: int = option(
        8, "sites of the cluster-Ising chain (the sensor adds 2 qubits)", ge=3, le=14
    )
    boundary: str = option("periodic", "boundary of the chain", choices=("open", "periodic"))
    sensor_sites: tuple[int, ...] = option(
        (0, 1), "chain sites the sensor couples to (distinct)", ge=0, min_len=1, max_len=14
    )
    eval_every: int = option(50, "batches between progress records", ge=1, le=10**7)
    checkpoint_every: int = option(10, "batches between checkpoints", ge=1, le=10**7)
    solver_tol: float = option(1e-9, "relative residual of the solves", ge=1e-15, le=0.1)

    def check(self) -> None:
        if (
            len(set(self.sensor_sites)) != len(self.sensor_sites)
            or max(self.sensor_sites) >= self.chain_length
        ):
            raise ProblemError(
                f"must be distinct sites of the {self.chain_length}-site chain, got "
                f"{list(self.sensor_sites)}",
                where="sensor_sites",
            )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


class GradientQuality(ExperimentBase):
    """Distributions of the overlap between QEP and exact gradients (see the module docstring)."""

    name = "gradient-quality"
    Config = GradientQualityConfig

    def total_steps(self, config: GradientQualityConfig) -> int:
        return int(config.batches)

    def model(self, config: GradientQualityConfig) -> PhaseSensorModel:
        return build_model(
            config.chain_length, config.boundary, config.couplings, tuple(config.sensor_sites)
        )

    def init(self, config: GradientQualityConfig) -> TrainState:
        model = self.model(config)
        theta = model.layout.init_params(np.random.default_rng(config.init_seed))
        k, s, b = len(config.nudges), len(config.shots), config.batches
        return TrainState(
            step=0,
            arrays={
                "params": theta,
                "overlap_vs_nudge": np.full((k, b), np.nan),
                "overlap_vs_shots": np.full((len(config.shot_nudges), s, b), np.nan),
            },
            meta=with_rng({}, np.random.default_rng(config.seed)),
        )

    def step(self, config: GradientQualityConfig, state: TrainState) -> TrainState:
        """Compare the QEP gradients of one mini-batch (every nudge, every number of shots)
        with the exact one; the overlaps go into column ``step`` of the result arrays."""
        with deterministic():
            return self._step(config, state)

    def _step(self, config: GradientQualityConfig, state: TrainState) -> TrainState:
        model = self.model(config)
        rng = rng_of(state)
        theta = state.arrays["params"]
        x = cluster_ising.sample_triangle(config.batch_size, rng)
        labels = cluster_ising.phase_indices(x)
        losses = [MeanSquaredError(np.eye(3)[lab]) for lab in labels]
        values = np.array([model.values(xi, theta) for xi in x])
        spec = StateSpec(tol=config.solver_tol)
        exact = np.mean(
            [
                estimate_gradient(
                    model.system, v, loss, estimator="linear_response", state=spec
                ).gradient
                for v, loss in zip(values, losses, strict=True)
            ],
            axis=0,
        )

        def qep(nudge: float, shots: int | None) -> np.ndarray:
            opts = GradientOptions(nudge=nudge, state=spec, shots=shots, warn_window=False)
            recs = batch_nudged_gradients(model.system, values, losses, options=opts, rng=rng)
            return np.mean([r.gradient for r in recs], axis=0)

        j = state.step
        by_nudge = state.arrays["overlap_vs_nudge"].copy()
        by_shots = state.arrays["overlap_vs_shots"].copy()
        for i, nudge in enumerate(config.nudges):
            by_nudge[i, j] = _cosine(qep(nudge, None), exact)
        for i, nudge in enumerate(config.shot_nudges):
            for k, m in enumerate(config.shots):
                by_shots[i, k, j] = _cosine(qep(nudge, m), exact)
        arrays = dict(state.arrays, overlap_vs_nudge=by_nudge, overlap_vs_shots=by_shots)
        return TrainState(state.step + 1, arrays, with_rng(dict(state.meta), rng))

    def evaluate(self, config: GradientQualityConfig, state: TrainState) -> dict[str, Any]:
        done = state.step
        out: dict[str, Any] = {"batches": done}
        if done:
            med = np.median(state.arrays["overlap_vs_nudge"][:, :done], axis=1)
            for nudge, m in zip(config.nudges, med, strict=True):
                out[f"median_overlap_nudge_{nudge:g}"] = float(m)
        return out

    def finish(
        self, config: GradientQualityConfig, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        done = state.step
        by_nudge = state.arrays["overlap_vs_nudge"][:, :done]
        by_shots = state.arrays["overlap_vs_shots"][:, :, :done]
        summary = {
            "batches": done,
            "median_overlap_vs_nudge": dict(
                zip(
                    [f"{v:g}" for v in config.nudges],
                    np.median(by_nudge, 1).tolist(),
                    strict=True,
                )
            ),
            "median_overlap_vs_shots": {
                f"{n:g}": dict(
                    zip(
                        [str(m) for m in config.shots],
                        np.median(by_shots[i], 1).tolist(),
                        strict=True,
                    )
                )
                for i, n in enumerate(config.shot_nudges)
            },
        }
        arrays = {
            "nudges": np.array(config.nudges),
            "overlap_vs_nudge": by_nudge,
            "shots": np.array(config.shots),
            "shot_nudges": np.array(config.shot_nudges),
            "overlap_vs_shots": by_shots,
            "params": state.arrays["params"],
        }
        return summary, arrays


EXPERIMENT = GradientQuality()
