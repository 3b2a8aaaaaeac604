"""Gradient-based optimisers as ``(init, update)`` pairs with explicit state (optax style).

``state = opt.init(params)``; ``params, state = opt.update(params, grads, state)``. States are
dicts of numpy arrays and ints, so they can be checkpointed. Nothing else of qeprop is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["OPTIMISERS", "Optimiser", "adam", "normalised_sgd", "sgd"]

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


OPTIMISERS: dict[str, Callable[[float], Optimiser]] = {
    "adam": adam,
    "sgd": sgd,
    "normalised_sgd": normalised_sgd,
}
