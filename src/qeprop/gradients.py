"""Estimators of the training gradient ``∂L/∂θ_j``.

Sign convention (``docs/conventions.md``): nudging adds ``+Σ_l ν_l O_l`` with ``ν = β ε``,
``ε = ∂L/∂y``. By Hellmann-Feynman and Onsager reciprocity,
``∂⟨A_j⟩/∂ν_l = ∂²E/∂θ_j∂ν_l = ∂⟨O_l⟩/∂θ_j`` with ``A_j = ∂H/∂θ_j``, hence

.. math::  \\frac{∂L}{∂θ_j} = \\frac{d}{dβ} ⟨A_j⟩_{ν = βε} \\Big|_{β=0}.

Estimators, chosen by name from :data:`ESTIMATORS`:

``positive``   ``(⟨A_j⟩_{+βε} - ⟨A_j⟩_0) / β``           (Wanjura & Marquardt eq. 5; error O(β))
``negative``   ``(⟨A_j⟩_0 - ⟨A_j⟩_{-βε}) / β``           (error O(β))
``centered``   ``(⟨A_j⟩_{+βε} - ⟨A_j⟩_{-βε}) / (2β)``    (error O(β²))
``cost_observable``  nudge ``H + βC`` for a cost observable ``C`` with ``L = ⟨C⟩`` (Scellier
               eqs. 25-31); ``variant`` picks positive, negative or centered.
``linear_response``  the exact β → 0 limit: first-order perturbation theory with one linear solve
               for all parameters (pure states), or the exact thermal susceptibility.
``finite_difference``  central differences of the loss, ``(L(θ+h e_j) - L(θ-h e_j)) / 2h``,
               re-solving the free state for each parameter: ``2P`` extra preparations.

Each returns a :class:`GradientRecord`, which also carries

* the measurement ledger (:class:`PhaseLedger`, one per phase): the measurement settings each
  phase measured with their shots and the observables that read them, and the observables taken
  exact (not measured: the outputs when ``noisy_outputs`` is off, everything without shots);
* for the one-sided estimators of ground and thermal states, Scellier's contrastive function
  (eq. 32) ``F_β = (E_β - E_0)/β``, with ``E_β`` the ground energy (free energy for a thermal
  state) of ``H + βB`` and ``B = Σ_l ε_l O_l`` (or the cost observable ``C``). ``E_β`` is concave
  in β and ``dE_β/dβ = ⟨B⟩_β``, so ``F_β ≤ ⟨B⟩_0`` for ``β > 0`` (a lower bound of the cost) and
  ``F_β ≥ ⟨B⟩_0`` for ``β < 0`` (the ``negative`` estimator); by Hellmann-Feynman its gradient
  ``∂F_β/∂θ_j = (⟨A_j⟩_β - ⟨A_j⟩_0)/β`` is exactly the one-sided estimate. For excited states
  ``E_β`` is not a minimum, the bound fails, and nothing is reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from . import checks
from .errors import NudgeWindowWarning, ProblemError
from .hamiltonian import ParametrisedHamiltonian
from .losses import Loss, bind_outputs
from .measurement import SHOT_MODELS, Estimate, measure, string_expectations_many
from .solvers import StateSpec, engine_for, linear_response, solve, solve_many
from .states import Equilibrium, State
from .system import COST_NUDGE, QEPSystem

__all__ = [
    "ESTIMATORS",
    "NUDGED_VARIANTS",
    "GradientOptions",
    "GradientRecord",
    "GradientRun",
    "PhaseLedger",
    "batch_mean_gradient",
    "check_no_shots",
    "estimate_gradient",
    "needs_free_couplings",
    "point_derivatives",
    "response",
    "shot_tolerance",
    "susceptibility",
]

_VARIANTS = ("positive", "negative", "centered")
#: largest nudge β accepted (β ε must stay far from overflow in ν = β ε)
MAX_NUDGE = 1e8
#: smallest finite-difference step accepted
MIN_FD_STEP = 1e-10
#: most shots per observable (counts beyond 2**53 are not exact in floating point)
MAX_SHOTS = 10**15


@dataclass(frozen=True)
class PhaseLedger:
    """What one phase of an estimate measured (Scellier, remarks on measurement).

    Attributes
    ----------
    phase : str
        ``"free"``, ``"nudged+"`` / ``"nudged-"`` (``ν = ±β ε``), or for ``finite_difference``
        ``"shifted[<param>]+"`` / ``"shifted[<param>]-"``.
    settings : tuple of (basis, shots, observables)
        Each measurement setting: its product basis (``"Z0 Z1 X2"``), the shots (preparations)
        spent on it, and the observables estimated from it (``output:<name>``, ``cost``,
        ``coupling:<param>``).
    exact : tuple of str
        Observables of this phase taken as exact expectation values, not measured.
    """

    phase: str
    settings: tuple[tuple[str, int, tuple[str, ...]], ...] = ()
    exact: tuple[str, ...] = ()

    @property
    def shots(self) -> int:
        """Shots spent in this phase (summed over its settings)."""
        return sum(s[1] for s in self.settings)

    def as_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "settings": [
                {"basis": b, "shots": m, "observables": list(obs)} for b, m, obs in self.settings
            ],
            "shots": self.shots,
            "exact": list(self.exact),
        }


@dataclass(frozen=True)
class GradientRecord:
    """Result of one gradient estimate.

    Attributes
    ----------
    gradient, stderr : (P,) arrays
        ``∂L/∂θ_j`` for the trainable parameters ``params`` and its standard error
        (zero when exact).
    outputs, outputs_stderr : (L,) arrays
        Free-phase outputs ``y_l = ⟨O_l⟩`` and their standard errors.
    loss : float
        ``L(y)`` (or ``⟨C⟩`` for a cost observable).
    error_signal : (L,) array
        ``ε = ∂L/∂y`` used for the nudge (``[1.0]`` for a cost observable).
    preparations : int
        State preparations: one per solve when exact, one per shot otherwise.
    shots : int
        Measurement shots (0 when exact).
    solves : int
        State computations performed by the solver.
    estimator, nudge : str, float or None
    params, output_names : tuples of names
    gap : float
        Gap of the free equilibrium (see :class:`~qeprop.states.State`).
    degeneracy : int
        Number of states in the free equilibrium's manifold (1: a pure, non-degenerate state;
        for a thermal state, the number of eigenvectors).
    backend : str
        The equilibrium backend that prepared the free state (``dense``, ``sparse``,
        ``matrix-free``).
    ledger : tuple of PhaseLedger
        Per phase, the measurement settings and shots spent and the observables taken exact.
    contrastive : float or None
        Scellier's contrastive function ``(E_β - E_0)/β`` of a one-sided estimate of a ground or
        thermal state (``β < 0`` for ``negative``), computed from the solver's energies (free
        energies for thermal states); ``None`` for other estimators and excited states.
    """

    gradient: np.ndarray
    stderr: np.ndarray
    outputs: np.ndarray
    outputs_stderr: np.ndarray
    loss: float
    error_signal: np.ndarray
    preparations: int
    shots: int
    solves: int
    estimator: str
    nudge: float | None
    params: tuple[str, ...]
    output_names: tuple[str, ...]
    gap: float
    degeneracy: int = 1
    backend: str = ""
    ledger: tuple[PhaseLedger, ...] = ()
    contrastive: float | None = None

    def gradient_dict(self) -> dict[str, float]:
        return {p: float(g) for p, g in zip(self.params, self.gradient, strict=True)}

    def outputs_dict(self) -> dict[str, float]:
        return {n: float(y) for n, y in zip(self.output_names, self.outputs, strict=True)}

    def as_dict(self) -> dict[str, object]:
        """Plain-Python form (lists and floats), for JSON."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, np.ndarray):
                out[k] = v.tolist()
            elif isinstance(v, tuple):
                out[k] = list(v)
        out["ledger"] = [p.as_dict() for p in self.ledger]
        return out


