r"""Objectives over several equilibria, differentiated by QEP and the chain rule.

A :class:`MultiPointObjective` is a loss ``L(y^{(1)}, ..., y^{(K)}, θ)`` of outputs measured at
``K`` equilibrium points. Point ``k`` is a :class:`~qeprop.system.QEPSystem` whose Hamiltonian
parameters ``p^{(k)}`` are bound to the global parameters ``θ`` (shared between points, or
owned by one point) or fixed:

.. math::  p^{(k)} = J^{(k)} θ + c^{(k)}, \qquad y^{(k)}_l = ⟨O^{(k)}_l⟩_{p^{(k)}} .

The gradient is the chain rule

.. math::
    \frac{dL}{dθ_g} = \frac{∂L}{∂θ_g}\Big|_{\rm explicit}
      + Σ_k Σ_i J^{(k)}_{ig} \, Σ_l ε^{(k)}_l \frac{∂y^{(k)}_l}{∂p^{(k)}_i},
    \qquad ε^{(k)} = \frac{∂L}{∂y^{(k)}} ,

where the inner sum is what QEP measures at point ``k`` by nudging with ``ν^{(k)} = β ε^{(k)}``
(Onsager reciprocity, :mod:`qeprop.gradients`): ``(⟨A_i⟩_{ν} - ⟨A_i⟩_0)/β`` with
``A_i = ∂H/∂p_i``. Any estimator of the core applies point by point (``positive``,
``negative``, ``centered``, ``linear_response``); ``finite_difference`` differences the whole
objective in ``θ``.

Examples: maximising one expectation value, ``L = -y`` (error signal ``-1``,
:func:`expectation_loss`), and the sensitivity loss of Wanjura & Marquardt eq. 7, the slope of
one output between two points that differ in one parameter (:class:`SlopeLoss`).

``nudge_scale`` sets the nudge of each point (all three have the same ``β → 0`` limit):

``"error"``
    ``ν^{(k)} = β ε^{(k)}``.
``"unit"``
    strength ``β`` whatever the size of the error signal, ``ν^{(k)} = β ε^{(k)}/‖ε^{(k)}‖``,
    the difference multiplied back by ``‖ε^{(k)}‖``.
``"shared"``
    as ``"unit"``, but every point is nudged the same way: ``ν^{(k)} = σ_k β ε^{(k)}/‖ε^{(k)}‖``
    with ``σ_k = sgn(ε^{(k)} · ε^{(1)})`` against the first point with an error signal (the
    difference multiplied back by ``σ_k ‖ε^{(k)}‖``). For one output per point this is
    Wanjura & Marquardt eq. 11, ``ν = β sgn(y^{(1)} - y^{(2)})`` at both points of the slope
    loss. One-sided nudging is biased by ``(β/2) ∂²⟨A⟩/∂ν²``; with a shared nudge that bias is
    nearly equal at nearby points and cancels where the loss differences them (the shared
    coupling's ``(∂y^{(1)} - ∂y^{(2)})/|Δ|`` of eq. 10), while opposite nudges add it up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .errors import ProblemError
from .gradients import (
    GradientOptions,
    GradientRun,
    PhaseLedger,
    check_no_shots,
    needs_free_couplings,
    point_derivatives,
)
from .measurement import Estimate, expectations
from .solvers import StateSpec, solve
from .states import State
from .system import QEPSystem

__all__ = [
    "FunctionObjectiveLoss",
    "MultiPointObjective",
    "ObjectiveLoss",
    "ObjectiveRecord",
    "Point",
    "SlopeLoss",
    "estimate_objective_gradient",
    "evaluate_objective",
    "expectation_loss",
]

Outputs = Mapping[str, np.ndarray]
Params = Mapping[str, float]
LossValue = tuple[float, dict[str, np.ndarray], dict[str, float]]

_POINT_ESTIMATORS = ("positive", "negative", "centered", "linear_response")
ESTIMATORS = (*_POINT_ESTIMATORS, "finite_difference")
_SCALES = ("error", "unit", "shared")


class ObjectiveLoss(Protocol):
    """``(y, θ) -> (L, {point: ∂L/∂y^(k)}, {param: ∂L/∂θ explicit})``.

    ``y`` maps point names to output vectors (ordered as the point's ``system.outputs``), ``θ``
    maps global parameter names to values. Missing entries of the two derivative mappings are
    zero.
    """

    def __call__(self, outputs: Outputs, theta: Params) -> LossValue: ...


# ---------------------------------------------------------------------------------- points
@dataclass(frozen=True)
class Point:
    """One equilibrium of a multi-point objective.

    Parameters
    ----------
    name:
        Name of the point (key of its outputs in the loss).
    system:
        The QEP system prepared at this point.
    bind:
        For parameters of ``system.hamiltonian``: the global parameter name it follows (a
        string), a fixed value (a number), or a linear combination ``{global name: coefficient}``
        (an optional ``"const"`` entry adds a constant). A parameter left out follows the
        global parameter of the same name.
    """

    name: str
    system: QEPSystem
    bind: Mapping[str, str | float | Mapping[str, float]] = field(default_factory=dict)


def _finite(v: object) -> bool:
    return (
        isinstance(v, int | float | np.integer | np.floating)
        and not isinstance(v, bool)
        and bool(np.isfinite(v))
    )


class MultiPointObjective:
    """A loss of the outputs of several equilibria sharing global parameters ``θ``.

    Parameters
    ----------
    points:
        The equilibrium points (distinct names).
    loss:
        An :class:`ObjectiveLoss` (see :func:`expectation_loss`, :class:`SlopeLoss`,
        :class:`FunctionObjectiveLoss`).
    params:
        Names of the global parameters ``θ``, in the order of gradient vectors.
    """

    def __init__(self, points: Sequence[Point], loss: ObjectiveLoss, params: Sequence[str]):
        self.points: tuple[Point, ...] = tuple(points)
        self.loss = loss
        self.params: tuple[str, ...] = tuple(params)
        if not self.points:
            raise ProblemError("a multi-point objective needs at least one point")
        names = [p.name for p in self.points]
        if len(set(names)) != len(names):
            raise ProblemError(f"point names must differ, got {names}")
        if not self.params or len(set(self.params)) != len(self.params):
            raise ProblemError(f"global parameter names must be distinct and given, got {params}")
        self.param_index = {p: i for i, p in enumerate(self.params)}
        self._maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._systems: dict[str, QEPSystem] = {}
        used: set[str] = set()
        for pt in self.points:
            jac, const = self._bind(pt)
            self._maps[pt.name] = (jac, const)
            used.update(self.params[g] for g in np.flatnonzero(np.any(jac != 0, axis=0)))
            local = pt.system.hamiltonian.params
            moving = [local[i] for i in np.flatnonzero(np.any(jac != 0, axis=1))]
            # the derivatives QEP measures are those of the parameters that follow θ
            self._systems[pt.name] = QEPSystem(
                pt.system.hamiltonian, pt.system.outputs, trainable=moving, cost=pt.system.cost
            )
            if not pt.system.outputs:
                raise ProblemError(f"point {pt.name!r} has no output observables")
        unused = [p for p in self.params if p not in used]
        if unused:
            raise ProblemError(f"global parameters {unused} do not enter any point")

    def _bind(self, pt: Point) -> tuple[np.ndarray, np.ndarray]:
        local = pt.system.hamiltonian.params
        unknown = [k for k in pt.bind if k not in local]
        if unknown:
            raise ProblemError(
                f"point {pt.name!r} binds {unknown}, which are not parameters of its Hamiltonian "
                f"{list(local)}"
            )
        jac = np.zeros((len(local), len(self.params)))
        const = np.zeros(len(local))
        for i, name in enumerate(local):
            spec = pt.bind.get(name, name)
            where = f"point {pt.name!r}, parameter {name!r}"
            if isinstance(spec, str):
                if spec not in self.param_index:
                    raise ProblemError(
                        f"{where} follows {spec!r}, which is not a global parameter "
                        f"{list(self.params)}; bind it to a global name or a fixed value"
                    )
                jac[i, self.param_index[spec]] = 1.0
            elif isinstance(spec, Mapping):
                for g, c in spec.items():
                    if not _finite(c):
                        raise ProblemError(f"{where}: coefficient of {g!r} must be finite")
                    if g == "const":
                        const[i] += float(c)
                    elif g in self.param_index:
                        jac[i, self.param_index[g]] += float(c)
                    else:
                        raise ProblemError(f"{where}: {g!r} is not a global parameter")
            elif _finite(spec):
                const[i] = float(spec)
            else:
                raise ProblemError(f"{where}: expected a name, a finite number or a mapping")
        return jac, const

    def __repr__(self) -> str:
        return f"MultiPointObjective(points={[p.name for p in self.points]}, params={self.params})"

    # ------------------------------------------------------------------------- parameters
    def theta_vector(self, theta: Params | np.ndarray) -> np.ndarray:
        """``θ`` as a checked vector aligned with :attr:`params`."""
        if isinstance(theta, Mapping):
            missing = [p for p in self.params if p not in theta]
            extra = [k for k in theta if k not in self.param_index]
            if missing or extra:
                raise ProblemError(
                    f"θ must give exactly {list(self.params)}"
                    + (f"; missing {missing}" if missing else "")
                    + (f"; unknown {extra}" if extra else "")
                )
            vec = np.array([theta[p] for p in self.params], dtype=float)
        else:
            vec = np.asarray(theta, dtype=float).reshape(-1)
            if vec.shape != (len(self.params),):
                raise ProblemError(f"θ must have {len(self.params)} entries, got {vec.size}")
        bad = [p for p, v in zip(self.params, vec, strict=True) if not np.isfinite(v)]
        if bad:
            raise ProblemError(f"θ has NaN or inf values for {bad}")
        return vec

    def theta_dict(self, theta: Params | np.ndarray) -> dict[str, float]:
        return {p: float(v) for p, v in zip(self.params, self.theta_vector(theta), strict=True)}

    def system(self, point: str) -> QEPSystem:
        """The QEP system of ``point`` (its trainable parameters: those that follow ``θ``)."""
        return self._systems[point]

    def local_values(self, theta: Params | np.ndarray) -> dict[str, np.ndarray]:
        """Hamiltonian parameter vector ``p^(k) = J^(k) θ + c^(k)`` of every point."""
        vec = self.theta_vector(theta)
        return {k: jac @ vec + c for k, (jac, c) in self._maps.items()}

    def output_position(self, point: str, output: str) -> int:
        """Position of output ``output`` in the output vector of ``point``."""
        if point not in self._systems:
            raise ProblemError(f"unknown point {point!r}; points: {list(self._systems)}")
        names = self._systems[point].output_names
        if output not in names:
            raise ProblemError(f"point {point!r} has no output {output!r}; outputs: {list(names)}")
        return names.index(output)

    def jacobian(self, point: str) -> np.ndarray:
        """``∂p^(k)_i/∂θ_g`` restricted to the point's trainable parameters, ``(P_k, G)``."""
        jac, _ = self._maps[point]
        sysm = self._systems[point]
        rows = [sysm.hamiltonian.param_index[p] for p in sysm.trainable]
        return jac[rows]

    # ------------------------------------------------------------------------------- loss
    def evaluate_loss(self, outputs: Outputs, theta: Params | np.ndarray) -> LossValue:
        """Call the loss and check what it returns (shapes, names, finiteness)."""
        th = self.theta_dict(theta)
        out = self.loss({k: np.asarray(v, dtype=float) for k, v in outputs.items()}, th)
        try:
            val, d_out, d_theta = out
        except (TypeError, ValueError):
            raise ProblemError("an objective loss must return (L, dL/dy by point, dL/dθ)") from None
        if not _finite(val):
            raise ProblemError(f"the objective loss returned {val!r}, not a finite number")
        clean: dict[str, np.ndarray] = {}
        for k, v in dict(d_out).items():
            if k not in self._systems:
                raise ProblemError(f"the loss returned dL/dy for unknown point {k!r}")
            arr = np.asarray(v, dtype=float).reshape(-1)
            n_out = len(self._systems[k].outputs)
            if arr.shape != (n_out,):
                raise ProblemError(
                    f"the loss returned dL/dy of shape {arr.shape} for point {k!r}, "
                    f"which has {n_out} outputs"
                )
            if not np.all(np.isfinite(arr)):
                raise ProblemError(f"the loss returned NaN or inf in dL/dy for point {k!r}")
            clean[k] = arr
        dth: dict[str, float] = {}
        for k, dv in dict(d_theta).items():
            if k not in self.param_index:
                raise ProblemError(f"the loss returned dL/dθ for unknown parameter {k!r}")
            if not _finite(dv):
                raise ProblemError(f"the loss returned NaN or inf in dL/d{k}")
            dth[k] = float(dv)
        return float(val), clean, dth


# ----------------------------------------------------------------------------- loss kinds
def expectation_loss(point: str, output: int = 0, *, sign: float = -1.0) -> ObjectiveLoss:
    """``L = sign * y^(point)[output]``: ``sign=-1`` maximises the expectation value.

    ``output`` is the position of the output in the point's ``system.outputs``
    (:meth:`MultiPointObjective.output_position` finds it by name).

    The error signal is the constant ``sign`` (``-1`` for maximisation, Wanjura & Marquardt
    Sec. III.B.a); there is no explicit ``θ`` dependence.
    """
    if not _finite(sign) or sign == 0:
        raise ProblemError(f"sign must be a non-zero finite number, got {sign!r}")

    def loss(outputs: Outputs, theta: Params) -> LossValue:
        y = outputs[point]
        i = _output_position(point, output, y)
        d = np.zeros_like(y)
        d[i] = sign
        return float(sign * y[i]), {point: d}, {}

    return loss


def _output_position(point: str, output: int, y: np.ndarray) -> int:
    if (
        isinstance(output, int | np.integer)
        and not isinstance(output, bool)
        and 0 <= output < len(y)
    ):
        return output
    raise ProblemError(f"output {output!r} of point {point!r}: give its position 0..{len(y) - 1}")


@dataclass(frozen=True)
class SlopeLoss:
    r"""Sensitivity loss (Wanjura & Marquardt eq. 7): minus the absolute difference quotient

    .. math::  L = -\left| \frac{y^{(1)} - y^{(2)}}{θ_a - θ_b} \right| ,

    of output ``output`` (a position) between points ``first`` and ``second`` that differ in the
    global parameters ``param_first`` (``θ_a``) and ``param_second`` (``θ_b``). With
    ``s = sgn(y^{(1)} - y^{(2)})`` and ``Δ = θ_a - θ_b``:

    ``∂L/∂y^{(1)} = -s/|Δ|``, ``∂L/∂y^{(2)} = +s/|Δ|`` and explicitly
    ``∂L/∂θ_a = -sgn(Δ) L/|Δ|``, ``∂L/∂θ_b = +sgn(Δ) L/|Δ|``. (The paper's eqs. 8-10 print
    these with the opposite overall sign, i.e. the gradient of ``-L``.) ``Δ = 0`` is an error.
    """

    first: str
    second: str
    param_first: str
    param_second: str
    output: int = 0

    def __call__(self, outputs: Outputs, theta: Params) -> LossValue:
        y1 = outputs[self.first]
        y2 = outputs[self.second]
        i = _output_position(self.first, self.output, y1)
        delta = theta[self.param_first] - theta[self.param_second]
        if delta == 0:
            raise ProblemError(
                f"the slope loss needs {self.param_first} != {self.param_second} "
                "(the two points coincide)"
            )
        dy = float(y1[i] - y2[i])
        s = float(np.sign(dy))
        width = abs(delta)
        loss = -abs(dy) / width
        d1 = np.zeros_like(y1)
        d2 = np.zeros_like(y2)
        d1[i] = -s / width
        d2[i] = s / width
        sd = float(np.sign(delta))
        return (
            loss,
            {self.first: d1, self.second: d2},
            {self.param_first: -sd * loss / width, self.param_second: sd * loss / width},
        )


@dataclass(frozen=True)
class FunctionObjectiveLoss:
    """A user function ``L(y, θ) -> float`` with derivatives by central differences.

    ``y`` maps point names to output arrays and ``θ`` parameter names to values. The derivatives
    are classical (no equilibria are solved): step ``h = step * max(1, |x|)`` with error
    ``O(h²)``. Give ``gradient(y, θ) -> (dL/dy by point, dL/dθ)`` to use exact ones instead.
    """

    fn: Callable[[Outputs, Params], float]
    gradient: Callable[[Outputs, Params], tuple[Mapping[str, np.ndarray], Params]] | None = None
    step: float = 1e-6

    def __call__(self, outputs: Outputs, theta: Params) -> LossValue:
        val = self._value(outputs, theta)
        if self.gradient is not None:
            d_out, d_theta = self.gradient(outputs, theta)
            return val, {k: np.asarray(v, dtype=float) for k, v in d_out.items()}, dict(d_theta)
        d_y: dict[str, np.ndarray] = {}
        for k, y in outputs.items():
            g = np.zeros(len(y))
            for i in range(len(y)):
                h = self.step * max(1.0, abs(float(y[i])))
                vals = []
                for s in (1.0, -1.0):
                    shifted = dict(outputs)
                    yy = np.array(y, dtype=float)
                    yy[i] += s * h
                    shifted[k] = yy
                    vals.append(self._value(shifted, theta))
                g[i] = (vals[0] - vals[1]) / (2 * h)
            d_y[k] = g
        d_t: dict[str, float] = {}
        for k, x in theta.items():
            h = self.step * max(1.0, abs(x))
            up = self._value(outputs, {**theta, k: x + h})
            down = self._value(outputs, {**theta, k: x - h})
            d_t[k] = (up - down) / (2 * h)
        return val, d_y, d_t

    def _value(self, outputs: Outputs, theta: Params) -> float:
        v = self.fn(outputs, theta)
        if not _finite(v):
            raise ProblemError(f"the objective function returned {v!r}, not a finite number")
        return float(v)


# ------------------------------------------------------------------------------- gradient
@dataclass(frozen=True)
class ObjectiveRecord:
    """Result of one multi-point gradient estimate.

    Attributes
    ----------
    gradient, stderr : (G,) arrays
        ``dL/dθ`` for :attr:`params` and its standard error (zero when exact).
    explicit : (G,) array
        The explicit part ``∂L/∂θ`` (included in ``gradient``).
    contributions : dict point -> (G,) array
        ``J^(k)ᵀ Σ_l ε_l ∂y_l/∂p^(k)``: what each point's QEP measurement contributes.
    loss : float
    outputs, outputs_stderr, error_signals : dict point -> (L_k,) array
    states : dict point -> State
        The free equilibria (not serialised).
    gaps : dict point -> float; degeneracies : dict point -> int
    preparations, shots, solves : int
    estimator : str; nudge : float or None; params : tuple of names
    ledgers : dict point -> tuple of :class:`~qeprop.gradients.PhaseLedger`
        What each point's phases measured (settings, shots, observables taken exact).
    """

    gradient: np.ndarray
    stderr: np.ndarray
    explicit: np.ndarray
    contributions: dict[str, np.ndarray]
    loss: float
    outputs: dict[str, np.ndarray]
    outputs_stderr: dict[str, np.ndarray]
    error_signals: dict[str, np.ndarray]
    states: dict[str, State]
    gaps: dict[str, float]
    degeneracies: dict[str, int]
    preparations: int
    shots: int
    solves: int
    estimator: str
    nudge: float | None
    params: tuple[str, ...]
    ledgers: dict[str, tuple[PhaseLedger, ...]] = field(default_factory=dict)

    def gradient_dict(self) -> dict[str, float]:
        return {p: float(g) for p, g in zip(self.params, self.gradient, strict=True)}

    def as_dict(self) -> dict[str, object]:
        """Plain-Python form (lists and floats) without the states, for JSON."""

        def plain(v: object) -> object:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, PhaseLedger):
                return v.as_dict()
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v

        return {k: plain(getattr(self, k)) for k in self.__dataclass_fields__ if k != "states"}


