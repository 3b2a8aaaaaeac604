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

from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ProblemError, QEPError
from ..gradients import GradientOptions, response
from ..maps import MapSpec
from ..measurement import expectations
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
from ..solvers.exact import blas_threads
from ..states import Equilibrium
from ..system import QEPSystem
from . import TrainState

__all__ = ["PHASE_EXPLORATION", "SENSITIVITY", "CouplingDescent"]

#: (loss, outputs by point, free equilibria by point) of :func:`evaluate_objective`
_Evaluation = tuple[float, dict[str, np.ndarray], dict[str, Equilibrium]]

_COMMON: dict[str, Any] = {
    "start": 1,
    "initial": [],
    "learning_rate": 0.1,
    "lr_decay": 0.0,
    "nudge": 0.1,
    "estimator": "positive",
    "optimizer": "normalised_sgd",
    "nudge_scale": "unit",
    "shots": None,
    "shot_model": "gaussian",
    "seed": 0,
    "chain_length": 10,
    "boundary": "open",
    "g_zxz": -0.5,
    "observable": "X0 X4",
    "degeneracy_tol": 1e-6,
    "solver_tol": 1e-10,
    "compare_exact": True,
    "eval_every": 1,
    "checkpoint_every": 10,
    "map_resolution": 61,
    "cut_points": 121,
    "label": "",
}
_CHOICES = {
    "estimator": ("positive", "negative", "centered", "linear_response", "finite_difference"),
    "optimizer": tuple(OPTIMISERS),
    "nudge_scale": ("unit", "error", "shared"),
    "boundary": ("open", "periodic"),
    "shot_model": ("gaussian", "sampled"),
}