@dataclass(frozen=True)
class GradientOptions:
    """Settings shared by all estimators.

    Parameters
    ----------
    nudge:
        ``β`` of the nudged estimators (> 0).
    variant:
        Nudging variant of ``cost_observable``: ``"positive"``, ``"negative"`` or ``"centered"``.
    state:
        Which equilibrium (ground, eigenstate, thermal) and how to solve for it.
    shots:
        ``M`` measurement shots per observable (``None``: exact expectation values).
    shot_model:
        ``"gaussian"`` or ``"sampled"`` (see :mod:`qeprop.measurement`).
    noisy_outputs:
        Also estimate the outputs ``y`` (hence ``ε``) from shots.
    fd_step:
        Step ``h`` of ``finite_difference``.
    warn_window:
        Warn when the nudge leaves the window ``tol ||H|| / δ << β|ε| << δ``.
    """

    nudge: float = 0.01
    variant: str = "centered"
    state: StateSpec = field(default_factory=StateSpec)
    shots: int | None = None
    shot_model: str = "gaussian"
    noisy_outputs: bool = False
    fd_step: float = 1e-4
    warn_window: bool = True

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "nudge", checks.positive_real(self.nudge, "nudge", maximum=MAX_NUDGE))
        h = checks.positive_real(self.fd_step, "fd_step")
        if h < MIN_FD_STEP:
            raise ProblemError(
                f"must be at least {MIN_FD_STEP:g}: differences of the loss are exact only to "
                f"about 1e-15 |L| (rounding) plus the solver tolerance, so a step of {h:g} "
                "returns noise or zero",
                where="fd_step",
            )
        setattr_(self, "fd_step", h)
        checks.choice(self.variant, _VARIANTS, "variant")
        checks.choice(self.shot_model, SHOT_MODELS, "shot_model")
        if self.shots is not None:
            setattr_(self, "shots", checks.positive_int(self.shots, "shots", maximum=MAX_SHOTS))
        setattr_(self, "noisy_outputs", checks.boolean(self.noisy_outputs, "noisy_outputs"))
        setattr_(self, "warn_window", checks.boolean(self.warn_window, "warn_window"))
        state = self.state
        if isinstance(state, Mapping):
            try:
                state = StateSpec(**state)
            except TypeError as e:
                raise ProblemError(f"not a valid state specification: {e}", where="state") from None
        if not isinstance(state, StateSpec):
            raise ProblemError(
                f"must be a StateSpec or a mapping of its fields, got {checks.shown(state)}",
                where="state",
            )
        setattr_(self, "state", state)


#: loosest relative residual a shot-limited solve is allowed
_SHOT_TOL_CAP = 1e-6


def shot_tolerance(spec: StateSpec, shots: int | None, free: Sequence[State]) -> StateSpec:
    """``spec`` with the Lanczos tolerance a state measured with ``shots`` needs.

    A relative residual ``tol`` leaves an eigenvector error of about ``tol max(1, |E|) / δ``
    and an error ``2 ||A|| tol max(1, |E|) / δ`` in ``⟨A⟩``; ``M`` shots resolve ``⟨A⟩`` only to
    ``||A|| / √M``. Nudged states (warm-started from their free states ``free``, whose gaps
    ``δ`` and energies are known) are therefore solved to
    ``tol = min(1e-6, 0.005 δ / (√M max(1, |E|)))`` — a solver error 200 times below the shot
    noise — unless ``spec.tol`` is already looser. Exact runs (``shots=None``) keep ``spec``.
    """
    if shots is None or not free:
        return spec
    bounds = []
    for st in free:
        if not np.isfinite(st.gap) or st.gap <= 0:
            return spec
        bounds.append(0.005 * st.gap / (np.sqrt(shots) * max(1.0, abs(st.energy))))
    tol = min(_SHOT_TOL_CAP, min(bounds))
    return spec if tol <= spec.tol else spec.with_(tol=float(tol))


