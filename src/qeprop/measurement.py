"""Expectation values of Pauli-sum observables, exact or from a finite number of shots.

Observables are given in the string basis of a :class:`~qeprop.hamiltonian.ParametrisedHamiltonian`
as ``(identity parts (n_ops,), coefficients (n_ops, n_strings))``, so that every expectation value
of every observable comes from one vectorised contraction with the precomputed structure.

Two shot models:

Both count what an experiment pays in the same way. The strings of all observables measured
together are grouped into *measurement settings* (:func:`measurement_settings`: qubit-wise
commuting groups, one single-qubit basis per qubit); each setting is prepared and measured ``M``
times, so an estimate costs ``M × (number of settings)`` shots and preparations, whatever the
number of observables (two settings for ``X0 + 0.7 Z0``, one for ``Z0``, ``Z1`` and ``Z0 Z1``
together). The settings are returned on the estimate (:class:`Setting`), for the measurement
ledger of :mod:`qeprop.gradients`.

``"gaussian"`` (Wanjura & Marquardt, appendix)
    each ``⟨A⟩`` is drawn from ``N(⟨A⟩, σ²/M)``, independently per observable, with
    ``σ² = Σ_g Var(A_g)`` summed over the parts ``A_g`` of ``A`` in each setting ``g`` (``Var(A)``
    itself when ``A`` lies in one setting).
``"sampled"``
    for each setting ``M`` bitstrings are drawn from the state in the rotated basis (one
    preparation per shot) and every string of the setting is estimated from the same shots, as an
    experiment would.

Every estimate carries its standard error (the sample standard deviation over ``sqrt(M)``).

Oscillator networks (a :class:`~qeprop.modes.ModeHamiltonian` and its Gaussian states) go through
the same functions with quadrature strings in place of Pauli strings: expectations, exact
variances and both shot models come from :mod:`qeprop.solvers.gaussian`, and a measurement setting
reads one quadrature per mode (:func:`~qeprop.quadratures.quad_settings`; all positions in one
setting, all momenta in another).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ProblemError
from .hamiltonian import ParametrisedHamiltonian, SparseStructure
from .memory import check_memory
from .modes import Hamiltonian
from .pauli import PauliString, parity, qubitwise_commute_groups
from .solvers import engine_for
from .states import Equilibrium, GaussianEquilibrium, MPSEquilibrium, State

__all__ = [
    "SHOT_MODELS",
    "Estimate",
    "Setting",
    "expectations",
    "measure",
    "measurement_settings",
    "string_expectations",
]

SHOT_MODELS = ("gaussian", "sampled")


@dataclass(frozen=True)
class Setting:
    """One measurement setting: a product basis, measured ``shots`` times.

    Attributes
    ----------
    basis : str
        The measured letter of every qubit it touches, ``"Z0 Z1 X2"`` (the union of its strings).
    shots : int
        Preparations measured in this basis (one outcome each).
    rows : tuple of int
        The observables (rows of the ``coef`` passed to :func:`measure`) that read it.
    """

    basis: str
    shots: int
    rows: tuple[int, ...]


@dataclass(frozen=True)
class Estimate:
    """Estimated expectation values with standard errors.

    Attributes
    ----------
    mean, stderr : (n_ops,) arrays
        Estimates and their standard errors (zero for exact values).
    shots : int
        Measurement shots spent (``Σ`` over ``settings``).
    preparations : int
        Equilibrium preparations spent (one per shot; one in total for an exact evaluation).
    settings : tuple of Setting
        The measurement settings that were measured (empty for exact values).
    """

    mean: np.ndarray
    stderr: np.ndarray
    shots: int = 0
    preparations: int = 1
    settings: tuple[Setting, ...] = ()


def _qubit_hamiltonian(ham: Hamiltonian) -> ParametrisedHamiltonian:
    """``ham``, which must be a qubit Hamiltonian here (the state is not a Gaussian one)."""
    if not isinstance(ham, ParametrisedHamiltonian):
        raise ProblemError(
            "quadrature observables (oscillator modes) are measured on Gaussian states of the "
            "gaussian backend, not on a qubit state"
        )
    return ham


def string_expectations(ham: Hamiltonian, state: State) -> np.ndarray:
    """``Tr(ρ P_s)`` for every string ``s`` of ``ham.strings`` (real, shape ``(n_strings,)``).

    Answered by the state's backend (:func:`qeprop.solvers.engine_for`), or from the matrix product
    state with shared environments (:func:`qeprop.solvers.dmrg.mps_string_expectations`), or
    from the mean and covariance of a Gaussian state
    (:func:`qeprop.solvers.gaussian.string_expectations`).
    """
    if isinstance(state, GaussianEquilibrium):
        from .solvers import gaussian

        return gaussian.string_expectations(ham, state)
    ham = _qubit_hamiltonian(ham)
    if isinstance(state, MPSEquilibrium):
        return _mps_expectations(state, ham.strings)
    vecs, w = state.significant()
    return np.asarray(engine_for(ham, state).matrix_elements(vecs, vecs, w)).real


def _mps_expectations(state: MPSEquilibrium, strings: Sequence[PauliString]) -> np.ndarray:
    """``⟨ψ|P|ψ⟩`` of an MPS record: the one place measurements reach matrix product states."""
    from .solvers.dmrg import mps_string_expectations

    if any(p.max_qubit >= state.n_qubits for p in strings):
        raise ProblemError("an operator acts on qubits that the MPS state does not have")
    return mps_string_expectations(state, strings)


def string_expectations_many(ham: ParametrisedHamiltonian, states: list[State]) -> np.ndarray:
    """``Tr(ρ_b P_s)`` for many states at once: ``(len(states), n_strings)``.

    Pure states of the same engine are contracted together in one compiled pass
    (:func:`_pure_string_expectations`); the others one by one.
    """
    out = np.empty((len(states), len(ham.strings)))
    st = ham.structure if "structure" in ham.__dict__ else None
    vec_states = {i: s for i, s in enumerate(states) if isinstance(s, Equilibrium)}
    pure = [
        i for i, s in vec_states.items() if s.is_pure and st is not None and s.engine in (None, st)
    ]
    if st is not None and pure:
        out[pure] = _pure_string_expectations(st, [vec_states[i].vectors[:, 0] for i in pure])
    done = set(pure)
    for i, s in enumerate(states):
        if i not in done:
            out[i] = string_expectations(ham, s)
    return out


def _pure_string_expectations(st: SparseStructure, vectors: list[np.ndarray]) -> np.ndarray:
    """``⟨ψ_b| P_s |ψ_b⟩`` ``(B, n_strings)`` for unit vectors ``ψ_b`` ``(dim,)`` of ``st``.

    In the flip-pattern layout (:class:`~qeprop.hamiltonian.MaskStrings`),
    ``⟨ψ| P_s |ψ⟩ = Re(i^{n_Y(s)} Σ_r σ_s[r] conj(ψ[r]) ψ[r ^ x_s])``: one pass over the state per
    X mask, then one signed sum per string, in compiled code.
    """
    from .solvers._lanczos_kernels import pure_expectations

    vecs = np.stack(vectors)
    vecs = np.ascontiguousarray(vecs, dtype=np.complex128 if vecs.dtype.kind == "c" else np.float64)
    ms = st.mask_strings
    out = np.empty((len(vectors), len(st.strings)))
    pure_expectations(
        vecs, st.mask_layout[0], ms.offsets, ms.order, ms.phase_re, ms.phase_im, ms.signs, out
    )
    return out


def expectations(ham: Hamiltonian, state: State, ident: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Exact ``⟨A_i⟩ = a_i + Σ_s coef[i, s] ⟨P_s⟩`` for all observables at once."""
    return np.asarray(ident) + np.asarray(coef) @ string_expectations(ham, state)


