"""Gradient-based optimisers as ``(init, update)`` pairs with explicit state (optax style).

``state = opt.init(params)``; ``params, state = opt.update(params, grads, state)``. States are
dicts of numpy arrays and ints, so they can be checkpointed. Nothing else of qeprop is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "OPTIMISERS",
    "Optimiser",
    "adam",
    "adamax",
    "inverse_time_decay",
    "normalised_sgd",
    "sgd",
]

State = dict[str, Any]


@dataclass(frozen=True)
class Optimiser:
    """An optimiser: ``init(params) -> state`` and ``update(params, grads, state)``."""

    name: str
    init: Callable[[np.ndarray], State]
    update: Callable[[np.ndarray, np.ndarray, State], tuple[np.ndarray, State]]


def sgd(learning_rate: float) -> Optimiser:
    """Plain gradient descent ``θ ← θ - η g``."""

    def init(params: np.ndarray) -> State:
        return {}

    def update(params: np.ndarray, grads: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        return params - learning_rate * grads, state

    return Optimiser("sgd", init, update)


def normalised_sgd(learning_rate: float) -> Optimiser:
    """Normalised gradient steps ``θ ← θ - η g / ||g||`` (fixed step length ``η``)."""

    def init(params: np.ndarray) -> State:
        return {}

    def update(params: np.ndarray, grads: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        norm = float(np.linalg.norm(grads))
        return (params - learning_rate * grads / norm if norm > 0 else params.copy()), state

    return Optimiser("normalised_sgd", init, update)


def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimiser:
    """Adam (Kingma & Ba 2015): bias-corrected moment estimates ``m``, ``v``.

    ``m ← b1 m + (1-b1) g``, ``v ← b2 v + (1-b2) g²``,
    ``θ ← θ - η m̂ / (sqrt(v̂) + eps)`` with ``m̂ = m/(1-b1^t)``, ``v̂ = v/(1-b2^t)``.
    """

    def init(params: np.ndarray) -> State:
        return {"m": np.zeros_like(params), "v": np.zeros_like(params), "t": 0}

    def update(params: np.ndarray, grads: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        t = int(state["t"]) + 1
        m = b1 * state["m"] + (1 - b1) * grads
        v = b2 * state["v"] + (1 - b2) * grads**2
        mhat = m / (1 - b1**t)
        vhat = v / (1 - b2**t)
        return params - learning_rate * mhat / (np.sqrt(vhat) + eps), {"m": m, "v": v, "t": t}

    return Optimiser("adam", init, update)


def adamax(
    learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> Optimiser:
    """Adamax (Kingma & Ba 2015, Sec. 7.1), in the form of ``optax.adamax``.

    ``m ← b1 m + (1-b1) g``, ``u ← max(b2 u, |g| + eps)`` (elementwise, the infinity-norm
    second moment), ``θ ← θ - η m / ((1 - b1^t) u)``. Unlike Adam, the step of each coupling is
    bounded by ``η`` (up to the bias correction of ``m``) however noisy its gradient. ``eps`` sits
    inside the maximum as in optax (the library of the reference implementation), so ``u > 0``.
    """

    def init(params: np.ndarray) -> State:
        return {"m": np.zeros_like(params), "u": np.zeros_like(params), "t": 0}

    def update(params: np.ndarray, grads: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        t = int(state["t"]) + 1
        m = b1 * state["m"] + (1 - b1) * grads
        u = np.maximum(b2 * state["u"], np.abs(grads) + eps)
        step = learning_rate * m / ((1 - b1**t) * u)
        return params - step, {"m": m, "u": u, "t": t}

    return Optimiser("adamax", init, update)


def inverse_time_decay(
    factory: Callable[[float], Optimiser], learning_rate: float, decay: float
) -> Optimiser:
    """``factory``'s optimiser with the learning rate ``η_t = η / (1 + decay·t)`` at update ``t``.

    ``t = 0, 1, ...`` counts updates and is kept in the state (``schedule_t``), so a resumed run
    continues the schedule. ``decay = 0`` is the constant rate. With normalised steps the step
    length itself shrinks, which turns the fixed-length zigzag across a narrow ridge of the loss
    into convergence.
    """
    if not (np.isfinite(decay) and decay >= 0):
        raise ValueError(f"decay must be a finite number >= 0, got {decay!r}")
    name = factory(learning_rate).name + (f"+decay{decay:g}" if decay else "")

    def init(params: np.ndarray) -> State:
        return {**factory(learning_rate).init(params), "schedule_t": 0}

    def update(params: np.ndarray, grads: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        t = int(state["schedule_t"])
        inner = {k: v for k, v in state.items() if k != "schedule_t"}
        new, inner = factory(learning_rate / (1.0 + decay * t)).update(params, grads, inner)
        return new, {**inner, "schedule_t": t + 1}

    return Optimiser(name, init, update)


OPTIMISERS: dict[str, Callable[[float], Optimiser]] = {
    "adam": adam,
    "adamax": adamax,
    "sgd": sgd,
    "normalised_sgd": normalised_sgd,
}
