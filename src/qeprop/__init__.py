"""qeprop: Quantum Equilibrium Propagation.

Train the tunable couplings θ of a quantum system H(x, θ, ν) = H0(x) + Σ θ_j A_j + Σ ν_l O_l from
measurements of its equilibrium (ground, excited or thermal) state, using Onsager reciprocity:
∂L/∂θ_j = d⟨A_j⟩/dβ at ν = βε, ε = ∂L/∂y.

The top-level namespace re-exports the core API; heavy optional backends are imported only by the
functions that need them.
"""

from __future__ import annotations

from .errors import (
    ConvergenceError,
    DegeneracyError,
    NudgeWindowWarning,
    PauliError,
    ProblemError,
    ProblemTooLargeError,
    QEPError,
)
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
from .pauli import PauliString, PauliSum
from .solvers import StateSpec, solve
from .states import Equilibrium
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
    "GradientOptions",
    "GradientRecord",
    "MeanSquaredError",
    "NudgeWindowWarning",
    "ParametrisedHamiltonian",
    "PauliError",
    "PauliString",
    "PauliSum",
    "ProblemError",
    "ProblemTooLargeError",
    "QEPError",
    "QEPSystem",
    "StateSpec",
    "Term",
    "__version__",
    "estimate_gradient",
    "measure",
    "solve",
    "susceptibility",
]
