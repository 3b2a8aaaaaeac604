"""Unsupervised QEP on the cluster-Ising chain (Wanjura & Marquardt, Sec. III.B and Fig. 3).

Both tasks descend a :class:`~qeprop.objective.MultiPointObjective` over couplings of the
chain with QEP gradients:

``phase-exploration`` (Fig. 3a-c)
    maximise ``y = ⟨X_0 X_4⟩`` over ``θ = (g_x, g_zz)``: ``L = -y``, error signal ``-1``.
``sensitivity`` (Fig. 3d-g)
    maximise the slope ``|(y(g_x1) - y(g_x2)) / (g_x1 - g_x2)|`` of ``y`` between two points that
    differ in ``g_x`` and share ``g_zz`` (eq. 7), ``θ = (g_x1, g_x2, g_zz)``
    (:class:`~qeprop.objective.SlopeLoss`).

Hamiltonian and sign convention: qeprop's cluster-Ising chain
``H0 = g_zxz Σ Z X Z - g_zz Σ Z Z - g_x Σ X`` with ``g_zxz = -0.5`` fixed is the paper's notebook
Hamiltonian ``-(g_X Σ X + g_ZZ Σ ZZ + 0.5 Σ ZXZ)`` (the appendix's "g_ZZZ = -0.5"; the main
text's "fix g_ZZ = -0.5" means the ZXZ coupling). The notebook nudges with ``-ν X_0 X_4``,
``ν = 0.1``; qeprop adds ``+ν' X_0 X_4`` with ``ν' = βε = -0.1`` for ``L = -y``: the same
Hamiltonian. Defaults of both tasks: 10-site open chain, nudge 0.1, learning rate 0.1 with
normalised steps ``θ ← θ - η g/‖g‖``. Phase exploration nudges one-sided (``positive``), as the
paper does. The sensitivity task's gradient carries ``1/|Δ|`` factors (``Δ = g_x1 - g_x2``)
whose large terms cancel as the points close in, so it differs from the paper's one-sided,
constant-rate recipe in three measured ways (``docs/unsupervised.md``): centred nudging
(``±0.1``, bias O(β²)), the rate ``0.1/(1 + 0.05 t)`` (the authors' optional decay, which ends
the fixed-length zigzag across the narrow ridge of the loss) and a minimum separation 0.1 of the
two points (projected gradient steps). ``--set estimator=positive --set lr_decay=0 --set
min_separation=0`` is the paper's recipe.

Degeneracy prescription: the open chain has edge modes (four nearly degenerate ground states in
the cluster phase, a doublet in the ferromagnet). Levels closer than ``degeneracy_tol`` to the
lowest are mixed with equal weights; the mixture is basis independent, so no arbitrary vector
of the manifold enters. Above that splitting the finite chain's ground state is unique and used
as it is. Phase exploration mixes levels within ``1e-2`` (start 1 lies in the cluster phase,
whose edge quartet is split by up to ``1e-3`` on 10 sites, far less than the nudge); the
sensitivity task keeps ``1e-6``, because its loss compares two points, and a different
manifold size at the two makes the slope jump (see ``docs/unsupervised.md``).
``X_0 X_4`` and every ``∂H/∂θ`` conserve the
parity ``Π_j X_j``, so the nudge never couples the ground state to its partner of opposite parity,
however small their splitting (see ``docs/unsupervised.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from ..config import Config, option
from ..errors import ProblemError, QEPError
from ..gradients import GradientOptions, response
from ..maps import MAX_COUPLING, MapSpec
from ..measurement import SHOT_MODELS, expectations
from ..models import cluster_ising
from ..objective import (
    MultiPointObjective,
    ObjectiveLoss,
    Point,
    SlopeLoss,
    estimate_objective_gradient,
    evaluate_objective,
    expectation_loss,
)
from ..optim import OPTIMISERS, Optimiser, inverse_time_decay
from ..pauli import as_pauli_sum
from ..solvers import StateSpec, solve
from ..states import State
from ..system import QEPSystem
from ..training import TrainState, descent_init, descent_step, deterministic
from . import ExperimentBase
from .phase_recognition import ESTIMATORS, MAX_NUDGE

__all__ = [
    "PHASE_EXPLORATION",
    "SENSITIVITY",
    "CouplingDescent",
    "CouplingDescentConfig",
    "ExplorationConfig",
    "SensitivityConfig",
]

#: (loss, outputs by point, free equilibria by point) of :func:`evaluate_objective`
_Evaluation = tuple[float, dict[str, np.ndarray], dict[str, State]]


@dataclass(frozen=True)
class CouplingDescentConfig(Config):
    """Keys shared by ``phase-exploration`` and ``sensitivity`` (each task sets its defaults)."""

    #: global parameters θ of the task, in order
    PARAMS: ClassVar[tuple[str, ...]] = ()
    #: the paper's starting points, selected by ``start``
    STARTS: ClassVar[dict[int, tuple[float, ...]]] = {}

    start: int = option(1, "the paper's starting point (1 or 2); 'initial' overrides it", ge=1)
    initial: tuple[float, ...] = option(
        (), "own starting couplings θ (empty: use 'start')",
        ge=-MAX_COUPLING, le=MAX_COUPLING, max_len=8,
    )  # fmt: skip
    learning_rate: float = option(
        0.1, "learning rate η (step length when normalised)", gt=0, le=1000
    )
    lr_decay: float = option(0.0, "rate decay: η_t = η / (1 + lr_decay·t)", ge=0, le=1000)
    nudge: float = option(0.1, "nudge strength β of the QEP gradient", gt=0, le=MAX_NUDGE)
    estimator: str = option("positive", "gradient estimator of each step", choices=ESTIMATORS)
    optimizer: str = option("normalised_sgd", "optimiser", choices=tuple(OPTIMISERS))
    nudge_scale: str = option(
        "unit", "how the points are nudged (see MultiPointObjective)",
        choices=("unit", "error", "shared"),
    )  # fmt: skip
    shots: int | None = option(
        None, "measurement shots per expectation value (none: exact values)", ge=1, le=10**9
    )
    shot_model: str = option("gaussian", "how shots are simulated", choices=SHOT_MODELS)
    seed: int = option(0, "seed of the shot noise", ge=0)
    chain_length: int = option(10, "sites of the cluster-Ising chain", ge=3, le=14)
    boundary: str = option("open", "boundary of the chain", choices=("open", "periodic"))
    g_zxz: float = option(-0.5, "fixed ZXZ coupling", ge=-MAX_COUPLING, le=MAX_COUPLING)
    observable: str = option("X0 X4", "the observable ⟨O⟩ of the loss (a Pauli string)")
    degeneracy_tol: float = option(
        1e-6, "levels this close to the lowest are mixed with equal weights", gt=0, le=1
    )
    solver_tol: float = option(1e-10, "relative residual of the solves", ge=1e-15, le=0.1)
    compare_exact: bool = option(True, "record the cosine with the exact gradient at every step")
    eval_every: int = option(1, "steps between evaluations", ge=1, le=10**7)
    checkpoint_every: int = option(10, "steps between checkpoints", ge=1, le=10**7)
    map_resolution: int = option(61, "points per axis of the background map", ge=2, le=401)
    cut_points: int = option(121, "points per cut along g_x (sensitivity)", ge=2, le=10001)
    label: str = option("", "name of the run in plots (default: 'start N' or 'custom start')")
    steps: int = option(30, "descent steps", ge=1, le=100_000)
    map_x: tuple[float, float] = option(
        (-3.5, 3.5), "g_x range [lo, hi] of the background map",
        ge=-MAX_COUPLING, le=MAX_COUPLING,
    )  # fmt: skip
    map_y: tuple[float, float] = option(
        (-2.0, 2.0), "g_zz range [lo, hi] of the background map",
        ge=-MAX_COUPLING, le=MAX_COUPLING,
    )  # fmt: skip

    def check(self) -> None:
        if self.start not in self.STARTS:
            raise ProblemError(
                f"must be one of {sorted(self.STARTS)} (the paper's starting points), "
                f"got {self.start!r}",
                where="start",
            )
        if self.initial and len(self.initial) != len(self.PARAMS):
            raise ProblemError(
                f"must be empty (use 'start') or {len(self.PARAMS)} finite numbers "
                f"{list(self.PARAMS)}, got {list(self.initial)}",
                where="initial",
            )
        if self.shots is not None and self.estimator == "linear_response":
            raise ProblemError(
                "the linear_response estimator is exact and takes no shots; set shots = none",
                where="shots",
            )
        try:
            op = as_pauli_sum(self.observable)
        except QEPError as e:
            raise ProblemError(e.message, where="observable") from None
        if op.max_qubit >= self.chain_length:
            raise ProblemError(
                f"acts on site {op.max_qubit}, beyond the {self.chain_length}-site chain",
                where="observable",
            )
        for key in ("map_x", "map_y"):
            lo, hi = getattr(self, key)
            if not lo < hi:
                raise ProblemError(f"must be [lo, hi] with lo < hi, got {[lo, hi]}", where=key)
        if not self.label:
            self._set("label", f"start {self.start}" if not self.initial else "custom start")

    def start_point(self) -> np.ndarray:
        """The starting couplings θ_0."""
        return np.array(self.initial or self.STARTS[self.start], dtype=float)


@dataclass(frozen=True)
class ExplorationConfig(CouplingDescentConfig):
    """Configuration of ``phase-exploration``: maximise ⟨X0 X4⟩ over ``(g_x, g_zz)``."""

    PARAMS: ClassVar[tuple[str, ...]] = ("g_x", "g_zz")
    STARTS: ClassVar[dict[int, tuple[float, ...]]] = {1: (-0.1, 0.4), 2: (0.9, 0.9)}

    degeneracy_tol: float = option(
        1e-2, "levels this close to the lowest are mixed with equal weights", gt=0, le=1
    )


@dataclass(frozen=True)
class SensitivityConfig(CouplingDescentConfig):
    """Configuration of ``sensitivity``: maximise the slope of ⟨X0 X4⟩ along ``g_x``."""

    PARAMS: ClassVar[tuple[str, ...]] = ("g_x1", "g_x2", "g_zz")
    STARTS: ClassVar[dict[int, tuple[float, ...]]] = {
        1: (-0.2, -1.5, -1.5),
        2: (-0.5, 0.3, 1.0),
    }

    lr_decay: float = option(0.05, "rate decay: η_t = η / (1 + lr_decay·t)", ge=0, le=1000)
    estimator: str = option("centered", "gradient estimator of each step", choices=ESTIMATORS)
    nudge_scale: str = option(
        "shared", "how the points are nudged (see MultiPointObjective)",
        choices=("unit", "error", "shared"),
    )  # fmt: skip
    steps: int = option(80, "descent steps", ge=1, le=100_000)
    map_x: tuple[float, float] = option(
        (-2.0, 2.0), "g_x range [lo, hi] of the background map",
        ge=-MAX_COUPLING, le=MAX_COUPLING,
    )  # fmt: skip
    min_separation: float = option(
        0.1, "g_x1 and g_x2 are kept at least this far apart (0: unconstrained)", ge=0, le=1000
    )

    def check(self) -> None:
        super().check()
        start = self.start_point()
        if abs(start[0] - start[1]) < self.min_separation:
            raise ProblemError(
                f"g_x1 and g_x2 start {abs(start[0] - start[1]):g} apart, less than "
                f"min_separation = {self.min_separation:g}",
                where="initial",
            )


class CouplingDescent(ExperimentBase):
    """Gradient descent of a multi-point objective over chain couplings (one task per instance).

    Parameters
    ----------
    name:
        Experiment name (``phase-exploration`` or ``sensitivity``).
    config:
        The task's configuration class; its ``PARAMS`` name the global parameters ``θ``
        (metrics and results use them) and its ``STARTS`` are the paper's starting points.
    separated:
        Positions ``(i, j)`` in ``θ`` of two couplings that must stay ``min_separation`` apart
        and keep their order (the sensitivity task's ``g_x1``, ``g_x2``), or ``None``.
    """

    def __init__(
        self,
        name: str,
        config: type[CouplingDescentConfig],
        separated: tuple[int, int] | None = None,
    ) -> None:
        self.name = name
        self.Config = config  # type: ignore[misc]
        self.separated = separated
        self.params = config.PARAMS
        self.starts = config.STARTS
        # the last exact evaluation (loss, outputs, free equilibria), keyed by config and θ: the
        # step after an evaluation at the same θ reuses its equilibria (the same solves, so the
        # result is the same with or without it)
        self._last: dict[tuple[Any, ...], _Evaluation] = {}

    # ------------------------------------------------------------------ the objective
    def objective(self, config: CouplingDescentConfig) -> MultiPointObjective:
        return _objective(
            self.name,
            config.chain_length,
            config.boundary,
            config.g_zxz,
            config.observable,
        )

    def state_spec(self, config: CouplingDescentConfig) -> StateSpec:
        return StateSpec(
            tol=config.solver_tol,
            degeneracy="mixture",
            degeneracy_tol=config.degeneracy_tol,
        )

    def options(self, config: CouplingDescentConfig) -> GradientOptions:
        return GradientOptions(
            nudge=config.nudge,
            state=self.state_spec(config),
            shots=config.shots,
            shot_model=config.shot_model,
            warn_window=False,
        )

    def optimiser(self, config: CouplingDescentConfig) -> Optimiser:
        """The configured optimiser with learning rate ``η/(1 + lr_decay·t)`` at step ``t``."""
        return inverse_time_decay(
            OPTIMISERS[config.optimizer], config.learning_rate, config.lr_decay
        )

    def _pair(
        self, config: CouplingDescentConfig, theta: np.ndarray
    ) -> tuple[int, int, float, float] | None:
        """``(i, j, min_separation, ±1 for the order of the pair at θ)``, or ``None`` when no
        separation is kept."""
        d = float(getattr(config, "min_separation", 0.0))
        if self.separated is None or d == 0:
            return None
        i, j = self.separated
        return i, j, d, 1.0 if theta[i] > theta[j] else -1.0

    def tangent(
        self, config: CouplingDescentConfig, theta: np.ndarray, grad: np.ndarray
    ) -> np.ndarray:
        """The gradient with the pair's closing component removed when the pair sits at
        ``min_separation`` and descent would close it further (projected gradient descent).

        Otherwise a normalised step would spend its length on a move that :meth:`constrain`
        undoes, and the pair would stall on the constraint instead of moving along it.
        """
        pair = self._pair(config, theta)
        if pair is None:
            return grad
        i, j, d, side = pair
        at_floor = side * (theta[i] - theta[j]) <= d * (1 + 1e-9)
        if not (at_floor and side * (grad[i] - grad[j]) > 0):
            return grad
        out = grad.copy()
        out[i] = out[j] = 0.5 * (grad[i] + grad[j])
        return out

    def constrain(
        self, config: CouplingDescentConfig, old: np.ndarray, new: np.ndarray
    ) -> np.ndarray:
        """Keep the ``separated`` pair ``min_separation`` apart and in its order.

        The slope loss's gradient holds ``1/|Δ|`` and ``1/Δ²`` factors (``Δ = g_x1 - g_x2``),
        whose two large terms cancel as ``Δ → 0``, so a fixed error of the measured derivatives
        (the ``O(β)`` or ``O(β²)`` bias of finite nudges, shot noise) is amplified without bound;
        a step can also carry one point past the other. When a step would bring the pair closer
        than ``d = min_separation``, both are placed ``d/2`` either side of their new midpoint,
        in the order they had.
        """
        pair = self._pair(config, old)
        if pair is None:
            return new
        i, j, d, side = pair
        if side * (new[i] - new[j]) >= d:
            return new
        out = new.copy()
        mid = 0.5 * (new[i] + new[j])
        out[i], out[j] = mid + side * d / 2, mid - side * d / 2
        return out

    def start_point(self, config: CouplingDescentConfig) -> np.ndarray:
        return config.start_point()

    def background(self, config: CouplingDescentConfig) -> MapSpec:
        """The phase-diagram map drawn behind the trajectories."""
        return MapSpec(
            chain_length=config.chain_length,
            boundary=config.boundary,
            fixed={"g_zxz": config.g_zxz},
            x="g_x",
            y="g_zz",
            x_range=(config.map_x[0], config.map_x[1]),
            y_range=(config.map_y[0], config.map_y[1]),
            resolution=config.map_resolution,
            observable=config.observable,
            derivative="g_x" if self.name == "sensitivity" else "",
            degeneracy_tol=config.degeneracy_tol,
        )

    # ------------------------------------------------------------------ training
    def init(self, config: CouplingDescentConfig) -> TrainState:
        theta = self.start_point(config)
        rng = np.random.default_rng(config.seed)
        return descent_init(theta, self.optimiser(config), rng, {"history": [theta.tolist()]})

    def _evaluation(self, config: CouplingDescentConfig, theta: np.ndarray) -> _Evaluation:
        """Exact loss, outputs and free equilibria at ``θ``.

        The last one is kept, so that the step (or ``finish``) after an evaluation at the same
        ``θ`` reuses its equilibria instead of solving them again.
        """
        key = (config, theta.tobytes())
        if key not in self._last:
            with deterministic():
                value = evaluate_objective(self.objective(config), theta, self.state_spec(config))
            self._last = {key: value}
        return self._last[key]

    def step(self, config: CouplingDescentConfig, state: TrainState) -> TrainState:
        """One (projected, constrained) descent step along the QEP gradient of the objective;
        records the gradient, the manifold sizes and gaps, and its cosine with the exact one."""
        obj = self.objective(config)
        recorded: dict[str, Any] = {}

        def gradient(theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
            last = self._last.get((config, theta.tobytes()))
            rec = estimate_objective_gradient(
                obj,
                theta,
                estimator=config.estimator,
                options=self.options(config),
                nudge_scale=config.nudge_scale,
                rng=rng,
                free=last[2] if last is not None else None,
            )
            recorded.update(
                qep_gradient=rec.gradient.tolist(), manifold=rec.degeneracies, gap=rec.gaps
            )
            if config.compare_exact:
                exact = estimate_objective_gradient(
                    obj, theta, estimator="linear_response",
                    options=GradientOptions(state=self.state_spec(config), warn_window=False),
                    free=rec.states,
                )  # fmt: skip
                recorded["exact_gradient"] = exact.gradient.tolist()
                recorded["gradient_cosine"] = _cosine(rec.gradient, exact.gradient)
            return rec.gradient, recorded

        new, _ = descent_step(
            state,
            self.optimiser(config),
            gradient,
            project=lambda theta, grad: self.tangent(config, theta, grad),
            constrain=lambda old, moved: self.constrain(config, old, moved),
        )
        new.meta.update(recorded)
        new.meta["history"] = [*state.meta["history"], new.arrays["params"].tolist()]
        return new

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, config: CouplingDescentConfig, state: TrainState) -> dict[str, Any]:
        """``loss`` (exact, at the current couplings), the couplings by name, the outputs and
        what the last step measured (its QEP gradient, the exact one and their cosine)."""
        theta = state.arrays["params"]
        loss, outputs, states = self._evaluation(config, theta)
        rec: dict[str, Any] = {"loss": loss}
        rec |= {p: float(v) for p, v in zip(self.params, theta, strict=True)}
        for name, y in outputs.items():
            rec[f"y_{name}"] = float(y[0])
        rec["manifold"] = {k: s.degeneracy for k, s in states.items()}
        if "qep_gradient" in state.meta:
            grad = state.meta["qep_gradient"]
            rec |= {f"grad_{p}": float(g) for p, g in zip(self.params, grad, strict=True)}
        if "gradient_cosine" in state.meta:
            rec["gradient_cosine"] = float(state.meta["gradient_cosine"])
        return rec

    def finish(
        self, config: CouplingDescentConfig, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        theta = state.arrays["params"]
        loss, outputs, _ = self._evaluation(config, theta)
        summary: dict[str, Any] = {
            "loss": loss,
            **{p: float(v) for p, v in zip(self.params, theta, strict=True)},
            **{f"y_{k}": float(y[0]) for k, y in outputs.items()},
            "label": config.label,
        }
        summary |= self.final_checks(config, theta)
        history = np.array(state.meta["history"], dtype=float)
        arrays = {"theta": theta, "param_names": np.array(self.params), "trajectory": history}
        if self.name == "sensitivity":
            arrays |= self.cuts(config, history)  # one BLAS thread inside cut()
        return summary, arrays

    def cuts(
        self, config: CouplingDescentConfig, history: np.ndarray, count: int = 5
    ) -> dict[str, np.ndarray]:
        """``y(g_x)`` along ``g_x`` at the shared ``g_zz`` of ``count`` steps of the run (Fig. 3g).

        Returns ``cut_steps (count,)``, ``cut_g_x (n,)`` and ``cut_values (count, n)``; the
        ``g_x`` range spans the map's and every visited point.
        """
        steps = np.unique(np.linspace(0, len(history) - 1, count).round().astype(int))
        lo = min(config.map_x[0], float(history[:, :2].min()) - 0.2)
        hi = max(config.map_x[1], float(history[:, :2].max()) + 0.2)
        gx = np.linspace(lo, hi, config.cut_points)
        values = np.array([self.cut(config, history[s, 2], gx) for s in steps])
        return {"cut_steps": steps, "cut_g_x": gx, "cut_values": values}

    def cut(
        self, config: CouplingDescentConfig, g_zz: float, g_x: np.ndarray, derivative: bool = False
    ) -> np.ndarray:
        """``y = ⟨O⟩`` of the configured chain at ``g_zz`` for every ``g_x`` (shape of ``g_x``),
        or ``∂y/∂g_x`` by exact linear response when ``derivative``."""
        chain = cluster_ising.hamiltonian(config.chain_length, boundary=config.boundary)
        system = QEPSystem(chain, {"y": config.observable})
        h = system.full
        ident, coef = system.output_coefficients
        b_coef = h.derivative_coefficients[h.param_index["g_x"]]
        spec = self.state_spec(config)
        out = np.empty(len(g_x))
        with deterministic():
            for k, x in enumerate(g_x):
                full = system.full_values(np.array([config.g_zxz, g_zz, x]))
                st = solve(h, full, spec)
                out[k] = (
                    response(h, full, st, coef, b_coef, spec)[0]
                    if derivative
                    else expectations(h, st, ident, coef)[0]
                )
        return out

    def final_checks(self, config: CouplingDescentConfig, theta: np.ndarray) -> dict[str, Any]:
        """Where the run ended relative to the exact (infinite-chain) phase diagram."""
        g = dict(zip(self.params, theta, strict=True))
        xs = [g[p] for p in self.params if p.startswith("g_x")]
        zz = g["g_zz"]
        phases = [cluster_ising.phase(config.g_zxz, zz, x, tol=1e-9) for x in xs]
        out: dict[str, Any] = {"phases": phases}
        out["boundary_distance"] = [_distance_to_boundary(config.g_zxz, x, zz) for x in xs]
        if self.name == "sensitivity":
            peak = self.slope_peak(config, zz, 0.5 * (xs[0] + xs[1]))
            out["slope_peak_g_x"] = peak
            out["peak_distance"] = [abs(x - peak) for x in xs]
            out["finite_size_shift"] = _distance_to_boundary(config.g_zxz, peak, zz)
        return out

    def slope_peak(
        self, config: CouplingDescentConfig, g_zz: float, center: float, half_width: float = 0.3
    ) -> float:
        """Where ``|∂⟨O⟩/∂g_x|`` of the configured finite chain peaks at this ``g_zz``, within
        ``half_width`` of ``center`` (exact linear response on a grid of spacing 0.005).

        This is the finite chain's own optimum of the sensitivity task; its distance to the exact
        critical line is the finite-size shift.
        """
        gx = np.arange(center - half_width, center + half_width + 1e-12, 0.005)
        slope = self.cut(config, g_zz, gx, derivative=True)
        return float(gx[int(np.argmax(np.abs(slope)))])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def _distance_to_boundary(g_zxz: float, g_x: float, g_zz: float) -> float:
    """Euclidean distance in the ``(g_x, g_zz)`` plane to the nearest exact critical line."""
    lines = cluster_ising.slice_boundaries(
        {"g_zxz": g_zxz}, "g_x", "g_zz", (g_x - 5.0, g_x + 5.0), (g_zz - 5.0, g_zz + 5.0), n=4001
    )
    if not lines:
        return float("inf")
    pts = np.vstack(lines)
    return float(np.min(np.hypot(pts[:, 0] - g_x, pts[:, 1] - g_zz)))


@lru_cache(maxsize=8)
def _objective(
    task: str, length: int, boundary: str, g_zxz: float, observable: str
) -> MultiPointObjective:
    chain = cluster_ising.hamiltonian(length, boundary=boundary)
    system = QEPSystem(chain, {"y": observable})
    loss: ObjectiveLoss
    if task == "phase-exploration":
        points = [Point("chain", system, {"g_zxz": g_zxz})]
        loss = expectation_loss("chain", 0, sign=-1.0)
        return MultiPointObjective(points, loss, ("g_x", "g_zz"))
    points = [
        Point("p1", system, {"g_zxz": g_zxz, "g_x": "g_x1"}),
        Point("p2", system, {"g_zxz": g_zxz, "g_x": "g_x2"}),
    ]
    loss = SlopeLoss("p1", "p2", "g_x1", "g_x2")
    return MultiPointObjective(points, loss, ("g_x1", "g_x2", "g_zz"))


PHASE_EXPLORATION = CouplingDescent("phase-exploration", ExplorationConfig)
SENSITIVITY = CouplingDescent("sensitivity", SensitivityConfig, separated=(0, 1))
