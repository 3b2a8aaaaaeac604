"""qeprop: Quantum Equilibrium Propagation.

Train the tunable couplings θ of a quantum system H(x, θ, ν) = H0(x) + Σ θ_j A_j + Σ ν_l O_l from
measurements of its equilibrium (ground, excited or thermal) state, using Onsager reciprocity:
∂L/∂θ_j = d⟨A_j⟩/dβ at ν = βε, ε = ∂L/∂y.

The top-level namespace re-exports the core API; heavy optional backends are imported only by the
functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    ConvergenceError,
    DegeneracyError,
    NudgeWindowWarning,
    PauliError,
    ProblemError,
    ProblemTooLargeError,
    QEPError,
)

#: public name -> module that defines it (imported on first use: ``import qeprop`` stays light
#: and starts in milliseconds, so the command line can catch Ctrl-C from its first instant)
_LAZY = {
    "ESTIMATORS": "gradients",
    "GradientOptions": "gradients",
    "GradientRecord": "gradients",
    "estimate_gradient": "gradients",
    "susceptibility": "gradients",
    "ParametrisedHamiltonian": "hamiltonian",
    "Term": "hamiltonian",
    "CrossEntropy": "losses",
    "FunctionLoss": "losses",
    "MeanSquaredError": "losses",
    "Estimate": "measurement",
    "measure": "measurement",
    "ModeHamiltonian": "modes",
    "ModeTerm": "modes",
    "PauliString": "pauli",
    "PauliSum": "pauli",
    "QuadString": "quadratures",
    "QuadSum": "quadratures",
    "StateSpec": "solvers",
    "solve": "solvers",
    "Equilibrium": "states",
    "GaussianEquilibrium": "states",
    "QEPSystem": "system",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qeprop' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .gradients import (
        ESTIMATORS,
        GradientOptions,
        GradientRecord,
        estimate_gradient,
        susceptibility,
    )
    from .hamiltonian import ParametrisedHamiltonian, Term
    from .losses import CrossEntropy, FunctionLoss, MeanSquaredError
    from .measurement import Estimate, measure
    from .modes import ModeHamiltonian, ModeTerm
    from .pauli import PauliString, PauliSum
    from .quadratures import QuadString, QuadSum
    from .solvers import StateSpec, solve
    from .states import Equilibrium, GaussianEquilibrium
    from .system import QEPSystem

__version__ = "0.1.0"

__all__ = [
    "ESTIMATORS",
    "ConvergenceError",
    "CrossEntropy",
    "DegeneracyError",
    "Equilibrium",
    "Estimate",
    "FunctionLoss",
    "GaussianEquilibrium",
    "GradientOptions",
    "GradientRecord",
    "MeanSquaredError",
    "ModeHamiltonian",
    "ModeTerm",
    "NudgeWindowWarning",
    "ParametrisedHamiltonian",
    "PauliError",
    "PauliString",
    "PauliSum",
    "ProblemError",
    "ProblemTooLargeError",
    "QEPError",
    "QEPSystem",
    "QuadString",
    "QuadSum",
    "StateSpec",
    "Term",
    "__version__",
    "estimate_gradient",
    "measure",
    "solve",
    "susceptibility",
]
