"""Shared helpers and fixtures of the qeprop test suite.

Plain functions (importable from any test module as ``from conftest import ...``):

``random_hamiltonian(n_qubits, n_terms, n_params, seed, letters="IXYZ")``
    -> ``(ParametrisedHamiltonian, values)``.
    ``n_terms`` random *dense* Pauli strings (each qubit's letter drawn from ``letters``, the
    identity string redrawn) with standard-normal coefficients; term ``i`` carries parameter
    ``f"t{i % n_params}"`` (so parameters are shared by several terms when
    ``n_terms > n_params``; ``n_params=0`` makes every term fixed). On top, a fixed random field
    ``h_q * P_q`` on every qubit (``P_q`` one of the non-identity letters in ``letters``), so that
    every qubit is touched and the ground state is generically non-degenerate. ``values`` is a
    vector aligned with ``ham.params`` drawn uniformly from ``[-1, 1]``. Requires
    ``n_terms >= n_params`` (every parameter is used). Deterministic in ``seed``.

``random_system(n_qubits=4, n_terms=8, n_params=3, seed=0, letters="IXYZ", cost=False)``
    -> :class:`RandomSystem`, a :class:`qeprop.QEPSystem` built on ``random_hamiltonian(...)``
    with two outputs:

    * ``"p01"``: the projector ``PauliSum.projector({0: 0, 1: 1}) = (1 + Z0)(1 - Z1)/4``;
    * ``"xz"``: the Pauli string ``X0 Z{n-1}``.

    With ``cost=True`` it also has the cost observable ``C = 0.5 Z0 Z1 - 0.3 X{n-1}`` (for
    ``loss=None`` / the ``cost_observable`` estimator). The returned object *is* the system and
    carries the parameter vector as ``.values`` (aligned with ``system.hamiltonian.params``); it
    also unpacks as ``system, values = random_system(...)``.

``ProgressRecorder()``: a :class:`qeprop.solvers.ProgressObserver` that keeps every event as a
tuple in ``.events``: ``("solve", backend, kind, count)``, ``("step", level, products, residual,
target)``, ``("sweep", sites, energy, bond_dim)``.

Fixtures: ``rng`` (``numpy.random.Generator`` seeded with 1234), ``small_hamiltonian``
(``random_hamiltonian(4, 8, 3, seed=0)``) and ``small_system``
(``random_system(seed=0, cost=True)``).

Dense single-qubit matrices ``PAULI_MATRICES`` (``{"I", "X", "Y", "Z"}``) and
``kron_string(dense_label)`` (Kronecker product, qubit 0 leftmost) are independent references.
``dense_eigh(matrix, k=None)`` is ``scipy.linalg.eigh`` (lowest ``k`` pairs, or all) with one BLAS
thread: on few cores multi-threaded LAPACK is many times slower for dimensions <= 1024.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import reduce
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg as la
from threadpoolctl import threadpool_limits

from qeprop import ParametrisedHamiltonian, PauliString, PauliSum, QEPSystem

# make ``from conftest import ...`` work whatever the rootdir/import mode
sys.path.insert(0, str(Path(__file__).resolve().parent))

__all__ = [
    "PAULI_MATRICES",
    "RandomSystem",
    "dense_eigh",
    "kron_string",
    "random_hamiltonian",
    "random_system",
]

PAULI_MATRICES: dict[str, np.ndarray] = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def kron_string(dense_label: str) -> np.ndarray:
    """Dense matrix of a dense Pauli label (character ``k`` on qubit ``k``, qubit 0 leftmost)."""
    return reduce(np.kron, [PAULI_MATRICES[c] for c in dense_label.upper()], np.ones((1, 1)))


def dense_eigh(matrix: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a dense Hermitian matrix (the lowest ``k``, or all), single-threaded."""
    with threadpool_limits(limits=1, user_api="blas"):
        if k is None:
            return la.eigh(matrix)
        return la.eigh(matrix, subset_by_index=[0, k - 1])


def random_hamiltonian(
    n_qubits: int,
    n_terms: int,
    n_params: int,
    seed: int,
    letters: str = "IXYZ",
) -> tuple[ParametrisedHamiltonian, np.ndarray]:
    """Seeded random parametrised Hamiltonian and parameter vector (see the module docstring)."""
    if n_params > n_terms:
        raise ValueError("n_terms must be >= n_params so that every parameter is used")
    letters = letters.upper()
    non_identity = [c for c in letters if c != "I"]
    if not non_identity:
        raise ValueError("letters must contain at least one of X, Y, Z")
    rng = np.random.default_rng(seed)
    terms: list[tuple] = []
    for i in range(n_terms):
        label = "I" * n_qubits
        while set(label) == {"I"}:
            label = "".join(rng.choice(list(letters), size=n_qubits))
        param = f"t{i % n_params}" if n_params else None
        terms.append((float(rng.standard_normal()), label, param))
    for q in range(n_qubits):
        letter = non_identity[int(rng.integers(len(non_identity)))]
        terms.append((float(rng.uniform(0.3, 1.0) * rng.choice([-1, 1])), f"{letter}{q}"))
    params = [f"t{k}" for k in range(n_params)]
    ham = ParametrisedHamiltonian(n_qubits, terms, params=params)
    values = rng.uniform(-1.0, 1.0, size=n_params)
    return ham, values


class RandomSystem(QEPSystem):
    """A :class:`QEPSystem` that also carries its parameter vector (``values``).

    Iterating yields ``(system, values)``, so both ``s = random_system()`` and
    ``s, v = random_system()`` work.
    """

    def __init__(self, *args: object, values: np.ndarray, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        object.__setattr__(self, "values", values)  # works for frozen dataclasses too

    def __iter__(self) -> Iterator[object]:
        return iter((self, self.values))


class ProgressRecorder:
    """A progress observer that keeps every event (see the module docstring)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def solve_started(self, backend: str, kind: str, count: int = 1) -> None:
        self.events.append(("solve", backend, kind, count))

    def lanczos_step(self, level: int, products: int, residual: float, target: float) -> None:
        self.events.append(("step", level, products, residual, target))

    def dmrg_sweep(self, sites: int, energy: float, bond_dim: int) -> None:
        self.events.append(("sweep", sites, energy, bond_dim))


def random_system(
    n_qubits: int = 4,
    n_terms: int = 8,
    n_params: int = 3,
    seed: int = 0,
    letters: str = "IXYZ",
    cost: bool = False,
) -> RandomSystem:
    """Seeded random QEP system with outputs ``p01`` and ``xz`` (see the module docstring)."""
    if n_qubits < 2:
        raise ValueError("random_system needs at least 2 qubits")
    ham, values = random_hamiltonian(n_qubits, n_terms, n_params, seed, letters)
    n = n_qubits
    outputs = {
        "p01": PauliSum.projector({0: 0, 1: 1}),
        "xz": PauliSum({PauliString.parse(f"X0 Z{n - 1}"): 1.0}),
    }
    cost_op = PauliSum.from_terms([(0.5, "Z0 Z1"), (-0.3, f"X{n - 1}")]) if cost else None
    return RandomSystem(ham, outputs=outputs, cost=cost_op, values=values)


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def small_hamiltonian() -> tuple[ParametrisedHamiltonian, np.ndarray]:
    return random_hamiltonian(4, 8, 3, seed=0)


@pytest.fixture
def small_system() -> RandomSystem:
    return random_system(seed=0, cost=True)
