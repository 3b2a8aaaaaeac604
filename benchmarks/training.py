"""A naive phase-recognition training step, written the way published QEP research code does it.

One step of :mod:`qeprop.experiments.phase_recognition` with its defaults (batch of 10 points of
the triangle ``g_zxz + g_zz + g_x = 4``, centred nudging β = 0.4, M = 10 shots per coupling
expectation with Gaussian shot noise, exact outputs, Adam with learning rate 0.01), done sample by
sample with ``scipy``: for every sample

1. build ``H(g, θ)`` from Kronecker products and find its ground state with a cold
   ``eigsh(k=1, which="SA")``; compute the three outputs ``y`` and ``ε = 2 (y - t)``;
2. for ``ν = +βε`` and ``ν = -βε``: build ``H(g, θ) + Σ ν_l O_l``, cold ``eigsh``, and the 51
   coupling expectations ``⟨A_j⟩ = ψ† A_j ψ``;
3. add Gaussian shot noise of variance ``(1 - ⟨A_j⟩²) / M`` (a single Pauli string measured
   ``M`` times) to each ``⟨A_j⟩`` and form the centred gradient ``(⟨A⟩₊ - ⟨A⟩₋) / 2β``;

then average over the batch and take an Adam step. Two ways of building the operators:

* ``prebuilt=False``: every operator (Hamiltonian terms, couplings, projectors) is rebuilt from a
  ``scipy.sparse.kron`` chain of 2x2 matrices each time it is used (:mod:`naive`);
* ``prebuilt=True``: every operator is built once, when the trainer is made, and ``H`` is re-summed
  from the stored sparse matrices for every sample and nudge.

It shares no code with qeprop (the couplings' Pauli labels are passed in, in the order of the
experiment's parameter vector), so its noiseless gradient checks qeprop's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import naive
import numpy as np
import scipy.sparse as sp
from sensor import N_QUBITS, OUTPUTS, chain_terms, label


@dataclass
class NaiveTrainer:
    """Parameters, Adam moments and RNG of a naive training run (see the module docstring)."""

    theta: np.ndarray
    labels: Sequence[str]  # Pauli labels of the couplings, in the order of theta
    prebuilt: bool = False
    batch_size: int = 10
    shots: int = 10
    nudge: float = 0.4
    learning_rate: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        self.theta = np.array(self.theta, dtype=float)
        self.labels = list(self.labels)
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        self.t = 0
        self.rng = np.random.default_rng(self.seed)
        self.stages: dict[str, float] = {}
        self._ops: dict[str, sp.csr_matrix] = {}
        if self.prebuilt:
            for _, lab, _ in chain_terms():
                self._ops[lab] = naive.kron_operator(naive.letters_of(lab))
            for lab in self.labels:
                self._ops[lab] = naive.kron_operator(naive.letters_of(lab))
            for name, bits in OUTPUTS.items():
                self._ops[name] = naive.kron_operator({q: str(b) for q, b in bits.items()})

    # ---------------------------------------------------------------- operators
    def hamiltonian(self, g: np.ndarray, nudge: np.ndarray | None) -> sp.csr_matrix:
        if not self.prebuilt:
            return naive.hamiltonian(g, self.theta, nudge, self.labels)
        gval = dict(zip(("g_zxz", "g_zz", "g_x"), g, strict=True))
        dim = 2**N_QUBITS
        h = sp.csr_matrix((dim, dim), dtype=complex)
        for coeff, lab, param in chain_terms():
            h = h + coeff * gval[param] * self._ops[lab]
        for th, lab in zip(self.theta, self.labels, strict=True):
            h = h + th * self._ops[lab]
        if nudge is not None:
            for nu, name in zip(nudge, OUTPUTS, strict=True):
                h = h + nu * self._ops[name]
        return h

    def outputs(self, psi: np.ndarray) -> np.ndarray:
        if not self.prebuilt:
            return naive.output_expectations(psi)
        return np.array([naive.expectation(psi, self._ops[name]) for name in OUTPUTS])

    def couplings(self, psi: np.ndarray) -> np.ndarray:
        if not self.prebuilt:
            return naive.coupling_expectations(psi, self.labels)
        return np.array([naive.expectation(psi, self._ops[lab]) for lab in self.labels])

    # ---------------------------------------------------------------- training
    def sample_gradient(self, g: np.ndarray, target: np.ndarray) -> tuple[Any, ...]:
        """``(noisy gradient, exact gradient, loss)`` of one sample at the current couplings."""
        clock = naive._Stages(self.stages)
        h = self.hamiltonian(g, None)
        clock.lap("build H")
        psi0 = naive.ground_state(h)
        clock.lap("eigsh")
        y = self.outputs(psi0)
        clock.lap("expectations")
        eps = 2.0 * (y - target)
        a: dict[float, np.ndarray] = {}
        noisy: dict[float, np.ndarray] = {}
        for s in (+1.0, -1.0):
            h = self.hamiltonian(g, s * self.nudge * eps)
            clock.lap("build H")
            psi = naive.ground_state(h)
            clock.lap("eigsh")
            a[s] = self.couplings(psi)
            clock.lap("expectations")
            var = np.clip(1.0 - a[s] ** 2, 0.0, None) / self.shots
            noisy[s] = a[s] + np.sqrt(var) * self.rng.standard_normal(len(a[s]))
            clock.lap("noise + Adam")
        width = 2.0 * self.nudge
        loss = float(np.sum((y - target) ** 2))
        return (noisy[1.0] - noisy[-1.0]) / width, (a[1.0] - a[-1.0]) / width, loss

    def step(self) -> dict[str, Any]:
        """One training step; returns the batch, the couplings it was taken at and the gradients."""
        x = 4.0 * self.rng.dirichlet(np.ones(3), size=self.batch_size)
        labels = np.array([label(g) for g in x])
        targets = np.eye(len(OUTPUTS))[labels]
        theta = self.theta.copy()
        recs = [self.sample_gradient(g, t) for g, t in zip(x, targets, strict=True)]
        clock = naive._Stages(self.stages)
        grad = np.mean([r[0] for r in recs], axis=0)
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad**2
        mhat = self.m / (1 - b1**self.t)
        vhat = self.v / (1 - b2**self.t)
        self.theta = self.theta - self.learning_rate * mhat / (np.sqrt(vhat) + eps)
        clock.lap("noise + Adam")
        return {
            "inputs": x,
            "labels": labels,
            "theta": theta,
            "gradient": grad,
            "exact_gradient": np.mean([r[1] for r in recs], axis=0),
            "loss": float(np.mean([r[2] for r in recs])),
            "solves": 3 * len(x),
        }
