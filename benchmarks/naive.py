"""A naive QEP gradient, written the way published QEP research code does it.

For every sample and every phase (free, +β, -β) the Hamiltonian is rebuilt as a
``scipy.sparse`` matrix from Kronecker products of 2x2 Pauli matrices (one ``scipy.sparse.kron``
chain per term), the ground state comes from ``eigsh(k=1, which="SA")`` from ARPACK's own random
start with the default BLAS threading, and each coupling expectation ``⟨A_j⟩ = ψ† A_j ψ`` uses an
operator freshly built as a sparse Kronecker product. Nothing is cached between phases or samples.

It shares no code with qeprop (only the term lists of :mod:`sensor`), so its gradient is an
independent check of qeprop's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from sensor import N_QUBITS, OUTPUTS, chain_terms, couplings

PAULI = {
    "I": sp.csr_matrix(np.eye(2, dtype=complex)),
    "X": sp.csr_matrix(np.array([[0, 1], [1, 0]], dtype=complex)),
    "Y": sp.csr_matrix(np.array([[0, -1j], [1j, 0]], dtype=complex)),
    "Z": sp.csr_matrix(np.array([[1, 0], [0, -1]], dtype=complex)),
    # projectors on the Z eigenstates: bit 0 (↑) and bit 1 (↓)
    "0": sp.csr_matrix(np.array([[1, 0], [0, 0]], dtype=complex)),
    "1": sp.csr_matrix(np.array([[0, 0], [0, 1]], dtype=complex)),
}


def letters_of(label: str) -> dict[int, str]:
    """``"Z7 X0 Z1"`` -> ``{7: "Z", 0: "X", 1: "Z"}``."""
    return {int(tok[1:]): tok[0] for tok in label.split()}


def kron_operator(letters: dict[int, str], n: int = N_QUBITS) -> sp.csr_matrix:
    """Sparse ``⊗_q σ_q`` (qubit 0 leftmost) built by a chain of ``scipy.sparse.kron``."""
    op = PAULI[letters.get(0, "I")]
    for q in range(1, n):
        op = sp.kron(op, PAULI[letters.get(q, "I")], format="csr")
    return op


def coupling_labels() -> list[str]:
    """Pauli labels of the 51 couplings in the order of :func:`sensor.couplings`."""
    return [c.pauli for c in couplings()]


def hamiltonian(
    g: np.ndarray,
    theta: np.ndarray,
    nudge: np.ndarray | None,
    labels: Sequence[str] | None = None,
) -> sp.csr_matrix:
    """``H = H0(g) + Σ θ_j A_j (+ Σ ν_l O_l)``, term by term.

    ``labels``: Pauli labels of the couplings ``A_j`` in the order of ``theta`` (default
    :func:`coupling_labels`).
    """
    gval = dict(zip(("g_zxz", "g_zz", "g_x"), g, strict=True))
    dim = 2**N_QUBITS
    h = sp.csr_matrix((dim, dim), dtype=complex)
    for coeff, label, param in chain_terms():
        h = h + coeff * gval[param] * kron_operator(letters_of(label))
    for th, pauli in zip(theta, labels or coupling_labels(), strict=True):
        h = h + th * kron_operator(letters_of(pauli))
    if nudge is not None:
        for nu, bits in zip(nudge, OUTPUTS.values(), strict=True):
            h = h + nu * kron_operator({q: str(b) for q, b in bits.items()})
    return h


def ground_state(h: sp.csr_matrix) -> np.ndarray:
    _, vec = spla.eigsh(h, k=1, which="SA")
    return vec[:, 0]


def expectation(psi: np.ndarray, op: sp.csr_matrix) -> float:
    return float(np.real(np.vdot(psi, op @ psi)))


def coupling_expectations(psi: np.ndarray, labels: Sequence[str] | None = None) -> np.ndarray:
    return np.array(
        [expectation(psi, kron_operator(letters_of(p))) for p in labels or coupling_labels()]
    )


def output_expectations(psi: np.ndarray) -> np.ndarray:
    return np.array(
        [
            expectation(psi, kron_operator({q: str(b) for q, b in bits.items()}))
            for bits in OUTPUTS.values()
        ]
    )


@dataclass(frozen=True)
class NaiveResult:
    gradient: np.ndarray
    outputs: np.ndarray
    loss: float
    solves: int


class _Stages:
    """Accumulates wall-clock time per stage into ``sink`` (if given)."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self.t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.sink is not None:
            self.sink[stage] = self.sink.get(stage, 0.0) + now - self.t
        self.t = now


def centered_gradient(
    g: np.ndarray,
    theta: np.ndarray,
    target: np.ndarray,
    beta: float,
    stages: dict[str, float] | None = None,
) -> NaiveResult:
    """Centered QEP gradient ``(⟨A⟩_{+βε} - ⟨A⟩_{-βε}) / 2β`` of ``L = Σ (y - t)²`` for one sample.

    ``stages`` (optional) accumulates the time spent building H, in eigsh and in expectations.
    """
    clock = _Stages(stages)
    h = hamiltonian(g, theta, None)
    clock.lap("build H")
    psi0 = ground_state(h)
    clock.lap("eigsh")
    y = output_expectations(psi0)
    _free_a = coupling_expectations(psi0)  # research code measures ⟨A_j⟩ in every phase
    clock.lap("expectations")
    eps = 2.0 * (y - target)
    a = {}
    for s in (+1.0, -1.0):
        h = hamiltonian(g, theta, s * beta * eps)
        clock.lap("build H")
        psi = ground_state(h)
        clock.lap("eigsh")
        a[s] = coupling_expectations(psi)
        clock.lap("expectations")
    grad = (a[1.0] - a[-1.0]) / (2.0 * beta)
    return NaiveResult(grad, y, float(np.sum((y - target) ** 2)), 3)