def _check_shots(shots: int) -> int:
    if isinstance(shots, bool) or not isinstance(shots, int | np.integer) or shots < 1:
        raise ProblemError(f"shots must be a positive integer, got {shots!r}")
    return int(shots)


def measure(
    ham: Hamiltonian,
    state: State,
    ident: np.ndarray,
    coef: np.ndarray,
    *,
    shots: int | None = None,
    model: str = "gaussian",
    rng: np.random.Generator | None = None,
    string_values: np.ndarray | None = None,
) -> Estimate:
    """Estimate observables ``A_i = a_i + Σ_s coef[i, s] P_s`` in ``state``.

    Parameters
    ----------
    ham, state:
        The string basis and the equilibrium to measure.
    ident, coef:
        ``(n_ops,)`` identity parts and ``(n_ops, n_strings)`` string coefficients.
    shots:
        ``M`` shots per observable (gaussian) or per commuting group (sampled); ``None`` is exact.
    model:
        ``"gaussian"`` or ``"sampled"``.
    rng:
        Source of randomness (required when ``shots`` is given).
    string_values:
        ``⟨P_s⟩`` in ``state`` if already known (e.g. from :func:`string_expectations_many`).
    """
    ident = np.asarray(ident, dtype=float)
    coef = np.atleast_2d(np.asarray(coef, dtype=float))
    if string_values is not None:
        ps = string_values
    elif isinstance(state, MPSEquilibrium):
        # an MPS pays per string (its span of transfers): only the strings the observables use
        # (the sensor's couplings and outputs, not the chain's hundreds of terms)
        used = np.flatnonzero(np.any(coef != 0, axis=0))
        ps = np.zeros(coef.shape[1])
        strings = _qubit_hamiltonian(ham).strings
        ps[used] = _mps_expectations(state, [strings[i] for i in used])
    else:
        ps = string_expectations(ham, state)
    exact = ident + coef @ ps
    if shots is None:
        return Estimate(exact, np.zeros_like(exact), 0, 1)
    m = _check_shots(shots)
    if model not in SHOT_MODELS:
        raise ProblemError(f"unknown shot model {model!r}; choose one of {list(SHOT_MODELS)}")
    if rng is None:
        raise ProblemError("measuring with shots needs a random generator (pass seed or rng)")
    if isinstance(state, GaussianEquilibrium):
        return _gaussian_state(ham, state, ident, coef, exact, m, model, rng)
    ham = _qubit_hamiltonian(ham)
    if model == "gaussian":
        return _gaussian(ham, state, coef, exact, m, rng, ps)
    return _sampled(ham, state, ident, coef, m, rng)


