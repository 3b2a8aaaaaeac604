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

Each returns a :class:`GradientRecord`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse.linalg as spla

from .errors import ConvergenceError, NudgeWindowWarning, ProblemError
from .hamiltonian import ParametrisedHamiltonian
from .losses import Loss
from .measurement import (
    SHOT_MODELS,
    Estimate,
    measure,
    string_expectations,
    string_expectations_many,
)
from .solvers import StateSpec, solve
from .solvers.exact import blas_threads
from .states import Equilibrium
from .system import COST_NUDGE, QEPSystem

__all__ = [
    "ESTIMATORS",
    "GradientOptions",
    "GradientRecord",
    "estimate_gradient",
    "response",
    "susceptibility",
]

_VARIANTS = ("positive", "negative", "centered")


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
        Equilibrium preparations: one per solve when exact, one per shot otherwise.
    shots : int
        Measurement shots (0 when exact).
    solves : int
        Equilibrium computations performed by the solver.
    estimator, nudge : str, float or None
    params, output_names : tuples of names
    gap : float
        Gap of the free equilibrium (see :class:`~qeprop.states.Equilibrium`).
    degeneracy : int
        Number of states in the free equilibrium's manifold (1: a pure, non-degenerate state;
        for a thermal state, the number of eigenvectors).
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
        for name in ("nudge", "fd_step"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not np.isfinite(v)
                or v <= 0
            ):
                raise ProblemError(f"{name} must be a finite number > 0, got {v!r}")
        if self.variant not in _VARIANTS:
            raise ProblemError(
                f"unknown nudging variant {self.variant!r}; choose one of {list(_VARIANTS)}"
            )
        if self.shot_model not in SHOT_MODELS:
            raise ProblemError(
                f"unknown shot model {self.shot_model!r}; choose one of {list(SHOT_MODELS)}"
            )
        if self.shots is not None and (
            isinstance(self.shots, bool) or not isinstance(self.shots, int) or self.shots < 1
        ):
            raise ProblemError(f"shots must be a positive integer or None, got {self.shots!r}")


class _Run:
    """Book-keeping of one estimate: solves, measurements, counters."""

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
        self.loss = loss
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

    # -------------------------------------------------------------- equilibria and measurements
    def solve(self, values: np.ndarray, guess: Equilibrium | None = None) -> Equilibrium:
        self.solves += 1
        return solve(self.h, values, self.opts.state, guess)

    def _record(self, est: Estimate, exact_prep: bool) -> Estimate:
        if est.shots:
            self.shots += est.shots
            self.preparations += est.preparations
        elif exact_prep:
            self.preparations += 1
        return est

    def measure(
        self,
        state: Equilibrium,
        ident: np.ndarray,
        coef: np.ndarray,
        noisy: bool,
        new_prep: bool,
        string_values: np.ndarray | None = None,
    ) -> Estimate:
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
        return self._record(est, exact_prep=new_prep)

    def free_phase(
        self, free: Equilibrium, need_a: bool, string_values: np.ndarray | None = None
    ) -> tuple[Estimate, Estimate | None]:
        """Outputs ``y`` (or ``⟨C⟩``) and, if ``need_a``, ``⟨A_j⟩`` of the free equilibrium.

        With noisy outputs both come from the same shots (shared commuting groups).
        """
        noisy = self.opts.shots is not None
        ri, rc = self.readout_ops()
        zeros = np.zeros(len(self.train_coef))
        if need_a and noisy and self.opts.noisy_outputs:
            ident, coef = np.concatenate([ri, zeros]), np.vstack([rc, self.train_coef])
            est = self.measure(free, ident, coef, True, True, string_values)
            n_out = len(ri)
            y = Estimate(est.mean[:n_out], est.stderr[:n_out])
            return y, Estimate(est.mean[n_out:], est.stderr[n_out:])
        y = self.measure(free, ri, rc, noisy and self.opts.noisy_outputs, True, string_values)
        if not need_a:
            return y, None
        return y, self.measure(free, zeros, self.train_coef, noisy, False, string_values)

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
        free: Equilibrium,
        nudge: float | None,
    ) -> GradientRecord:
        names = ("cost",) if self.cost_mode else self.system.output_names
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
        )

    def check_window(self, free: Equilibrium, eps: np.ndarray, beta: float) -> None:
        """Warn if ``β|ε|`` leaves ``max(eps, tol) ||H|| / δ  <<  β|ε|  <<  δ``."""
        if not self.opts.warn_window:
            return
        ops = list(self.system.outputs.values())
        if self.cost_mode and self.system.cost is not None:
            ops = [self.system.cost]
        strength = beta * sum(abs(e) * op.norm_bound() for e, op in zip(eps, ops, strict=True))
        if strength == 0:
            return
        scale = free.gap if free.kind != "thermal" else max(free.gap, free.temperature or 0.0)
        noise = max(np.finfo(float).eps, self.opts.state.tol) * self.h.norm_bound(self.values)
        low = 10 * noise / scale if np.isfinite(scale) else 0.0
        if strength >= scale and self._decoupled(free, eps, beta):
            return
        if strength >= scale:
            warnings.warn(
                f"nudge strength β|ε| ≈ {strength:.3g} is not small compared with the gap "
                f"{scale:.3g}: the estimate is no longer a derivative (it saturates near 1/β for a "
                "near-degenerate pair); lower the nudge or use degeneracy='mixture'",
                NudgeWindowWarning,
                stacklevel=4,
            )
        elif strength <= low:
            warnings.warn(
                f"nudge strength β|ε| ≈ {strength:.3g} is below the solver noise floor "
                f"≈ {low:.3g} (tolerance x ||H|| / gap): the difference of expectation values is "
                "dominated by solver error; raise the nudge or tighten the tolerance",
                NudgeWindowWarning,
                stacklevel=4,
            )

    def _decoupled(self, free: Equilibrium, eps: np.ndarray, beta: float) -> bool:
        """Whether the nudge does not mix the state with the levels computed above it.

        A symmetry of the nudge operator ``B`` (e.g. a parity it conserves) can make the nearest
        level irrelevant, however small the gap ``δ`` to it. The coupling
        ``c = max |⟨above|B|ψ⟩|`` counts as zero when it is within the eigenvector error
        ``10 tol ||H|| / δ`` (times ``||Bψ||``) or mixes weakly, ``β c / δ < 0.01``.
        """
        if free.kind == "thermal" or free.above is None or free.above.shape[1] == 0:
            return False
        b = self.h.operator_matrix(self.nudge_operator(eps))
        bv = b @ free.vectors
        size = float(np.linalg.norm(bv))
        if size == 0 or not np.isfinite(free.gap) or free.gap <= 0:
            return False
        coupling = float(np.max(np.abs(free.above.conj().T @ bv)))
        noise = 10 * max(self.opts.state.tol, np.finfo(float).eps)
        noise *= self.h.norm_bound(self.values) / free.gap
        return coupling <= max(1e-8, noise) * size or beta * coupling / free.gap < 1e-2