class _NoLoss:
    """Placeholder: multi-point runs evaluate the loss themselves."""

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover
        raise AssertionError("the multi-point objective evaluates its own loss")


def _check_options(estimator: str, opts: GradientOptions, nudge_scale: str) -> None:
    if estimator not in ESTIMATORS:
        raise ProblemError(
            f"unknown estimator {estimator!r} for a multi-point objective; "
            f"choose one of {list(ESTIMATORS)}"
        )
    if nudge_scale not in _SCALES:
        raise ProblemError(f"nudge_scale must be one of {list(_SCALES)}, got {nudge_scale!r}")
    if estimator == "linear_response":
        check_no_shots(opts)


def estimate_objective_gradient(
    objective: MultiPointObjective,
    theta: Params | np.ndarray,
    *,
    estimator: str = "positive",
    options: GradientOptions | None = None,
    nudge_scale: str = "error",
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    free: Mapping[str, State] | None = None,
) -> ObjectiveRecord:
    """Estimate ``dL/dθ`` of a multi-point objective at ``θ``.

    Every point's free equilibrium is prepared and its outputs measured first (the error
    signals ``ε^(k) = ∂L/∂y^(k)`` need all of them); then each point is nudged with its own
    ``ν^(k) = β ε^(k)`` (see the module docstring for the chain rule and ``nudge_scale``:
    ``"error"``, ``"unit"`` or ``"shared"``).

    Parameters
    ----------
    estimator:
        ``positive`` (one-sided, the paper's eq. 11), ``negative``, ``centered``,
        ``linear_response`` (exact) or ``finite_difference`` (central differences of ``L`` in
        ``θ``, ``2G`` extra preparations of every point).
    options:
        :class:`~qeprop.gradients.GradientOptions` (nudge ``β``, state, shots, ...).
    seed, rng:
        Randomness for shot noise.
    free:
        Free equilibria already prepared at this ``θ`` (by point name, e.g. from an earlier
        :attr:`ObjectiveRecord.states` or :func:`evaluate_objective`); they are reused, not
        solved again.
    """
    opts = options or GradientOptions()
    _check_options(estimator, opts, nudge_scale)
    if rng is None and seed is not None:
        rng = np.random.default_rng(seed)
    if opts.shots is not None and rng is None:
        raise ProblemError("shot noise needs a seed or an rng")
    theta_vec = objective.theta_vector(theta)
    local = objective.local_values(theta_vec)
    runs: dict[str, GradientRun] = {}
    free_states: dict[str, State] = {}
    y: dict[str, Estimate] = {}
    a0: dict[str, Estimate | None] = {}
    need_a = needs_free_couplings(estimator)
    for pt in objective.points:
        sysm = objective.system(pt.name)
        run = GradientRun(sysm, sysm.full_values(local[pt.name]), _NoLoss(), opts, rng)
        runs[pt.name] = run
        given = (free or {}).get(pt.name)
        free_states[pt.name] = given if given is not None else run.solve(run.values)
        y[pt.name], a0[pt.name] = run.free_phase(free_states[pt.name], need_a=need_a)
    outputs = {k: e.mean for k, e in y.items()}
    loss, d_out, d_theta = objective.evaluate_loss(outputs, theta_vec)
    n = len(objective.params)
    explicit = np.array([d_theta.get(p, 0.0) for p in objective.params])
    contributions: dict[str, np.ndarray] = {}
    var = np.zeros(n)
    eps_all: dict[str, np.ndarray] = {}
    if estimator == "finite_difference":
        eps_all = {k: d_out.get(k, np.zeros(len(y[k].mean))) for k in runs}
        grad = _finite_difference(objective, theta_vec, runs, free_states, opts)
        # shot noise of the two loss values, propagated linearly through ε
        noise = sum(float(np.sum((eps_all[k] * y[k].stderr) ** 2)) for k in runs)
        var = np.full(n, 2.0 * noise) / (2.0 * opts.fd_step) ** 2
        contributions = {k: np.full(n, np.nan) for k in runs}
    else:
        grad = explicit.copy()
        reference: np.ndarray | None = None
        names, signals, scales = [], [], []
        for name, run in runs.items():
            eps = d_out.get(name, np.zeros(len(y[name].mean)))
            eps_all[name] = eps
            if not np.any(eps) or len(run.train_coef) == 0:
                contributions[name] = np.zeros(n)
                continue
            scale = float(np.linalg.norm(eps)) if nudge_scale != "error" else 1.0
            if nudge_scale == "shared":
                # σ_k: nudge the way the first point with an error signal is nudged
                if reference is None:
                    reference = eps
                elif len(eps) != len(reference):
                    raise ProblemError(
                        f"nudge_scale='shared' needs the same outputs at every point; "
                        f"{name!r} has {len(eps)}, the first has {len(reference)}"
                    )
                elif float(eps @ reference) < 0:
                    scale = -scale
            names.append(name)
            signals.append(eps / scale)
            scales.append(scale)
        derivs = point_derivatives(
            [runs[k] for k in names],
            [free_states[k] for k in names],
            [a0[k] for k in names],
            signals,
            estimator,
        )
        for name, scale, (g_loc, se_loc) in zip(names, scales, derivs, strict=True):
            jac = objective.jacobian(name)
            contributions[name] = scale * (jac.T @ g_loc)
            grad = grad + contributions[name]
            var = var + (scale * scale) * ((jac.T**2) @ (se_loc**2))
    return ObjectiveRecord(
        gradient=grad,
        stderr=np.sqrt(var),
        explicit=explicit,
        contributions=contributions,
        loss=loss,
        outputs=outputs,
        outputs_stderr={k: e.stderr for k, e in y.items()},
        error_signals=eps_all,
        states=free_states,
        gaps={k: float(s.gap) for k, s in free_states.items()},
        degeneracies={k: s.degeneracy for k, s in free_states.items()},
        preparations=sum(r.preparations for r in runs.values()),
        shots=sum(r.shots for r in runs.values()),
        solves=sum(r.solves for r in runs.values()),
        estimator=estimator,
        nudge=None if estimator in ("linear_response", "finite_difference") else opts.nudge,
        params=objective.params,
        ledgers={k: r.ledger for k, r in runs.items()},
    )