class GradientRun:
    """Book-keeping of one gradient estimate at one parameter vector: solves, measurements,
    counters, and the operators QEP reads out (outputs or cost) and nudges.

    ``values`` is the parameter vector of ``system.full`` (nudges zero). The estimator pipeline
    (:func:`point_derivatives`) and the multi-point objective drive it.
    """

    def __init__(
        self,
        system: QEPSystem,
        values: np.ndarray,
        loss: Loss | None,
        opts: GradientOptions,
        rng: np.random.Generator | None,
    ) -> None:
        self.system = system
        self.h = system.full
        self.values = values
        self.loss = loss if loss is None else bind_outputs(loss, system.outputs)
        self.opts = opts
        self.rng = rng
        self.preparations = 0
        self.shots = 0
        self.solves = 0
        self.cost_mode = loss is None
        if self.cost_mode and system.cost is None:
            raise ProblemError("no loss given and the system has no cost observable")
        if not self.cost_mode and not system.outputs:
            raise ProblemError("a loss of the outputs needs at least one output observable")
        derivs = self.h.derivative_coefficients[system.trainable_index]
        self.train_coef = derivs
        #: phase -> (settings, observables taken exact), in the order the phases were measured
        self._ledger: dict[str, tuple[list[tuple[str, int, tuple[str, ...]]], dict[str, None]]] = {}
        #: (free) energies of the equilibria at ν = s β ε, by sign s (for the contrastive value)
        self.energies: dict[int, float] = {}

    @cached_property
    def coupling_names(self) -> tuple[str, ...]:
        """Ledger names of the coupling operators ``A_j``."""
        return tuple(f"coupling:{p}" for p in self.system.trainable)

    @property
    def readout_names(self) -> tuple[str, ...]:
        """Ledger names of the outputs (or of the cost observable)."""
        if self.cost_mode:
            return ("cost",)
        return tuple(f"output:{n}" for n in self.system.output_names)

    def log(self, phase: str, est: Estimate, names: Sequence[str]) -> None:
        """Enter an estimate of the observables ``names`` in the ledger of ``phase``."""
        settings, exact = self._ledger.setdefault(phase, ([], {}))
        if not est.settings:
            exact.update(dict.fromkeys(names))  # ordered, without repeats
            return
        for st in est.settings:
            settings.append((st.basis, st.shots, tuple(names[r] for r in st.rows)))

    @property
    def ledger(self) -> tuple[PhaseLedger, ...]:
        return tuple(
            PhaseLedger(phase, tuple(settings), tuple(exact))
            for phase, (settings, exact) in self._ledger.items()
        )

    # -------------------------------------------------------------- equilibria and measurements
    def solve(self, values: np.ndarray, guess: State | None = None) -> State:
        """The equilibrium at ``values``; a nudged one (``guess`` = its free state) to the
        tolerance its shots need (:func:`shot_tolerance`)."""
        self.solves += 1
        spec = self.opts.state
        if guess is not None:
            spec = shot_tolerance(spec, self.opts.shots, [guess])
        return solve(self.h, values, spec, guess)

    def _record(self, est: Estimate, exact_prep: bool) -> Estimate:
        if est.shots:
            self.shots += est.shots
            self.preparations += est.preparations
        elif exact_prep:
            self.preparations += 1
        return est

    def measure(
        self,
        state: State,
        ident: np.ndarray,
        coef: np.ndarray,
        noisy: bool,
        new_prep: bool,
        string_values: np.ndarray | None = None,
        *,
        phase: str,
        names: Sequence[str],
    ) -> Estimate:
        """Estimate the observables ``names`` (rows of ``coef``) in ``state`` during ``phase``,
        with the run's shots if ``noisy``, and enter them in the ledger."""
        shots = self.opts.shots if noisy else None
        est = measure(
            self.h,
            state,
            ident,
            coef,
            shots=shots,
            model=self.opts.shot_model,
            rng=self.rng,
            string_values=string_values,
        )
        self.log(phase, est, names)
        return self._record(est, exact_prep=new_prep)

    def free_phase(
        self, free: State, need_a: bool, string_values: np.ndarray | None = None
    ) -> tuple[Estimate, Estimate | None]:
        """Outputs ``y`` (or ``⟨C⟩``) and, if ``need_a``, ``⟨A_j⟩`` of the free equilibrium.

        With noisy outputs both come from the same shots (shared commuting groups).
        """
        noisy = self.opts.shots is not None
        ri, rc = self.readout_ops()
        zeros = np.zeros(len(self.train_coef))
        self.energies[0] = _free_energy(free)
        out_names, a_names = self.readout_names, self.coupling_names
        if need_a and noisy and self.opts.noisy_outputs:
            ident, coef = np.concatenate([ri, zeros]), np.vstack([rc, self.train_coef])
            est = self.measure(
                free, ident, coef, True, True, string_values, phase="free",
                names=(*out_names, *a_names),
            )  # fmt: skip
            n_out = len(ri)
            y = Estimate(est.mean[:n_out], est.stderr[:n_out])
            return y, Estimate(est.mean[n_out:], est.stderr[n_out:])
        y = self.measure(
            free, ri, rc, noisy and self.opts.noisy_outputs, True, string_values, phase="free",
            names=out_names,
        )  # fmt: skip
        if not need_a:
            return y, None
        a0 = self.measure(
            free, zeros, self.train_coef, noisy, False, string_values, phase="free", names=a_names
        )
        return y, a0

    def readout_ops(self) -> tuple[np.ndarray, np.ndarray]:
        """The observables that define the loss: the outputs, or the cost observable."""
        if self.cost_mode:
            a, c = self.system.cost_coefficients
            return np.array([a]), c[None, :]
        return self.system.output_coefficients

    def evaluate(self, est: Estimate) -> tuple[float, np.ndarray]:
        if self.cost_mode:
            return float(est.mean[0]), np.ones(1)
        assert self.loss is not None
        return self.loss(est.mean)

    def direction(self, eps: np.ndarray) -> np.ndarray:
        """Nudge direction in the full parameter space: ``ν = β * direction``."""
        d = np.zeros(len(self.h.params))
        if self.cost_mode:
            d[self.h.param_index[COST_NUDGE]] = 1.0
        else:
            d[self.system.output_index] = eps
        return d

    def nudge_operator(self, eps: np.ndarray) -> np.ndarray:
        """String coefficients of ``B = Σ_l ε_l O_l`` (or ``C``) without identity parts."""
        _, coef = self.readout_ops()
        return np.asarray(eps) @ coef

    def record(
        self,
        name: str,
        grad: np.ndarray,
        se: np.ndarray,
        y: Estimate,
        loss: float,
        eps: np.ndarray,
        free: State,
        nudge: float | None,
    ) -> GradientRecord:
        names = ("cost",) if self.cost_mode else self.system.output_names
        sign = {"positive": 1, "negative": -1}.get(
            name if name != "cost_observable" else self.opts.variant
        )
        contrastive = None
        if (
            sign is not None
            and nudge is not None
            and free.kind in ("ground", "thermal")
            and sign in self.energies
            and 0 in self.energies
        ):
            contrastive = (self.energies[sign] - self.energies[0]) / (sign * nudge)
        return GradientRecord(
            gradient=np.asarray(grad, dtype=float),
            stderr=np.asarray(se, dtype=float),
            outputs=np.asarray(y.mean, dtype=float),
            outputs_stderr=np.asarray(y.stderr, dtype=float),
            loss=float(loss),
            error_signal=np.asarray(eps, dtype=float),
            preparations=self.preparations,
            shots=self.shots,
            solves=self.solves,
            estimator=name,
            nudge=nudge,
            params=tuple(self.system.trainable),
            output_names=tuple(names),
            gap=float(free.gap),
            degeneracy=free.degeneracy,
            backend=free.backend,
            ledger=self.ledger,
            contrastive=contrastive,
        )

    def check_window(
        self, free: State, eps: np.ndarray, beta: float, centered: bool = False
    ) -> float | None:
        """Warn if the nudge ``β B`` (``B = Σ_l ε_l O_l``) leaves the window where it estimates;
        return the mixing ratio ``r`` (``None`` when the check is off).

        The nudge mixes the state with the levels above it with amplitude
        ``r ≈ β||(H - E)^+ Q B ψ||``, at most ``β||Q B ψ|| / δ`` (``Q`` projects out the manifold,
        ``δ`` is the gap; for a thermal state ``max(δ, T)``).
        A one-sided estimate errs by ``β ⟨A⟩''/2``, which is about ``r/2`` of the response's
        natural size ``||A|| ||QBψ|| / δ``: it warns at ``r ≥ 0.1``. (Relative to the gradient
        itself the error is larger when the gradient is much smaller than that natural size;
        the centred estimate, checked a posteriori by :meth:`check_asymmetry`, does not have this
        blind spot.) A centred estimate warns beforehand only when ``r ≥ 1`` (no longer a
        perturbation). ``||QBψ||/δ`` is refined with the levels computed above the manifold
        (:func:`_first_order_size`): a symmetry that keeps ``B`` from coupling the nearest level
        lets a larger nudge pass. Both warn when the nudge is below the solver-noise floor
        ``10 tol ||H|| / δ``.
        """
        if not self.opts.warn_window or not isinstance(free, Equilibrium):
            # the window is measured on state vectors; an MPS record has none (skipped)
            return None
        bpsi = np.asarray(engine_for(self.h, free).apply(self.nudge_operator(eps), free.vectors))
        scale = free.gap if free.kind != "thermal" else max(free.gap, free.temperature or 0.0)
        if not np.isfinite(scale) or scale <= 0:
            return 0.0
        noise = max(np.finfo(float).eps, self.opts.state.tol) * self.h.norm_bound(self.values)
        low = 10 * noise / scale
        ratio = beta * _first_order_size(free, bpsi, scale, low)
        if ratio == 0:
            return 0.0
        strength = ratio * scale
        limit = 1.0 if centered else 0.1
        if ratio >= limit and self.opts.shots is not None:
            what = "centred" if centered else "one-sided"
            warnings.warn(
                f"nudge strength β||QBψ|| ≈ {strength:.3g} is not small compared with the gap "
                f"{scale:.3g} (ratio {ratio:.2g}): the {what} estimate is no longer a derivative "
                "to 10 %; lower the nudge (or use degeneracy='mixture' for a near-degenerate "
                "pair)",
                NudgeWindowWarning,
                stacklevel=5,
            )
        elif strength <= low:
            warnings.warn(
                f"nudge strength β|ε| ≈ {strength:.3g} is below the solver noise floor "
                f"≈ {low:.3g} (tolerance x ||H|| / gap): the difference of expectation values is "
                "dominated by solver error; raise the nudge or tighten the tolerance",
                NudgeWindowWarning,
                stacklevel=5,
            )
        return ratio

    def check_asymmetry(
        self,
        free: State,
        upper: np.ndarray,
        lower: np.ndarray,
        beta: float,
        ratio: float,
        centered: bool,
    ) -> None:
        """Warn if an exact nudged estimate is off by more than 10 % (a posteriori).

        ``upper = (⟨A⟩_{+βs} - ⟨A⟩_0)/β`` and ``lower = (⟨A⟩_0 - ⟨A⟩_{-βs})/β`` are the two
        one-sided estimates; they differ by ``β A2`` (``A2`` the second derivative of ``⟨A⟩``),
        so ``e1 = ||upper - lower|| / 2||g||`` is the measured relative error of a one-sided
        estimate (``||g||`` replaced by the halves' size where the gradient vanishes by
        symmetry). The centred one errs by ``β² A3 / 6`` (third derivative), about ``e1 r / 3``
        with the mixing ratio ``r`` of :meth:`check_window` (each further derivative brings a
        factor ``||QBψ||/δ``). On chain-plus-sensor and random problems this overestimates the
        error measured against linear response by 3-10×. Differences within the solver noise
        ``10 tol ||H|| ||A|| / (δ β)`` are not held against it (a gradient that vanishes by
        symmetry is all noise).
        """
        g = 0.5 * (upper + lower)
        size = float(np.linalg.norm(g))
        if size == 0 or not np.isfinite(size):
            return
        gap = free.gap if np.isfinite(free.gap) and free.gap > 0 else 1.0
        a_norm = float(np.max(np.sum(np.abs(self.train_coef), axis=1)))
        noise = 10 * max(self.opts.state.tol, np.finfo(float).eps) * self.h.norm_bound(self.values)
        noise *= a_norm * np.sqrt(len(g)) / (gap * beta)
        diff = float(np.linalg.norm(upper - lower))
        if diff <= noise:
            return
        # relative to the gradient, or to its one-sided halves where it vanishes by symmetry
        ref = max(size, 0.5 * float(np.linalg.norm(upper) + np.linalg.norm(lower)))
        err = diff / (2.0 * ref)
        if centered:
            err *= ratio / 3.0
        if err > 0.1:
            what = "centred" if centered else "one-sided"
            warnings.warn(
                f"the nudge is not small compared with the gap: the {what} estimate is off by "
                f"≈ {100 * min(err, 9.99):.0f} % (measured from the asymmetry of ⟨A⟩ under ±β); "
                "lower the nudge",
                NudgeWindowWarning,
                stacklevel=5,
            )


