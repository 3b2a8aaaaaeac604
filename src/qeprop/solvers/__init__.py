"""Equilibrium backends, chosen by name, behind one seam.

One entry point, :func:`solve`, maps a Hamiltonian, a parameter vector and a :class:`StateSpec`
to an equilibrium record (:class:`~qeprop.states.Equilibrium`). Estimators see only the record's
answers (expectation values, variances, samples, energy, gap, degeneracy, a warm start) and
:func:`linear_response`; how the state is represented and computed is the backend's business.

Backends, registered by name in :data:`BACKENDS` (built at import; heavy modules are imported
inside the backend functions):

``"dense"``
    Full ``eigh`` of the dense matrix; every state kind. Memory ``O(4^n)``.
``"sparse"`` (alias ``"lanczos"``)
    Lanczos (ARPACK) on the CSR matrix rendered from the precomputed per-string structure.
    Memory ``O(S 2^n)`` for ``S`` Pauli strings (the structure stores every string's elements).
``"matrix-free"``
    Lanczos with a compiled Pauli-sum product that stores no matrix: memory a few vectors,
    ``O(2^n)``; optional threads (``StateSpec.threads``).
``"dmrg"``
    Ground states of chain-like problems as matrix product states (DMRG sweeps in numpy) on a
    qubit order that keeps every term short-ranged, with bond dimension ``bond_dim`` and truncation
    ``cutoff`` (:mod:`qeprop.solvers.dmrg`). Memory ``O(n χ²)``; only when asked for by name.
``"gaussian"``
    Ground and Gibbs states of quadratic oscillator Hamiltonians
    (:class:`~qeprop.modes.ModeHamiltonian`) as a mean and a covariance, exactly
    (:mod:`qeprop.solvers.gaussian`). Memory ``O(N²)`` for ``N`` modes. The only backend for
    modes, and never one for qubits.
``"auto"``
    Dense up to ``dense_max_dim``, sparse up to :data:`AUTO_SPARSE_MAX_QUBITS`, matrix-free
    beyond, and the next backend that fits when the first choice would not fit in memory
    (never ``dmrg``: its accuracy depends on ``bond_dim`` and the problem's entanglement);
    ``gaussian`` for oscillator modes.

The kind of state is named in the spec:

``"ground"``
    Lowest eigenstate. The gap ``δ`` is measured every time; a (near-)degenerate ground state
    raises :class:`~qeprop.errors.DegeneracyError` or becomes the equal-weight mixture over the
    manifold, as ``degeneracy`` says.
``"eigenstate"``
    The ``level``-th eigenstate; when a warm start (the free state) is given, the state is
    followed by continuity (largest overlap), as QEP with excited states requires.
``"thermal"``
    Gibbs state ``exp(-H/T)/Z`` at ``temperature`` T (dense backend only for qubits: it needs the
    whole spectrum; ``gaussian`` for modes).

Every backend estimates its peak memory before allocating (:func:`estimate_memory`) and refuses
with :class:`~qeprop.errors.ProblemTooLargeError` naming the size and a backend that would fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..checks import MAX_VECTOR_QUBITS
from ..errors import ProblemError, ProblemTooLargeError
from ..hamiltonian import ParametrisedHamiltonian
from ..memory import available_memory, format_bytes
from ..modes import Hamiltonian, ModeHamiltonian
from ..states import Engine, Equilibrium, GaussianEquilibrium, MPSEquilibrium, State
from . import _progress
from ._progress import ProgressObserver
from ._progress import observe as observe_progress

__all__ = [
    "AUTO_SPARSE_MAX_QUBITS",
    "BACKENDS",
    "Backend",
    "ProgressObserver",
    "StateSpec",
    "choose_backend",
    "engine_for",
    "estimate_memory",
    "linear_response",
    "observe_progress",
    "solve",
    "solve_many",
    "solve_vectors",
]

_KINDS = ("ground", "eigenstate", "thermal")
_METHODS = ("auto", "dense", "sparse", "lanczos", "matrix-free", "dmrg", "gaussian")
_ALIASES = {"lanczos": "sparse"}
_DEGENERACY = ("error", "mixture")
_SYMMETRY = ("none", "auto")

#: ``auto`` uses the sparse backend up to this many qubits and the matrix-free one above.
#: Measured (``make bench BENCH=scaling``, chain-plus-sensor problem, one thread): sparse 0.80 s
#: vs matrix-free 1.43 s at 12 qubits, 5.2 s vs 1.4 s at 14, 38 s vs 6.6 s at 18.
AUTO_SPARSE_MAX_QUBITS = 12

#: largest bond dimension accepted (a 4096² complex site tensor pair is already 0.5 GB)
_MAX_BOND_DIM = 4096

#: relative floor of the degeneracy tolerance: levels closer than ``_DEGENERACY_FLOOR · ||H||``
#: cannot be told apart in floating point (eigenvalue rounding is a few ``eps ||H||``)
_DEGENERACY_FLOOR = 1e3 * float(np.finfo(float).eps)


def _positive_number(v: object) -> bool:
    return (
        isinstance(v, int | float | np.floating | np.integer)
        and not isinstance(v, bool)
        and bool(np.isfinite(v) and v > 0)
    )


def _integer(v: object, minimum: int) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool) and bool(v >= minimum)


@dataclass(frozen=True)
class StateSpec:
    """Which equilibrium to prepare and how.

    Parameters
    ----------
    kind:
        ``"ground"``, ``"eigenstate"`` or ``"thermal"``.
    temperature:
        Temperature ``T`` of the Gibbs state (energy units, ``k_B = 1``); thermal only.
    level:
        Index of the eigenstate counted from the bottom (``kind="eigenstate"``).
    method:
        The backend: ``"auto"``, ``"dense"``, ``"sparse"`` (alias ``"lanczos"``),
        ``"matrix-free"``, ``"dmrg"`` or ``"gaussian"`` (see the module docstring).
    tol:
        Relative eigenvalue tolerance of the Lanczos solvers (the eigenvector error is about
        ``tol * ||H|| / gap``). A state measured with ``M`` shots needs far less than the default.
        DMRG sweeps until the energy changes by less than ``tol * max(1, ||H||)``.
    maxiter:
        Iteration budget of the Lanczos solvers, or the sweep budget of DMRG (``None``: the
        backend's default).
    degeneracy:
        ``"error"``: raise when the gap is below the degeneracy tolerance. ``"mixture"``: use the
        equal-weight mixture over all levels within it of the selected one.
    degeneracy_tol:
        Energy below which two levels count as degenerate. It never goes below the rounding
        floor ``1e3 · eps · ||H||`` of the Hamiltonian at hand (:meth:`degeneracy_threshold`), so
        that an exactly degenerate level of a Hamiltonian with a huge energy scale is not reported
        split by rounding.
    gap_tol:
        Relative Lanczos residual for the levels above the manifold, which are needed only for
        their energy (the gap): a Ritz value's error is quadratic in its residual, so the default
        ``1e-6`` gives the gap to about ``1e-12 ||H||² / Δ``.
    dense_max_dim:
        Largest dimension solved densely by the ``auto``, ``sparse`` and ``matrix-free`` choices
        (tiny problems are fastest dense).
    blas_threads:
        BLAS threads for dense eigensolves of dimension up to 2048 (``None`` leaves the library
        default). Small eigensolves are much slower with several threads on few cores.
    threads:
        Threads of the matrix-free backend's compiled products (opt-in; default one).
    symmetry:
        ``"none"``: solve in the full space. ``"auto"``: find the Pauli strings that commute with
        every term and solve the ground state through their sectors (the lowest level over all
        sectors; nudged states stay in their free state's sector), see
        :mod:`qeprop.solvers.sectors`. Ground states only.
    bond_dim:
        Largest bond dimension ``χ`` of the ``dmrg`` backend's matrix product states (memory and
        time grow as ``χ²`` and ``χ³``).
    cutoff:
        Truncation cutoff of the ``dmrg`` backend: at each two-site update the smallest singular
        values whose squares sum to less than ``cutoff`` (relative to the total) are discarded.
        ``0`` keeps everything up to ``bond_dim``.
    """

    kind: str = "ground"
    temperature: float | None = None
    level: int = 0
    method: str = "auto"
    tol: float = 1e-12
    maxiter: int | None = None
    degeneracy: str = "mixture"
    degeneracy_tol: float = 1e-8
    gap_tol: float = 1e-6
    dense_max_dim: int = 256
    blas_threads: int | None = 1
    threads: int = 1
    symmetry: str = "none"
    bond_dim: int = 64
    cutoff: float = 1e-10

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ProblemError(f"unknown state kind {self.kind!r}; choose one of {list(_KINDS)}")
        if self.method not in _METHODS:
            raise ProblemError(
                f"unknown solver method {self.method!r}; choose one of {list(_METHODS)}"
            )
        if self.degeneracy not in _DEGENERACY:
            raise ProblemError(
                f"unknown degeneracy mode {self.degeneracy!r}; choose one of {list(_DEGENERACY)}"
            )
        if self.symmetry not in _SYMMETRY:
            raise ProblemError(
                f"unknown symmetry mode {self.symmetry!r}; choose one of {list(_SYMMETRY)}"
            )
        if self.symmetry == "auto" and self.kind != "ground":
            raise ProblemError(
                f"symmetry sectors are used for ground states only, not {self.kind!r} states "
                "(set symmetry = 'none')"
            )
        if self.symmetry == "auto" and self.method in ("dmrg", "gaussian"):
            raise ProblemError(
                f"symmetry sectors are solved by the exact backends, not {self.method} (set "
                "symmetry = 'none')"
            )
        if not _integer(self.bond_dim, 1) or self.bond_dim > _MAX_BOND_DIM:
            raise ProblemError(
                f"bond_dim must be an integer in [1, {_MAX_BOND_DIM}], got {self.bond_dim!r}"
            )
        c = self.cutoff
        if (
            not isinstance(c, int | float | np.floating | np.integer)
            or isinstance(c, bool)
            or not (np.isfinite(c) and 0 <= c < 1)
        ):
            raise ProblemError(f"cutoff must be a finite number in [0, 1), got {c!r}")
        if self.kind == "thermal":
            if not _positive_number(self.temperature):
                raise ProblemError(
                    f"a thermal state needs a finite temperature > 0, got {self.temperature!r}"
                )
            if self.backend not in ("auto", "dense", "gaussian"):
                raise ProblemError(
                    f"a thermal state needs the whole spectrum: use method 'dense' or 'auto' "
                    f"('gaussian' for oscillator modes), not {self.method!r}"
                )
        elif self.temperature is not None:
            raise ProblemError(f"temperature is only used by thermal states, not {self.kind!r}")
        for name in ("tol", "degeneracy_tol", "gap_tol"):
            if not _positive_number(getattr(self, name)):
                raise ProblemError(
                    f"{name} must be a finite number > 0, got {getattr(self, name)!r}"
                )
        if not _integer(self.level, 0):
            raise ProblemError(f"level must be a non-negative integer, got {self.level!r}")
        if not _integer(self.dense_max_dim, 1):
            raise ProblemError(
                f"dense_max_dim must be a positive integer, got {self.dense_max_dim!r}"
            )
        for name in ("maxiter", "blas_threads"):
            v = getattr(self, name)
            if v is not None and not _integer(v, 1):
                raise ProblemError(f"{name} must be a positive integer or None, got {v!r}")
        if not _integer(self.threads, 1) or self.threads > 1024:
            raise ProblemError(f"threads must be an integer in [1, 1024], got {self.threads!r}")

    def with_(self, **changes: object) -> StateSpec:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def backend(self) -> str:
        """The backend name asked for (``"lanczos"`` is ``"sparse"``; ``"auto"`` unresolved)."""
        return _ALIASES.get(self.method, self.method)

    def use_dense(self, dim: int) -> bool:
        """Whether an eigensolve of dimension ``dim`` is done densely under this spec."""
        if self.kind == "thermal" or self.method == "dense":
            return True
        if self.method == "lanczos":
            return dim <= 4  # ARPACK needs dim > k + 1
        return dim <= self.dense_max_dim

    def degeneracy_threshold(self, norm: float) -> float:
        """Energy below which two levels of a Hamiltonian with ``||H|| <= norm`` are degenerate."""
        return max(self.degeneracy_tol, _DEGENERACY_FLOOR * float(norm))


# the first argument is the Hamiltonian kind the backend solves: a ParametrisedHamiltonian (qubit
# backends) or a ModeHamiltonian (gaussian); choose_backend never pairs a backend with another kind
Solver = Callable[[Any, np.ndarray, StateSpec, "State | None"], State]
Response = Callable[
    [Any, np.ndarray, State, np.ndarray, np.ndarray, StateSpec],
    np.ndarray,
]
Memory = Callable[[Any, StateSpec], float]


@dataclass(frozen=True)
class Backend:
    """One equilibrium backend: how it solves, differentiates and budgets.

    Attributes
    ----------
    name:
        Registry name (``state.method``).
    solve:
        ``(hamiltonian, values, spec, warm) -> Equilibrium``; ``warm`` is a nearby equilibrium of
        the same backend (the free state of a nudged solve) or ``None``.
    response:
        ``(hamiltonian, values, state, a_coef (n_ops, S), b_coef (S,), spec) -> (n_ops,)``: the
        exact ``d⟨A_i⟩/dλ`` at ``λ = 0`` for ``H + λB`` in ``state`` (linear response).
    memory:
        ``(hamiltonian, spec) -> bytes``: peak memory of one solve plus a linear-response solve,
        intermediates included, estimated before anything is allocated.
    kinds:
        State kinds it can prepare.
    solve_many:
        ``(hamiltonian, [values], spec, [warm]) -> [Equilibrium]``: several solves of one
        Hamiltonian at once, the same states as :attr:`solve` one by one; ``None`` where the
        backend has no better way than that (see :func:`solve_many`). It reports the starts of
        its solves itself (``_progress.solve_started``, with ``count`` for solves run together).
    """

    name: str
    solve: Solver
    response: Response
    memory: Memory
    kinds: tuple[str, ...]
    solve_many: Callable[..., list[State]] | None = None


def _dense_solve(
    ham: ParametrisedHamiltonian, values: np.ndarray, spec: StateSpec, warm: State | None
) -> Equilibrium:
    from . import exact

    warm = warm if isinstance(warm, Equilibrium) else None
    return exact.solve_kind(exact.DENSE_EIGEN, ham, values, spec.with_(method="dense"), warm)


def _sparse_solve(
    ham: ParametrisedHamiltonian, values: np.ndarray, spec: StateSpec, warm: State | None
) -> Equilibrium:
    from . import exact

    warm = warm if isinstance(warm, Equilibrium) else None
    return exact.solve_kind(exact.SPARSE_EIGEN, ham, values, spec, warm)


def _matrix_free_solve(
    ham: ParametrisedHamiltonian, values: np.ndarray, spec: StateSpec, warm: State | None
) -> Equilibrium:
    from . import exact

    warm = warm if isinstance(warm, Equilibrium) else None
    return exact.solve_kind(exact.MATRIX_FREE_EIGEN, ham, values, spec, warm)


def _vector_response(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    state: State,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    from . import response

    assert isinstance(state, Equilibrium)
    return response.vector_response(ham, values, state, a_coef, b_coef, spec)


def _dmrg_solve(
    ham: ParametrisedHamiltonian, values: np.ndarray, spec: StateSpec, warm: State | None
) -> MPSEquilibrium:
    from . import dmrg

    return dmrg.solve_ground(ham, values, spec, warm)


def _dmrg_solve_many(
    ham: ParametrisedHamiltonian,
    values: Sequence[np.ndarray],
    spec: StateSpec,
    warm: Sequence[State | None],
) -> list[State]:
    from . import dmrg

    states: list[State] = [*dmrg.solve_many(ham, values, spec, warm)]
    return states


def _dmrg_response(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    state: State,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    from . import dmrg

    return dmrg.response(ham, values, state, a_coef, b_coef, spec)


def _dmrg_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    from . import dmrg

    return dmrg.dmrg_memory(ham, spec)


def _gaussian_solve(
    ham: ModeHamiltonian, values: np.ndarray, spec: StateSpec, warm: State | None
) -> GaussianEquilibrium:
    from . import gaussian

    return gaussian.solve(ham, values, spec)


def _gaussian_response(
    ham: ModeHamiltonian,
    values: np.ndarray,
    state: State,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    from . import gaussian

    assert isinstance(state, GaussianEquilibrium)
    return gaussian.response(ham, values, state, a_coef, b_coef, spec)


def _gaussian_memory(ham: ModeHamiltonian, spec: StateSpec) -> float:
    from . import gaussian

    return gaussian.gaussian_memory(ham, spec)


def _dense_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    from . import exact

    return exact.dense_memory(ham, spec)


def _sparse_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    from . import exact

    return exact.sparse_memory(ham, spec)


def _matrix_free_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    from . import exact

    return exact.matrix_free_memory(ham, spec)


#: backend name -> :class:`Backend`
BACKENDS: dict[str, Backend] = {
    "dense": Backend("dense", _dense_solve, _vector_response, _dense_memory, _KINDS),
    "sparse": Backend(
        "sparse", _sparse_solve, _vector_response, _sparse_memory, ("ground", "eigenstate")
    ),
    "matrix-free": Backend(
        "matrix-free",
        _matrix_free_solve,
        _vector_response,
        _matrix_free_memory,
        ("ground", "eigenstate"),
    ),
    "dmrg": Backend(
        "dmrg", _dmrg_solve, _dmrg_response, _dmrg_memory, ("ground",), _dmrg_solve_many
    ),
    "gaussian": Backend(
        "gaussian", _gaussian_solve, _gaussian_response, _gaussian_memory, ("ground", "thermal")
    ),
}

#: the order in which ``auto`` falls back when its first choice does not fit in memory
_LEANEST_LAST = ("dense", "sparse", "matrix-free")


def estimate_memory(ham: Hamiltonian, spec: StateSpec, backend: str) -> float:
    """Peak bytes of a solve (plus its linear response) of ``ham`` with ``backend``."""
    return float(BACKENDS[backend].memory(ham, spec))


def _preferred(ham: ParametrisedHamiltonian, spec: StateSpec) -> str:
    if spec.kind == "thermal" or ham.dim <= spec.dense_max_dim:
        return "dense"
    return "sparse" if ham.n_qubits <= AUTO_SPARSE_MAX_QUBITS else "matrix-free"


def choose_backend(ham: Hamiltonian, spec: StateSpec, budget: int | None = None) -> str:
    """The backend that ``spec`` names, or that ``auto`` picks, checked against memory.

    Raises :class:`~qeprop.errors.ProblemTooLargeError` (one line: the size needed, the memory
    available, and a backend that would fit, if any) before anything is allocated.
    """
    limit = available_memory() if budget is None else budget
    name = spec.backend
    if isinstance(ham, ModeHamiltonian) or name == "gaussian":
        return _choose_gaussian(ham, spec, limit)
    if name != "dmrg" and ham.n_qubits > MAX_VECTOR_QUBITS:
        raise ProblemTooLargeError(
            f"{ham.n_qubits} qubits are beyond state vectors (at most {MAX_VECTOR_QUBITS} qubits: "
            "basis indices are 64-bit integers); use state.method = 'dmrg' for a chain-like problem"
        )
    if name == "auto":
        first = _preferred(ham, spec)
        order = _LEANEST_LAST[_LEANEST_LAST.index(first) :]
        for cand in order:
            if spec.kind in BACKENDS[cand].kinds and estimate_memory(ham, spec, cand) <= limit:
                return cand
        name = first
    backend = BACKENDS[name]
    if spec.kind not in backend.kinds:
        raise ProblemError(
            f"the {name} backend cannot prepare {spec.kind} states; use one of "
            f"{[b for b, be in BACKENDS.items() if spec.kind in be.kinds]}",
            where="state.method",
        )
    need = estimate_memory(ham, spec, name)
    if need <= limit:
        return name
    fits = [
        b
        for b in _LEANEST_LAST
        if b != name and spec.kind in BACKENDS[b].kinds and estimate_memory(ham, spec, b) <= limit
    ]
    hint = (
        f"the {fits[0]} backend would fit (state.method = {fits[0]!r})"
        if fits
        else "no exact backend fits: use fewer qubits (or more memory), or state.method = 'dmrg' "
        "for a chain-like problem"
    )
    raise ProblemTooLargeError(
        f"{ham.n_qubits} qubits with the {name} backend need about {format_bytes(need)}, more "
        f"than the {format_bytes(limit)} this process can allocate; {hint}"
    )


def _choose_gaussian(ham: Hamiltonian, spec: StateSpec, limit: int) -> str:
    """``"gaussian"`` for an oscillator problem (checked against ``spec`` and memory); a one-line
    error for a qubit backend named for modes, or the gaussian backend named for qubits."""
    name = spec.backend
    if not isinstance(ham, ModeHamiltonian):
        raise ProblemError(
            "the gaussian backend solves oscillator networks (modes); this problem has qubits: "
            "use auto, dense, sparse, matrix-free or dmrg",
            where="state.method",
        )
    if name not in ("auto", "gaussian"):
        raise ProblemError(
            f"the {name} backend solves qubit problems; an oscillator network (modes) is solved "
            "by the gaussian backend (state.method = 'gaussian' or 'auto')",
            where="state.method",
        )
    if spec.kind not in BACKENDS["gaussian"].kinds:
        raise ProblemError(
            f"the gaussian backend cannot prepare {spec.kind} states; use ground or thermal",
            where="state.kind",
        )
    need = estimate_memory(ham, spec, "gaussian")
    if need > limit:
        raise ProblemTooLargeError(
            f"{ham.n_modes} modes with the gaussian backend need about {format_bytes(need)}, "
            f"more than the {format_bytes(limit)} this process can allocate; use fewer modes"
        )
    return "gaussian"


def solve(
    hamiltonian: Hamiltonian,
    values: np.ndarray,
    spec: StateSpec | None = None,
    guess: State | None = None,
) -> State:
    """Prepare the equilibrium of ``H(values)`` described by ``spec``.

    Parameters
    ----------
    hamiltonian, values:
        ``H`` and its parameter vector (aligned with ``hamiltonian.params``).
    spec:
        The state to prepare and the backend (default: ground state, ``auto``).
    guess:
        A nearby equilibrium (usually the free state when solving the nudged one): a warm start
        for iterative solvers, the manifold size to keep for mixtures, and the state to follow
        for excited levels. A warm start from another backend is ignored.
    """
    spec = spec or StateSpec()
    values = hamiltonian.check_values(values)
    if spec.symmetry == "auto":
        if isinstance(hamiltonian, ModeHamiltonian):
            raise ProblemError(
                "symmetry sectors are Pauli symmetries of qubit problems; an oscillator network "
                "is solved without them (set symmetry = 'none')",
                where="state.symmetry",
            )
        from . import sectors

        _progress.solve_started("symmetry sectors", spec.kind)
        return sectors.solve_ground(
            hamiltonian, values, spec, guess if isinstance(guess, Equilibrium) else None
        )
    name = _backend_of(hamiltonian, spec, guess)
    _progress.solve_started(name, spec.kind)
    return BACKENDS[name].solve(hamiltonian, values, spec, guess)


def _backend_of(hamiltonian: Hamiltonian, spec: StateSpec, guess: State | None) -> str:
    """The backend that prepares a state of ``spec`` (a nudged state stays on its free
    state's backend under ``auto``)."""
    if guess is not None and guess.backend and guess.backend in BACKENDS and spec.method == "auto":
        return guess.backend
    return choose_backend(hamiltonian, spec)


def solve_many(
    hamiltonian: Hamiltonian,
    values: Sequence[np.ndarray],
    spec: StateSpec | None = None,
    guesses: Sequence[State | None] = (),
) -> list[State]:
    """:func:`solve` for several parameter vectors of one Hamiltonian, ``guesses[i]`` the
    guess of ``values[i]`` (e.g. the ``±β`` nudged states of a centred gradient, both guessed
    by the free state). A backend that prepares several states at once does so (``dmrg`` with
    ``state.threads >= 2``: side by side in threads); otherwise they are solved one by one.
    Either way the states are the ones :func:`solve` gives.
    """
    spec = spec or StateSpec()
    guesses = list(guesses) or [None] * len(values)
    if len(guesses) != len(values):
        raise ValueError(f"{len(values)} parameter vectors but {len(guesses)} guesses")
    many = None
    if len(values) > 1 and spec.symmetry != "auto":
        many = BACKENDS[_backend_of(hamiltonian, spec, guesses[0])].solve_many
    if many is None:
        return [solve(hamiltonian, v, spec, g) for v, g in zip(values, guesses, strict=True)]
    checked = [hamiltonian.check_values(v) for v in values]
    return list(many(hamiltonian, checked, spec, guesses))


def solve_vectors(
    hamiltonian: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec | None = None,
    guess: State | None = None,
) -> Equilibrium:
    """:func:`solve` for callers that need state vectors (an exact backend's record)."""
    st = solve(hamiltonian, values, spec, guess)
    if not isinstance(st, Equilibrium):
        raise ProblemError(
            f"this computation needs state vectors, which the {st.backend} backend does not "
            "provide; use an exact backend (dense, sparse, matrix-free)",
            where="state.method",
        )
    return st


def engine_for(ham: ParametrisedHamiltonian, state: Equilibrium) -> Engine:
    """The engine that applies Pauli sums of ``ham``'s string basis to ``state``'s vectors.

    The state's own engine when it was built for the same string basis; otherwise (a state
    measured with a Hamiltonian of a larger basis, or a record built by hand) the engine of
    ``ham`` for the state's backend.
    """
    eng = state.engine
    if eng is not None:
        strings = getattr(eng, "strings", None)
        if strings is ham.strings or strings == ham.strings:
            return eng
    if state.backend == "matrix-free":
        from .exact import kernel_for

        return kernel_for(ham)
    return ham.structure


def linear_response(
    hamiltonian: Hamiltonian,
    values: np.ndarray,
    state: State,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec | None = None,
) -> np.ndarray:
    """Exact ``d⟨A_i⟩/dλ`` at ``λ = 0`` for ``H(values) + λ B``, by the state's backend.

    ``a_coef`` is ``(n_ops, n_strings)`` and ``b_coef`` ``(n_strings,)``, both in the string basis
    of ``hamiltonian``; the result has shape ``(n_ops,)``.
    """
    spec = spec or StateSpec()
    backend = BACKENDS.get(state.backend, BACKENDS["dense"])
    return backend.response(hamiltonian, values, state, a_coef, b_coef, spec)
