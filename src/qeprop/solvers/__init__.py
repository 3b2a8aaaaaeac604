"""Equilibrium solvers, chosen by name.

One entry point, :func:`solve`, maps a Hamiltonian, a parameter vector and a :class:`StateSpec`
to an :class:`~qeprop.states.Equilibrium`. The kind of state is named in the spec:

``"ground"``
    Lowest eigenstate (dense ``eigh`` up to ``dense_max_dim``, sparse Lanczos above). The gap
    ``δ`` is measured every time; a (near-)degenerate ground state raises
    :class:`~qeprop.errors.DegeneracyError` or becomes the equal-weight mixture over the manifold,
    as ``degeneracy`` says.
``"eigenstate"``
    The ``level``-th eigenstate; when a ``guess`` (the free state) is given, the state is followed
    by continuity (largest overlap), as QEP with excited states requires.
``"thermal"``
    Gibbs state ``exp(-H/T)/Z`` at ``temperature`` T (dense).

New backends (matrix-free, MPS, Gaussian) register further entries in :data:`SOLVERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ProblemError
from ..hamiltonian import ParametrisedHamiltonian
from ..states import Equilibrium

__all__ = ["SOLVERS", "StateSpec", "solve"]

_KINDS = ("ground", "eigenstate", "thermal")
_METHODS = ("auto", "dense", "lanczos")
_DEGENERACY = ("error", "mixture")


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
        ``"dense"``, ``"lanczos"`` or ``"auto"`` (dense up to ``dense_max_dim``).
    tol:
        Relative eigenvalue tolerance of the Lanczos solver (the eigenvector error is about
        ``tol * ||H|| / gap``).
    maxiter:
        Iteration budget of the Lanczos solver (``None``: ``10 * dim``).
    degeneracy:
        ``"error"``: raise when the gap is below ``degeneracy_tol``. ``"mixture"``: use the equal
        weight mixture over all levels within ``degeneracy_tol`` of the selected one.
    degeneracy_tol:
        Energy below which two levels count as degenerate.
    gap_tol:
        Relative Lanczos residual for the levels above the manifold, which are needed only for
        their energy (the gap): a Ritz value's error is quadratic in its residual, so the default
        ``1e-6`` gives the gap to about ``1e-12 ||H||² / Δ``.
    dense_max_dim:
        Largest dimension solved densely by ``method="auto"``.
    blas_threads:
        BLAS threads for dense eigensolves of dimension up to 2048 (``None`` leaves the library
        default). Small eigensolves are much slower with several threads on few cores.
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
        if self.kind == "thermal":
            if not _positive_number(self.temperature):
                raise ProblemError(
                    f"a thermal state needs a finite temperature > 0, got {self.temperature!r}"
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

    def with_(self, **changes: object) -> StateSpec:
        return replace(self, **changes)  # type: ignore[arg-type]

    def use_dense(self, dim: int) -> bool:
        if self.kind == "thermal" or self.method == "dense":
            return True
        if self.method == "lanczos":
            return dim <= 4  # ARPACK needs dim > k + 1
        return dim <= self.dense_max_dim


Solver = Callable[
    [ParametrisedHamiltonian, np.ndarray, StateSpec, "Equilibrium | None"], Equilibrium
]


def _registry() -> dict[str, Solver]:
    from . import exact

    return {
        "ground": exact.solve_ground,
        "eigenstate": exact.solve_eigenstate,
        "thermal": exact.solve_thermal,
    }


SOLVERS: dict[str, Solver] = {}


def solve(
    hamiltonian: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec | None = None,
    guess: Equilibrium | None = None,
) -> Equilibrium:
    """Prepare the equilibrium of ``H(values)`` described by ``spec``.

    Parameters
    ----------
    hamiltonian, values:
        ``H`` and its parameter vector (aligned with ``hamiltonian.params``).
    spec:
        The state to prepare (default: ground state, automatic method).
    guess:
        A nearby equilibrium (usually the free state when solving the nudged one): a warm start
        for iterative solvers, the manifold size to keep for mixtures, and the state to follow
        for excited levels.
    """
    spec = spec or StateSpec()
    values = hamiltonian.check_values(values)
    if not SOLVERS:
        SOLVERS.update(_registry())
    return SOLVERS[spec.kind](hamiltonian, values, spec, guess)
