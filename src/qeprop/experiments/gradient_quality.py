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

from typing import Any

import numpy as np

from ..errors import ProblemError
from ..gradients import GradientOptions, batch_nudged_gradients, estimate_gradient
from ..losses import MeanSquaredError
from ..models import cluster_ising
from ..solvers import StateSpec
from . import TrainState
from .phase_recognition import build_model

__all__ = ["EXPERIMENT", "GradientQuality"]

DEFAULTS: dict[str, Any] = {
    "batches": 200,
    "batch_size": 10,
    "nudges": [0.01, 0.03, 0.1, 0.2, 0.4, 0.8, 1.6],
    "shots": [1, 3, 10, 30, 100, 1000],
    "shot_nudges": [0.1, 0.4],
    "seed": 0,
    "init_seed": 1,
    "couplings": "xyz",
    "chain_length": 8,
    "boundary": "periodic",
    "sensor_sites": [0, 1],
    "eval_every": 50,
    "checkpoint_every": 10,
    "solver_tol": 1e-9,
}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


class GradientQuality:
    """Distributions of the overlap between QEP and exact gradients (see the module docstring)."""

    name = "gradient-quality"

    def defaults(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULTS.items()}

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(config) - set(DEFAULTS) - {"experiment"})
        if unknown:
            raise ProblemError(f"unknown key; allowed: {sorted(DEFAULTS)}", where=unknown[0])
        out = {**self.defaults(), **{k: v for k, v in config.items() if k != "experiment"}}
        for key in ("batches", "batch_size", "eval_every", "checkpoint_every"):
            if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1:
                raise ProblemError(f"must be a positive integer, got {out[key]!r}", where=key)
        for key in ("nudges", "shot_nudges"):
            vals = out[key]
            if (
                not isinstance(vals, list)
                or not vals
                or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in vals
                )
            ):
                raise ProblemError(
                    f"must be a non-empty list of numbers > 0, got {vals!r}", where=key
                )
            out[key] = [float(v) for v in vals]
        if not isinstance(out["shots"], list) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in out["shots"]
        ):
            raise ProblemError(
                f"must be a list of positive integers, got {out['shots']!r}", where="shots"
            )
        return out

    def total_steps(self, config: dict[str, Any]) -> int:
        return int(config["batches"])

    def eval_every(self, config: dict[str, Any]) -> int:
        return int(config["eval_every"])

    def init(self, config: dict[str, Any]) -> TrainState:
        model = build_model(
            config["chain_length"], config["boundary"], config["couplings"],
            tuple(config["sensor_sites"]),
        )  # fmt: skip
        theta = model.layout.init_params(np.random.default_rng(config["init_seed"]))
        k, s, b = len(config["nudges"]), len(config["shots"]), config["batches"]
        return TrainState(
            step=0,
            arrays={
                "params": theta,
                "overlap_vs_nudge": np.full((k, b), np.nan),
                "overlap_vs_shots": np.full((len(config["shot_nudges"]), s, b), np.nan),
            },
            meta={"rng": np.random.default_rng(config["seed"]).bit_generator.state},
        )

    def step(self, config: dict[str, Any], state: TrainState) -> TrainState:
        model = build_model(
            config["chain_length"], config["boundary"], config["couplings"],
            tuple(config["sensor_sites"]),
        )  # fmt: skip
        rng = np.random.default_rng()
        rng.bit_generator.state = state.meta["rng"]
        theta = state.arrays["params"]
        x = cluster_ising.sample_triangle(config["batch_size"], rng)
        labels = cluster_ising.phase_indices(x)
        losses = [MeanSquaredError(np.eye(3)[lab]) for lab in labels]
        values = np.array([model.values(xi, theta) for xi in x])
        spec = StateSpec(tol=config["solver_tol"])
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
        for i, nudge in enumerate(config["nudges"]):
            by_nudge[i, j] = _cosine(qep(nudge, None), exact)
        for i, nudge in enumerate(config["shot_nudges"]):
            for k, m in enumerate(config["shots"]):
                by_shots[i, k, j] = _cosine(qep(nudge, m), exact)
        arrays = dict(state.arrays, overlap_vs_nudge=by_nudge, overlap_vs_shots=by_shots)
        return TrainState(state.step + 1, arrays, {"rng": rng.bit_generator.state})

    def evaluate(self, config: dict[str, Any], state: TrainState) -> dict[str, Any]:
        done = state.step
        out: dict[str, Any] = {"batches": done}
        if done:
            med = np.median(state.arrays["overlap_vs_nudge"][:, :done], axis=1)
            for nudge, m in zip(config["nudges"], med, strict=True):
                out[f"median_overlap_nudge_{nudge:g}"] = float(m)
        return out

    def finish(
        self, config: dict[str, Any], state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        done = state.step
        by_nudge = state.arrays["overlap_vs_nudge"][:, :done]
        by_shots = state.arrays["overlap_vs_shots"][:, :, :done]
        summary = {
            "batches": done,
            "median_overlap_vs_nudge": dict(
                zip(
                    [f"{v:g}" for v in config["nudges"]],
                    np.median(by_nudge, 1).tolist(),
                    strict=True,
                )
            ),
            "median_overlap_vs_shots": {
                f"{n:g}": dict(
                    zip(
                        [str(m) for m in config["shots"]],
                        np.median(by_shots[i], 1).tolist(),
                        strict=True,
                    )
                )
                for i, n in enumerate(config["shot_nudges"])
            },
        }
        arrays = {
            "nudges": np.array(config["nudges"]),
            "overlap_vs_nudge": by_nudge,
            "shots": np.array(config["shots"]),
            "shot_nudges": np.array(config["shot_nudges"]),
            "overlap_vs_shots": by_shots,
            "params": state.arrays["params"],
        }
        return summary, arrays


EXPERIMENT = GradientQuality()