def _first_order_size(
    free: Equilibrium, bpsi: np.ndarray, gap: float, vector_error: float = 0.0
) -> float:
    """An upper bound on ``||(H - E)^+ Q B ψ||``: the first-order change of the state per unit
    nudge (``Q`` projects out the manifold; weighted over the manifold's vectors).

    With the levels ``n`` computed above the manifold (energies ``E_n``), their share is exact,
    ``Σ_n |⟨n|Bψ⟩|² / (E_n - E)²``, and the rest of ``||QBψ||²`` lies at least as far up as the
    highest of them; without them, ``||QBψ|| / δ``. A nudge that a symmetry keeps from coupling
    the nearest level is thus judged by the levels it does couple; when none of the computed
    levels couples, the distance to those that do is unknown and the size counts as zero (no
    warning). Couplings below ``max(1e-8, vector_error) ||QBψ||`` (the eigenvector error
    ``10 tol ||H|| / δ``) count as zero. Thermal states: ``||Bψ|| / max(δ, T)``.
    """
    w = free.weights
    if free.kind == "thermal":
        return float(np.sqrt(np.sum(w * np.sum(np.abs(bpsi) ** 2, axis=0)))) / gap
    proj = bpsi - free.vectors @ (free.vectors.conj().T @ bpsi)
    total2 = float(np.sum(w * np.sum(np.abs(proj) ** 2, axis=0)))
    above = free.above
    if above is None or above.shape[1] == 0:
        return float(np.sqrt(total2)) / gap
    e_above = free.spectrum[free.degeneracy : free.degeneracy + above.shape[1]]
    dist = np.maximum(e_above - float(np.mean(free.energies)), gap)
    c2 = np.sum(w * np.abs(above.conj().T @ proj) ** 2, axis=1)
    # couplings within the eigenvectors' own error are zero
    c2 = np.where(c2 <= max(1e-8, vector_error) ** 2 * total2, 0.0, c2)
    if float(c2.sum()) == 0.0:
        # no computed level couples (a symmetry of B): the levels it does couple lie above
        # them, at an unknown distance; judge by the first-order change alone (as zero here)
        return 0.0
    rest2 = max(total2 - float(c2.sum()), 0.0)
    return float(np.sqrt(np.sum(c2 / dist**2) + rest2 / dist[-1] ** 2))


