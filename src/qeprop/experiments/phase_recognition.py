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

from ..config import Config, option
from ..errors import ProblemError
from ..gradients import GradientOptions, batch_mean_gradient
from ..hamiltonian import ParametrisedHamiltonian
from ..losses import MeanSquaredError
from ..measurement import SHOT_MODELS, expectations
from ..models import cluster_ising
from ..models.sensor import COUPLING_SETS, SensorLayout, sensor_layout
from ..optim import Optimiser, adam
from ..solvers import StateSpec
from ..solvers.batch import solve_ground_batch
from ..system import QEPSystem
from ..training import TrainState, descent_init, descent_step, deterministic
from . import ExperimentBase
from .classification import classification_metrics

__all__ = [
    "ESTIMATORS",
    "EXPERIMENT",
    "MAX_NUDGE",
    "PhaseRecognition",
    "PhaseRecognitionConfig",
    "PhaseSensorModel",
    "build_model",
]

#: gradient estimators a training step can use (``linear_response`` is exact: no shots)
ESTIMATORS = ("positive", "negative", "centered", "linear_response", "finite_difference")
#: largest nudge β: a nudge is a small perturbation, and β·|ε| must stay a finite number
MAX_NUDGE = 100.0
#: amplitudes (points × Hilbert-space dimension) solved at once in an evaluation
_EVAL_BLOCK = 2**22


@dataclass(frozen=True)
class PhaseRecognitionConfig(Config):
    """Configuration of ``phase-recognition`` (defaults: the paper's Fig. 2 settings)."""

    steps: int = option(5000, "training steps (Adam updates)", ge=1, le=10**7)
    batch_size: int = option(10, "points of the triangle per mini-batch", ge=1, le=1000)
    shots: int | None = option(
        10, "measurement shots per expectation value (none: exact values)", ge=1, le=10**9
    )
    nudge: float = option(0.4, "nudge strength β of the QEP gradient", gt=0, le=MAX_NUDGE)
    learning_rate: float = option(0.01, "Adam learning rate", gt=0, le=1000)
    seed: int = option(0, "seed of the initial couplings, the batches and the shot noise", ge=0)
    couplings: str = option("xyz", "sensor-system coupling set", choices=tuple(COUPLING_SETS))
    training_region: str = option(
        "full", "training points: the whole triangle, or patches inside the three phases",
        choices=("full", "patches"),
    )  # fmt: skip
    patch_width: float = option(0.4, "width of the training patches", gt=0, le=4)
    chain_length: int = option(
        8, "sites of the cluster-Ising chain (the sensor adds 2 qubits)", ge=3, le=14
    )
    boundary: str = option("periodic", "boundary of the chain", choices=("open", "periodic"))
    sensor_sites: tuple[int, ...] = option(
        (0, 1), "chain sites the sensor couples to (distinct)", ge=0, min_len=1, max_len=14
    )
    eval_every: int = option(50, "steps between evaluations on the test set", ge=1, le=10**7)
    test_size: int = option(200, "test points, uniform on the triangle", ge=1, le=10**5)
    test_seed: int = option(20240, "seed of the test points", ge=0)
    checkpoint_every: int = option(100, "steps between checkpoints", ge=1, le=10**7)
    estimator: str = option(
        "centered", "gradient estimator of the training step", choices=ESTIMATORS
    )
    shot_model: str = option("gaussian", "how shots are simulated", choices=SHOT_MODELS)
    noisy_outputs: bool = option(False, "measure the outputs y (hence ε) with shots too")
    soft_bound: bool = option(False, "penalise system-sensor couplings beyond ±bound")
    bound: float = option(0.1, "soft bound on |system-sensor coupling|", gt=0, le=1000)
    bound_slope: float = option(0.02, "slope of the soft-bound penalty", ge=0, le=1000)
    solver_tol: float = option(
        1e-6, "relative residual of the ground-state solves", ge=1e-15, le=0.1
    )
    map_resolution: int = option(
        24, "points per side of the triangle grid of the final phase map", ge=2, le=200
    )
    label: str = option("", "name of the variant in plots (default: couplings/training_region)")

    def check(self) -> None:
        if self.estimator == "linear_response" and self.shots is not None:
            raise ProblemError(
                "the linear_response estimator is exact and takes no shots; set shots = none "
                "(--set shots=none)",
                where="shots",
            )
        if len(set(self.sensor_sites)) != len(self.sensor_sites):
            raise ProblemError(
                f"must be distinct chain sites, got {list(self.sensor_sites)}", where="sensor_sites"
            )
        bad = [s for s in self.sensor_sites if s >= self.chain_length]
        if bad:
            raise ProblemError(
                f"site {bad[0]} is not a site of the {self.chain_length}-site chain "
                f"(sites 0..{self.chain_length - 1})",
                where="sensor_sites",
            )
        if not self.label:
            self._set("label", f"{self.couplings}/{self.training_region}")


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


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(3)[labels]


