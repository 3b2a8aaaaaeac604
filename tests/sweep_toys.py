"""An experiment for the sweep tests that fails on request, importable by Dask workers (the
tests directory is on their ``PYTHONPATH``) as ``sweep_toys:FAILING``: the toy experiment of
``toy_experiment.py`` with one more key, ``fail_at``, the step that raises ``RuntimeError``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qeprop.config import option
from qeprop.experiments import TrainState
from toy_experiment import Toy, ToyConfig


@dataclass(frozen=True)
class FailingConfig(ToyConfig):
    fail_at: int = option(0, "the step that raises RuntimeError (0: none)", ge=0)


class Failing(Toy):
    name = "failing-toy"
    Config = FailingConfig

    def step(self, config: Any, state: TrainState) -> TrainState:
        if config["fail_at"] == state.step + 1:
            raise RuntimeError(f"toy failure in step {state.step + 1}")
        return super().step(config, state)


FAILING = Failing()
