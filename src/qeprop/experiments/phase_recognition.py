"""Supervised recognition of quantum phases (Wanjura & Marquardt, Sec. III.A and Fig. 2).

A trainable sensor (default: 2 qubits, 51 couplings) is coupled to sites of a cluster-Ising chain
``H0(g_zxz, g_zz, g_x)``; the probabilities of three sensor readouts (projectors on Z-basis states)
are trained to announce the chain's phase (one-hot MSE target), with QEP gradients (default:
centred nudging β = 0.4, M = 10 shots per expectation value, Gaussian shot model), mini-batches of
10 points of the triangle ``g_zxz + g_zz + g_x = 4`` and Adam (learning rate 0.01).

Metrics on a fixed test set: **max-choice** accuracy (the most probable of the three readouts is
the right phase: "many queries") and **single-shot** accuracy (probability that one measurement of
the sensor shows the right phase), both from exact expectation values of the trained sensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ProblemError
from ..gradients import GradientOptions, batch_nudged_gradients, estimate_gradient
from ..hamiltonian import ParametrisedHamiltonian
from ..losses import MeanSquaredError
from ..measurement import expectations
from ..models import cluster_ising
from ..models.sensor import COUPLING_SETS, SensorLayout, sensor_layout
from ..optim import adam
from ..solvers import StateSpec
from ..solvers.batch import solve_ground_batch
from ..solvers.exact import blas_threads
from ..states import Equilibrium
from ..system import QEPSystem
from . import TrainState

__all__ = ["EXPERIMENT", "PhaseRecognition", "PhaseSensorModel", "build_model"]

DEFAULTS: dict[str, Any] = {
    "steps": 5000,
    "batch_size": 10,
    "shots": 10,
    "nudge": 0.4,
    "learning_rate": 0.01,
    "seed": 0,
    "couplings": "xyz",
    "training_region": "full",
    "patch_width": 0.4,
    "chain_length": 8,
    "boundary": "periodic",
    "sensor_sites": [0, 1],
    "eval_every": 50,
    "test_size": 200,
    "test_seed": 20240,
    "checkpoint_every": 100,
    "estimator": "centered",
    "shot_model": "gaussian",
    "noisy_outputs": False,
    "soft_bound": False,
    "bound": 0.1,
    "bound_slope": 0.02,
    "solver_tol": 1e-6,
    "map_resolution": 24,
    "label": "",
}

_CHOICES = {
    "couplings": tuple(COUPLING_SETS),
    "training_region": ("full", "patches"),
    "boundary": ("open", "periodic"),
    "estimator": ("positive", "negative", "centered", "linear_response", "finite_difference"),
    "shot_model": ("gaussian", "sampled"),
}
_POSITIVE_INT = ("steps", "batch_size", "eval_every", "test_size", "checkpoint_every")
_POSITIVE_FLOAT = ("nudge", "learning_rate", "bound", "solver_tol", "patch_width")


@dataclass(frozen=True)
class PhaseSensorModel:
    """The chain plus sensor as a QEP system.

    ``system.hamiltonian.params`` starts with the inputs ``(g_zxz, g_zz, g_x)``, followed by the
    sensor couplings in the order of ``layout.names`` (= ``system.trainable``).
    """

    system: QEPSystem
    layout: SensorLayout
    chain_length: int

    def values(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Parameter vector of ``H(x, θ)`` for inputs ``x = (g_zxz, g_zz, g_x)``."""
        return np.concatenate([np.asarray(x, dtype=float), theta])


@lru_cache(maxsize=8)
def build_model(
    chain_length: int, boundary: str, couplings: str, sensor_sites: tuple[int, ...]
) -> PhaseSensorModel:
    """Cluster-Ising chain on qubits ``0..L-1`` with a 2-qubit sensor on qubits ``L, L+1``."""
    chain = cluster_ising.hamiltonian_terms(chain_length, boundary=boundary)
    for s in sensor_sites:
        if not 0 <= s < chain_length:
            raise ProblemError(f"sensor site {s} is not a site of the {chain_length}-site chain")
    layout = sensor_layout((chain_length, chain_length + 1), sensor_sites, couplings)
    ham = ParametrisedHamiltonian(
        chain_length + 2,
        [*chain, *layout.terms],
        params=[*cluster_ising.PARAMS, *layout.names],
    )
    readout = {k: layout.outputs[k] for k in cluster_ising.PHASES}
    system = QEPSystem(ham, readout, trainable=layout.names)
    return PhaseSensorModel(system, layout, chain_length)


