"""The Wanjura-Marquardt phase sensor: an 8-site periodic cluster-Ising chain probed by 2 qubits.

Qubits 0-7 form the chain

.. math::  H_0 = g_{ZXZ} Σ_j Z_{j-1} X_j Z_{j+1} - g_{ZZ} Σ_j Z_j Z_{j+1} - g_X Σ_j X_j

(indices mod 8), with the inputs ``g_zxz``, ``g_zz``, ``g_x`` as (non-trainable) parameters.
Sensor qubits 8 and 9 couple to chain sites 0 and 1 through every product of a chain Pauli and a
sensor Pauli (36 couplings), plus single-qubit sensor fields (6) and sensor-sensor couplings (9):
51 trainable couplings. The outputs are the projectors on the sensor readings |↑↑⟩ (cluster),
|↑↓⟩ (ferromagnet) and |↓↓⟩ (paramagnet) (bit 0 = ↑).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qeprop import MeanSquaredError, ParametrisedHamiltonian, PauliSum, QEPSystem, Term

N_CHAIN = 8
SENSORS = (8, 9)
SITES = (0, 1)
N_QUBITS = N_CHAIN + len(SENSORS)
LETTERS = ("X", "Y", "Z")
INPUTS = ("g_zxz", "g_zz", "g_x")
OUTPUTS = {
    "cluster": {8: 0, 9: 0},
    "ferromagnet": {8: 0, 9: 1},
    "paramagnet": {8: 1, 9: 1},
}
PHASES = tuple(OUTPUTS)


@dataclass(frozen=True)
class Coupling:
    """A trainable coupling ``θ * Pauli string`` (name, Pauli label)."""

    name: str
    pauli: str


def chain_terms() -> list[tuple[float, str, str]]:
    """``(coeff, pauli, input parameter)`` of the periodic cluster-Ising chain."""
    terms: list[tuple[float, str, str]] = []
    n = N_CHAIN
    for j in range(n):
        left, right = (j - 1) % n, (j + 1) % n
        terms.append((+1.0, f"Z{left} X{j} Z{right}", "g_zxz"))
        terms.append((-1.0, f"Z{j} Z{right}", "g_zz"))
        terms.append((-1.0, f"X{j}", "g_x"))
    return terms


def couplings() -> list[Coupling]:
    """The 51 trainable couplings: 36 system-sensor, then 6 sensor fields, then 9 sensor-sensor."""
    out: list[Coupling] = []
    for site in SITES:
        for s in SENSORS:
            for a in LETTERS:
                for b in LETTERS:
                    out.append(Coupling(f"v_{a}{site}_{b}{s}", f"{a}{site} {b}{s}"))
    for s in SENSORS:
        for a in LETTERS:
            out.append(Coupling(f"h_{a}{s}", f"{a}{s}"))
    s0, s1 = SENSORS
    for a in LETTERS:
        for b in LETTERS:
            out.append(Coupling(f"j_{a}{s0}_{b}{s1}", f"{a}{s0} {b}{s1}"))
    return out


N_SYSTEM_SENSOR = len(SITES) * len(SENSORS) * 9


def output_operators() -> dict[str, PauliSum]:
    return {name: PauliSum.projector(bits) for name, bits in OUTPUTS.items()}


def build_system() -> QEPSystem:
    """The QEP system: inputs first, then the 51 couplings; all couplings trainable."""
    cps = couplings()
    terms: list[Term] = [Term.make(c, p, k) for c, p, k in chain_terms()]
    terms += [Term.make(1.0, c.pauli, c.name) for c in cps]
    ham = ParametrisedHamiltonian(N_QUBITS, terms, params=[*INPUTS, *(c.name for c in cps)])
    return QEPSystem(ham, outputs=output_operators(), trainable=[c.name for c in cps])


def init_couplings(seed: int = 1234) -> np.ndarray:
    """Paper-style initialisation: system-sensor uniform in ±0.1, sensor terms standard normal."""
    rng = np.random.default_rng(seed)
    n = len(couplings())
    theta = np.empty(n)
    theta[:N_SYSTEM_SENSOR] = rng.uniform(-0.1, 0.1, N_SYSTEM_SENSOR)
    theta[N_SYSTEM_SENSOR:] = rng.standard_normal(n - N_SYSTEM_SENSOR)
    return theta


def label(g: np.ndarray) -> int:
    """Index into :data:`PHASES`: ferromagnet iff g_zz > 2, else cluster iff g_zxz > g_x."""
    g_zxz, g_zz, g_x = g
    if g_zz > 2:
        return PHASES.index("ferromagnet")
    return PHASES.index("cluster") if g_zxz > g_x else PHASES.index("paramagnet")


def sample_inputs(n: int = 10, seed: int = 2024) -> np.ndarray:
    """``n`` points uniform on the triangle g_zxz + g_zz + g_x = 4, all >= 0.

    Rows are ``(g_zxz, g_zz, g_x)``.
    """
    rng = np.random.default_rng(seed)
    return 4.0 * rng.dirichlet(np.ones(3), size=n)


@dataclass(frozen=True)
class Batch:
    inputs: np.ndarray  # (n, 3)
    labels: np.ndarray  # (n,)
    targets: np.ndarray  # (n, 3) one-hot
    theta: np.ndarray  # (51,)

    def values(self, i: int) -> np.ndarray:
        """Parameter vector of the system's Hamiltonian for sample ``i``."""
        return np.concatenate([self.inputs[i], self.theta])

    def loss(self, i: int) -> MeanSquaredError:
        return MeanSquaredError(self.targets[i])

    def __len__(self) -> int:
        return len(self.inputs)


def make_batch(n: int = 10, input_seed: int = 2024, theta_seed: int = 1234) -> Batch:
    inputs = sample_inputs(n, input_seed)
    labels = np.array([label(g) for g in inputs])
    targets = np.eye(len(PHASES))[labels]
    return Batch(inputs, labels, targets, init_couplings(theta_seed))
