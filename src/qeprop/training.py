"""The training loop every experiment steps through: state, randomness, gradient descent (layer 4).

A run advances a :class:`TrainState` one step at a time (the run machinery, :mod:`qeprop.runs`,
calls ``experiment.step`` and checkpoints the state in between). Everything a step needs to
continue exactly lives in the state:

* ``arrays["params"]``: the trained parameters ``θ`` (a float vector);
* ``arrays["optimiser"]``: the optimiser's state as *one* value, a dict of arrays and integers
  (Adam's ``m``, ``v``, ``t``; a schedule's ``schedule_t``), saved and restored as a whole;
* ``meta["rng"]``: the state of the step's random generator (``numpy`` PCG64), so a resumed
  run draws the same batches and shot noise as an uninterrupted one.

:func:`descent_step` is the one gradient-descent step the training tasks share (phase
recognition, phase exploration, sensitivity)::

    θ_{t+1} = constrain(θ_t, update(θ_t, project(θ_t, g_t)))

with ``g_t, info = gradient(θ_t, rng)`` supplied by the experiment (a batch-averaged QEP
gradient, a multi-point objective's gradient, ...), the optimiser's ``update`` (:mod:`qeprop.optim`)
and optional ``project`` (change the gradient, e.g. drop the part that would violate a
constraint) and ``constrain`` (map the new point back into the allowed set). The step runs with
one BLAS thread (:func:`deterministic`): multi-threaded reductions may sum in a different order
from call to call, and a resumed run must repeat an uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .optim import Optimiser
from .solvers.exact import blas_threads

__all__ = ["TrainState", "descent_init", "descent_step", "deterministic", "rng_of", "with_rng"]

#: ``gradient(θ, rng) -> (g, info)``: the step's gradient and what the experiment wants to keep
GradientFn = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, dict[str, Any]]]


@dataclass
class TrainState:
    """Everything needed to continue a run: ``step``, arrays and JSON-able metadata.

    ``arrays`` maps names to numpy arrays, or to one level of dicts of arrays/integers (the
    optimiser state); ``meta`` holds plain JSON values such as the RNG state
    (``numpy.random.Generator.bit_generator.state``). A checkpoint stores exactly this.
    """

    step: int = 0
    arrays: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """One BLAS thread for the duration (reductions in a fixed order; see the module docstring)."""
    with blas_threads(1, 0):
        yield


def rng_of(state: TrainState) -> np.random.Generator:
    """A generator continuing from ``state.meta["rng"]``."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state.meta["rng"]
    return rng


def with_rng(meta: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """``meta`` with the generator's current state as ``"rng"``."""
    return {**meta, "rng": rng.bit_generator.state}


def descent_init(
    params: np.ndarray,
    optimiser: Optimiser,
    rng: np.random.Generator,
    meta: dict[str, Any] | None = None,
) -> TrainState:
    """Step 0 of gradient descent from ``params``: the optimiser's initial state and the RNG
    state after whatever drew ``params``."""
    theta = np.array(params, dtype=float)
    return TrainState(
        step=0,
        arrays={"params": theta, "optimiser": dict(optimiser.init(theta))},
        meta=with_rng(dict(meta or {}), rng),
    )


def descent_step(
    state: TrainState,
    optimiser: Optimiser,
    gradient: GradientFn,
    *,
    project: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    constrain: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[TrainState, dict[str, Any]]:
    """One step ``θ ← constrain(θ, update(θ, project(θ, g)))``; returns the new state and the
    ``info`` of ``gradient``.

    The new state has ``step + 1``, the new ``params`` and ``optimiser`` state, the RNG state
    after the step, and every other array and ``meta`` entry of ``state`` unchanged (the
    experiment adds what it records from ``info``). ``state`` itself is not modified.
    """
    with deterministic():
        rng = rng_of(state)
        theta = np.asarray(state.arrays["params"], dtype=float)
        grad, info = gradient(theta, rng)
        grad = np.asarray(grad, dtype=float)
        if project is not None:
            grad = project(theta, grad)
        new, opt_state = optimiser.update(theta, grad, dict(state.arrays["optimiser"]))
        new = np.asarray(new, dtype=float)
        if constrain is not None:
            new = constrain(theta, new)
    arrays = {**state.arrays, "params": new, "optimiser": dict(opt_state)}
    return TrainState(state.step + 1, arrays, with_rng(dict(state.meta), rng)), info