def _check(config: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - set(DEFAULTS) - {"experiment"})
    if unknown:
        raise ProblemError(f"unknown key; allowed: {sorted(DEFAULTS)}", where=unknown[0])
    out = {**DEFAULTS, **{k: v for k, v in config.items() if k != "experiment"}}
    for key, options in _CHOICES.items():
        if out[key] not in options:
            raise ProblemError(f"must be one of {list(options)}, got {out[key]!r}", where=key)
    for key in _POSITIVE_INT:
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ProblemError(f"must be a positive integer, got {v!r}", where=key)
    for key in _POSITIVE_FLOAT:
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v <= 0:
            raise ProblemError(f"must be a finite number > 0, got {v!r}", where=key)
        out[key] = float(v)
    if out["shots"] is not None and (
        isinstance(out["shots"], bool) or not isinstance(out["shots"], int) or out["shots"] < 1
    ):
        raise ProblemError(
            f"must be a positive integer or omitted, got {out['shots']!r}", where="shots"
        )
    for key in ("seed", "test_seed"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 0:
            raise ProblemError(f"must be a non-negative integer, got {out[key]!r}", where=key)
    if not isinstance(out["chain_length"], int) or out["chain_length"] < 3:
        raise ProblemError(
            f"must be an integer >= 3, got {out['chain_length']!r}", where="chain_length"
        )
    if out["chain_length"] > 14:
        raise ProblemError(
            f"{out['chain_length']} sites plus 2 sensor qubits is beyond exact diagonalisation "
            "in a training loop (at most 14 sites)",
            where="chain_length",
        )
    sites = out["sensor_sites"]
    if not isinstance(sites, list | tuple) or not all(isinstance(s, int) for s in sites):
        raise ProblemError(f"must be a list of chain sites, got {sites!r}", where="sensor_sites")
    out["sensor_sites"] = [int(s) for s in sites]
    for key in ("noisy_outputs", "soft_bound"):
        if not isinstance(out[key], bool):
            raise ProblemError(f"must be true or false, got {out[key]!r}", where=key)
    if not out["label"]:
        out["label"] = f"{out['couplings']}/{out['training_region']}"
    return out


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(3)[labels]


class PhaseRecognition:
    """The phase-recognition training task (see the module docstring)."""

    name = "phase-recognition"

    def __init__(self) -> None:
        self._eval_cache: dict[tuple[Any, ...], list[Equilibrium]] = {}

    # ------------------------------------------------------------------ configuration
    def defaults(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        return _check(config)

    def total_steps(self, config: dict[str, Any]) -> int:
        return int(config["steps"])

    def eval_every(self, config: dict[str, Any]) -> int:
        return int(config["eval_every"])

    def model(self, config: dict[str, Any]) -> PhaseSensorModel:
        return build_model(
            config["chain_length"],
            config["boundary"],
            config["couplings"],
            tuple(config["sensor_sites"]),
        )

    def spec(self, config: dict[str, Any]) -> StateSpec:
        # the gradient needs the precision M shots resolve; the gap only roughly
        return StateSpec(tol=config["solver_tol"], gap_tol=max(config["solver_tol"], 1e-4))

    # ------------------------------------------------------------------ data
    def sample_inputs(self, config: dict[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
        if config["training_region"] == "patches":
            return np.asarray(cluster_ising.sample_patches(n, rng, width=config["patch_width"]))
        return np.asarray(cluster_ising.sample_triangle(n, rng))

    def test_set(self, config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Fixed test points (uniform on the whole triangle) and their exact labels."""
        rng = np.random.default_rng(config["test_seed"])
        pts = cluster_ising.sample_triangle(config["test_size"], rng)
        return pts, cluster_ising.phase_indices(pts)

    # ------------------------------------------------------------------ training
    def init(self, config: dict[str, Any]) -> TrainState:
        model = self.model(config)
        rng = np.random.default_rng(config["seed"])
        theta = model.layout.init_params(rng)
        opt = adam(config["learning_rate"])
        st = opt.init(theta)
        return TrainState(
            step=0,
            arrays={"params": theta, "adam_m": st["m"], "adam_v": st["v"]},
            meta={"adam_t": st["t"], "rng": rng.bit_generator.state, "train_loss": []},
        )

    def batch_gradient(
        self, config: dict[str, Any], theta: np.ndarray, x: np.ndarray, labels: np.ndarray,
        rng: np.random.Generator | None,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        """Batch-averaged gradient estimate and mean loss at couplings ``theta``."""
        model = self.model(config)
        opts = GradientOptions(
            nudge=config["nudge"],
            state=self.spec(config),
            shots=config["shots"],
            shot_model=config["shot_model"],
            noisy_outputs=config["noisy_outputs"],
            warn_window=False,
        )
        onehot = _one_hot(labels)
        losses = [MeanSquaredError(t) for t in onehot]
        values = np.array([model.values(xi, theta) for xi in x])
        if config["estimator"] in ("positive", "negative", "centered"):
            recs = batch_nudged_gradients(
                model.system, values, losses, variant=config["estimator"], options=opts, rng=rng
            )
        else:
            recs = [
                estimate_gradient(
                    model.system, v, loss, estimator=config["estimator"], options=opts, rng=rng
                )
                for v, loss in zip(values, losses, strict=True)
            ]
        grads = np.mean([r.gradient for r in recs], axis=0)
        return grads, float(np.mean([r.loss for r in recs]))

    def penalty_gradient(self, config: dict[str, Any], theta: np.ndarray) -> np.ndarray:
        """Soft bound: ``slope * Σ max(0, |v| - bound)`` over the system-sensor couplings."""
        g = np.zeros_like(theta)
        if config["soft_bound"]:
            mask = self.model(config).layout.system_sensor & (np.abs(theta) > config["bound"])
            g[mask] = config["bound_slope"] * np.sign(theta[mask])
        return g

    def step(self, config: dict[str, Any], state: TrainState) -> TrainState:
        # one BLAS thread: multi-threaded reductions may sum in a different order from call to
        # call, and a resumed run must repeat an uninterrupted one
        with blas_threads(1, 0):
            return self._step(config, state)

    def _step(self, config: dict[str, Any], state: TrainState) -> TrainState:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.meta["rng"]
        x = self.sample_inputs(config, config["batch_size"], rng)
        labels = cluster_ising.phase_indices(x)
        theta = state.arrays["params"]
        grad, loss = self.batch_gradient(config, theta, x, labels, rng)
        grad = grad + self.penalty_gradient(config, theta)
        opt = adam(config["learning_rate"])
        ost = {"m": state.arrays["adam_m"], "v": state.arrays["adam_v"], "t": state.meta["adam_t"]}
        theta, ost = opt.update(theta, grad, ost)
        losses = [*state.meta.get("train_loss", []), loss][-config["eval_every"] :]
        return TrainState(
            step=state.step + 1,
            arrays={"params": theta, "adam_m": ost["m"], "adam_v": ost["v"]},
            meta={"adam_t": ost["t"], "rng": rng.bit_generator.state, "train_loss": losses},
        )

    # ------------------------------------------------------------------ evaluation
    def probabilities(
        self, config: dict[str, Any], theta: np.ndarray, points: np.ndarray, cache_key: str = ""
    ) -> np.ndarray:
        """Exact readout probabilities ``(N, 3)`` (cluster, ferromagnet, paramagnet).

        Solves at the same points are warm-started from the previous evaluation's states.
        """
        model = self.model(config)
        h = model.system.full
        ident, coef = model.system.output_coefficients
        key = (
            cache_key,
            config["chain_length"],
            config["boundary"],
            config["couplings"],
            len(points),
        )
        values = np.array([model.system.full_values(model.values(xi, theta)) for xi in points])
        states = solve_ground_batch(h, values, self.spec(config), self._eval_cache.get(key))
        self._eval_cache[key] = states
        return np.array([expectations(h, st, ident, coef) for st in states])

    def evaluate(self, config: dict[str, Any], state: TrainState) -> dict[str, Any]:
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, state.arrays["params"], pts, "test")
        return _metrics(probs, labels) | {
            "train_loss": float(np.mean(state.meta["train_loss"]))
            if state.meta.get("train_loss")
            else None
        }

    def finish(
        self, config: dict[str, Any], state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        theta = state.arrays["params"]
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, theta, pts, "test")
        grid = triangle_grid(config["map_resolution"])
        grid_probs = self.probabilities(config, theta, grid, "grid")
        summary = _metrics(probs, labels) | {
            "couplings": config["couplings"],
            "training_region": config["training_region"],
            "label": config["label"],
        }
        arrays = {
            "params": theta,
            "param_names": np.array(self.model(config).layout.names),
            "test_points": pts,
            "test_labels": labels,
            "test_probs": probs,
            "grid_points": grid,
            "grid_probs": grid_probs,
        }
        return summary, arrays


def _metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Max-choice and single-shot accuracy, and mean MSE loss, of readout probabilities."""
    rows = np.arange(len(labels))
    return {
        "max_choice_accuracy": float(np.mean(np.argmax(probs, axis=1) == labels)),
        "single_shot_accuracy": float(np.mean(probs[rows, labels])),
        "loss": float(np.mean(np.sum((probs - _one_hot(labels)) ** 2, axis=1))),
    }


def triangle_grid(resolution: int, total: float = 4.0) -> np.ndarray:
    """Points ``(g_zxz, g_zz, g_x)`` of a regular grid on the triangle, ``resolution`` per side."""
    pts = []
    for i in range(resolution + 1):
        for j in range(resolution + 1 - i):
            gx, gzz = total * i / resolution, total * j / resolution
            pts.append((total - gx - gzz, gzz, gx))
    return np.clip(np.array(pts), 0.0, None)


EXPERIMENT = PhaseRecognition()