# ------------------------------------------------------------------------------ the pipeline
#: nudge signs of the two equilibria whose ⟨A_j⟩ are differenced, per variant
_SIGNS = {"positive": (1, 0), "negative": (0, -1), "centered": (1, -1)}
#: the nudging variants (and the names of their estimators)
NUDGED_VARIANTS = tuple(_SIGNS)

#: ``(runs, nudged parameter vectors (n, P), warm starts) -> nudged equilibria``
NudgedSolver = Callable[[Sequence[GradientRun], np.ndarray, Sequence[State]], list[State]]


def _difference(hi: Estimate, lo: Estimate, width: float) -> tuple[np.ndarray, np.ndarray]:
    """``(⟨A⟩_hi - ⟨A⟩_lo) / width`` and its standard error."""
    return (hi.mean - lo.mean) / width, np.sqrt(hi.stderr**2 + lo.stderr**2) / width


def _solve_each(
    runs: Sequence[GradientRun], values: np.ndarray, warm: Sequence[State]
) -> list[State]:
    """Nudged equilibria, each warm-started from its free state. The solves of one problem
    go to the seam together (:func:`~qeprop.solvers.solve_many`: a backend that can, such as
    ``dmrg`` with ``state.threads >= 2``, prepares them side by side); the same states either
    way."""
    r0 = runs[0] if runs else None
    if r0 is not None and len(runs) > 1 and all(r.h is r0.h and r.opts is r0.opts for r in runs):
        state = r0.opts.state
        specs = [state if g is None else shot_tolerance(state, r0.opts.shots, [g]) for g in warm]
        if all(spec == specs[0] for spec in specs):  # the spec each gets alone (run.solve)
            for r in runs:
                r.solves += 1
            return solve_many(r0.h, list(values), specs[0], list(warm))
    return [run.solve(v, guess=g) for run, v, g in zip(runs, values, warm, strict=True)]