class PhaseRecognition(ExperimentBase):
    """The phase-recognition training task (see the module docstring).

    Evaluation solves every test point cold (from the solver's fixed start vector), so a
    metric depends only on the couplings: a resumed run evaluates exactly as an uninterrupted one
    (warm starts from the previous evaluation would save about a quarter of an evaluation's time,
    but make its last digits depend on the run's history).
    """

    name = "phase-recognition"
    Config = PhaseRecognitionConfig

    # ------------------------------------------------------------------ configuration
    def model(self, config: PhaseRecognitionConfig) -> PhaseSensorModel:
        return build_model(
            config.chain_length, config.boundary, config.couplings, tuple(config.sensor_sites)
        )

    def spec(self, config: PhaseRecognitionConfig) -> StateSpec:
        # the gradient needs the precision M shots resolve; the gap only roughly
        return StateSpec(tol=config.solver_tol, gap_tol=max(config.solver_tol, 1e-4))

    def optimiser(self, config: PhaseRecognitionConfig) -> Optimiser:
        return adam(config.learning_rate)

    # ------------------------------------------------------------------ data
    def sample_inputs(
        self, config: PhaseRecognitionConfig, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        if config.training_region == "patches":
            return np.asarray(cluster_ising.sample_patches(n, rng, width=config.patch_width))
        return np.asarray(cluster_ising.sample_triangle(n, rng))

    def test_set(self, config: PhaseRecognitionConfig) -> tuple[np.ndarray, np.ndarray]:
        """Fixed test points (uniform on the whole triangle) and their exact labels."""
        rng = np.random.default_rng(config.test_seed)
        pts = cluster_ising.sample_triangle(config.test_size, rng)
        return pts, cluster_ising.phase_indices(pts)

    # ------------------------------------------------------------------ training
    def init(self, config: PhaseRecognitionConfig) -> TrainState:
        model = self.model(config)
        rng = np.random.default_rng(config.seed)
        theta = model.layout.init_params(rng)
        return descent_init(theta, self.optimiser(config), rng, {"train_loss": []})

    def batch_gradient(
        self, config: PhaseRecognitionConfig, theta: np.ndarray, x: np.ndarray,
        labels: np.ndarray, rng: np.random.Generator | None,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        """Batch-averaged gradient estimate and mean loss at couplings ``theta``."""
        model = self.model(config)
        opts = GradientOptions(
            nudge=config.nudge,
            state=self.spec(config),
            shots=config.shots,
            shot_model=config.shot_model,
            noisy_outputs=config.noisy_outputs,
            warn_window=False,
        )
        onehot = _one_hot(labels)
        losses = [MeanSquaredError(t) for t in onehot]
        values = np.array([model.values(xi, theta) for xi in x])
        return batch_mean_gradient(
            model.system, values, losses, estimator=config.estimator, options=opts, rng=rng
        )

    def penalty_gradient(self, config: PhaseRecognitionConfig, theta: np.ndarray) -> np.ndarray:
        """Soft bound: ``slope * Σ max(0, |v| - bound)`` over the system-sensor couplings."""
        g = np.zeros_like(theta)
        if config.soft_bound:
            mask = self.model(config).layout.system_sensor & (np.abs(theta) > config.bound)
            g[mask] = config.bound_slope * np.sign(theta[mask])
        return g

    def step(self, config: PhaseRecognitionConfig, state: TrainState) -> TrainState:
        """One Adam step on the batch-averaged QEP gradient (plus the soft-bound penalty)."""

        def gradient(theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
            x = self.sample_inputs(config, config.batch_size, rng)
            labels = cluster_ising.phase_indices(x)
            grad, loss = self.batch_gradient(config, theta, x, labels, rng)
            return grad + self.penalty_gradient(config, theta), {"loss": loss}

        new, info = descent_step(state, self.optimiser(config), gradient)
        losses = [*state.meta.get("train_loss", []), info["loss"]][-config.eval_every :]
        new.meta["train_loss"] = losses
        return new

    # ------------------------------------------------------------------ evaluation
    def probabilities(
        self, config: PhaseRecognitionConfig, theta: np.ndarray, points: np.ndarray
    ) -> np.ndarray:
        """Exact readout probabilities ``(N, 3)`` (cluster, ferromagnet, paramagnet).

        Every point is solved cold (no warm start), in blocks that bound the memory, so the
        result depends only on ``theta`` and ``points``.
        """
        model = self.model(config)
        h = model.system.full
        ident, coef = model.system.output_coefficients
        values = np.array([model.system.full_values(model.values(xi, theta)) for xi in points])
        block = max(1, _EVAL_BLOCK // h.dim)
        out = []
        with deterministic():
            for i in range(0, len(values), block):
                states = solve_ground_batch(h, values[i : i + block], self.spec(config))
                out += [expectations(h, st, ident, coef) for st in states]
        return np.array(out).reshape(len(values), len(cluster_ising.PHASES))

    def evaluate(self, config: PhaseRecognitionConfig, state: TrainState) -> dict[str, Any]:
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, state.arrays["params"], pts)
        return _metrics(probs, labels) | {
            "train_loss": float(np.mean(state.meta["train_loss"]))
            if state.meta.get("train_loss")
            else None
        }

    def finish(
        self, config: PhaseRecognitionConfig, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        theta = state.arrays["params"]
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, theta, pts)
        grid = triangle_grid(config.map_resolution)
        grid_probs = self.probabilities(config, theta, grid)
        summary = _metrics(probs, labels) | {
            "couplings": config.couplings,
            "training_region": config.training_region,
            "label": config.label,
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
    """Max-choice and single-shot accuracy, and mean one-hot MSE loss, of readout probabilities.

    The three metrics of :func:`~qeprop.experiments.classification.classification_metrics`
    (``probs (N, 3)``, ``labels (N,)``), without its ``n_correct``: a phase-recognition record
    keeps the keys it has always had.
    """
    metrics = classification_metrics(probs, labels)
    return {k: metrics[k] for k in ("max_choice_accuracy", "single_shot_accuracy", "loss")}


def triangle_grid(resolution: int, total: float = 4.0) -> np.ndarray:
    """Points ``(g_zxz, g_zz, g_x)`` of a regular grid on the triangle, ``resolution`` per side."""
    pts = []
    for i in range(resolution + 1):
        for j in range(resolution + 1 - i):
            gx, gzz = total * i / resolution, total * j / resolution
            pts.append((total - gx - gzz, gzz, gx))
    return np.clip(np.array(pts), 0.0, None)


EXPERIMENT = PhaseRecognition()