def evaluate_objective(
    objective: MultiPointObjective,
    theta: Params | np.ndarray,
    state: StateSpec | None = None,
) -> tuple[float, dict[str, np.ndarray], dict[str, State]]:
    """Exact loss, outputs and free equilibria of every point at ``θ`` (no gradient)."""
    spec = state or StateSpec()
    local = objective.local_values(theta)
    states: dict[str, State] = {}
    outputs: dict[str, np.ndarray] = {}
    for pt in objective.points:
        sysm = objective.system(pt.name)
        vals = sysm.full_values(local[pt.name])
        st = solve(sysm.full, vals, spec)
        ident, coef = sysm.output_coefficients
        states[pt.name] = st
        outputs[pt.name] = expectations(sysm.full, st, ident, coef)
    loss = objective.evaluate_loss(outputs, theta)[0]
    return loss, outputs, states


def _finite_difference(
    objective: MultiPointObjective,
    theta: np.ndarray,
    runs: dict[str, GradientRun],
    free: dict[str, State],
    opts: GradientOptions,
) -> np.ndarray:
    """Central differences ``(L(θ + h e_g) - L(θ - h e_g)) / 2h`` re-solving every point."""
    h = opts.fd_step
    noisy = opts.shots is not None
    grad = np.empty(len(theta))
    for g in range(len(theta)):
        vals = []
        for s in (1.0, -1.0):
            th = theta.copy()
            th[g] += s * h
            local = objective.local_values(th)
            outs = {}
            for name, run in runs.items():
                st = run.solve(run.system.full_values(local[name]), guess=free[name])
                ri, rc = run.readout_ops()
                phase = f"shifted[{objective.params[g]}]{'+' if s > 0 else '-'}"
                outs[name] = run.measure(
                    st, ri, rc, noisy, new_prep=True, phase=phase, names=run.readout_names
                ).mean
            vals.append(objective.evaluate_loss(outs, th)[0])
        grad[g] = (vals[0] - vals[1]) / (2 * h)
    return grad