# ------------------------------------------------------------------------------ estimators
#: nudge signs of the two equilibria whose ⟨A_j⟩ are differenced, per variant
_SIGNS = {"positive": (1, 0), "negative": (0, -1), "centered": (1, -1)}


def _difference(hi: Estimate, lo: Estimate, width: float) -> tuple[np.ndarray, np.ndarray]:
    """``(⟨A⟩_hi - ⟨A⟩_lo) / width`` and its standard error."""
    return (hi.mean - lo.mean) / width, np.sqrt(hi.stderr**2 + lo.stderr**2) / width


def _nudged_difference(
    run: _Run, variant: str, free: Equilibrium, a0: Estimate | None, eps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Σ_l ε_l ∂y_l/∂θ_j`` from nudged equilibria ``ν = ±βε`` (warm-started from ``free``).

    ``a0`` is ``⟨A_j⟩`` of the free equilibrium (needed by one-sided variants). Returns the
    estimate and its standard error, shapes ``(P,)``.
    """
    beta = run.opts.nudge
    noisy = run.opts.shots is not None
    signs = _SIGNS[variant]
    p = len(run.train_coef)
    run.check_window(free, eps, beta)
    direction = run.direction(eps)
    a: dict[int, Estimate] = {}
    for s in signs:
        if s == 0:
            assert a0 is not None
            a[s] = a0
            continue
        st = run.solve(run.values + s * beta * direction, guess=free)
        a[s] = run.measure(st, np.zeros(p), run.train_coef, noisy, new_prep=True)
    return _difference(a[signs[0]], a[signs[1]], (signs[0] - signs[1]) * beta)


def _point_derivative(
    run: _Run, estimator: str, free: Equilibrium, a0: Estimate | None, eps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Σ_l ε_l ∂y_l/∂θ_j`` at the prepared equilibrium ``free`` and its standard error.

    ``estimator`` is ``"linear_response"`` (exact, zero error) or a nudging variant of
    :data:`_SIGNS` (see :func:`_nudged_difference`).
    """
    if estimator == "linear_response":
        grad = response(
            run.h, run.values, free, run.train_coef, run.nudge_operator(eps), run.opts.state
        )
        return grad, np.zeros(len(grad))
    return _nudged_difference(run, estimator, free, a0, eps)


def _check_no_shots(opts: GradientOptions) -> None:
    if opts.shots is not None:
        raise ProblemError(
            "linear_response is the exact β -> 0 gradient and cannot use shots; "
            "use positive, negative or centered for a shot-noise estimate"
        )


def _nudged(run: _Run, variant: str, name: str) -> GradientRecord:
    beta = run.opts.nudge
    free = run.solve(run.values)
    y, a0 = run.free_phase(free, need_a=0 in _SIGNS[variant])
    loss, eps = run.evaluate(y)
    p = len(run.train_coef)
    if not np.any(eps):
        return run.record(name, np.zeros(p), np.zeros(p), y, loss, eps, free, beta)
    grad, se = _nudged_difference(run, variant, free, a0, eps)
    return run.record(name, grad, se, y, loss, eps, free, beta)


def _positive(run: _Run) -> GradientRecord:
    return _nudged(run, "positive", "positive")


def _negative(run: _Run) -> GradientRecord:
    return _nudged(run, "negative", "negative")


def _centered(run: _Run) -> GradientRecord:
    return _nudged(run, "centered", "centered")


def _cost_observable(run: _Run) -> GradientRecord:
    if not run.cost_mode:
        raise ProblemError(
            "the cost_observable estimator needs a cost observable C as the loss "
            "(loss kind 'observable'); use positive/negative/centered for a loss of the outputs"
        )
    return _nudged(run, run.opts.variant, "cost_observable")


def _solve_shifted(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    state: Equilibrium,
    k: int,
    rhs: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    """``φ = (H - E_k)^+ rhs`` on the complement of the state's manifold (MINRES or dense)."""
    h = ham.sparse(values)
    manifold = state.vectors
    ek = state.energies[k]
    if spec.use_dense(ham.dim) and ham.dim <= 4096:
        with blas_threads(spec.blas_threads, ham.dim):
            ev, vec = np.linalg.eigh(h.toarray())
        c = vec.conj().T @ rhs
        denom = ev - ek
        keep = np.abs(denom) > max(spec.degeneracy_tol, 1e-12)
        # levels inside the manifold are excluded (rhs is orthogonal to them)
        overlap = np.sum(np.abs(vec.conj().T @ manifold) ** 2, axis=1)
        keep &= overlap < 0.5
        phi = vec[:, keep] @ (c[keep] / denom[keep])
    else:
        count = [0]
        d = ham.dim
        cplx = np.iscomplexobj(rhs) or np.iscomplexobj(manifold) or h.dtype.kind == "c"

        def shifted(v: np.ndarray) -> np.ndarray:
            w = h @ v - ek * v
            return w - manifold @ (manifold.conj().T @ w)

        def mv(v: np.ndarray) -> np.ndarray:
            count[0] += 1
            if not cplx:
                return shifted(v)
            # complex Hermitian system as a real symmetric one of twice the size
            w = shifted(v[:d] + 1j * v[d:])
            return np.concatenate([w.real, w.imag])

        n_real = 2 * d if cplx else d
        op = spla.LinearOperator((n_real, n_real), matvec=mv, dtype=np.float64)
        b = np.concatenate([rhs.real, rhs.imag]) if cplx else rhs.real
        sol, info = spla.minres(op, b, rtol=min(1e-12, spec.tol), maxiter=20 * d)
        if info != 0:
            raise ConvergenceError(
                f"MINRES for the linear-response equation did not converge (info={info}, "
                f"{count[0]} iterations); the gap above the state may be too small"
            )
        phi = sol[:d] + 1j * sol[d:] if cplx else sol
    return phi - manifold @ (manifold.conj().T @ phi)


def susceptibility_weights(state: Equilibrium) -> np.ndarray:
    """``K_mn = (p_m - p_n) / (E_m - E_n)`` (``-p_m / T`` for ``E_m = E_n``) of a Gibbs state."""
    e = state.energies
    p = state.weights
    t = float(state.temperature)  # type: ignore[arg-type]
    lo_p = np.where(e[:, None] <= e[None, :], p[:, None], p[None, :])  # weight of the lower level
    gap = np.abs(e[:, None] - e[None, :])
    x = gap / t
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(x > 1e-8, -np.expm1(-x) / np.where(x > 0, x, 1.0), 1.0 - x / 2)
    return -lo_p * g / t


def response(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    free: Equilibrium,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    """Exact ``d⟨A_i⟩/dλ`` at ``λ = 0`` for ``H(values) + λ B`` in the equilibrium ``free``.

    ``a_coef`` is ``(n_ops, n_strings)``, ``b_coef`` is ``(n_strings,)``.

    * Pure state or equal-weight manifold: ``dψ_k = -(H - E_k)^+ Q B ψ_k`` (``Q`` projects out the
      manifold), so ``d⟨A⟩ = -2 Re Σ_k w_k ⟨φ_k|A|ψ_k⟩`` with ``φ_k = (H - E_k)^+ Q B ψ_k``: one
      linear solve per manifold vector, whatever the number of observables.
    * Gibbs state: ``χ_AB = Σ_mn A_nm B_mn K_mn + ⟨A⟩⟨B⟩/T = Tr(A W) + ⟨A⟩⟨B⟩/T`` with
      ``W = V (K ∘ V†BV) V†`` and ``K`` from :func:`susceptibility_weights`.
    """
    if free.kind == "thermal":
        v = free.vectors
        with blas_threads(spec.blas_threads, ham.dim):
            b_eig = v.conj().T @ (ham.operator_matrix(b_coef) @ v)
            w = v @ (susceptibility_weights(free) * b_eig) @ v.conj().T
        tr = ham.structure.string_traces(w).real
        ps = string_expectations(ham, free)
        return a_coef @ tr + (a_coef @ ps) * (b_coef @ ps) / float(free.temperature)  # type: ignore[arg-type]
    bop = ham.operator_matrix(b_coef)
    phis = np.empty_like(free.vectors, dtype=np.result_type(free.vectors, bop.dtype))
    for k in range(free.degeneracy):
        rhs = bop @ free.vectors[:, k]
        rhs = rhs - free.vectors @ (free.vectors.conj().T @ rhs)
        phis[:, k] = _solve_shifted(ham, values, free, k, rhs, spec)
    elems = ham.structure.string_matrix_elements(
        phis, free.vectors.astype(phis.dtype), free.weights
    )
    return -2.0 * (a_coef @ elems.real)


def _linear_response(run: _Run) -> GradientRecord:
    _check_no_shots(run.opts)
    free = run.solve(run.values)
    ri, rc = run.readout_ops()
    y = run.measure(free, ri, rc, False, new_prep=True)
    loss, eps = run.evaluate(y)
    grad, se = _point_derivative(run, "linear_response", free, None, eps)
    return run.record("linear_response", grad, se, y, loss, eps, free, None)


def _finite_difference(run: _Run) -> GradientRecord:
    h_step = run.opts.fd_step
    noisy = run.opts.shots is not None
    free = run.solve(run.values)
    ri, rc = run.readout_ops()
    y = run.measure(free, ri, rc, noisy, new_prep=True)
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
            est = run.measure(st, ri, rc, noisy, new_prep=True)
            lj, ej = run.evaluate(est)
            lv.append(lj)
            sv.append(float(np.sqrt(np.sum((ej * est.stderr) ** 2))))
        grad[j] = (lv[0] - lv[1]) / (2 * h_step)
        se[j] = np.hypot(sv[0], sv[1]) / (2 * h_step)
    return run.record("finite_difference", grad, se, y, loss, eps, free, None)


Estimator = Callable[[_Run], GradientRecord]

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
    run = _Run(system, full_values, loss, opts, rng)
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
    if opts.shots is not None and rng is None:
        raise ProblemError("shot noise needs an rng")
    values = np.atleast_2d(values)
    if len(losses) != len(values):
        raise ProblemError(f"{len(losses)} losses for a batch of {len(values)} parameter vectors")
    h = system.full
    full = np.array([system.full_values(v) for v in values])
    free = solve_ground_batch(h, full, opts.state)
    runs = [_Run(system, v, loss, opts, rng) for v, loss in zip(full, losses, strict=True)]
    signs = _SIGNS[variant]
    noisy = opts.shots is not None
    ys, epss, lossv, a0s = [], [], [], []
    free_ps = string_expectations_many(h, free)
    for run, st, ps in zip(runs, free, free_ps, strict=True):
        run.solves += 1
        y, a0 = run.free_phase(st, need_a=0 in signs, string_values=ps)
        loss_i, eps = run.evaluate(y)
        ys.append(y)
        epss.append(eps)
        lossv.append(loss_i)
        a0s.append(a0)
    beta = opts.nudge
    measured: dict[int, list[Estimate]] = {0: a0s}  # type: ignore[dict-item]
    nudges = [s for s in signs if s != 0]
    # all nudged equilibria (both signs for centred nudging) in one batch, warm from the free ones
    nudged_values = np.array(
        [
            run.values + s * beta * run.direction(eps)
            for s in nudges
            for run, eps in zip(runs, epss, strict=True)
        ]
    )
    states = solve_ground_batch(h, nudged_values, opts.state, guesses=free * len(nudges))
    nudged_ps = string_expectations_many(h, states)
    for k, s in enumerate(nudges):
        measured[s] = []
        for i, run in enumerate(runs):
            run.solves += 1
            j = k * len(runs) + i
            zeros = np.zeros(len(run.train_coef))
            measured[s].append(
                run.measure(states[j], zeros, run.train_coef, noisy, True, nudged_ps[j])
            )
    width = (signs[0] - signs[1]) * beta
    out = []
    for i, run in enumerate(runs):
        grad, se = _difference(measured[signs[0]][i], measured[signs[1]][i], width)
        out.append(run.record(variant, grad, se, ys[i], lossv[i], epss[i], free[i], beta))
    return out
