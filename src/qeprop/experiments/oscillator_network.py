"""A quantum harmonic oscillator network trained by QEP, beside its classical twin trained by EP.

Scellier's quantum oscillator network (eqs. 41-42, :mod:`qeprop.models.oscillator_network`) on
a regression task in the spirit of the elastic-network tasks of Stern et al.: for input forces
``F`` on two nodes, the squared distances ``y_o = ⟨(r_a - r_b)^2⟩`` of two output pairs must
match the distances ``t_o`` that a *classical* teacher network (the same graph, other springs)
shows under the same forces. The springs ``k_ij`` are trained on the mean squared error
``L = Σ_o (y_o - t_o)^2`` with the QEP estimator of the configuration (nudging
``ν = β ∂L/∂y`` on the outputs, i.e. a change of the output pair's spring by ``2ν``), solved
exactly by the ``gaussian`` backend; springs are kept above ``min_spring`` after each step (a
network with a negative spring may have no ground state).

At the same time, with the same initial springs and the same mini-batches, the classical twin —
the same springs without momenta and ``ħ`` — is trained by classical equilibrium propagation
(Scellier eqs. 5-10) with the same variant and nudge (the exact adjoint gradient when the
estimator is ``linear_response``). Its nudged state minimises ``E + βC`` with the quartic cost
``C = Σ_o ((r_a - r_b)^2 - t_o)^2``, which exists only while ``β |∂²C|`` stays below the network's
softest stiffness: a shot-noise run that needs a large quantum nudge gives the twin a smaller
one (``twin_nudge``). As ``ħ → 0`` the two coincide; as ``ħ`` grows, zero-point
motion adds ``Var(r_a - r_b) = O(ħ)`` to every output, and the quantum network learns other
springs (stiffer ones damp the fluctuations) and a higher floor of the loss.

Metrics (exact expectation values on a fixed test set): ``test_loss`` and
``twin_test_loss``, the mean training loss of the last steps, and ``zero_point``: the mean
fluctuation part ``⟨(r_a - r_b)^2⟩ - (⟨r_a⟩ - ⟨r_b⟩)^2`` of the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..config import Config, option
from ..errors import ProblemError
from ..gradients import GradientOptions, batch_mean_gradient
from ..losses import MeanSquaredError
from ..measurement import SHOT_MODELS, expectations
from ..models import oscillator_network as osc
from ..optim import OPTIMISERS, Optimiser
from ..solvers import StateSpec, solve
from ..system import QEPSystem
from ..training import TrainState, descent_init, descent_step, deterministic
from . import ExperimentBase

__all__ = ["EXPERIMENT", "OscillatorNetwork", "OscillatorNetworkConfig", "Task", "build_task"]

ESTIMATORS = ("positive", "negative", "centered", "linear_response")


@dataclass(frozen=True)
class OscillatorNetworkConfig(Config):
    """Configuration of ``oscillator-network``."""

    steps: int = option(300, "training steps (optimiser updates)", ge=1, le=10**7)
    batch_size: int = option(4, "force samples per mini-batch", ge=1, le=10_000)
    hbar: float = option(0.3, "ħ of the quantum network (ħ → 0: the classical twin)", gt=0, le=100)
    temperature: float | None = option(
        None, "temperature of a thermal state (none: the ground state)", gt=0, le=1e6
    )
    nudge: float = option(0.01, "nudge strength β of the QEP estimator", gt=0, le=10)
    twin_nudge: float | None = option(
        None, "nudge of the classical twin's EP (none: the same as nudge)", gt=0, le=10
    )
    estimator: str = option("centered", "QEP estimator of the quantum network", choices=ESTIMATORS)
    shots: int | None = option(
        None, "position shots per measurement setting (none: exact values)", ge=1, le=10**9
    )
    shot_model: str = option("sampled", "how shots are simulated", choices=SHOT_MODELS)
    learning_rate: float = option(0.02, "learning rate of the optimiser", gt=0, le=100)
    optimiser: str = option("adam", "optimiser of the springs", choices=("adam", "adamax", "sgd"))
    seed: int = option(0, "seed of the initial springs, the batches and the shot noise", ge=0)
    nodes: int = option(10, "particles in the network", ge=4, le=200)
    extra_edges: int = option(8, "springs beyond a random spanning chain", ge=0, le=10_000)
    network_seed: int = option(0, "seed of the graph, the teacher springs and the data", ge=0)
    n_train: int = option(32, "training force samples", ge=1, le=100_000)
    n_test: int = option(32, "test force samples", ge=1, le=100_000)
    force_scale: float = option(1.0, "standard deviation of the input forces", gt=0, le=1e3)
    min_spring: float = option(0.05, "springs are kept at or above this value", gt=0, le=10)
    eval_every: int = option(25, "steps between evaluations", ge=1, le=10**7)
    checkpoint_every: int = option(25, "steps between checkpoints", ge=1, le=10**7)

    def check(self) -> None:
        if self.batch_size > self.n_train:
            raise ProblemError(
                f"a batch of {self.batch_size} needs at least as many training samples "
                f"(n_train = {self.n_train})",
                where="batch_size",
            )
        if self.estimator == "linear_response" and self.shots is not None:
            raise ProblemError(
                "the linear_response estimator is exact and takes no shots; set shots = none",
                where="shots",
            )
        most = self.nodes * (self.nodes - 1) // 2 - (self.nodes - 1)
        if self.extra_edges > most:
            raise ProblemError(
                f"{self.nodes} nodes have room for at most {most} springs beyond the chain",
                where="extra_edges",
            )


@dataclass(frozen=True)
class Task:
    """The network, its teacher springs and the data (all fixed by ``network_seed``)."""

    net: osc.ElasticNetwork
    teacher: np.ndarray
    train_forces: np.ndarray
    train_targets: np.ndarray
    test_forces: np.ndarray
    test_targets: np.ndarray


@lru_cache(maxsize=8)
def build_task(
    nodes: int, extra_edges: int, network_seed: int, n_train: int, n_test: int, force_scale: float
) -> Task:
    """Two inputs and two output pairs on a random network; teacher springs ``U(0.5, 2)``."""
    net = osc.random_network(nodes, extra_edges, 2, 2, network_seed)
    rng = np.random.default_rng([network_seed, 7])
    teacher = rng.uniform(0.5, 2.0, len(net.edges))
    twin = osc.ClassicalNetwork(net)
    train = force_scale * rng.standard_normal((n_train, len(net.inputs)))
    test = force_scale * rng.standard_normal((n_test, len(net.inputs)))
    return Task(
        net,
        teacher,
        train,
        np.array([twin.outputs(teacher, f) for f in train]),
        test,
        np.array([twin.outputs(teacher, f) for f in test]),
    )


@lru_cache(maxsize=8)
def _system(net: osc.ElasticNetwork, hbar: float) -> QEPSystem:
    return osc.quantum_system(net, hbar)


class OscillatorNetwork(ExperimentBase):
    """The oscillator-network regression task and its classical twin (module docstring)."""

    name = "oscillator-network"
    Config = OscillatorNetworkConfig

    # ------------------------------------------------------------------ set-up
    def task(self, config: OscillatorNetworkConfig) -> Task:
        return build_task(
            config.nodes, config.extra_edges, config.network_seed, config.n_train,
            config.n_test, config.force_scale,
        )  # fmt: skip

    def system(self, config: OscillatorNetworkConfig) -> QEPSystem:
        return _system(self.task(config).net, config.hbar)

    def spec(self, config: OscillatorNetworkConfig) -> StateSpec:
        if config.temperature is None:
            return StateSpec(method="gaussian")
        return StateSpec(kind="thermal", temperature=config.temperature, method="gaussian")

    def optimiser(self, config: OscillatorNetworkConfig) -> Optimiser:
        return OPTIMISERS[config.optimiser](config.learning_rate)

    def _clip(self, config: OscillatorNetworkConfig) -> Any:
        def constrain(old: np.ndarray, new: np.ndarray) -> np.ndarray:
            del old
            return np.maximum(new, config.min_spring)

        return constrain

    # ------------------------------------------------------------------ training
    def init(self, config: OscillatorNetworkConfig) -> TrainState:
        """Springs ``U(0.5, 2)`` from ``seed``, the same for the quantum network and its twin."""
        task = self.task(config)
        rng = np.random.default_rng(config.seed)
        springs = rng.uniform(0.5, 2.0, len(task.net.edges))
        opt = self.optimiser(config)
        state = descent_init(springs, opt, rng, {"train_loss": [], "twin_train_loss": []})
        state.arrays["twin_params"] = springs.copy()
        state.arrays["twin_optimiser"] = dict(opt.init(springs.copy()))
        first = self.evaluate(config, state)
        state.meta["initial_test_loss"] = first["test_loss"]
        state.meta["initial_twin_test_loss"] = first["twin_test_loss"]
        return state

    def quantum_gradient(
        self, config: OscillatorNetworkConfig, springs: np.ndarray, idx: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        """Batch-averaged QEP gradient and mean loss over the training samples ``idx``."""
        task = self.task(config)
        opts = GradientOptions(
            nudge=config.nudge, state=self.spec(config), shots=config.shots,
            shot_model=config.shot_model, noisy_outputs=config.shots is not None,
            warn_window=False,
        )  # fmt: skip
        values = np.array([np.concatenate([task.train_forces[i], springs]) for i in idx])
        losses = [MeanSquaredError(task.train_targets[i]) for i in idx]
        return batch_mean_gradient(
            self.system(config), values, losses, estimator=config.estimator, options=opts, rng=rng
        )

    def twin_gradient(
        self, config: OscillatorNetworkConfig, springs: np.ndarray, idx: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Batch-averaged classical EP gradient (exact adjoint for ``linear_response``)."""
        task = self.task(config)
        twin = osc.ClassicalNetwork(task.net)
        grads, losses = [], []
        for i in idx:
            f, t = task.train_forces[i], task.train_targets[i]
            if config.estimator == "linear_response":
                grads.append(twin.exact_gradient(springs, f, t))
            else:
                beta = config.nudge if config.twin_nudge is None else config.twin_nudge
                grads.append(twin.ep_gradient(springs, f, t, beta, config.estimator))
            losses.append(twin.loss(springs, f, t))
        return np.mean(grads, axis=0), float(np.mean(losses))

    def step(self, config: OscillatorNetworkConfig, state: TrainState) -> TrainState:
        """One step of both networks on the same mini-batch (drawn first, from the run's RNG)."""
        drawn: dict[str, np.ndarray] = {}

        def gradient(theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
            idx = rng.choice(config.n_train, size=config.batch_size, replace=False)
            drawn["idx"] = idx
            grad, loss = self.quantum_gradient(config, theta, idx, rng)
            return grad, {"loss": loss}

        opt = self.optimiser(config)
        new, info = descent_step(state, opt, gradient, constrain=self._clip(config))
        with deterministic():
            twin = np.asarray(state.arrays["twin_params"], dtype=float)
            g, twin_loss = self.twin_gradient(config, twin, drawn["idx"])
            twin_new, twin_opt = opt.update(twin, g, dict(state.arrays["twin_optimiser"]))
        new.arrays["twin_params"] = self._clip(config)(twin, np.asarray(twin_new, dtype=float))
        new.arrays["twin_optimiser"] = dict(twin_opt)
        keep = config.eval_every
        new.meta["train_loss"] = [*state.meta.get("train_loss", []), info["loss"]][-keep:]
        new.meta["twin_train_loss"] = [*state.meta.get("twin_train_loss", []), twin_loss][-keep:]
        return new

    # ------------------------------------------------------------------ evaluation
    def predictions(
        self, config: OscillatorNetworkConfig, springs: np.ndarray, forces: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact quantum outputs ``(n, n_outputs)`` and their fluctuation parts."""
        system = self.system(config)
        h = system.full
        ident, coef = system.output_coefficients
        readout = self.task(config).net.readout
        ys, fluct = [], []
        for f in forces:
            st = solve(h, system.full_values(np.concatenate([f, springs])), self.spec(config))
            y = expectations(h, st, ident, coef)
            mean_r = st.mean[: readout.shape[1]]  # type: ignore[union-attr]
            ys.append(y)
            fluct.append(y - (readout @ mean_r) ** 2)
        return np.array(ys), np.array(fluct)

    def evaluate(self, config: OscillatorNetworkConfig, state: TrainState) -> dict[str, Any]:
        task = self.task(config)
        springs = np.asarray(state.arrays["params"], dtype=float)
        twin_k = np.asarray(state.arrays["twin_params"], dtype=float)
        y, fluct = self.predictions(config, springs, task.test_forces)
        twin = osc.ClassicalNetwork(task.net)
        twin_loss = np.mean(
            [
                twin.loss(twin_k, f, t)
                for f, t in zip(task.test_forces, task.test_targets, strict=True)
            ]
        )
        train = state.meta.get("train_loss")
        twin_train = state.meta.get("twin_train_loss")
        return {
            "test_loss": float(np.mean(np.sum((y - task.test_targets) ** 2, axis=1))),
            "twin_test_loss": float(twin_loss),
            "train_loss": float(np.mean(train)) if train else None,
            "twin_train_loss": float(np.mean(twin_train)) if twin_train else None,
            "zero_point": float(np.mean(fluct)),
            "spring_difference": float(
                float(np.linalg.norm(springs - twin_k)) / max(float(np.linalg.norm(twin_k)), 1e-300)
            ),
        }

    def finish(
        self, config: OscillatorNetworkConfig, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        task = self.task(config)
        final = self.evaluate(config, state)
        init_q = float(state.meta["initial_test_loss"])
        init_c = float(state.meta["initial_twin_test_loss"])
        summary = final | {
            "initial_test_loss": init_q,
            "initial_twin_test_loss": init_c,
            "test_loss_reduction": init_q / max(final["test_loss"], 1e-300),
            "twin_test_loss_reduction": init_c / max(final["twin_test_loss"], 1e-300),
            "hbar": config.hbar,
            "temperature": config.temperature,
            "estimator": config.estimator,
            "nudge": config.nudge,
            "shots": config.shots,
            "n_springs": len(task.net.edges),
        }
        y, fluct = self.predictions(config, state.arrays["params"], task.test_forces)
        arrays = {
            "params": np.asarray(state.arrays["params"], dtype=float),
            "twin_params": np.asarray(state.arrays["twin_params"], dtype=float),
            "teacher_params": task.teacher,
            "param_names": np.array(task.net.spring_names),
            "test_forces": task.test_forces,
            "test_targets": task.test_targets,
            "test_outputs": y,
            "test_zero_point": fluct,
        }
        return summary, arrays


EXPERIMENT = OscillatorNetwork()
