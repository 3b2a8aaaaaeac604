r"""Kitaev's honeycomb model on a periodic brick-wall lattice, and its 2-qubit phase sensor.

The model (Kitaev 2006), with the sign convention of Wanjura & Marquardt's published code
(``SupervisedQEP/KitaevPhaseSensor``: the notebook ``Kitaev_phase_sensor.ipynb`` and
``prepare_Kitaev_phase_sensor`` in ``qep.py``), is

.. math::

    H_K = J_x \sum_{x\text{-bonds}} X_i X_j + J_y \sum_{y\text{-bonds}} Y_i Y_j
          + J_z \sum_{z\text{-bonds}} Z_i Z_j ,

all signs **plus**, with the couplings ``(J_x, J_y, J_z)`` as Hamiltonian parameters (inputs of
the sensor, like :data:`qeprop.models.cluster_ising.PARAMS`).

Lattice and numbering
---------------------
A brick-wall drawing of the honeycomb on ``nx × ny`` sites (both even, periodic in both
directions); site ``(jx, jy)`` is qubit ``jx + jy * nx``. For ``(jx + jy)`` even the site has an
x-bond to ``(jx + 1, jy)`` and a z-bond to ``(jx + twist, jy - 1)``; for ``(jx + jy)`` odd it has a
y-bond to ``(jx + 1, jy)`` (indices mod ``nx``, ``ny``). Every site then has one bond of each type:
``nx * ny / 2`` bonds per type. The authors' lattice is ``nx = 8, ny = 2, twist = 0``: 16 spins,
whose z-bonds join qubits ``i`` and ``i + 8``.

Phases
------
On the triangle ``J_x + J_y + J_z = 1`` (``J_a >= 0``) the model has three gapped (toric-code
like, Abelian) **A** phases, where one coupling is at least the sum of the other two
(``J_a >= 1/2``), and the gapless **B** phase in between (the central triangle bounded by the
three lines ``J_a = 1/2``). The label rule, ``max J >= (sum of the other two)``, is the authors'
(``Jx >= Jy + Jz or ...``, boundary included in A) and is scale invariant.

Conserved fluxes: for every hexagon ``p`` the plaquette operator
``W_p = Π_{j ∈ p} σ_j^{a(j)}`` (``a(j)`` the type of the bond of ``j`` that leaves the hexagon)
commutes with ``H_K`` (:func:`plaquettes`). At ``J_z = 1`` the model is ``nx*ny/2`` decoupled
``Z Z`` dimers with ground energy ``-nx*ny/2``.

Sensor
------
The authors' sensor has two qubits (``n``, ``n + 1`` after the ``n`` lattice spins), coupled
through each of its six single-qubit Paulis to three bond operators of the lattice,
``Z_0 Z_{nx}`` (the z-bond at site 0), ``X_0 X_1`` (an x-bond) and ``Y_1 Y_2`` (a y-bond):
``3 × 6 = 18`` couplings, plus ``6`` sensor fields and ``9`` sensor-sensor terms, 33 in all, in
the authors' order (bond-major, then sensor Pauli ``X, Y, Z`` of the first and then of the second
sensor qubit; fields; products ``σ^a_n σ^b_{n+1}``). The readout is the first sensor qubit only:
output ``"A"`` is the projector on ``Z_n = +1`` and ``"B"`` the projector on ``Z_n = -1``, trained
towards the one-hot targets ``(1, 0)`` in the A phases and ``(0, 1)`` in the B phase.

This module is part of the core: it never prints and never touches files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ProblemError
from ..hamiltonian import ParametrisedHamiltonian, Term
from ..pauli import PauliString, PauliSum
from .sensor import SensorLayout

__all__ = [
    "AUTHORS_LATTICE",
    "BOND_TYPES",
    "PARAMS",
    "PHASES",
    "TEST_LABELS",
    "TEST_POINTS",
    "Lattice",
    "hamiltonian",
    "hamiltonian_terms",
    "lattice",
    "phase_labels",
    "plaquettes",
    "sample_batch",
    "sensor_layout",
    "triangle_coordinates",
    "triangle_grid",
]

#: parameter names of the three couplings (inputs of the sensor)
PARAMS: tuple[str, str, str] = ("J_x", "J_y", "J_z")
#: label names, index 0 = gapped A phases (target (1, 0)), 1 = gapless B phase (target (0, 1))
PHASES: tuple[str, str] = ("A", "B")
BOND_TYPES: tuple[str, str, str] = ("x", "y", "z")
#: the authors' lattice: ``(nx, ny, twist)``
AUTHORS_LATTICE: tuple[int, int, int] = (8, 2, 0)

#: the authors' fixed test set (notebook cell "test set"), verbatim: 9 points in B, then 9 in
#: the A phases (3 near each corner). Four of the "left"/"right" points have
#: ``J_x + J_y + J_z = 14/15`` rather than 1; they are kept as published (the label rule and the
#: physics up to an overall energy scale do not depend on the normalisation).
TEST_POINTS: np.ndarray = np.array(
    [
        # middle (B)
        [0.4, 0.4, 0.2],
        [0.2, 0.4, 0.4],
        [0.4, 0.2, 0.4],
        [0.3, 0.3, 0.4],
        [0.4, 0.3, 0.3],
        [0.3, 0.4, 0.3],
        [0.375, 0.375, 0.25],
        [0.25, 0.375, 0.375],
        [0.375, 0.25, 0.375],
        # top (A_z)
        [0.1, 0.1, 0.8],
        [0.1, 0.3, 0.6],
        [0.3, 0.1, 0.6],
        # left (A_x)
        [2 / 3 + (1 / 6 - 0.1), 1 / 6 - (1 / 6 - 0.1), 0.1],
        [2 / 3 - (1 / 6 - 0.1) - 0.066, 1 / 6 + (1 / 6 - 0.1) + 0.066, 0.1],
        [2 / 3 - (0.3 - 1 / 6) / 2, 1 / 6 - (0.3 - 1 / 6) / 2, 0.3],
        # right (A_y)
        [1 / 6 - (1 / 6 - 0.1) - 0.066, 2 / 3 + (1 / 6 - 0.1) + 0.066, 0.1],
        [1 / 6 + (1 / 6 - 0.1), 2 / 3 - (1 / 6 - 0.1), 0.1],
        [1 / 6 - (0.3 - 1 / 6) / 2, 2 / 3 - (0.3 - 1 / 6) / 2, 0.3],
    ]
)
#: labels of :data:`TEST_POINTS` as published (index into :data:`PHASES`)
TEST_LABELS: np.ndarray = np.array([1] * 9 + [0] * 9)


@dataclass(frozen=True)
class Lattice:
    """Bonds of the periodic brick-wall honeycomb.

    Attributes
    ----------
    nx, ny, twist:
        Size and boundary twist (see the module docstring).
    bonds:
        ``{"x": [(i, j), ...], "y": [...], "z": [...]}``, qubit pairs, ``nx*ny/2`` per type, in
        the authors' loop order (``jx`` outer, ``jy`` inner).
    """

    nx: int
    ny: int
    twist: int
    bonds: dict[str, tuple[tuple[int, int], ...]]

    @property
    def n_sites(self) -> int:
        return self.nx * self.ny

    def site(self, jx: int, jy: int) -> int:
        """Qubit of site ``(jx, jy)`` (indices taken mod ``nx``, ``ny``)."""
        return jx % self.nx + (jy % self.ny) * self.nx

    def neighbours(self) -> list[dict[str, int]]:
        """For every site, its neighbour along each bond type."""
        out: list[dict[str, int]] = [{} for _ in range(self.n_sites)]
        for kind, pairs in self.bonds.items():
            for i, j in pairs:
                out[i][kind] = j
                out[j][kind] = i
        return out


def _check_lattice(nx: object, ny: object, twist: object) -> tuple[int, int, int]:
    out = []
    for name, v, low in (("nx", nx, 4), ("ny", ny, 2), ("twist", twist, None)):
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v % 2:
            raise ProblemError(f"{name} must be an even integer, got {v!r}")
        if low is not None and v < low:
            raise ProblemError(f"{name} must be an even integer >= {low}, got {v!r}")
        out.append(int(v))
    return out[0], out[1], out[2]


@lru_cache(maxsize=16)
def lattice(nx: int = 8, ny: int = 2, twist: int = 0) -> Lattice:
    """The ``nx × ny`` periodic brick-wall honeycomb (default: the authors' 16 spins)."""
    nx, ny, twist = _check_lattice(nx, ny, twist)
    bonds: dict[str, list[tuple[int, int]]] = {k: [] for k in BOND_TYPES}

    def q(jx: int, jy: int) -> int:
        return jx % nx + (jy % ny) * nx

    for jx in range(nx):
        for jy in range(ny):
            if (jx + jy) % 2 == 0:
                bonds["x"].append((q(jx, jy), q(jx + 1, jy)))
                bonds["z"].append((q(jx, jy), q(jx + twist, jy - 1)))
            else:
                bonds["y"].append((q(jx, jy), q(jx + 1, jy)))
    lat = Lattice(nx, ny, twist, {k: tuple(v) for k, v in bonds.items()})
    if any(len(nb) != 3 for nb in lat.neighbours()):
        raise ProblemError(f"the {nx}x{ny} lattice with twist {twist} is not a honeycomb")
    return lat


def hamiltonian_terms(
    nx: int = 8, ny: int = 2, twist: int = 0, params: tuple[str, str, str] = PARAMS
) -> list[Term]:
    """Terms ``+1 · J_a · σ^a_i σ^a_j`` of :math:`H_K`: all x-bonds, then y-bonds, then z-bonds.

    Site ``(jx, jy)`` is qubit ``jx + jy * nx`` (qubits ``0 .. nx*ny - 1``).
    """
    if len(params) != 3 or len(set(params)) != 3:
        raise ProblemError(f"params must be three distinct names, got {list(params)}")
    lat = lattice(nx, ny, twist)
    terms = []
    for kind, name in zip(BOND_TYPES, params, strict=True):
        letter = kind.upper()
        for i, j in lat.bonds[kind]:
            terms.append(Term(1.0, PauliString.from_letters({i: letter, j: letter}), name))
    return terms


def hamiltonian(nx: int = 8, ny: int = 2, twist: int = 0) -> ParametrisedHamiltonian:
    """:math:`H_K` alone on ``nx*ny`` qubits, parameters :data:`PARAMS`."""
    return ParametrisedHamiltonian(nx * ny, hamiltonian_terms(nx, ny, twist), params=PARAMS)


def plaquettes(nx: int = 8, ny: int = 2, twist: int = 0) -> list[PauliString]:
    """Plaquette (flux) operators ``W_p``, one per hexagon (``nx*ny/2`` of them).

    The hexagon at an even site ``s = (jx, jy)`` is the closed path ``s, s + x̂, s + 2x̂`` and,
    one row down, ``(jx + twist + k, jy - 1)``, ``k = 2, 1, 0``. ``W_p`` is the product of the six
    bond operators ``σ^a_i σ^a_j`` along the path, i.e. (up to sign) the product over its sites of
    the Pauli of the bond type the path does not use there (the bond leaving the hexagon; on the
    ``ny = 2`` torus the middle sites' z-bonds close across the hexagon). ``W_p² = 1``, the ``W_p``
    commute with each other and with :math:`H_K`, and on a torus ``Π_p W_p = 1``.
    """
    lat = lattice(nx, ny, twist)
    nb = lat.neighbours()
    out = []
    for jx in range(lat.nx):
        for jy in range(lat.ny):
            if (jx + jy) % 2:
                continue
            # the hexagon as a closed path s0 - s1 - s2 (row jy) - s3 - s4 - s5 (row jy - 1)
            ring = [lat.site(jx + k, jy) for k in range(3)]
            ring += [lat.site(jx + lat.twist + k, jy - 1) for k in (2, 1, 0)]
            if len(set(ring)) != 6:
                raise ProblemError(f"the {nx}x{ny} lattice is too small for hexagons")
            edges = []
            for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
                kinds = [k for k, t in nb[a].items() if t == b]
                if len(kinds) != 1:
                    raise ProblemError(f"sites {a}, {b} of a hexagon are not joined by one bond")
                edges.append(kinds[0])
            # W_p = product of the six bond operators along the path = ± product over its sites of
            # the Pauli of the bond type that the path does not use at that site
            letters = {}
            for i, s in enumerate(ring):
                used = {edges[i - 1], edges[i]}
                (free,) = set(BOND_TYPES) - used
                letters[s] = free.upper()
            out.append(PauliString.from_letters(letters))
    return out


def _as_points(points: object) -> np.ndarray:
    p = np.asarray(points, dtype=float)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 3 or not np.all(np.isfinite(p)):
        raise ProblemError(f"points must be finite (J_x, J_y, J_z) rows, got shape {p.shape}")
    return p


def phase_labels(points: object) -> np.ndarray:
    """Phase index per point: ``0`` (A: some ``J_a >= `` sum of the other two) or ``1`` (B).

    ``points`` is ``(N, 3)`` (or one triple) of ``(J_x, J_y, J_z)``; returns ``(N,)`` ints.
    """
    p = _as_points(points)
    a = 2.0 * p.max(axis=1) >= p.sum(axis=1)
    return np.where(a, 0, 1)


def _draw(rng: np.random.Generator, first: int, second: int) -> np.ndarray:
    """One point of the A phase of coupling ``first``, drawn as the authors' sampler does."""
    while True:
        a = rng.uniform(0.5, 1.0)
        b = rng.uniform(0.0, 0.5)
        if 1.0 - a - b >= 0:
            break
    out = np.empty(3)
    out[first], out[second] = a, b
    out[3 - first - second] = 1.0 - a - b
    return out


def sample_batch(batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A training batch as the authors' ``sample_batch_Kitaev_phase_sensor`` draws it.

    For each group of six: one point in each A phase (``A_x``: ``J_x ~ U[0.5, 1)``,
    ``J_y ~ U[0, 0.5)``; ``A_y``: ``J_y, J_z``; ``A_z``: ``J_z, J_x``; the third coupling is
    ``1 - `` the others, redrawn while negative), then three points of the B phase
    (``J_x, J_z ~ U[0, 0.5)``, ``J_y = 1 - J_x - J_z``, redrawn while ``J_y > 0.5``). The batch is
    thus balanced, half A and half B.

    Returns ``(points (batch_size, 3), labels (batch_size,))`` with labels indexing
    :data:`PHASES`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ProblemError(f"batch_size must be a positive multiple of 6, got {batch_size!r}")
    if batch_size < 6 or batch_size % 6:
        raise ProblemError(f"batch_size must be a positive multiple of 6, got {batch_size!r}")
    pts, labels = [], []
    for _ in range(int(batch_size) // 6):
        for first, second in ((0, 1), (1, 2), (2, 0)):
            pts.append(_draw(rng, first, second))
            labels.append(0)
        for _ in range(3):
            while True:
                jx = rng.uniform(0.0, 0.5)
                jz = rng.uniform(0.0, 0.5)
                jy = 1.0 - jz - jx
                if jy <= 0.5:
                    break
            pts.append(np.array([jx, jy, jz]))
            labels.append(1)
    return np.array(pts), np.array(labels)


def triangle_grid(resolution: int) -> np.ndarray:
    """``(J_x, J_y, J_z)`` on a regular grid of the triangle ``J_x + J_y + J_z = 1``.

    ``resolution`` intervals per side: ``(resolution + 1)(resolution + 2)/2`` points.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ProblemError(f"resolution must be a positive integer, got {resolution!r}")
    pts = [
        (i / resolution, j / resolution, (resolution - i - j) / resolution)
        for i in range(resolution + 1)
        for j in range(resolution + 1 - i)
    ]
    return np.clip(np.array(pts), 0.0, None)


def triangle_coordinates(points: object) -> np.ndarray:
    """Planar coordinates ``(J_y + J_z/2, J_z √3/2)`` of the normalised couplings, ``(N, 2)``.

    The authors' ``diag_map``, applied after dividing by ``J_x + J_y + J_z``: the corners
    ``J_x = 1``, ``J_y = 1`` and ``J_z = 1`` sit at ``(0, 0)``, ``(1, 0)`` and ``(1/2, √3/2)``.
    """
    p = _as_points(points)
    p = p / p.sum(axis=1, keepdims=True)
    return np.column_stack([p[:, 1] + p[:, 2] / 2, p[:, 2] * np.sqrt(3) / 2])


def _coupling_name(prefix: str, ops: list[tuple[int, str]]) -> str:
    return f"{prefix}[" + ",".join(f"{a}{q}" for q, a in ops) + "]"


def sensor_bonds(nx: int = 8) -> tuple[tuple[str, PauliString], ...]:
    """The three bond operators the authors' sensor couples to: ``Z_0 Z_nx``, ``X_0 X_1``,
    ``Y_1 Y_2`` (the z-bond of site 0, an x-bond and a y-bond of the first row), with names."""
    return (
        (f"Z0Z{nx}", PauliString.from_letters({0: "Z", nx: "Z"})),
        ("X0X1", PauliString.from_letters({0: "X", 1: "X"})),
        ("Y1Y2", PauliString.from_letters({1: "Y", 2: "Y"})),
    )


def sensor_layout(nx: int = 8, ny: int = 2) -> SensorLayout:
    """The authors' 2-qubit sensor on qubits ``nx*ny``, ``nx*ny + 1`` (33 couplings).

    Coupling names: ``v[Z0Z8,X16]`` (bond operator times sensor Pauli), ``h[X16]`` (sensor
    field), ``j[X16,Z17]`` (sensor-sensor term); the order is the authors' (see the module
    docstring). Outputs: ``"A"`` ``= (1 + Z_n)/2`` and ``"B"`` ``= (1 - Z_n)/2``, ``n = nx*ny``.
    """
    n = nx * ny
    sens = [(n, a) for a in "XYZ"] + [(n + 1, a) for a in "XYZ"]
    terms: list[Term] = []
    names: list[str] = []
    kinds: list[bool] = []
    for bond_name, bond in sensor_bonds(nx):
        for q, a in sens:
            name = f"v[{bond_name},{a}{q}]"
            letters = {**bond.letters(), q: a}
            terms.append(Term(1.0, PauliString.from_letters(letters), name))
            names.append(name)
            kinds.append(True)
    for q, a in sens:
        name = _coupling_name("h", [(q, a)])
        terms.append(Term(1.0, PauliString.from_letters({q: a}), name))
        names.append(name)
        kinds.append(False)
    for a in "XYZ":
        for b in "XYZ":
            name = _coupling_name("j", [(n, a), (n + 1, b)])
            terms.append(Term(1.0, PauliString.from_letters({n: a, n + 1: b}), name))
            names.append(name)
            kinds.append(False)
    outputs = {"A": PauliSum.projector({n: 0}), "B": PauliSum.projector({n: 1})}
    return SensorLayout(tuple(terms), tuple(names), np.array(kinds, dtype=bool), outputs)
