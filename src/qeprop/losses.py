"""Loss functions of the outputs ``y``: each returns ``(L, ε = ∂L/∂y)``.

The error signal ``ε`` is what QEP nudges with: ``ν = β ε`` (Wanjura & Marquardt, eq. 4-5).

Every loss checks its input where it enters: the target when the loss is built (finite reals, one
per output, read-only afterwards) and, when it is evaluated, that the loss and the error signal
stay finite (a huge target overflows ``(y - t)²``) and that the outputs lie in the loss's domain
(cross-entropy needs probabilities). Errors name the input (``loss.target``, the output), never an
internal parameter such as a nudge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .checks import finite_real, real_vector
from .errors import ProblemError
from .pauli import PauliString, PauliSum
from .quadratures import QuadSum

__all__ = [
    "LOSSES",
    "CrossEntropy",
    "FunctionLoss",
    "Loss",
    "MeanSquaredError",
    "SpinCost",
    "bind_outputs",
    "make_loss",
]

#: where loss errors are located (the problem-file key of the target)
TARGET = "loss.target"


class Loss(Protocol):
    """A differentiable loss of the output vector ``y`` (shape ``(L,)``)."""

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]: ...


def _target(target: Sequence[float] | np.ndarray) -> np.ndarray:
    """The target as a read-only float vector of finite reals (text such as ``"0.5"`` refused)."""
    raw: object = target
    if isinstance(raw, int | float | np.integer | np.floating) and not isinstance(raw, bool):
        raw = [raw]  # a single output's target
    return real_vector(raw, TARGET, what="target values")


def _outputs(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=float).reshape(-1)
    if y.shape != t.shape:
        raise ProblemError(
            f"the target has {t.size} entries but there are {y.size} outputs", where=TARGET
        )
    return y


def _output_name(names: tuple[str, ...] | None, i: int) -> str:
    return f"output {names[i]!r}" if names is not None and i < len(names) else f"output {i}"


#: largest error signal |ε| accepted: the nudged Hamiltonian ``H + β Σ ε_l O_l`` must keep its
#: scale below :data:`~qeprop.checks.MAX_COEFFICIENT` (1e150) for any sensible nudge β
MAX_ERROR_SIGNAL = 1e100


def _check_finite(loss: float, eps: np.ndarray, t: np.ndarray, what: str) -> None:
    """Refuse a loss or error signal that overflowed (or nearly did), naming the target (the
    input that drives it), so that no non-finite nudge ``ν = β ε`` is ever formed."""
    if math.isfinite(loss) and bool(np.all(np.abs(eps) <= MAX_ERROR_SIGNAL)):
        return
    big = float(np.max(np.abs(t))) if t.size else 0.0
    raise ProblemError(
        f"the {what} is out of range for this target (largest |entry| {big:.3g}): L must be "
        f"finite and |dL/dy| below {MAX_ERROR_SIGNAL:.0e}; use target values of a size "
        "comparable to the outputs",
        where=TARGET,
    )


@dataclass(frozen=True)
class MeanSquaredError:
    """``L = Σ_l (y_l - t_l)²`` (a sum, not a mean), so ``ε = 2 (y - t)`` as in the paper.

    ``target`` has shape ``(L,)`` and is stored read-only. Evaluating the loss raises
    :class:`~qeprop.errors.ProblemError` (located at ``loss.target``) when ``L`` or ``ε``
    overflows, which a target beyond about ``1e154`` does.
    """

    target: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _target(self.target))

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        y = _outputs(y, self.target)
        with np.errstate(over="ignore", invalid="ignore"):
            d = y - self.target
            val, eps = float(d @ d), 2.0 * d
        _check_finite(val, eps, self.target, "squared error")
        return val, eps


@dataclass(frozen=True)
class CrossEntropy:
    """``L = -Σ_l t_l log y_l`` for outputs that are probabilities (e.g. projectors).

    Parameters
    ----------
    target:
        ``t``, shape ``(L,)``, finite and non-negative (stored read-only).
    floor:
        ``y`` is clipped to ``[floor, 1]``, so ``ε_l = -t_l / max(y_l, floor)``.
    names:
        Output names, used in messages.
    domain_tol:
        Outputs outside ``[-domain_tol, 1 + domain_tol]`` are refused when the loss is evaluated
        (they are not probabilities: the cross-entropy of, e.g., ``⟨Z⟩ ∈ [-1, 1]`` is
        meaningless). The default ``1e-9`` admits rounding only. :meth:`for_outputs` proves
        from the output operators themselves that every expectation lies in ``[0, 1]``; the check
        is then unnecessary and switched off (``domain_tol = inf``), so that estimates which shot
        noise pushes slightly outside ``[0, 1]`` are clipped instead of refused.
    """

    target: np.ndarray
    floor: float = 1e-6
    names: tuple[str, ...] | None = None
    domain_tol: float = 1e-9

    def __post_init__(self) -> None:
        t = _target(self.target)
        neg = np.flatnonzero(t < 0)
        if neg.size:
            raise ProblemError(
                f"cross-entropy targets must be non-negative weights, got {float(t[neg[0]])!r}",
                where=f"{TARGET}[{neg[0]}]",
            )
        object.__setattr__(self, "target", t)
        object.__setattr__(self, "floor", finite_real(self.floor, "floor", 0.0, 1.0, open_lo=True))
        if self.names is not None:
            object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        tol = self.domain_tol
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol >= 0:
            raise ProblemError(f"must be a number >= 0 (or inf), got {tol!r}", where="domain_tol")

    def for_outputs(self, outputs: Mapping[str, PauliSum | QuadSum]) -> CrossEntropy:
        """This loss bound to the output operators, which must be probabilities.

        Each output's spectrum is computed where that is cheap (:meth:`PauliSum.spectrum_bounds`);
        an output with an eigenvalue outside ``[0, 1]`` (beyond rounding) raises
        :class:`~qeprop.errors.ProblemError` naming it. If every output is shown to lie in
        ``[0, 1]``, the returned loss skips the evaluation-time domain check; otherwise that
        check stays on.
        """
        names = tuple(outputs)
        certified = True
        for name, op in outputs.items():
            bounds = op.spectrum_bounds()
            if bounds is None:
                certified = False
                continue
            lo, hi = bounds
            tol = 1e-9 * max(1.0, op.norm_bound())
            if lo < -tol or hi > 1.0 + tol:
                raise ProblemError(
                    f"cross_entropy needs outputs that are probabilities, but output {name!r} "
                    f"has eigenvalues in [{lo:.6g}, {hi:.6g}], not in [0, 1]; use a projector "
                    "such as (1 + Z)/2, or the mse loss",
                    where="loss.kind",
                )
        return replace(self, names=names, domain_tol=math.inf if certified else self.domain_tol)

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        y = _outputs(y, self.target)
        tol = self.domain_tol
        out = np.flatnonzero((y < -tol) | (y > 1.0 + tol))
        if out.size:
            i = int(out[0])
            raise ProblemError(
                f"cross_entropy needs outputs that are probabilities, but "
                f"{_output_name(self.names, i)} = {y[i]:.6g} is not in [0, 1]",
                where="loss.kind",
            )
        yc = np.clip(y, self.floor, 1.0)
        with np.errstate(over="ignore", invalid="ignore"):
            val, eps = float(-self.target @ np.log(yc)), -self.target / yc
        _check_finite(val, eps, self.target, "cross-entropy")
        return val, eps


@dataclass(frozen=True)
class SpinCost:
    """Scellier's cost observable ``C(t) = Σ_l (O_l - t_l)²`` for outputs that square to one.

    For outputs with ``O_l² = 1`` (Pauli strings such as ``Z_o``, the readout of the
    transverse-field Ising networks of Scellier's Sec. 4.1) the cost observable is *linear* in
    the outputs, ``C = Σ_l (1 + t_l² - 2 t_l O_l)``, so its expectation is a function of
    ``y = ⟨O⟩`` alone,

    .. math::  L(y) = ⟨C⟩ = Σ_l (1 + t_l² - 2 t_l y_l), \\qquad ε = ∂L/∂y = -2 t,

    and output nudging with ``ν = β ε`` adds ``β Σ_l ε_l O_l = β (C - Σ_l (1 + t_l²))``: the
    nudged Hamiltonian is ``H + β C`` up to a constant (Scellier eq. 25), and the ``positive``,
    ``negative`` and ``centered`` estimators with this loss are the ``cost_observable``
    estimator with ``C`` written as an observable (eqs. 28-31). ``⟨C⟩`` includes the quantum
    fluctuations of the outputs: it is not ``Σ_l (y_l - t_l)²`` (:class:`MeanSquaredError`),
    which it exceeds by ``Σ_l Var(O_l)``. The error signal does not depend on ``y``, so outputs
    measured with shots change the reported loss but not the nudge.

    ``target`` has shape ``(L,)`` (e.g. ``±1`` per output) and is stored read-only;
    :meth:`for_outputs` (called by :func:`bind_outputs`) refuses outputs with ``O_l² ≠ 1``, for
    which ``⟨C⟩`` is not a function of ``y``.
    """

    target: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _target(self.target))

    def for_outputs(self, outputs: Mapping[str, PauliSum | QuadSum]) -> SpinCost:
        """This loss, after checking that every output squares to the identity."""
        one = PauliSum({PauliString(): 1.0})
        for name, op in outputs.items():
            if not isinstance(op, PauliSum) or not op @ op == one:
                raise ProblemError(
                    f"spin_cost needs outputs that square to the identity (Pauli strings such "
                    f"as Z0), but output {name!r} does not: its cost observable Σ (O - t)² is "
                    "not linear in O; use the mse loss or an observable loss",
                    where="loss.kind",
                )
        return self

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        y = _outputs(y, self.target)
        t = self.target
        with np.errstate(over="ignore", invalid="ignore"):
            val = float(np.sum(1.0 + t * t - 2.0 * t * y))
            eps = -2.0 * t
        _check_finite(val, eps, t, "spin cost")
        return val, eps


@dataclass(frozen=True)
class FunctionLoss:
    """A user callable ``y -> (L, ∂L/∂y)``; its result is checked for shape and finiteness.

    ``L`` must be one finite real number and ``∂L/∂y`` finite reals of the shape of ``y``
    ``(L,)``; anything else (NaN, a wrong shape, complex numbers, text) raises
    :class:`~qeprop.errors.ProblemError`.
    """

    fn: Callable[[np.ndarray], tuple[float, np.ndarray]]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ProblemError(f"a loss must be callable, got {type(self.fn).__name__}")

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        y = np.asarray(y, dtype=float)
        out = self.fn(y.copy())
        try:
            val, grad = out
        except (TypeError, ValueError):
            raise ProblemError("a loss callable must return (L, dL/dy)") from None
        try:
            v = np.asarray(val)
            g = np.asarray(grad)
            ok = v.size == 1 and v.dtype.kind in "iuf" and g.dtype.kind in "iuf"
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ProblemError(
                f"the loss callable must return a real number L and real dL/dy, got "
                f"{type(val).__name__} and {type(grad).__name__}"
            )
        g = g.astype(float).reshape(-1)
        if g.shape != y.shape:
            raise ProblemError(
                f"the loss callable returned dL/dy of shape {g.shape}, expected {y.shape}"
            )
        lv = float(v.reshape(-1)[0])
        if not (math.isfinite(lv) and np.all(np.isfinite(g))):
            raise ProblemError("the loss callable returned NaN or inf")
        if np.any(np.abs(g) > MAX_ERROR_SIGNAL):
            raise ProblemError(
                f"the loss callable returned dL/dy of size {float(np.max(np.abs(g))):.3g}; "
                f"it must stay below {MAX_ERROR_SIGNAL:.0e} (it scales the nudge)"
            )
        return lv, g


LOSSES: dict[str, type] = {
    "mse": MeanSquaredError,
    "cross_entropy": CrossEntropy,
    "spin_cost": SpinCost,
}


def bind_outputs(loss: Loss, outputs: Mapping[str, PauliSum | QuadSum]) -> Loss:
    """``loss`` checked against the output operators it will be evaluated on.

    A :class:`CrossEntropy` is bound with :meth:`CrossEntropy.for_outputs` (outputs that are
    not probabilities are refused here, before any solve), a :class:`SpinCost` checks that its
    outputs square to the identity; a loss with a target must have one entry per output. Other
    losses are returned unchanged.
    """
    target = getattr(loss, "target", None)
    if isinstance(target, np.ndarray) and target.size != len(outputs):
        raise ProblemError(
            f"the target has {target.size} entries but there are {len(outputs)} outputs",
            where=TARGET,
        )
    if isinstance(loss, CrossEntropy | SpinCost):
        return loss.for_outputs(outputs)
    return loss


def make_loss(
    kind: str,
    target: Sequence[float] | np.ndarray,
    n_outputs: int,
    outputs: Mapping[str, PauliSum | QuadSum] | None = None,
) -> Loss:
    """Build a named loss and check that the target has one entry per output.

    With ``outputs`` (name -> operator), the loss is also checked against them
    (:func:`bind_outputs`): a cross-entropy of an output that is not a probability is refused.
    """
    if not isinstance(kind, str) or kind not in LOSSES:
        raise ProblemError(
            f"unknown loss {kind!r}; choose one of {[*LOSSES, 'observable']}", where="loss.kind"
        )
    loss = LOSSES[kind](target)
    if loss.target.size != n_outputs:
        raise ProblemError(
            f"the target has {loss.target.size} entries but there are {n_outputs} outputs",
            where=TARGET,
        )
    return loss if outputs is None else bind_outputs(loss, outputs)
