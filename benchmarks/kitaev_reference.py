"""A minimal re-implementation of the reference Kitaev phase-sensor training step, in its style.

The published code (``SupervisedQEP/KitaevPhaseSensor/qep.py`` of Wanjura & Marquardt) needs
``optax`` (and JAX) for its optimiser, which is not a dependency here; this module redoes one
training step the way that code does it, for timing and for checking qeprop's gradient:

* every single-qubit Pauli of the ``N = nx*ny + 2`` qubits as a ``scipy.sparse.kron`` chain
  (qubit 0 leftmost), the Hamiltonian terms as sparse products of them, built once;
* per sample: ``H = Σ_k x_k H_k + Σ_j θ_j A_j`` summed as a sparse matrix, its ground state from a
  cold ``scipy.sparse.linalg.eigsh(H, k=1, which="SA")``, the outputs ``y`` and the error signal
  ``ε = 2 (y - t)``;
* centred ("symmetric") nudging: ``H ± β Σ_l ε_l O_l``, each solved by a cold ``eigsh``, and
  ``g_j = (⟨A_j⟩_+ - ⟨A_j⟩_-) / 2β``; with ``M`` shots each ``⟨A_j⟩`` is drawn from
  ``N(⟨A_j⟩, (⟨A_j²⟩ - ⟨A_j⟩²)/M)`` as ``fluctuating_expectation`` does;
* the batch mean of the gradients (the optimiser update is left out: it is negligible).

The lattice, the sensor's bond operators, the readout and the term order are those of
:mod:`qeprop.models.kitaev` (the honeycomb model; see ``docs/kitaev.md`` for the published
code's chain terms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from qeprop.models import kitaev

_PAULI = {
    "X": sp.csr_array(np.array([[0.0, 1.0], [1.0, 0.0]])),
    "Y": sp.csr_array(np.array([[0.0, -1j], [1j, 0.0]])),
    "Z": sp.csr_array(np.array([[1.0, 0.0], [0.0, -1.0]])),
}


def operator(letter: str, idx: int, n: int) -> sp.csr_array:
    """``σ^letter`` on qubit ``idx`` of ``n`` (qubit 0 leftmost), identity elsewhere."""
    left = sp.identity(2**idx, format="csr")
    right = sp.identity(2 ** (n - idx - 1), format="csr")
    return sp.csr_array(sp.kron(left, sp.kron(_PAULI[letter], right, format="csr"), format="csr"))


@dataclass
class ReferenceSensor:
    """Prebuilt sparse operators: inputs ``H_x, H_y, H_z``, couplings ``A_j``, outputs ``O_l``."""

    n: int
    h_inputs: list[sp.csr_array]
    h_theta: list[sp.csr_array]
    outputs: list[sp.csr_array]


def prepare(nx: int = 8, ny: int = 2) -> ReferenceSensor:
    """Build every operator once, as ``prepare_Kitaev_phase_sensor`` does."""
    n_sys = nx * ny
    n = n_sys + 2
    ops = {(a, q): operator(a, q, n) for q in range(n) for a in "XYZ"}
    lat = kitaev.lattice(nx, ny, 0)
    h_inputs = []
    for kind in "xyz":
        h = sp.csr_array((2**n, 2**n), dtype=complex)
        for i, j in lat.bonds[kind]:
            h = h + ops[(kind.upper(), i)] @ ops[(kind.upper(), j)]
        h_inputs.append(h)
    bonds = [ops[("Z", 0)] @ ops[("Z", nx)], ops[("X", 0)] @ ops[("X", 1)],
             ops[("Y", 1)] @ ops[("Y", 2)]]  # fmt: skip
    sens1 = [ops[(a, n_sys)] for a in "XYZ"]
    sens2 = [ops[(a, n_sys + 1)] for a in "XYZ"]
    sens = sens1 + sens2
    h_theta = [b @ s for b in bonds for s in sens] + sens + [a @ b for a in sens1 for b in sens2]
    one = sp.identity(2**n, format="csr")
    za = ops[("Z", n_sys)]
    outputs = [0.5 * (one + za), 0.5 * (one - za)]
    return ReferenceSensor(n, h_inputs, [sp.csr_array(a) for a in h_theta], outputs)


def hamiltonian(ref: ReferenceSensor, x: np.ndarray, theta: np.ndarray) -> sp.csr_array:
    h = sp.csr_array((2**ref.n, 2**ref.n), dtype=complex)
    for xk, hk in zip(x, ref.h_inputs, strict=True):
        h = h + xk * hk
    for tj, aj in zip(theta, ref.h_theta, strict=True):
        h = h + tj * aj
    return h


def ground_state(h: sp.csr_array) -> np.ndarray:
    _, vecs = sla.eigsh(h, k=1, which="SA")
    return vecs[:, 0]


def expectation(psi: np.ndarray, op: sp.csr_array) -> float:
    return float(np.real(np.vdot(psi, op @ psi)))


def noisy_expectation(
    psi: np.ndarray, op: sp.csr_array, shots: int, rng: np.random.Generator
) -> float:
    """Gaussian shot noise with the variance of ``op`` over ``shots`` (``⟨A²⟩ - ⟨A⟩²``)."""
    a = op @ psi
    mean = float(np.real(np.vdot(psi, a)))
    second = float(np.real(np.vdot(psi, op @ a)))
    return float(np.sqrt(max(second - mean**2, 0.0) / shots) * rng.standard_normal() + mean)


def gradient_step(
    ref: ReferenceSensor,
    theta: np.ndarray,
    x_batch: np.ndarray,
    targets: np.ndarray,
    nudge: float = 0.05,
    shots: int | None = 10000,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, float]:
    """Batch-mean centred QEP gradient and mean loss, one cold ``eigsh`` per equilibrium.

    ``rng`` draws the shot noise (the published code uses NumPy's global generator).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    grad = np.zeros(len(theta))
    cost = 0.0
    for x, t in zip(x_batch, targets, strict=True):
        h = hamiltonian(ref, x, theta)
        psi = ground_state(h)
        y = np.array([expectation(psi, o) for o in ref.outputs])
        cost += float(np.sum((y - t) ** 2))
        eps = 2 * (y - t)
        out = eps[0] * ref.outputs[0] + eps[1] * ref.outputs[1]
        meas = []
        for sign in (1.0, -1.0):
            psi_s = ground_state(h + sign * nudge * out)
            if shots is None:
                meas.append(np.array([expectation(psi_s, a) for a in ref.h_theta]))
            else:
                meas.append(
                    np.array([noisy_expectation(psi_s, a, shots, rng) for a in ref.h_theta])
                )
        grad += (meas[0] - meas[1]) / (2 * nudge)
    return grad / len(x_batch), cost / len(x_batch)
