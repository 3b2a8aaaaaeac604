"""Loss functions of the outputs ``y``: each returns ``(L, ε = ∂L/∂y)``.

The error signal ``ε`` is what QEP nudges with: ``ν = β ε`` (Wanjura & Marquardt, eq. 4-5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import ProblemError

__all__ = ["LOSSES", "CrossEntropy", "FunctionLoss", "Loss", "MeanSquaredError", "make_loss"]


class Loss(Protocol):
    """A differentiable loss of the output vector ``y`` (shape ``(L,)``)."""

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]: ...


def _target(target: Sequence[float] | np.ndarray) -> np.ndarray:
    t = np.asarray(target, dtype=float).reshape(-1)
    if not np.all(np.isfinite(t)):
        raise ProblemError("the loss target contains NaN or inf")
    return t


def _check_len(y: np.ndarray, t: np.ndarray) -> None:
    if y.shape != t.shape:
        raise ProblemError(f"the target has {t.size} entries but there are {y.size} outputs")


@dataclass(frozen=True)
class MeanSquaredError:
    """``L = Σ_l (y_l - t_l)²`` (a sum, not a mean), so ``ε = 2 (y - t)`` as in the paper."""

    target: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _target(self.target))

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        y = np.asarray(y, dtype=float)
        _check_len(y, self.target)
        d = y - self.target
        return float(d @ d), 2.0 * d


@dataclass(frozen=True)
class CrossEntropy:
    """``L = -Σ_l t_l log y_l`` for outputs that are probabilities (e.g. projectors).

    ``y`` is clipped to ``[floor, 1]`` (shot noise can push estimates outside), so
    ``ε_l = -t_l / max(y_l, floor)``.
    """

    target: np.ndarray
    floor: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _target(self.target))

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        y = np.asarray(y, dtype=float)
        _check_len(y, self.target)
        yc = np.clip(y, self.floor, 1.0)
        return float(-self.target @ np.log(yc)), -self.target / yc


@dataclass(frozen=True)
class FunctionLoss:
    """A user callable ``y -> (L, ∂L/∂y)``; its result is checked for shape and finiteness."""

    fn: Callable[[np.ndarray], tuple[float, np.ndarray]]

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        out = self.fn(np.asarray(y, dtype=float))
        try:
            val, grad = out
        except (TypeError, ValueError):
            raise ProblemError("a loss callable must return (L, dL/dy)") from None
        g = np.asarray(grad, dtype=float).reshape(-1)
        if g.shape != np.shape(y):
            raise ProblemError(
                f"the loss callable returned dL/dy of shape {g.shape}, expected {np.shape(y)}"
            )
        if not (np.isfinite(val) and np.all(np.isfinite(g))):
            raise ProblemError("the loss callable returned NaN or inf")
        return float(val), g


LOSSES: dict[str, type] = {"mse": MeanSquaredError, "cross_entropy": CrossEntropy}


def make_loss(kind: str, target: Sequence[float] | np.ndarray, n_outputs: int) -> Loss:
    """Build a named loss and check that the target has one entry per output."""
    if kind not in LOSSES:
        raise ProblemError(f"unknown loss {kind!r}; choose one of {[*LOSSES, 'observable']}")
    loss = LOSSES[kind](target)
    if loss.target.size != n_outputs:
        raise ProblemError(
            f"the target has {loss.target.size} entries but there are {n_outputs} outputs"
        )
    return loss