class CouplingDescent:
    """Gradient descent of a multi-point objective over chain couplings (one task per instance).

    Parameters
    ----------
    name:
        Experiment name (``phase-exploration`` or ``sensitivity``).
    params:
        Global parameter names ``θ`` (metrics and results use them).
    starts:
        The paper's starting points, selected by ``start = 1, 2, ...``.
    defaults:
        Task-specific defaults on top of the common ones.
    separated:
        Positions ``(i, j)`` in ``θ`` of two couplings that must stay ``min_separation`` apart
        and keep their order (the sensitivity task's ``g_x1``, ``g_x2``), or ``None``.
    """

    def __init__(
        self,
        name: str,
        params: tuple[str, ...],
        starts: dict[int, tuple[float, ...]],
        defaults: dict[str, Any],
        separated: tuple[int, int] | None = None,
    ) -> None:
        self.name = name
        self.separated = separated
        self.params = params
        self.starts = starts
        self._defaults = {**_COMMON, **defaults}
        # the last exact evaluation (loss, outputs, free equilibria), keyed by config and θ
        self._last: dict[tuple[Any, ...], _Evaluation] = {}

    # ------------------------------------------------------------------ configuration
    def defaults(self) -> dict[str, Any]:
        return {k: v for k, v in self._defaults.items() if v is not None}

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(config) - set(self._defaults) - {"experiment"})
        if unknown:
            raise ProblemError(f"unknown key; allowed: {sorted(self._defaults)}", where=unknown[0])
        out = {**self._defaults, **{k: v for k, v in config.items() if k != "experiment"}}
        for key, options in _CHOICES.items():
            if out[key] not in options:
                raise ProblemError(f"must be one of {list(options)}, got {out[key]!r}", where=key)
        for key in ("steps", "eval_every", "checkpoint_every", "map_resolution", "cut_points"):
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ProblemError(f"must be a positive integer, got {v!r}", where=key)
        bounded = [(k, True) for k in ("learning_rate", "nudge", "degeneracy_tol", "solver_tol")]
        bounded += [(k, False) for k in ("lr_decay", "min_separation") if k in out]
        for key, positive in bounded:
            v = out[key]
            if not _finite(v) or v < 0 or (positive and v == 0):
                bound = "> 0" if positive else ">= 0"
                raise ProblemError(f"must be a finite number {bound}, got {v!r}", where=key)
            out[key] = float(v)
        v = out["g_zxz"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            raise ProblemError(f"must be a finite number, got {v!r}", where="g_zxz")
        out["g_zxz"] = float(v)
        if out["start"] not in self.starts:
            raise ProblemError(
                f"must be one of {sorted(self.starts)} (the paper's starting points), "
                f"got {out['start']!r}",
                where="start",
            )
        init = out["initial"]
        if not isinstance(init, list | tuple) or (
            init and (len(init) != len(self.params) or not all(_finite(x) for x in init))
        ):
            raise ProblemError(
                f"must be empty (use 'start') or {len(self.params)} finite numbers "
                f"{list(self.params)}, got {init!r}",
                where="initial",
            )
        out["initial"] = [float(x) for x in init]
        if self.separated is not None:
            i, j = self.separated
            start = out["initial"] or list(self.starts[out["start"]])
            if abs(start[i] - start[j]) < out["min_separation"]:
                raise ProblemError(
                    f"{self.params[i]} and {self.params[j]} start "
                    f"{abs(start[i] - start[j]):g} apart, less than min_separation = "
                    f"{out['min_separation']:g}",
                    where="initial",
                )
        shots = out["shots"]
        if shots is not None and (
            isinstance(shots, bool) or not isinstance(shots, int) or shots < 1
        ):
            raise ProblemError(
                f"must be a positive integer or omitted, got {shots!r}", where="shots"
            )
        if out["shots"] is not None and out["estimator"] == "linear_response":
            raise ProblemError("linear_response is exact and takes no shots", where="shots")
        length = out["chain_length"]
        if isinstance(length, bool) or not isinstance(length, int) or not 3 <= length <= 14:
            raise ProblemError(
                f"must be an integer from 3 to 14 (exact diagonalisation), got {length!r}",
                where="chain_length",
            )
        if not isinstance(out["observable"], str):
            raise ProblemError("must be a Pauli string such as 'X0 X4'", where="observable")
        try:
            op = as_pauli_sum(out["observable"])
        except QEPError as e:
            raise ProblemError(str(e), where="observable") from None
        if op.max_qubit >= length:
            raise ProblemError(
                f"acts on site {op.max_qubit}, beyond the {length}-site chain", where="observable"
            )
        for key in ("map_x", "map_y"):
            r = out[key]
            if (
                not isinstance(r, list | tuple)
                or len(r) != 2
                or not all(_finite(x) for x in r)
                or not r[0] < r[1]
            ):
                raise ProblemError(f"must be [lo, hi] with lo < hi, got {r!r}", where=key)
            out[key] = [float(r[0]), float(r[1])]
        if not isinstance(out["compare_exact"], bool):
            raise ProblemError("must be true or false", where="compare_exact")
        if not isinstance(out["seed"], int) or isinstance(out["seed"], bool) or out["seed"] < 0:
            raise ProblemError("must be a non-negative integer", where="seed")
        if not out["label"]:
            out["label"] = f"start {out['start']}" if not out["initial"] else "custom start"
        return out

    def total_steps(self, config: dict[str, Any]) -> int:
        return int(config["steps"])

    def eval_every(self, config: dict[str, Any]) -> int:
        return int(config["eval_every"])

    # ------------------------------------------------------------------ the objective
    def objective(self, config: dict[str, Any]) -> MultiPointObjective:
        return _objective(
            self.name,
            config["chain_length"],
            config["boundary"],
            config["g_zxz"],
            config["observable"],
        )

    def state_spec(self, config: dict[str, Any]) -> StateSpec:
        return StateSpec(
            tol=config["solver_tol"],
            degeneracy="mixture",
            degeneracy_tol=config["degeneracy_tol"],
        )

    def options(self, config: dict[str, Any]) -> GradientOptions:
        return GradientOptions(
            nudge=config["nudge"],
            state=self.state_spec(config),
            shots=config["shots"],
            shot_model=config["shot_model"],
            warn_window=False,
        )

    def optimiser(self, config: dict[str, Any]) -> Optimiser:
        """The configured optimiser with learning rate ``η/(1 + lr_decay·t)`` at step ``t``."""
        return inverse_time_decay(
            OPTIMISERS[config["optimizer"]], config["learning_rate"], config["lr_decay"]
        )

    def _pair(
        self, config: dict[str, Any], theta: np.ndarray
    ) -> tuple[int, int, float, float] | None:
        """``(i, j, min_separation, ±1 for the order of the pair at θ)``, or ``None`` when no
        separation is kept."""
        if self.separated is None or config["min_separation"] == 0:
            return None
        i, j = self.separated
        return i, j, config["min_separation"], 1.0 if theta[i] > theta[j] else -1.0

    def tangent(self, config: dict[str, Any], theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
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

    def constrain(self, config: dict[str, Any], old: np.ndarray, new: np.ndarray) -> np.ndarray:
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

    def start_point(self, config: dict[str, Any]) -> np.ndarray:
        return np.array(config["initial"] or self.starts[config["start"]], dtype=float)

    def background(self, config: dict[str, Any]) -> MapSpec:
        """The phase-diagram map drawn behind the trajectories."""
        return MapSpec(
            chain_length=config["chain_length"],
            boundary=config["boundary"],
            fixed={"g_zxz": config["g_zxz"]},
            x="g_x",
            y="g_zz",
            x_range=tuple(config["map_x"]),
            y_range=tuple(config["map_y"]),
            resolution=config["map_resolution"],
            observable=config["observable"],
            derivative="g_x" if self.name == "sensitivity" else "",
            degeneracy_tol=config["degeneracy_tol"],
        )

    # ------------------------------------------------------------------ training
    def init(self, config: dict[str, Any]) -> TrainState:
        theta = self.start_point(config)
        ost = self.optimiser(config).init(theta)
        arrays = {"theta": theta}
        meta: dict[str, Any] = {
            "rng": np.random.default_rng(config["seed"]).bit_generator.state,
            "history": [theta.tolist()],
        }
        for k, v in ost.items():
            if isinstance(v, np.ndarray):
                arrays[f"opt_{k}"] = v
            else:
                meta[f"opt_{k}"] = v
        return TrainState(step=0, arrays=arrays, meta=meta)

    def _evaluation(self, config: dict[str, Any], theta: np.ndarray) -> _Evaluation:
        """Exact loss, outputs and free equilibria at ``θ``.

        The last one is kept, so that the step (or ``finish``) after an evaluation at the same
        ``θ`` reuses its equilibria instead of solving them again.
        """
        key = (self._config_key(config), theta.tobytes())
        if key not in self._last:
            self._last = {
                key: evaluate_objective(self.objective(config), theta, self.state_spec(config))
            }
        return self._last[key]

    def _config_key(self, config: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            config[k]
            for k in ("chain_length", "boundary", "g_zxz", "observable", "degeneracy_tol",
                      "solver_tol")
        )  # fmt: skip

    def step(self, config: dict[str, Any], state: TrainState) -> TrainState:
        with blas_threads(1, 0):
            return self._step(config, state)

    def _step(self, config: dict[str, Any], state: TrainState) -> TrainState:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.meta["rng"]
        theta = state.arrays["theta"]
        obj = self.objective(config)
        last = self._last.get((self._config_key(config), theta.tobytes()))
        free = last[2] if last is not None else None
        rec = estimate_objective_gradient(
            obj,
            theta,
            estimator=config["estimator"],
            options=self.options(config),
            nudge_scale=config["nudge_scale"],
            rng=rng,
            free=free,
        )
        meta: dict[str, Any] = {
            "qep_gradient": rec.gradient.tolist(),
            "manifold": rec.degeneracies,
            "gap": rec.gaps,
        }
        if config["compare_exact"]:
            exact = estimate_objective_gradient(
                obj, theta, estimator="linear_response",
                options=GradientOptions(state=self.state_spec(config), warn_window=False),
                free=rec.states,
            )  # fmt: skip
            meta["exact_gradient"] = exact.gradient.tolist()
            meta["gradient_cosine"] = _cosine(rec.gradient, exact.gradient)
        opt = self.optimiser(config)
        ost = {k[4:]: v for k, v in state.arrays.items() if k.startswith("opt_")}
        ost |= {k[4:]: v for k, v in state.meta.items() if k.startswith("opt_")}
        new_theta, ost = opt.update(theta, self.tangent(config, theta, rec.gradient), ost)
        arrays = {"theta": self.constrain(config, theta, np.asarray(new_theta, dtype=float))}
        meta["rng"] = rng.bit_generator.state
        meta["history"] = [*state.meta["history"], arrays["theta"].tolist()]
        for k, v in ost.items():
            if isinstance(v, np.ndarray):
                arrays[f"opt_{k}"] = v
            else:
                meta[f"opt_{k}"] = v
        return TrainState(step=state.step + 1, arrays=arrays, meta=meta)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, config: dict[str, Any], state: TrainState) -> dict[str, Any]:
        """``loss`` (exact, at the current couplings), the couplings by name, the outputs and
        what the last step measured (its QEP gradient, the exact one and their cosine)."""
        theta = state.arrays["theta"]
        with blas_threads(1, 0):
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
        self, config: dict[str, Any], state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        theta = state.arrays["theta"]
        with blas_threads(1, 0):
            loss, outputs, _ = self._evaluation(config, theta)
        summary: dict[str, Any] = {
            "loss": loss,
            **{p: float(v) for p, v in zip(self.params, theta, strict=True)},
            **{f"y_{k}": float(y[0]) for k, y in outputs.items()},
            "label": config["label"],
        }
        summary |= self.final_checks(config, theta)
        history = np.array(state.meta["history"], dtype=float)
        arrays = {"theta": theta, "param_names": np.array(self.params), "trajectory": history}
        if self.name == "sensitivity":
            arrays |= self.cuts(config, history)  # one BLAS thread inside cut()
        return summary, arrays

    def cuts(
        self, config: dict[str, Any], history: np.ndarray, count: int = 5
    ) -> dict[str, np.ndarray]:
        """``y(g_x)`` along ``g_x`` at the shared ``g_zz`` of ``count`` steps of the run (Fig. 3g).

        Returns ``cut_steps (count,)``, ``cut_g_x (n,)`` and ``cut_values (count, n)``; the
        ``g_x`` range spans the map's and every visited point.
        """
        steps = np.unique(np.linspace(0, len(history) - 1, count).round().astype(int))
        lo = min(config["map_x"][0], float(history[:, :2].min()) - 0.2)
        hi = max(config["map_x"][1], float(history[:, :2].max()) + 0.2)
        gx = np.linspace(lo, hi, config["cut_points"])
        values = np.array([self.cut(config, history[s, 2], gx) for s in steps])
        return {"cut_steps": steps, "cut_g_x": gx, "cut_values": values}

    def cut(
        self, config: dict[str, Any], g_zz: float, g_x: np.ndarray, derivative: bool = False
    ) -> np.ndarray:
        """``y = ⟨O⟩`` of the configured chain at ``g_zz`` for every ``g_x`` (shape of ``g_x``),
        or ``∂y/∂g_x`` by exact linear response when ``derivative``."""
        chain = cluster_ising.hamiltonian(config["chain_length"], boundary=config["boundary"])
        system = QEPSystem(chain, {"y": config["observable"]})
        h = system.full
        ident, coef = system.output_coefficients
        b_coef = h.derivative_coefficients[h.param_index["g_x"]]
        spec = self.state_spec(config)
        out = np.empty(len(g_x))
        with blas_threads(1, 0):
            for k, x in enumerate(g_x):
                full = system.full_values(np.array([config["g_zxz"], g_zz, x]))
                st = solve(h, full, spec)
                out[k] = (
                    response(h, full, st, coef, b_coef, spec)[0]
                    if derivative
                    else expectations(h, st, ident, coef)[0]
                )
        return out

    def final_checks(self, config: dict[str, Any], theta: np.ndarray) -> dict[str, Any]:
        """Where the run ended relative to the exact (infinite-chain) phase diagram."""
        g = dict(zip(self.params, theta, strict=True))
        xs = [g[p] for p in self.params if p.startswith("g_x")]
        zz = g["g_zz"]
        phases = [cluster_ising.phase(config["g_zxz"], zz, x, tol=1e-9) for x in xs]
        out: dict[str, Any] = {"phases": phases}
        out["boundary_distance"] = [_distance_to_boundary(config["g_zxz"], x, zz) for x in xs]
        if self.name == "sensitivity":
            peak = self.slope_peak(config, zz, 0.5 * (xs[0] + xs[1]))
            out["slope_peak_g_x"] = peak
            out["peak_distance"] = [abs(x - peak) for x in xs]
            out["finite_size_shift"] = _distance_to_boundary(config["g_zxz"], peak, zz)
        return out

    def slope_peak(
        self, config: dict[str, Any], g_zz: float, center: float, half_width: float = 0.3
    ) -> float:
        """Where ``|∂⟨O⟩/∂g_x|`` of the configured finite chain peaks at this ``g_zz``, within
        ``half_width`` of ``center`` (exact linear response on a grid of spacing 0.005).

        This is the finite chain's own optimum of the sensitivity task; its distance to the exact
        critical line is the finite-size shift.
        """
        gx = np.arange(center - half_width, center + half_width + 1e-12, 0.005)
        slope = self.cut(config, g_zz, gx, derivative=True)
        return float(gx[int(np.argmax(np.abs(slope)))])


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and bool(np.isfinite(x))


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


PHASE_EXPLORATION = CouplingDescent(
    "phase-exploration",
    ("g_x", "g_zz"),
    {1: (-0.1, 0.4), 2: (0.9, 0.9)},
    {"steps": 30, "map_x": [-3.5, 3.5], "map_y": [-2.0, 2.0], "degeneracy_tol": 1e-2},
)
SENSITIVITY = CouplingDescent(
    "sensitivity",
    ("g_x1", "g_x2", "g_zz"),
    {1: (-0.2, -1.5, -1.5), 2: (-0.5, 0.3, 1.0)},
    {
        "steps": 80,
        "map_x": [-2.0, 2.0],
        "map_y": [-2.0, 2.0],
        "estimator": "centered",
        "nudge_scale": "shared",
        "lr_decay": 0.05,
        "min_separation": 0.1,
    },
    separated=(0, 1),
)
