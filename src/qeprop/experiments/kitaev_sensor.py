"""Supervised recognition of the phases of Kitaev's honeycomb model with a 2-qubit sensor.

The second supervised example of Wanjura & Marquardt's published code
(``SupervisedQEP/KitaevPhaseSensor``): a 2-qubit sensor, coupled through its six single-qubit
Paulis to three bond operators of the 8×2 periodic honeycomb (:mod:`qeprop.models.kitaev`,
18 + 15 = 33 couplings on 18 qubits), is trained so that one measurement of its first qubit
announces whether ``(J_x, J_y, J_z)`` lies in a gapped A phase (``Z = +1``) or in the gapless B
phase (``Z = -1``).

Defaults are the authors' settings (notebook ``Kitaev_phase_sensor.ipynb``): QEP gradients with
centred ("symmetric") nudging ``β = 0.05`` along the loss gradient ``ε = 2 (y - t)``, ``M = 10^4``
shots per expectation value (Gaussian shot model: each coupling's expectation is drawn from
``N(⟨A⟩, Var(A)/M)``), balanced batches of 6 (one point per A phase, three in B, as their sampler
draws them), one-hot MSE loss summed over the two outputs, couplings initialised ``N(0, 1)``,
Adamax with learning rate 0.01 and no bound on the couplings, 400 steps. Metrics on the authors'
fixed 18-point test set (:data:`qeprop.models.kitaev.TEST_POINTS`): max-choice and single-shot
accuracy and the loss, from exact expectation values.

The configuration is :class:`KitaevSensorConfig` (``qeprop run kitaev-sensor --help`` lists its
keys); a step is the shared :func:`qeprop.training.descent_step`,
``θ ← update(θ, mean_batch ∂L/∂θ)``, with the optimiser's state in ``arrays["optimiser"]``.

A batch solve that stalls above ``solver_tol`` (nearly degenerate flux sectors, see
``docs/kitaev.md``) raises :class:`~qeprop.errors.ConvergenceError`; the step is then repeated
with the same random draws at 10x and at 100x the tolerance (``relaxed_steps`` counts such
steps), and an evaluation likewise.

``hamiltonian = "published"`` reproduces a slip in the published ``prepare_Kitaev_phase_sensor``:
after building the honeycomb terms it overwrites them with the cluster-Ising chain terms
(``get_H_sys_terms_for_cluster_Ising``), so the published training ran on the 16-site periodic
cluster-Ising chain ``J_x Σ ZXZ - J_y Σ ZZ - J_z Σ X`` with the same sensor and bond operators
(the labels still follow the Kitaev rule). ``"kitaev"`` (default) is the honeycomb model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..config import Config, option
from ..errors import ConvergenceError, ProblemError
from ..gradients import GradientOptions, batch_mean_gradient
from ..hamiltonian import ParametrisedHamiltonian
from ..losses import MeanSquaredError
from ..measurement import SHOT_MODELS, expectations
from ..models import cluster_ising, kitaev
from ..models.sensor import SensorLayout
from ..optim import OPTIMISERS, Optimiser
from ..solvers import StateSpec
from ..solvers.batch import solve_ground_batch
from ..solvers.exact import blas_threads
from ..system import QEPSystem
from ..training import TrainState, descent_init, descent_step
from . import ExperimentBase
from .classification import classification_metrics, one_hot
from .phase_recognition import ESTIMATORS, MAX_NUDGE

__all__ = [
    "EXPERIMENT",
    "MAX_SPINS",
    "RELAX_FACTORS",
    "KitaevSensor",
    "KitaevSensorConfig",
    "KitaevSensorModel",
    "build_model",
]

#: a batch solve that stalls above ``solver_tol`` is repeated at 10x, then 100x that tolerance
RELAX_FACTORS = (1.0, 10.0, 100.0)
#: most lattice spins a training loop diagonalises (plus the 2 sensor qubits: 2^18 amplitudes)
MAX_SPINS = 16


@dataclass(frozen=True)
class KitaevSensorConfig(Config):
    """Configuration of ``kitaev-sensor`` (defaults: the authors' notebook, ``docs/kitaev.md``)."""

    steps: int = option(400, "training steps (optimiser updates)", ge=1, le=10**7)
    batch_size: int = option(
        6, "points per mini-batch, a multiple of 6 (per 6: one per A phase, three in B)",
        ge=1, le=600,
    )  # fmt: skip
    shots: int | None = option(
        10000, "measurement shots per expectation value (none: exact values)", ge=1, le=10**9
    )
    nudge: float = option(0.05, "nudge strength β of the QEP gradient", gt=0, le=MAX_NUDGE)
    learning_rate: float = option(0.01, "learning rate of the optimiser", gt=0, le=1000)
    optimiser: str = option("adamax", "optimiser of the couplings", choices=("adamax", "adam"))
    seed: int = option(0, "seed of the initial couplings, the batches and the shot noise", ge=0)
    init_scale: float = option(
        1.0, "standard deviation of the initial couplings θ ~ N(0, init_scale²)", gt=0, le=100
    )
    nx: int = option(8, "honeycomb columns (even; nx·ny <= 16 spins)", ge=4, le=8)
    ny: int = option(2, "honeycomb rows (even; nx·ny <= 16 spins)", ge=2, le=4)
    hamiltonian: str = option(
        "kitaev", "lattice terms: the honeycomb, or the published code's cluster-Ising chain",
        choices=("kitaev", "published"),
    )  # fmt: skip
    eval_every: int = option(20, "steps between evaluations on the 18 test points", ge=1, le=10**7)
    checkpoint_every: int = option(20, "steps between checkpoints", ge=1, le=10**7)
    estimator: str = option(
        "centered", "gradient estimator of the training step", choices=ESTIMATORS
    )
    shot_model: str = option("gaussian", "how shots are simulated", choices=SHOT_MODELS)
    solver_tol: float = option(
        1e-6, "relative residual of the ground-state solves (relaxed 10x, 100x on a stall)",
        gt=0, le=0.1,
    )  # fmt: skip
    map_resolution: int = option(
        12, "intervals per side of the triangle grid of the final phase map", ge=1, le=100
    )
    threads: int = option(1, "threads of the batch ground-state solver", ge=1, le=256)
    symmetry: str = option(
        "auto",
        "ground states through the sectors of the flux and loop operators (auto), or in the "
        "full space (none)",
        choices=("auto", "none"),
    )
    label: str = option("", "name of the variant in plots (default: hamiltonian/optimiser)")

    def check(self) -> None:
        if self.batch_size % 6:
            raise ProblemError(
                f"must be a multiple of 6 (balanced groups of the authors' sampler), got "
                f"{self.batch_size}",
                where="batch_size",
            )
        for key in ("nx", "ny"):
            if getattr(self, key) % 2:
                raise ProblemError(
                    f"must be even (the brick-wall torus), got {getattr(self, key)}", where=key
                )
        if self.nx * self.ny > MAX_SPINS:
            raise ProblemError(
                f"{self.nx}x{self.ny} spins plus 2 sensor qubits is beyond exact "
                f"diagonalisation in a training loop (at most {MAX_SPINS} spins)",
                where="nx",
            )
        if self.estimator == "linear_response" and self.shots is not None:
            raise ProblemError(
                "the linear_response estimator is exact and takes no shots; set shots = none "
                "(--set shots=none)",
                where="shots",
            )
        if not self.label:
            self._set("label", f"{self.hamiltonian}/{self.optimiser}")


class KitaevSensorModel:
    """The honeycomb (or, ``"published"``, the chain) plus the sensor as a QEP system.

    ``system.hamiltonian.params`` are the inputs ``(J_x, J_y, J_z)`` followed by the 33 sensor
    couplings in the order of ``layout.names`` (= ``system.trainable``). Outputs ``"A"``, ``"B"``.
    """

    def __init__(self, system: QEPSystem, layout: SensorLayout, n_sites: int) -> None:
        self.system = system
        self.layout = layout
        self.n_sites = n_sites

    def values(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Parameter vector of ``H(x, θ)`` for inputs ``x = (J_x, J_y, J_z)``."""
        return np.concatenate([np.asarray(x, dtype=float), theta])


@lru_cache(maxsize=4)
def build_model(nx: int = 8, ny: int = 2, hamiltonian: str = "kitaev") -> KitaevSensorModel:
    """Lattice on qubits ``0 .. nx*ny - 1``, sensor on ``nx*ny`` and ``nx*ny + 1``."""
    n = nx * ny
    if hamiltonian == "kitaev":
        lattice_terms = kitaev.hamiltonian_terms(nx, ny, 0)
    elif hamiltonian == "published":
        kitaev.lattice(nx, ny, 0)  # same size checks
        lattice_terms = cluster_ising.hamiltonian_terms(
            n, boundary="periodic", params=kitaev.PARAMS
        )
    else:
        raise ProblemError(f"unknown hamiltonian {hamiltonian!r}; choose 'kitaev' or 'published'")
    layout = kitaev.sensor_layout(nx, ny)
    ham = ParametrisedHamiltonian(
        n + 2, [*lattice_terms, *layout.terms], params=[*kitaev.PARAMS, *layout.names]
    )
    system = QEPSystem(ham, layout.outputs, trainable=layout.names)
    return KitaevSensorModel(system, layout, n)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run the compiled batch solver on ``n`` threads, and BLAS on one.

    The solver parallelises over the independent Hamiltonians of a batch; runs with different
    ``n`` agree to rounding (~1e-16). A resumed run reads ``threads`` from its configuration and
    one BLAS thread keeps reductions in a fixed order, so it repeats the uninterrupted run
    exactly.
    """
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(min(n, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    try:
        with blas_threads(1, 0):
            yield
    finally:
        numba.set_num_threads(old)


class KitaevSensor(ExperimentBase):
    """The Kitaev phase-sensor training task (see the module docstring)."""

    name = "kitaev-sensor"
    Config = KitaevSensorConfig

    # ------------------------------------------------------------------ configuration
    def model(self, config: KitaevSensorConfig) -> KitaevSensorModel:
        return build_model(config.nx, config.ny, config.hamiltonian)

    def spec(self, config: KitaevSensorConfig, relax: float = 1.0) -> StateSpec:
        # M = 10^4 shots resolve expectation values to ~1e-2. Every term commutes with the
        # plaquette and loop operators, so with symmetry = "auto" each flux/loop sector is solved
        # on its own (2^9 sectors of 2^9 states on the 8x2 torus) and the lowest wins; in the
        # full space (symmetry = "none") the lowest levels of different sectors are often only
        # ~1e-3 apart, and the next level must be converged as tightly as the ground level for
        # the gap to be resolved, else every such solve falls back to the slow solver
        tol = config.solver_tol * relax
        return StateSpec(tol=tol, gap_tol=tol, symmetry=config.symmetry)

    def optimiser(self, config: KitaevSensorConfig) -> Optimiser:
        return OPTIMISERS[config.optimiser](config.learning_rate)

    # ------------------------------------------------------------------ data
    def test_set(self, config: KitaevSensorConfig) -> tuple[np.ndarray, np.ndarray]:
        """The authors' fixed 18 test points and their labels (0 = A, 1 = B)."""
        return kitaev.TEST_POINTS.copy(), kitaev.TEST_LABELS.copy()

    # ------------------------------------------------------------------ training
    def init(self, config: KitaevSensorConfig) -> TrainState:
        """Couplings ``θ ~ init_scale · N(0, 1)`` (the authors' ``np.random.randn``)."""
        model = self.model(config)
        rng = np.random.default_rng(config.seed)
        theta = config.init_scale * rng.standard_normal(len(model.layout.names))
        return descent_init(theta, self.optimiser(config), rng, {"train_loss": []})

    def batch_gradient(
        self, config: KitaevSensorConfig, theta: np.ndarray, x: np.ndarray,
        labels: np.ndarray, rng: np.random.Generator | None, relax: float = 1.0,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        """Batch-averaged QEP gradient estimate and mean loss at couplings ``theta``."""
        model = self.model(config)
        opts = GradientOptions(
            nudge=config.nudge,
            state=self.spec(config, relax),
            shots=config.shots,
            shot_model=config.shot_model,
            warn_window=False,
        )
        losses = [MeanSquaredError(t) for t in one_hot(labels, len(kitaev.PHASES))]
        values = np.array([model.values(xi, theta) for xi in x])
        return batch_mean_gradient(
            model.system, values, losses, estimator=config.estimator, options=opts, rng=rng
        )

    def step(self, config: KitaevSensorConfig, state: TrainState) -> TrainState:
        """One optimiser step on the batch-averaged QEP gradient of a fresh balanced batch.

        The batch is drawn first; a solve that stalls (:class:`ConvergenceError`) repeats the
        gradient with the same batch and the same random draws (the generator is reset to its
        state after the batch) at 10x, then 100x ``solver_tol``; ``relaxed_steps`` counts such
        steps. The solver runs on ``threads`` threads, BLAS on one.
        """

        def gradient(theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
            x, labels = kitaev.sample_batch(config.batch_size, rng)
            drawn = rng.bit_generator.state
            for attempt, factor in enumerate(RELAX_FACTORS):
                # the lowest levels of different flux sectors can lie ~1e-4 apart: the batch
                # Lanczos then stalls above a tight tolerance. Repeat (same draws) looser.
                rng.bit_generator.state = drawn
                try:
                    grad, loss = self.batch_gradient(config, theta, x, labels, rng, factor)
                    break
                except ConvergenceError:
                    if attempt == len(RELAX_FACTORS) - 1:
                        raise
            return grad, {"loss": loss, "relaxed": attempt > 0}

        with _threads(config.threads):
            new, info = descent_step(state, self.optimiser(config), gradient)
        new.meta["train_loss"] = [*state.meta.get("train_loss", []), info["loss"]][
            -config.eval_every :
        ]
        new.meta["relaxed_steps"] = int(state.meta.get("relaxed_steps", 0)) + int(info["relaxed"])
        return new

    # ------------------------------------------------------------------ evaluation
    def probabilities(
        self, config: KitaevSensorConfig, theta: np.ndarray, points: np.ndarray
    ) -> np.ndarray:
        """Exact readout probabilities ``(N, 2)``: ``P(Z_n = +1)`` (A) and ``P(Z_n = -1)`` (B).

        Every solve starts from the same fixed vector (no cache), so an evaluation depends only
        on ``theta`` and ``points``: a resumed run evaluates exactly as an uninterrupted one.
        """
        model = self.model(config)
        h = model.system.full
        ident, coef = model.system.output_coefficients
        values = np.array([model.system.full_values(model.values(xi, theta)) for xi in points])
        out = []
        with _threads(config.threads):
            # chunks of a few points bound the memory of the Krylov bases solved at once
            for i in range(0, len(values), 6):
                for k, factor in enumerate(RELAX_FACTORS):
                    try:
                        states = solve_ground_batch(h, values[i : i + 6], self.spec(config, factor))
                        break
                    except ConvergenceError:
                        if k == len(RELAX_FACTORS) - 1:
                            raise
                out += [expectations(h, st, ident, coef) for st in states]
        return np.array(out)

    def evaluate(self, config: KitaevSensorConfig, state: TrainState) -> dict[str, Any]:
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, state.arrays["params"], pts)
        train = state.meta.get("train_loss")
        return classification_metrics(probs, labels) | {
            "train_loss": float(np.mean(train)) if train else None,
            "relaxed_steps": int(state.meta.get("relaxed_steps", 0)),
        }

    def finish(
        self, config: KitaevSensorConfig, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        theta = state.arrays["params"]
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, theta, pts)
        grid = kitaev.triangle_grid(config.map_resolution)
        grid_probs = self.probabilities(config, theta, grid)
        summary = classification_metrics(probs, labels) | {
            "n_test": len(labels),
            "hamiltonian": config.hamiltonian,
            "label": config.label,
        }
        arrays = {
            "params": theta,
            "param_names": np.array(self.model(config).layout.names),
            "test_points": pts,
            "test_labels": labels,
            "test_probs": probs,
            "grid_points": grid,
            "grid_labels": kitaev.phase_labels(grid),
            "grid_probs": grid_probs,
        }
        return summary, arrays


EXPERIMENT = KitaevSensor()