def variances(
    ham: Hamiltonian,
    state: State,
    coef: np.ndarray,
    string_values: np.ndarray | None = None,
) -> np.ndarray:
    """``Var(A_i) = ⟨A_i²⟩ - ⟨A_i⟩²`` (identity parts do not contribute).

    A single string squares to the identity, so ``Var(c P) = c² (1 - ⟨P⟩²)`` (vectorised over all
    such observables, from ``string_values = ⟨P_s⟩`` if given); other observables use
    ``⟨A²⟩ = Σ_k w_k ||A ψ_k||²`` (for an MPS, ``⟨A²⟩ = Σ_{s,t} c_s c_t ⟨P_s P_t⟩`` from the
    products of the strings). For a Gaussian state the variance of every quadratic observable is
    exact (:func:`qeprop.solvers.gaussian.variances`).
    """
    if isinstance(state, GaussianEquilibrium):
        from .solvers import gaussian

        return gaussian.variances(ham, state, coef)
    ham = _qubit_hamiltonian(ham)
    coef = np.atleast_2d(coef)
    nnz = np.count_nonzero(coef, axis=1)
    out = np.zeros(len(coef))
    single = nnz == 1
    if np.any(single):
        ps = string_expectations(ham, state) if string_values is None else string_values
        sub = coef[single]
        col = np.argmax(sub != 0, axis=1)
        c = sub[np.arange(len(col)), col]
        out[single] = c**2 * (1.0 - ps[col] ** 2)
    if isinstance(state, MPSEquilibrium):
        for i in np.flatnonzero(nnz > 1):
            out[i] = _mps_variance(ham, state, coef[i])
        return np.maximum(out, 0.0)
    vecs, w = state.significant()
    for i in np.flatnonzero(nnz > 1):
        av = np.asarray(engine_for(ham, state).apply(coef[i], vecs))
        sq = float(np.sum(w * np.sum(np.abs(av) ** 2, axis=0)))
        mean_wo_ident = float(np.sum(w * np.einsum("ij,ij->j", vecs.conj(), av).real))
        out[i] = sq - mean_wo_ident**2
    return np.maximum(out, 0.0)


def _mps_variance(ham: ParametrisedHamiltonian, state: MPSEquilibrium, coef: np.ndarray) -> float:
    """``⟨A²⟩ - ⟨A⟩²`` of ``A = Σ_s coef_s P_s`` in an MPS, from the products ``P_s P_t``."""
    cols = np.flatnonzero(coef)
    prods: dict[PauliString, complex] = {}
    for a in cols:
        for b in cols:
            phase, p = ham.strings[a].multiply(ham.strings[b])
            prods[p] = prods.get(p, 0.0) + phase * coef[a] * coef[b]
    keys = list(prods)
    vals = _mps_expectations(state, keys)
    sq = float(sum((prods[p] * v).real for p, v in zip(keys, vals, strict=True)))
    mean = float(coef[cols] @ _mps_expectations(state, [ham.strings[a] for a in cols]))
    return sq - mean**2


