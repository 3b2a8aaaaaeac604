"""A toy experiment for the run machinery's tests: noisy gradient descent with momentum on a
quadratic bowl, all randomness drawn from the RNG state kept in ``TrainState.meta``.

Importable as ``toy_experiment:TOY`` (the tests directory is on ``sys.path`` via conftest, and on
``PYTHONPATH`` for subprocesses), which :func:`qeprop.experiments.get_experiment` accepts.

Hooks for interruption tests (attributes of ``TOY``, not configuration):

* ``interrupt_at``: raise ``KeyboardInterrupt`` inside the step that would reach this step,
  *after* the parameters were already changed in place (a half-done step);
* ``fail_at``: raise ``RuntimeError`` likewise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from qeprop.config import Config, option
from qeprop.experiments import ExperimentBase, TrainState


@dataclass(frozen=True)
class ToyConfig(Config):
    steps: int = option(60, "descent steps", ge=1, le=10**6)
    eval_every: int = option(10, "steps between evaluations", ge=1)
    checkpoint_every: int = option(20, "steps between checkpoints", ge=1)
    seed: int = option(0, "seed of the start and the noise", ge=0)
    learning_rate: float = option(0.05, "learning rate", gt=0, le=10)
    noise: float = option(0.5, "standard deviation of the gradient noise", ge=0, le=100)
    dim: int = option(4, "dimension of the bowl", ge=1, le=1000)
    sleep: float = option(0.0, "seconds to sleep in every step (for signal tests)", ge=0, le=10)
    label: str = option("toy", "name in plots")


class Toy(ExperimentBase):
    name = "toy"
    Config = ToyConfig

    def __init__(self) -> None:
        self.interrupt_at: int | None = None
        self.fail_at: int | None = None

    @staticmethod
    def _problem(dim: int) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(1.0, dim + 1.0), np.linspace(-1.0, 1.0, dim)

    def init(self, config: dict[str, Any]) -> TrainState:
        rng = np.random.default_rng(config["seed"])
        x = 2.0 * rng.standard_normal(config["dim"])
        return TrainState(
            step=0,
            arrays={"params": x, "velocity": np.zeros_like(x)},
            meta={"rng": rng.bit_generator.state, "history": []},
        )

    def step(self, config: dict[str, Any], state: TrainState) -> TrainState:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.meta["rng"]
        a, c = self._problem(config["dim"])
        x, v = state.arrays["params"], state.arrays["velocity"]
        g = a * (x - c) + config["noise"] * rng.standard_normal(x.shape)
        v *= 0.8  # in place on purpose: a half-done step must never reach a checkpoint
        v += g
        x -= config["learning_rate"] * v
        if config["sleep"]:
            time.sleep(config["sleep"])
        nxt = state.step + 1
        if self.interrupt_at == nxt:
            raise KeyboardInterrupt
        if self.fail_at == nxt:
            raise RuntimeError("toy failure")
        state.meta["history"].append(round(float(g[0]), 3))  # in place, too
        return TrainState(
            step=nxt,
            arrays={"params": x, "velocity": v},
            meta={"rng": rng.bit_generator.state, "history": state.meta["history"]},
        )

    def total_steps(self, config: dict[str, Any]) -> int:
        return int(config["steps"])

    def eval_every(self, config: dict[str, Any]) -> int:
        return int(config["eval_every"])

    def evaluate(self, config: dict[str, Any], state: TrainState) -> dict[str, Any]:
        a, c = self._problem(config["dim"])
        x = state.arrays["params"]
        return {
            "loss": float(0.5 * np.sum(a * (x - c) ** 2)),
            "accuracy": float(np.mean(np.abs(x - c) < 0.2)),
        }

    def finish(
        self, config: dict[str, Any], state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        x = state.arrays["params"]
        summary = {**self.evaluate(config, state), "label": config["label"]}
        names = np.array([f"x{i}" for i in range(x.size)])
        return summary, {"params": x.copy(), "param_names": names}


TOY = Toy()