def needs_free_couplings(estimator: str) -> bool:
    """Whether ``estimator`` differences against ``⟨A_j⟩`` of the free state (one-sided)."""
    return estimator in _SIGNS and 0 in _SIGNS[estimator]


def point_derivatives(
    runs: Sequence[GradientRun],
    frees: Sequence[State],
    a0s: Sequence[Estimate | None],
    signals: Sequence[np.ndarray],
    estimator: str,
    solve_nudged: NudgedSolver | None = None,
    string_values: Callable[[list[State]], np.ndarray] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``Σ_l s_l ∂y_l/∂θ_j`` at each prepared free equilibrium, and its standard error.

    The one estimator pipeline behind single, batched and multi-point gradients: after the free
    phase (``frees``, with ``⟨A_j⟩_0`` in ``a0s`` for one-sided variants) and the error signals
    ``s`` (``ε = ∂L/∂y``, or a rescaled one), every point is nudged with ``ν = ±β s`` (warm-started
    from its free state) and ``⟨A_j⟩`` is differenced:

    ``positive``   ``(⟨A⟩_{+βs} - ⟨A⟩_0) / β``,
    ``negative``   ``(⟨A⟩_0 - ⟨A⟩_{-βs}) / β``,
    ``centered``   ``(⟨A⟩_{+βs} - ⟨A⟩_{-βs}) / 2β``,
    ``linear_response``  the exact ``β → 0`` limit (the backend's linear response; no error).

    All nudged equilibria are prepared first (``solve_nudged``: one batch for all points and
    signs, or one by one), then measured sign by sign, point by point, so that shot noise is drawn
    in the same order whichever solver ran. A point whose signal vanishes gets zeros.

    Parameters
    ----------
    runs, frees, a0s, signals:
        Per point: its :class:`GradientRun`, free equilibrium, ``⟨A_j⟩_0`` (or ``None``) and signal
        ``(L,)``.
    estimator:
        ``"positive"``, ``"negative"``, ``"centered"`` or ``"linear_response"``.
    solve_nudged:
        How to prepare the nudged equilibria (default: one by one with the runs' solver).
    string_values:
        ``⟨P_s⟩`` of many states at once (e.g. :func:`qeprop.measurement.string_expectations_many`).

    Returns
    -------
    list of ``(gradient (P,), stderr (P,))``, one per point.
    """
    out: list[tuple[np.ndarray, np.ndarray]] = [
        (np.zeros(len(r.train_coef)), np.zeros(len(r.train_coef))) for r in runs
    ]
    active = [i for i, s in enumerate(signals) if np.any(s) and len(runs[i].train_coef)]
    if estimator == "linear_response":
        for i in active:
            run = runs[i]
            grad = linear_response(
                run.h, run.values, frees[i], run.train_coef, run.nudge_operator(signals[i]),
                run.opts.state,
            )  # fmt: skip
            out[i] = (grad, np.zeros(len(grad)))
        return out
    signs = _SIGNS[estimator]
    nudges = [s for s in signs if s != 0]
    if not active:
        return out
    ratios = [
        runs[i].check_window(frees[i], signals[i], runs[i].opts.nudge, estimator == "centered")
        for i in active
    ]
    act_runs = [runs[i] for i in active]
    values = np.array(
        [
            runs[i].values + s * runs[i].opts.nudge * runs[i].direction(signals[i])
            for s in nudges
            for i in active
        ]
    )
    if not np.all(np.isfinite(values)):
        worst = max(active, key=lambda i: float(np.max(np.abs(signals[i]))))
        raise ProblemError(
            f"the nudge ν = β ε overflows: β = {runs[worst].opts.nudge:g} times an error signal "
            f"of size {float(np.max(np.abs(signals[worst]))):.3g}; lower the nudge or check the "
            "loss target",
            where="nudge",
        )
    warm = [frees[i] for _ in nudges for i in active]
    solver = solve_nudged or _solve_each
    states = solver(act_runs * len(nudges), values, warm)
    ps = string_values(states) if string_values is not None else [None] * len(states)
    measured: dict[int, list[Estimate]] = {}
    for k, s in enumerate(nudges):
        measured[s] = []
        for j, i in enumerate(active):
            run = runs[i]
            n = k * len(active) + j
            zeros = np.zeros(len(run.train_coef))
            run.energies[s] = _free_energy(states[n])
            measured[s].append(
                run.measure(
                    states[n],
                    zeros,
                    run.train_coef,
                    run.opts.shots is not None,
                    True,
                    ps[n],
                    phase=f"nudged{'+' if s > 0 else '-'}",
                    names=run.coupling_names,
                )
            )
    if 0 in signs:
        measured[0] = [a0s[i] for i in active]  # type: ignore[misc]
    for j, i in enumerate(active):
        if ratios[j] is not None and runs[i].opts.shots is None:
            _check_linear_regime(runs[i], frees[i], signals[i], measured, signs, j, ratios[j])
    for j, i in enumerate(active):
        beta = runs[i].opts.nudge
        out[i] = _difference(
            measured[signs[0]][j], measured[signs[1]][j], (signs[0] - signs[1]) * beta
        )
    return out


def _free_energy(state: State) -> float:
    """The energy whose β-difference is the contrastive function (free energy when thermal)."""
    return float(state.free_energy)


def _check_linear_regime(
    run: GradientRun,
    free: State,
    signal: np.ndarray,
    measured: dict[int, list[Estimate]],
    signs: tuple[int, int],
    j: int,
    ratio: float | None,
) -> None:
    """A posteriori check of an exact nudged estimate (see :meth:`GradientRun.check_asymmetry`).

    Needs ``⟨A⟩`` at ``0`` and at both ``±βs``: the centred estimate has the nudged ones and
    reads ``⟨A⟩_0`` off the free state; a one-sided one solves the mirrored nudge as well. These
    are diagnostics of an exact (simulated) estimate: they are neither preparations nor counted
    solves, and they are skipped with ``warn_window=False`` (training loops).
    """
    beta = run.opts.nudge
    zeros = np.zeros(len(run.train_coef))
    a: dict[int, np.ndarray] = {s: measured[s][j].mean for s in signs if s != 0}
    a0 = measured[0][j].mean if 0 in signs else None
    if a0 is None:
        a0 = measure(run.h, free, zeros, run.train_coef).mean
    for s in (1, -1):
        if s not in a:
            spec = shot_tolerance(run.opts.state, None, [free])
            st = solve(run.h, run.values + s * beta * run.direction(signal), spec, free)
            a[s] = measure(run.h, st, zeros, run.train_coef).mean
    run.check_asymmetry(
        free, (a[1] - a0) / beta, (a0 - a[-1]) / beta, beta, ratio or 0.0, 0 not in signs
    )


def check_no_shots(opts: GradientOptions) -> None:
    if opts.shots is not None:
        raise ProblemError(
            "linear_response is the exact β -> 0 gradient and cannot use shots; "
            "use positive, negative or centered for a shot-noise estimate"
        )


def _gradient_records(
    runs: Sequence[GradientRun],
    frees: Sequence[State],
    name: str,
    variant: str,
    solve_nudged: NudgedSolver | None = None,
    string_values: Callable[[list[State]], np.ndarray] | None = None,
) -> list[GradientRecord]:
    """Free phase, error signal, nudged phase(s), difference: one record per run."""
    need_a = needs_free_couplings(variant)
    ys, a0s, losses, epss = [], [], [], []
    free_ps = string_values(list(frees)) if string_values is not None else [None] * len(frees)
    for run, free, ps in zip(runs, frees, free_ps, strict=True):
        y, a0 = run.free_phase(free, need_a=need_a, string_values=ps)
        loss, eps = run.evaluate(y)
        ys.append(y)
        a0s.append(a0)
        losses.append(loss)
        epss.append(eps)
    derivs = point_derivatives(runs, frees, a0s, epss, variant, solve_nudged, string_values)
    nudge = None if variant == "linear_response" else runs[0].opts.nudge if runs else None
    return [
        run.record(name, g, se, y, loss, eps, free, nudge)
        for run, (g, se), y, loss, eps, free in zip(
            runs, derivs, ys, losses, epss, frees, strict=True
        )
    ]


def _nudged(run: GradientRun, variant: str, name: str) -> GradientRecord:
    return _gradient_records([run], [run.solve(run.values)], name, variant)[0]


def _positive(run: GradientRun) -> GradientRecord:
    return _nudged(run, "positive", "positive")


def _negative(run: GradientRun) -> GradientRecord:
    return _nudged(run, "negative", "negative")


def _centered(run: GradientRun) -> GradientRecord:
    return _nudged(run, "centered", "centered")


def _cost_observable(run: GradientRun) -> GradientRecord:
    if not run.cost_mode:
        raise ProblemError(
            "the cost_observable estimator needs a cost observable C as the loss "
            "(loss kind 'observable'); use positive/negative/centered for a loss of the outputs"
        )
    return _nudged(run, run.opts.variant, "cost_observable")


def response(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    free: State,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    """Exact ``d⟨A_i⟩/dλ`` at ``λ = 0`` for ``H(values) + λ B`` in the equilibrium ``free``.

    ``a_coef`` is ``(n_ops, n_strings)``, ``b_coef`` is ``(n_strings,)``; answered by the state's
    backend (:func:`qeprop.solvers.linear_response`, formulas in :mod:`qeprop.solvers.response`).
    """
    return linear_response(ham, values, free, a_coef, b_coef, spec)


def _linear_response(run: GradientRun) -> GradientRecord:
    check_no_shots(run.opts)
    return _gradient_records([run], [run.solve(run.values)], "linear_response", "linear_response")[
        0
    ]


def _finite_difference(run: GradientRun) -> GradientRecord:
    h_step = run.opts.fd_step
    noisy = run.opts.shots is not None
    free = run.solve(run.values)
    ri, rc = run.readout_ops()
    names = run.readout_names
    y = run.measure(free, ri, rc, noisy, new_prep=True, phase="free", names=names)
    loss, eps = run.evaluate(y)
    p = len(run.system.trainable)
    grad = np.empty(p)
    se = np.zeros(p)
    for j, idx in enumerate(run.system.trainable_index):
        lv: list[float] = []
        sv: list[float] = []
        for s in (1.0, -1.0):
            vals = run.values.copy()
            vals[idx] += s * h_step
            st = run.solve(vals, guess=free)
            phase = f"shifted[{run.system.trainable[j]}]{'+' if s > 0 else '-'}"
            est = run.measure(st, ri, rc, noisy, new_prep=True, phase=phase, names=names)
            lj, ej = run.evaluate(est)
            lv.append(lj)
            sv.append(float(np.sqrt(np.sum((ej * est.stderr) ** 2))))
        grad[j] = (lv[0] - lv[1]) / (2 * h_step)
        se[j] = np.hypot(sv[0], sv[1]) / (2 * h_step)
    return run.record("finite_difference", grad, se, y, loss, eps, free, None)


Estimator = Callable[[GradientRun], GradientRecord]

ESTIMATORS: dict[str, Estimator] = {
    "positive": _positive,
    "negative": _negative,
    "centered": _centered,
    "cost_observable": _cost_observable,
    "linear_response": _linear_response,
    "finite_difference": _finite_difference,
}


def estimate_gradient(
    system: QEPSystem,
    values: Mapping[str, float] | np.ndarray,
    loss: Loss | None = None,
    *,
    estimator: str = "centered",
    options: GradientOptions | None = None,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    **option_overrides: object,
) -> GradientRecord:
    """Estimate ``∂L/∂θ`` for the trainable couplings of ``system`` at parameter ``values``.

    Parameters
    ----------
    system:
        The QEP system (Hamiltonian, outputs, trainable parameters, optional cost observable).
    values:
        Values of every parameter of ``system.hamiltonian`` (mapping or aligned vector).
    loss:
        ``y -> (L, ∂L/∂y)``; ``None`` means ``L = ⟨C⟩`` for the system's cost observable.
    estimator:
        A name in :data:`ESTIMATORS`.
    options:
        :class:`GradientOptions`; keyword overrides (``nudge=0.1``, ``shots=10``, ...) apply on top.
    seed, rng:
        Randomness for shot noise (one of them when ``shots`` is set).

    Returns
    -------
    GradientRecord
    """
    if estimator not in ESTIMATORS:
        raise ProblemError(f"unknown estimator {estimator!r}; choose one of {list(ESTIMATORS)}")
    opts = options or GradientOptions()
    if option_overrides:
        from dataclasses import replace

        opts = replace(opts, **option_overrides)  # type: ignore[arg-type]
    if rng is None and seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ProblemError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng(seed)
    if opts.shots is not None and rng is None:
        raise ProblemError("shot noise needs a seed or an rng")
    full_values = system.full_values(values)
    run = GradientRun(system, full_values, loss, opts, rng)
    return ESTIMATORS[estimator](run)


def susceptibility(
    system: QEPSystem,
    values: Mapping[str, float] | np.ndarray,
    *,
    state: StateSpec | None = None,
) -> np.ndarray:
    """Exact static susceptibility ``χ_ab = ∂⟨A_a⟩/∂p_b`` between all parameters of ``system.full``.

    Rows and columns follow ``system.full.params`` (inputs, couplings and output nudges), with
    ``A_a = ∂H/∂p_a``. Onsager reciprocity says ``χ`` is symmetric; every column is computed by an
    independent linear-response solve, so the symmetry is a genuine check.
    """
    spec = state or StateSpec()
    h = system.full
    vals = system.full_values(values)
    free = solve(h, vals, spec)
    derivs = h.derivative_coefficients
    return np.column_stack(
        [response(h, vals, free, derivs, derivs[b], spec) for b in range(len(derivs))]
    )


def batch_nudged_gradients(
    system: QEPSystem,
    values: np.ndarray,
    losses: Sequence[Loss],
    *,
    variant: str = "centered",
    options: GradientOptions | None = None,
    rng: np.random.Generator | None = None,
) -> list[GradientRecord]:
    """QEP output-nudging gradients for a batch of parameter vectors, solved together.

    The same estimator as ``positive``/``negative``/``centered`` in :func:`estimate_gradient`, for
    ground states, with every equilibrium of the batch (free, then nudged, warm-started from the
    free ones) computed by :func:`qeprop.solvers.batch.solve_ground_batch`. Shot noise and counts
    follow :func:`estimate_gradient`; random draws happen sample by sample in a fixed order.

    Parameters
    ----------
    values:
        ``(B, n_params)`` parameter vectors of ``system.hamiltonian``.
    losses:
        One loss per batch element.
    """
    from .solvers.batch import solve_ground_batch

    opts = options or GradientOptions()
    if variant not in _VARIANTS:
        raise ProblemError(f"unknown nudging variant {variant!r}; choose one of {list(_VARIANTS)}")
    if opts.state.kind != "ground":
        raise ProblemError("batched gradients support ground states only")
    if opts.state.backend == "dmrg":
        raise ProblemError(
            "batched gradients solve state vectors together; the dmrg backend solves one state "
            "at a time (use estimate_gradient per sample)",
            where="state.method",
        )
    if opts.shots is not None and rng is None:
        raise ProblemError("shot noise needs an rng")
    values = np.atleast_2d(values)
    if len(losses) != len(values):
        raise ProblemError(f"{len(losses)} losses for a batch of {len(values)} parameter vectors")
    h = system.full
    full = np.array([system.full_values(v) for v in values])
    free = solve_ground_batch(h, full, opts.state)
    runs = [GradientRun(system, v, loss, opts, rng) for v, loss in zip(full, losses, strict=True)]

    def solve_nudged(
        rs: Sequence[GradientRun], vals: np.ndarray, warm: Sequence[State]
    ) -> list[State]:
        for r in rs:
            r.solves += 1
        spec = shot_tolerance(opts.state, opts.shots, warm)
        guesses = [w if isinstance(w, Equilibrium) else None for w in warm]
        return list[State](solve_ground_batch(h, vals, spec, guesses=guesses))

    def many(states: list[State]) -> np.ndarray:
        return string_expectations_many(h, states)

    for run in runs:
        run.solves += 1
    return _gradient_records(runs, free, variant, variant, solve_nudged, many)


def batch_mean_gradient(
    system: QEPSystem,
    values: np.ndarray,
    losses: Sequence[Loss],
    *,
    estimator: str,
    options: GradientOptions,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, float]:
    """Batch-averaged gradient ``(1/B) Σ_b ∂L_b/∂θ`` and mean loss of a mini-batch.

    The nudged estimators (``positive``, ``negative``, ``centered``) solve the whole batch
    together (:func:`batch_nudged_gradients`); the others run :func:`estimate_gradient` per
    sample. ``values`` is ``(B, n_params)`` of ``system.hamiltonian``; shot noise is drawn from
    ``rng`` in the order of the samples.
    """
    # state vectors of qubit Hamiltonians are solved together; other records (MPS, Gaussian
    # states of oscillator networks) one sample at a time
    batched = isinstance(system.full, ParametrisedHamiltonian) and options.state.backend != "dmrg"
    if estimator in _VARIANTS and batched:
        recs = batch_nudged_gradients(
            system, values, losses, variant=estimator, options=options, rng=rng
        )
    else:
        recs = [
            estimate_gradient(system, v, loss, estimator=estimator, options=options, rng=rng)
            for v, loss in zip(values, losses, strict=True)
        ]
    return np.mean([r.gradient for r in recs], axis=0), float(np.mean([r.loss for r in recs]))