def measurement_settings(ham: Hamiltonian, coef: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The settings that measure observables ``coef`` ``(n_ops, n_strings)``: ``(basis, columns)``.

    The non-identity strings with a non-zero coefficient in any row are grouped into qubit-wise
    commuting groups (:func:`~qeprop.pauli.qubitwise_commute_groups`, greedy, heaviest first);
    ``basis`` is the union of a group's letters (``"Z0 Z1 X2"``) and ``columns`` its string
    indices in ``ham.strings``. An identity string is exact and needs no setting. For oscillator
    modes, the settings of :func:`qeprop.solvers.gaussian.measurement_settings` (one quadrature
    per mode, ``"r0 r1 p2"``).
    """
    if not isinstance(ham, ParametrisedHamiltonian):
        from .solvers import gaussian

        return gaussian.measurement_settings(ham, coef)
    coef = np.atleast_2d(coef)
    used = np.flatnonzero(np.any(coef != 0, axis=0))
    strings = [ham.strings[i] for i in used if not ham.strings[i].is_identity()]
    out = []
    for group in qubitwise_commute_groups(strings):
        base = PauliString(0, 0)
        for p in group:
            base = PauliString(base.x | p.x, base.z | p.z)
        out.append((base.label(), np.array([ham.string_index[p] for p in group], dtype=int)))
    return out


def _settings(
    groups: Sequence[tuple[str, np.ndarray]], coef: np.ndarray, m: int
) -> tuple[Setting, ...]:
    """:class:`Setting` records of ``groups`` measured ``m`` times each."""
    return tuple(Setting(label, m, rows) for label, rows in _setting_rows(groups, coef))


def _setting_rows(
    groups: Sequence[tuple[str, np.ndarray]], coef: np.ndarray
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``(basis, rows)`` of each setting: the observables (rows of ``coef``) that read it."""
    return tuple(
        (label, tuple(int(r) for r in np.flatnonzero(np.any(coef[:, cols] != 0, axis=1))))
        for label, cols in groups
    )


@dataclass(frozen=True)
class _Plan:
    """What measuring observables ``coef`` on a Hamiltonian's strings takes, built once.

    ``groups``: :func:`measurement_settings`; ``rows``: :func:`_setting_rows`; ``parts``
    ``(n_parts, n_strings)``: each observable's part in each setting (the columns of that
    setting), one row per (setting, observable) pair with a non-zero part; ``owner``
    ``(n_parts,)``: the observable of each part. Arrays are read-only.
    """

    groups: tuple[tuple[str, np.ndarray], ...]
    rows: tuple[tuple[str, tuple[int, ...]], ...]
    parts: np.ndarray
    owner: np.ndarray


#: plans per Hamiltonian (held weakly) and coefficient matrix. A training step measures the same
#: observables of the same Hamiltonian for every state of its batch; grouping the strings into
#: settings took about as long as the step's eigensolves (0.6 ms per call in pure Python)
_PLANS: weakref.WeakKeyDictionary[ParametrisedHamiltonian, dict[tuple[object, ...], _Plan]] = (
    weakref.WeakKeyDictionary()
)
_PLANS_PER_HAMILTONIAN = 16
_PLANS_LOCK = threading.Lock()  # threaded sweeps share the memo


def _plan(ham: ParametrisedHamiltonian, coef: np.ndarray) -> _Plan:
    """The (memoised) :class:`_Plan` of observables ``coef`` ``(n_ops, n_strings)`` on ``ham``."""
    coef = np.ascontiguousarray(coef, dtype=float)
    key = (coef.shape, coef.tobytes())
    with _PLANS_LOCK:
        plan = _PLANS.get(ham, {}).get(key)
    if plan is not None:
        return plan
    groups = tuple(measurement_settings(ham, coef))
    parts, owner = [], []
    for _, cols in groups:
        part = np.zeros_like(coef)
        part[:, cols] = coef[:, cols]
        rows = np.flatnonzero(np.any(part != 0, axis=1))
        parts.append(part[rows])
        owner.append(rows)
    stacked = np.vstack(parts) if parts else np.zeros((0, coef.shape[1]))
    own = np.concatenate(owner) if owner else np.zeros(0, dtype=int)
    for a in (stacked, own, *(cols for _, cols in groups)):
        a.flags.writeable = False
    plan = _Plan(groups, _setting_rows(groups, coef), stacked, own)
    with _PLANS_LOCK:
        plans = _PLANS.setdefault(ham, {})
        if len(plans) >= _PLANS_PER_HAMILTONIAN:
            plans.pop(next(iter(plans)))  # the oldest
        plans[key] = plan
    return plan


def _gaussian_state(
    ham: Hamiltonian,
    state: GaussianEquilibrium,
    ident: np.ndarray,
    coef: np.ndarray,
    exact: np.ndarray,
    m: int,
    model: str,
    rng: np.random.Generator,
) -> Estimate:
    """Shots on the Gaussian state of an oscillator network, ``m`` per measurement setting
    (:func:`qeprop.solvers.gaussian.shot_estimate`)."""
    from .solvers import gaussian

    groups = measurement_settings(ham, coef)
    mean, se = gaussian.shot_estimate(ham, state, ident, coef, exact, m, model, rng)
    total = m * len(groups)
    return Estimate(mean, se, total, total, _settings(groups, coef, m))


def _gaussian(
    ham: ParametrisedHamiltonian,
    state: State,
    coef: np.ndarray,
    exact: np.ndarray,
    m: int,
    rng: np.random.Generator,
    string_values: np.ndarray,
) -> Estimate:
    plan = _plan(ham, coef)
    # the part of each observable in each setting; an observable within one setting is its own
    # part, so its variance is Var(A) exactly as before grouping
    var = np.zeros(len(coef))
    if len(plan.parts):
        pv = variances(ham, state, plan.parts, string_values)
        np.add.at(var, plan.owner, pv)
    se = np.sqrt(var / m)
    mean = exact + se * rng.standard_normal(len(exact))
    total = m * len(plan.groups)
    return Estimate(mean, se, total, total, tuple(Setting(b, m, r) for b, r in plan.rows))


def _sampled(
    ham: ParametrisedHamiltonian,
    state: State,
    ident: np.ndarray,
    coef: np.ndarray,
    m: int,
    rng: np.random.Generator,
) -> Estimate:
    if not isinstance(state, Equilibrium):
        raise ProblemError(
            f"the sampled shot model draws bitstrings from full outcome distributions, which the "
            f"{state.backend} backend's states do not provide; use shot_model='gaussian'",
            where="shot_model",
        )
    n = ham.n_qubits
    used = np.flatnonzero(np.any(coef != 0, axis=0))
    mean = ident.copy()
    for i in used:  # an identity string in the basis is exact
        if ham.strings[i].is_identity():
            mean = mean + coef[:, i]
    var = np.zeros(len(coef))
    plan = _plan(ham, coef)
    groups = plan.groups
    if groups:
        # per group: M outcomes, the signs of its strings and the per-shot values of every
        # observable (8 bytes each), plus numpy's temporaries of the same size
        widest = max(len(cols) for _, cols in groups)
        check_memory(
            2.0 * m * 8 * (1 + widest + len(coef)),
            f"sampling {m} shots per commuting group",
            hint="use fewer shots or shot_model='gaussian'",
        )
    for _, cols in groups:
        group = [ham.strings[c] for c in cols]
        letters: dict[int, str] = {}
        for p in group:
            letters.update(p.letters())
        probs = state.outcome_probabilities(letters, n)
        outcomes = rng.choice(len(probs), size=m, p=probs)
        # eigenvalue of a string on a rotated basis state: (-1)**parity(outcome & support)
        supports = np.array([p.basis_masks(n)[0] | p.basis_masks(n)[1] for p in group])
        signs = 1.0 - 2.0 * parity(outcomes[None, :] & supports[:, None])  # (n_group, m)
        per_shot = coef[:, cols] @ signs  # (n_ops, m)
        mean = mean + per_shot.mean(axis=1)
        # one shot gives no estimate of the spread: its standard error is undefined (nan)
        var = var + (per_shot.var(axis=1, ddof=1) / m if m > 1 else np.nan)
    total = m * len(groups)
    settings = tuple(Setting(b, m, r) for b, r in plan.rows)
    return Estimate(mean, np.sqrt(var), total, total, settings)
