"""Equilibrium state records.

Every equilibrium qeprop computes, pure or mixed, is a weighted set of eigenvectors

.. math::  ρ = Σ_k w_k |ψ_k⟩⟨ψ_k|,  \\qquad Σ_k w_k = 1,

which covers a non-degenerate eigenstate (one vector, weight 1), the equal-weight mixture over a
(near-)degenerate manifold (Wanjura & Marquardt, Sec. II.A) and the Gibbs state
``ρ = exp(-H/T)/Z`` (all eigenvectors, Boltzmann weights).

Ground states of long chains are held as matrix product states (:class:`MPSEquilibrium`, made by
the ``dmrg`` backend): a record with the same answers (``energy``, ``gap``, ``degeneracy``,
``is_pure``, ``kind``, ``backend``, ``warm``) but no state vector. Ground and Gibbs states of
oscillator networks are Gaussian, held as a mean and a covariance (:class:`GaussianEquilibrium`,
made by the ``gaussian`` backend). Estimators reach every kind only through
:mod:`qeprop.measurement` and :func:`qeprop.solvers.linear_response` (:data:`State`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["Engine", "Equilibrium", "GaussianEquilibrium", "MPSEquilibrium", "State"]


class Engine(Protocol):
    """How a backend applies Pauli sums to vectors (the string basis of one Hamiltonian).

    ``apply(coef, vecs)`` is ``Σ_s coef_s P_s vecs`` for string coefficients ``(S,)`` and vectors
    ``(d,)`` or ``(d, K)``; ``matrix_elements(bra, ket, weights)`` is
    ``Σ_k weights_k ⟨bra_k|P_s|ket_k⟩`` for every string ``s`` (complex, ``(S,)``).
    """

    def apply(self, coef: np.ndarray, vecs: np.ndarray) -> np.ndarray: ...

    def matrix_elements(
        self, bra: np.ndarray, ket: np.ndarray, weights: np.ndarray | None = None
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class Equilibrium:
    """An equilibrium state ``ρ = Σ_k weights[k] |vectors[:, k]⟩⟨vectors[:, k]|``.

    Attributes
    ----------
    vectors : (dim, K) array
        Orthonormal eigenvectors of ``H``; column ``k`` has energy ``energies[k]``.
    weights : (K,) array
        Non-negative weights summing to one.
    energies : (K,) array
        Eigenvalues of the vectors (ascending).
    gap : float
        ``δ``: distance from the selected manifold to the nearest eigenvalue outside it
        (for thermal states: ``E_1 - E_0``). ``inf`` when no other level exists.
    splitting : float
        Spread of the energies inside the selected manifold (0 for a single vector).
    kind : str
        ``"ground"``, ``"eigenstate"`` or ``"thermal"``.
    method : str
        The eigensolver that ran: ``"dense"``, ``"lanczos"``, ``"batch-lanczos"`` or
        ``"matrix-free-lanczos"``.
    level : int
        Index (from the bottom of the spectrum) of the lowest state in the manifold.
    temperature : float or None
        Temperature of a thermal state.
    residual : float
        Largest ``||H ψ_k - E_k ψ_k||`` over the returned vectors.
    matvecs : int
        Matrix-vector products spent by an iterative solver (0 for dense solvers).
    spectrum : (m,) array
        The lowest eigenvalues the solver computed (at least those of the manifold).
    above : (dim, j) array or None
        Eigenvectors of the levels just above the manifold, when the solver computed them (used to
        warm-start the gap measurement of a nearby solve).
    backend : str
        The backend that prepared the state (``"dense"``, ``"sparse"``, ``"matrix-free"``); a
        nudged solve warm-started from this record stays on it.
    engine : Engine or None
        The backend's Pauli-sum engine for the Hamiltonian's string basis (``None``: the
        Hamiltonian's sparse structure). Opaque to estimators: measurements go through
        :mod:`qeprop.measurement` and :func:`qeprop.solvers.engine_for`.
    sector : :class:`~qeprop.solvers.sectors.SectorState` or None
        The Pauli-symmetry sectors the state lies in, when it was solved through them
        (``state.symmetry = "auto"``); a nudged solve warm-started from it stays there.
    """

    vectors: np.ndarray
    weights: np.ndarray
    energies: np.ndarray
    gap: float
    splitting: float = 0.0
    kind: str = "ground"
    method: str = "dense"
    level: int = 0
    temperature: float | None = None
    residual: float = 0.0
    matvecs: int = 0
    spectrum: np.ndarray = field(default_factory=lambda: np.zeros(0))
    above: np.ndarray | None = None
    backend: str = "dense"
    engine: Any = field(default=None, repr=False, compare=False)
    sector: Any = field(default=None, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def degeneracy(self) -> int:
        """Number of vectors in the state (1 for a pure state, the manifold size for a mixture)."""
        return int(self.vectors.shape[1])

    @property
    def energy(self) -> float:
        """``Tr(ρ H)``."""
        return float(self.weights @ self.energies)

    @property
    def is_pure(self) -> bool:
        return self.degeneracy == 1

    @property
    def free_energy(self) -> float:
        """``F = -T ln Tr exp(-H/T)`` of a thermal state (from its full spectrum); the energy
        ``Tr(ρH)`` otherwise (the ``T → 0`` limit for a ground state)."""
        if self.kind != "thermal" or self.temperature is None:
            return self.energy
        e0 = float(self.energies[0])
        t = float(self.temperature)
        return e0 - t * float(np.log(np.sum(np.exp(-(self.energies - e0) / t))))

    def density_matrix(self) -> np.ndarray:
        """Dense ``ρ`` (for tests and small systems)."""
        v = self.vectors
        return (v * self.weights) @ v.conj().T

    def significant(self, cutoff: float = 1e-16) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, weights)`` without the columns whose weight is below ``cutoff``."""
        keep = self.weights > cutoff * self.weights.max()
        if np.all(keep):
            return self.vectors, self.weights
        return self.vectors[:, keep], self.weights[keep]

    @property
    def warm(self) -> Equilibrium:
        """The warm start this record offers a nearby solve (opaque: pass it as ``guess``)."""
        return self

    # ------------------------------------------------------------------ measurements
    def outcome_probabilities(self, letters: dict[int, str], n_qubits: int) -> np.ndarray:
        """Probabilities of the basis states after rotating each listed qubit's letter to Z.

        ``letters`` maps qubit -> ``"X"``, ``"Y"`` or ``"Z"`` (X: Hadamard, Y: ``H S†``); the
        result has shape ``(dim,)`` and sums to one. Shots of a commuting group are draws from it.
        """
        vecs, w = self.significant()
        k = vecs.shape[1]
        t = vecs.astype(complex).reshape((2,) * n_qubits + (k,))
        for q, c in letters.items():
            if c == "Z":
                continue
            u = _H if c == "X" else _HSDAG
            t = np.moveaxis(np.tensordot(u, t, axes=([1], [q])), 0, q)
        probs = np.sum(w * np.abs(t.reshape(1 << n_qubits, k)) ** 2, axis=1)
        return probs / probs.sum()


@dataclass(frozen=True)
class MPSEquilibrium:
    """A pure ground state held as a matrix product state (the ``dmrg`` backend).

    ``|ψ⟩ = Σ_s B_0[s_0] B_1[s_1] ... B_{n-1}[s_{n-1}] |s⟩`` with MPS site ``k`` holding qubit
    ``order[k]``; every ``B_k`` is right-canonical (``Σ_{s,r} B_k[l,s,r] conj(B_k[l',s,r]) = δ``),
    so the state is normalised and everything right of a site contracts to the identity.

    Attributes
    ----------
    tensors : tuple of (χ_k, 2, χ_{k+1}) arrays
        The right-canonical site tensors (``χ_0 = χ_n = 1``; physical index 0 is ``|0⟩``, the
        ``Z = +1`` state, as for the state vectors).
    order : tuple of int
        ``order[k]`` is the qubit at MPS site ``k`` (chosen by the backend to keep terms local).
    envs : tuple of (χ_k, χ_k) arrays
        Left environments ``L_k = Σ_{s_<k} conj(ψ_<k) ψ_<k`` (ket index first), shared by every
        expectation value: ``⟨P⟩`` of a string starting at site ``k`` is a transfer from ``L_k``.
    energy : float
        ``⟨ψ|H|ψ⟩`` (identity terms included).
    gap : float
        Estimate of ``E_1 - E_0`` on cold solves: the difference of the two lowest Ritz values
        of state-averaged DMRG sweeps that keep both states in one basis at bond dimension
        ``min(bond_dim, 16)``. Each Ritz value is an upper bound of its level and truncation
        errors largely cancel in the difference, so the estimate is an upper bound of the gap up
        to the ground state's truncation error at that bond dimension (measured: within 1 % for
        a bulk excitation, about 10 % high for nearly degenerate edge modes); at most ``Σ|c_s|``.
        Warm-started states (nudged ones) carry the gap of their start.
    variance : float
        ``⟨H²⟩ - ⟨H⟩²``: the accuracy of the state (zero for an exact eigenstate; the energy error
        is about ``variance / gap`` and a state error about ``sqrt(variance) / gap``). Computed
        on first access and then kept: it needs an environment sweep with the squared MPO (bond
        dimension ``D²``), about as costly as a few DMRG half-sweeps' worth of local products,
        and a gradient's three solves never read it. The constructor takes it as
        ``variance_of``: a number, or a function of no arguments that computes it.
    sweeps : int
        DMRG sweeps spent.
    bond_dim : int
        Largest bond dimension of the state.
    warm_started : bool
        Whether the solve started from a nearby state (a nudged solve).
    coefficients : (n_strings,) array or None
        The Hamiltonian's string coefficients ``c_s`` the state was solved at: a warm solve from
        it starts sweeping where they changed most.
    """

    tensors: tuple[np.ndarray, ...] = field(repr=False)
    order: tuple[int, ...]
    envs: tuple[np.ndarray, ...] = field(repr=False, compare=False)
    energy: float
    gap: float
    variance_of: float | Callable[[], float] = field(repr=False, compare=False)
    sweeps: int = 0
    bond_dim: int = 1
    warm_started: bool = False
    kind: str = "ground"
    method: str = "dmrg"
    backend: str = "dmrg"
    level: int = 0
    temperature: float | None = None
    splitting: float = 0.0
    matvecs: int = 0
    engine: Any = field(default=None, repr=False, compare=False)
    sector: Any = field(default=None, repr=False, compare=False)
    coefficients: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_qubits(self) -> int:
        return len(self.tensors)

    @property
    def variance(self) -> float:
        """``⟨H²⟩ - ⟨H⟩²`` (see the class docstring), computed on first access."""
        v = self.variance_of
        if callable(v):
            v = float(v())
            object.__setattr__(self, "variance_of", v)  # a cache: the record stays immutable
        return float(v)

    @property
    def degeneracy(self) -> int:
        """Always 1: a degenerate ground state is refused by the backend, never returned."""
        return 1

    @property
    def is_pure(self) -> bool:
        return True

    @property
    def free_energy(self) -> float:
        """The energy (a ground state: the ``T → 0`` free energy)."""
        return self.energy

    @property
    def residual(self) -> float:
        """``||Hψ - Eψ|| = sqrt(variance)``."""
        return float(np.sqrt(max(self.variance, 0.0)))

    @property
    def warm(self) -> MPSEquilibrium:
        """The warm start this record offers a nearby solve (opaque: pass it as ``guess``)."""
        return self

    def to_vector(self) -> np.ndarray:
        """The dense state vector ``(2**n,)`` in qeprop's qubit order (for tests, small n only)."""
        t = np.ones((1, 1), dtype=self.tensors[0].dtype)
        for b in self.tensors:
            t = np.tensordot(t, b, axes=([t.ndim - 1], [0]))
        t = t.reshape((2,) * self.n_qubits)
        # axis k holds qubit order[k]; qubit q must be axis q
        return np.transpose(t, np.argsort(self.order)).reshape(-1)


@dataclass(frozen=True)
class GaussianEquilibrium:
    """The ground or Gibbs state of a quadratic oscillator Hamiltonian (the ``gaussian`` backend).

    For ``H = ½ ξᵀ M ξ + fᵀ ξ + c`` with ``ξ = (r_0..r_{N-1}, p_0..p_{N-1})``,
    ``[ξ_a, ξ_b] = iħ Ω_ab`` and ``M`` positive definite, the state is Gaussian: it is fixed by
    its mean and symmetrised covariance (:mod:`qeprop.solvers.gaussian` has the equations).

    Attributes
    ----------
    mean : (2N,) array
        ``ξ̄ = ⟨ξ⟩ = -M⁻¹ f``.
    cov : (2N, 2N) array
        ``V_ab = ½⟨{ξ_a - ξ̄_a, ξ_b - ξ̄_b}⟩`` (real symmetric, positive definite).
    energy : float
        ``⟨H⟩ = ½ tr(M V) + ½ ξ̄ᵀ M ξ̄ + fᵀ ξ̄ + c``.
    free_energy : float
        ``F = Σ_k [ħω_k/2 + T ln(1 - e^{-ħω_k/T})] + c - ½ fᵀ M⁻¹ f`` for a thermal state; the
        energy for a ground state.
    gap : float
        ``ħ min_k ω_k``, the energy of the first excitation.
    frequencies : (N,) array
        Normal-mode frequencies ``ω_k`` (ascending): the positive eigenvalues of ``iΩM``.
    hbar : float
        ``ħ`` of the Hamiltonian.
    kind : str
        ``"ground"`` or ``"thermal"``.
    temperature : float or None
        Temperature of a thermal state.
    """

    mean: np.ndarray
    cov: np.ndarray = field(repr=False)
    energy: float
    free_energy: float
    gap: float
    frequencies: np.ndarray = field(repr=False)
    hbar: float = 1.0
    kind: str = "ground"
    temperature: float | None = None
    method: str = "gaussian"
    backend: str = "gaussian"
    level: int = 0
    residual: float = 0.0
    matvecs: int = 0
    splitting: float = 0.0
    engine: Any = field(default=None, repr=False, compare=False)
    sector: Any = field(default=None, repr=False, compare=False)

    @property
    def n_modes(self) -> int:
        return len(self.mean) // 2

    @property
    def degeneracy(self) -> int:
        """Always 1: the Gaussian ground and Gibbs states of a positive-definite ``M`` are unique
        (a zero mode is refused by the backend)."""
        return 1

    @property
    def is_pure(self) -> bool:
        return self.kind == "ground"

    @property
    def warm(self) -> GaussianEquilibrium:
        """The warm start this record offers a nearby solve (opaque: pass it as ``guess``)."""
        return self


#: an equilibrium record of any backend
State = Equilibrium | MPSEquilibrium | GaussianEquilibrium


_H = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
_HSDAG = np.array([[1, -1j], [1, 1j]], dtype=complex) / np.sqrt(2)  # H S†: Y -> Z
