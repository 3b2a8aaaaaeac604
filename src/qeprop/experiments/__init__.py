"""Experiments: training tasks and studies that return results (layer 4).

An experiment is a pure, step-wise computation. It never prints, plots or writes files; the run
machinery (:mod:`qeprop.runs`) owns the run directory, progress, checkpoints and provenance and
drives the experiment through this small interface:

* ``name``: the experiment's name.
* ``Config``: its configuration, a frozen dataclass deriving from :class:`qeprop.config.Config`
  (every key with type, default, bounds and a one-line description; checked in one place before
  anything runs). ``resolve(data) -> Config`` builds one from plain values (``config.toml``,
  ``--set``), refusing unknown keys.
* ``init(config) -> TrainState``: the initial state (parameters, optimiser state, RNG state).
* ``step(config, state) -> TrainState``: advance by one step. All randomness comes from the RNG
  state stored in ``state``, so that a run resumed from a checkpoint reproduces an uninterrupted
  run exactly; training tasks step through :func:`qeprop.training.descent_step`.
* ``total_steps(config) -> int`` and ``eval_every(config) -> int``.
* ``evaluate(config, state) -> dict``: metrics at the current step (JSON-able scalars); the run
  machinery adds ``"step"``. It must depend on ``config`` and ``state`` only (no cache kept in
  memory between calls may change a result), or a resumed run would evaluate differently.
* ``finish(config, state) -> tuple[dict, dict[str, np.ndarray]]``: final summary (JSON-able) and
  arrays to save (trained parameters, maps for plots).

:class:`ExperimentBase` supplies ``resolve``, ``defaults``, ``total_steps`` (``config.steps``) and
``eval_every`` (``config.eval_every``) from ``Config``. An experiment written against the
earlier protocol, whose ``resolve`` returns a plain dict, still runs (its dict is its
configuration).

Experiments are registered by name in :data:`EXPERIMENTS` (imported lazily); :func:`get_experiment`
also accepts ``"module:attribute"`` for an experiment defined outside qeprop.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import numpy as np

from .._registry import EXPERIMENTS  # name -> "module:attribute", kept light for the CLI
from ..config import Config
from ..errors import ProblemError
from ..training import TrainState

__all__ = ["EXPERIMENTS", "Experiment", "ExperimentBase", "TrainState", "get_experiment"]


class Experiment(Protocol):
    name: str

    def resolve(self, config: Mapping[str, Any]) -> Any: ...

    def init(self, config: Any) -> TrainState: ...

    def step(self, config: Any, state: TrainState) -> TrainState: ...

    def total_steps(self, config: Any) -> int: ...

    def eval_every(self, config: Any) -> int: ...

    def evaluate(self, config: Any, state: TrainState) -> dict[str, Any]: ...

    def finish(
        self, config: Any, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...


class ExperimentBase:
    """Configuration handling shared by experiments: everything comes from ``Config``."""

    name: str = ""
    Config: ClassVar[type[Config]]

    def defaults(self) -> dict[str, Any]:
        """The declared defaults (``config.toml`` form)."""
        return self.Config.defaults()

    def resolve(self, config: Mapping[str, Any]) -> Any:
        """The checked configuration (an instance of ``Config``) from plain values; the key
        ``experiment`` (the name, in ``config.toml``) is ignored."""
        if not isinstance(config, Mapping):
            raise ProblemError("the configuration must be a table of key = value pairs")
        return self.Config.from_mapping({k: v for k, v in config.items() if k != "experiment"})

    def total_steps(self, config: Any) -> int:
        return int(config["steps"])

    def eval_every(self, config: Any) -> int:
        return int(config["eval_every"])


_METHODS = ("resolve", "init", "step", "total_steps", "eval_every", "evaluate", "finish")


def get_experiment(name: str) -> Experiment:
    """The experiment registered under ``name``.

    A name that contains a colon, ``"package.module:attribute"``, is looked up directly (the
    module is imported and the attribute returned): this runs experiments that live outside
    qeprop (a user's own module on ``PYTHONPATH``, the test suite's toy experiment) without
    registering them. A run directory records the name as given, so ``--resume`` finds the
    experiment the same way. The object found must implement :class:`Experiment`.
    """
    if not isinstance(name, str):
        raise ProblemError(f"an experiment name must be text, got {name!r}")
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
    if isinstance(obj, type):
        raise ProblemError(
            f"{name!r} is a class, not an experiment; give the instance (e.g. 'module:EXPERIMENT')"
        )
    missing = [m for m in _METHODS if not callable(getattr(obj, m, None))]
    if missing:
        raise ProblemError(
            f"{name!r} is not an experiment (a {type(obj).__name__} without "
            f"{', '.join(missing)}; see qeprop.experiments.Experiment)"
        )
    return obj
