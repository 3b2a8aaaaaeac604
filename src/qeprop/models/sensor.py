"""A trainable quantum sensor coupled to a many-body system (Wanjura & Marquardt, Fig. 2a-b).

``n`` sensor qubits are coupled to chosen sites of a system with every product
``P_site ⊗ Q_sensor`` of a system Pauli ``P`` and a sensor Pauli ``Q`` from a chosen set, plus every
single-qubit and every two-qubit term inside the sensor. With the defaults (2 sensor qubits,
2 sites, ``couplings="xyz"``) this is ``2·2·9 = 36`` system-sensor couplings, ``2·3 = 6``
single-qubit and ``9`` two-qubit sensor terms: 51 trainable couplings. The outputs are
projectors on Z-basis states of the sensor.

Coupling names: ``v[Z0,X8]`` (system Pauli Z on site 0 times sensor Pauli X on qubit 8),
``h[X8]`` (sensor field), ``j[X8,Z9]`` (sensor-sensor coupling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..checks import MAX_QUBITS, nonnegative_int, readonly
from ..errors import ProblemError
from ..hamiltonian import Term
from ..pauli import PauliString, PauliSum

__all__ = ["COUPLING_SETS", "SensorLayout", "sensor_layout"]

#: system-sensor coupling sets: (system Paulis, sensor Paulis)
COUPLING_SETS: dict[str, tuple[str, str]] = {
    "xyz": ("XYZ", "XYZ"),
    "xz": ("XZ", "XZ"),
    "zz": ("Z", "Z"),
}


@dataclass(frozen=True)
class SensorLayout:
    """The sensor's terms, coupling names and readout projectors.

    Attributes
    ----------
    terms : tuple of Term
        ``coeff 1 × coupling × Pauli string`` for every trainable coupling.
    names : tuple of str
        Coupling names in the order of ``terms``.
    system_sensor : (P,) bool array
        True for system-sensor couplings (the others act inside the sensor).
    outputs : dict
        Readout projectors by name.
    """

    terms: tuple[Term, ...]
    names: tuple[str, ...]
    system_sensor: np.ndarray
    outputs: dict[str, PauliSum]

    def init_params(
        self, rng: np.random.Generator, coupling_scale: float = 0.1, sensor_scale: float = 1.0
    ) -> np.ndarray:
        """Initial couplings as in the paper's code: system-sensor U(±0.1), sensor N(0, 1)."""
        p = len(self.names)
        out = sensor_scale * rng.standard_normal(p)
        out[self.system_sensor] = rng.uniform(
            -coupling_scale, coupling_scale, int(self.system_sensor.sum())
        )
        return out


def _qubits(qubits: Sequence[int], name: str, noun: str) -> list[int]:
    """Distinct qubit indices, each a non-negative integer below MAX_QUBITS."""
    if isinstance(qubits, str | bytes) or not isinstance(qubits, Sequence | np.ndarray):
        raise ProblemError(f"must be a list of qubit indices, got {qubits!r}", where=name)
    out: list[int] = []
    for i, q in enumerate(qubits):
        k = nonnegative_int(q, f"{name}[{i}]", MAX_QUBITS - 1)
        if k in out:
            raise ProblemError(f"{name} has a duplicate {noun} {k}")
        out.append(k)
    if not out:
        raise ProblemError(f"{name} is empty")
    return out


def sensor_layout(
    sensor_qubits: Sequence[int],
    system_sites: Sequence[int],
    couplings: str = "xyz",
    readout: Mapping[str, Sequence[int]] | None = None,
) -> SensorLayout:
    """Terms and readout of a sensor on ``sensor_qubits`` coupled to ``system_sites``.

    Parameters
    ----------
    sensor_qubits:
        Qubit indices of the sensor (e.g. ``(8, 9)`` after an 8-site chain).
    system_sites:
        Sites of the system the sensor couples to (e.g. ``(0, 1)``).
    couplings:
        ``"xyz"`` (every system Pauli times every sensor Pauli), ``"xz"`` (X and Z only) or
        ``"zz"`` (Z-Z couplings only).
    readout:
        Output name -> Z-basis bit string of the sensor (0 = spin up, ``Z = +1``). Default for two
        sensor qubits: ``cluster = 00`` (↑↑), ``ferromagnet = 01`` (↑↓), ``paramagnet = 11`` (↓↓).
    """
    if not isinstance(couplings, str) or couplings not in COUPLING_SETS:
        raise ProblemError(
            f"unknown sensor coupling set {couplings!r}; choose one of {sorted(COUPLING_SETS)}"
        )
    sensor = _qubits(sensor_qubits, "sensor_qubits", "qubit")
    sites = _qubits(system_sites, "sensor_sites", "site")
    both = sorted(set(sensor) & set(sites))
    if both:
        raise ProblemError(
            f"qubit {both[0]} is both a sensor qubit {sensor} and a sensor site {sites}"
        )
    sys_letters, sens_letters = COUPLING_SETS[couplings]
    terms: list[Term] = []
    names: list[str] = []
    kinds: list[bool] = []

    def add(name: str, pauli: str, system: bool) -> None:
        names.append(name)
        terms.append(Term(1.0, PauliString.parse(pauli), name))
        kinds.append(system)

    for q in sensor:
        for s in sites:
            for a in sys_letters:
                for b in sens_letters:
                    add(f"v[{a}{s},{b}{q}]", f"{a}{s} {b}{q}", True)
    for q in sensor:
        for a in "XYZ":
            add(f"h[{a}{q}]", f"{a}{q}", False)
    for i, q1 in enumerate(sensor):
        for q2 in sensor[i + 1 :]:
            for a in "XYZ":
                for b in "XYZ":
                    add(f"j[{a}{q1},{b}{q2}]", f"{a}{q1} {b}{q2}", False)
    if readout is None:
        if len(sensor) != 2:
            raise ProblemError("give a readout mapping for a sensor of other than two qubits")
        readout = {"cluster": (0, 0), "ferromagnet": (0, 1), "paramagnet": (1, 1)}
    outputs = {}
    for name, bits in readout.items():
        if isinstance(bits, str) or len(bits) != len(sensor):
            raise ProblemError(f"readout {name!r} needs {len(sensor)} bits, got {bits!r}")
        outputs[name] = PauliSum.projector(dict(zip(sensor, bits, strict=True)))
    return SensorLayout(tuple(terms), tuple(names), readonly(np.array(kinds, dtype=bool)), outputs)
