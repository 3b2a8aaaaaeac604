"""Experiments: training tasks and studies that return results (layer 4).

An experiment is a pure, step-wise computation. It never prints, plots or writes files; the run
machinery (:mod:`qeprop.runs`) owns the run directory, progress, checkpoints and provenance and
drives the experiment through this small interface:

* ``defaults() -> dict``: the default configuration (plain TOML-able values).
* ``resolve(config: dict) -> dict``: validate a (partial) configuration and fill in defaults;
  raises :class:`~qeprop.errors.ProblemError` naming the offending key.
* ``init(config) -> TrainState``: the initial state (parameters, optimiser state, RNG state).
* ``step(config, state) -> TrainState``: advance by one step. All randomness comes from the RNG
  state stored in ``state``, so that a run resumed from a checkpoint reproduces an uninterrupted
  run exactly.
* ``total_steps(config) -> int`` and ``eval_every(config) -> int``.
* ``evaluate(config, state) -> dict``: metrics at the current step (JSON-able scalars); the run
  machinery adds ``"step"``.
* ``finish(config, state) -> tuple[dict, dict[str, np.ndarray]]``: final summary (JSON-able) and
  arrays to save (trained parameters, maps for plots).

Experiments are registered by name in :data:`EXPERIMENTS` (imported lazily); :func:`get_experiment`
also accepts ``"module:attribute"`` for an experiment defined outside qeprop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import ProblemError

__all__ = ["EXPERIMENTS", "Experiment", "TrainState", "get_experiment"]


@dataclass
class TrainState:
    """Everything needed to continue a run: ``step``, arrays and JSON-able metadata.

    ``arrays`` holds numpy arrays (parameters, optimiser moments); ``meta`` holds plain values
    such as the RNG state (``numpy.random.Generator.bit_generator.state``).
    """

    step: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class Experiment(Protocol):
    name: str

    def defaults(self) -> dict[str, Any]: ...

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]: ...

    def init(self, config: dict[str, Any]) -> TrainState: ...

    def step(self, config: dict[str, Any], state: TrainState) -> TrainState: ...

    def total_steps(self, config: dict[str, Any]) -> int: ...

    def eval_every(self, config: dict[str, Any]) -> int: ...

    def evaluate(self, config: dict[str, Any], state: TrainState) -> dict[str, Any]: ...

    def finish(
        self, config: dict[str, Any], state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...


#: experiment name -> "module:attribute" of an object implementing :class:`Experiment`
EXPERIMENTS: dict[str, str] = {
    "phase-recognition": "qeprop.experiments.phase_recognition:EXPERIMENT",
    "gradient-quality": "qeprop.experiments.gradient_quality:EXPERIMENT",
    "phase-exploration": "qeprop.experiments.unsupervised:PHASE_EXPLORATION",
    "sensitivity": "qeprop.experiments.unsupervised:SENSITIVITY",
}


def get_experiment(name: str) -> Experiment:
    """The experiment registered under ``name``.

    A name that contains a colon, ``"package.module:attribute"``, is looked up directly (the
    module is imported and the attribute returned): this runs experiments that live outside
    qeprop (a user's own module on ``PYTHONPATH``, the test suite's toy experiment) without
    registering them. A run directory records the name as given, so ``--resume`` finds the
    experiment the same way.
    """
    if ":" in name:
        target = name
    elif name in EXPERIMENTS:
        target = EXPERIMENTS[name]
    else:
        raise ProblemError(
            f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)} "
            "(or give 'module:attribute' of an object implementing the Experiment protocol)"
        )
    module, _, attr = target.partition(":")
    if not module or not attr or ":" in attr:
        raise ProblemError(f"experiment {name!r}: expected 'module:attribute'")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise ProblemError(f"experiment {name!r}: cannot import {module!r}: {e}") from None
    except AttributeError:
        raise ProblemError(f"experiment {name!r}: module {module!r} has no {attr!r}") from None
    return obj
