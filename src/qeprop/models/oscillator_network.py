"""Harmonic oscillator networks: Scellier's quantum network (eqs. 41-42) and its classical twin.

``N`` particles on a line at positions ``r_i`` (masses ``m``), joined by springs ``k_ij`` along the
edges of a graph, some of them pinned to the origin by fixed springs ``κ`` (so the network has a
unique equilibrium), pushed by input forces ``F_i`` on the input nodes:

.. math::  H = Σ_i \\frac{p_i^2}{2m} + \\frac12 Σ_{(i,j)} k_{ij} (r_i - r_j)^2
               + \\frac{κ}{2} Σ_{i \\in pins} r_i^2 - Σ_{i \\in inputs} F_i r_i .

The outputs are the squared distances ``y_o = ⟨(r_a - r_b)^2⟩`` of the output pairs
``o = (a, b)``; the springs ``k_ij`` are trained, the forces are the inputs ``x``.
``∂H/∂k_ij = (r_i - r_j)^2 / 2`` (eq. 42): every gradient is read from the same position
measurements as the outputs (all ``r_i`` commute: one measurement setting).

The quantum ground state is Gaussian (the ``gaussian`` backend): mean ``r̄ = K⁻¹ F`` with the
stiffness matrix ``K = Σ k_ij (e_i - e_j)(e_i - e_j)ᵀ + κ Σ_pins e_i e_iᵀ``, the classical
equilibrium, and position covariance ``V_rr = (ħ/2) (m K)^{-1/2}`` (zero-point motion), so
``y_o = (r̄_a - r̄_b)^2 + Var(r_a - r_b)``: the fluctuations add ``O(ħ)`` to every output.

The classical twin (:class:`ClassicalNetwork`) is the same springs without ``p`` and ``ħ``: the
energy ``E(r) = ½ rᵀ K r - F·r`` is minimised at ``r* = K⁻¹ F`` with outputs
``y_o = (r*_a - r*_b)^2``, trained by classical equilibrium propagation (Scellier eqs. 5-10): the
nudged state minimises ``E + β C`` with the cost ``C(r) = Σ_o ((r_a - r_b)^2 - t_o)^2`` and the
weight update uses ``(∂E/∂k(r^β) - ∂E/∂k(r^0))/β``. As ``ħ → 0`` the quantum outputs and
gradients become the classical ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np

from ..errors import ConvergenceError, ProblemError
from ..modes import ModeHamiltonian
from ..quadratures import QuadSum
from ..system import QEPSystem

__all__ = [
    "ClassicalNetwork",
    "ElasticNetwork",
    "force_name",
    "output_name",
    "quantum_system",
    "random_network",
    "spring_name",
]


def spring_name(i: int, j: int) -> str:
    """Parameter name of the spring between nodes ``i < j``."""
    return f"k[{i},{j}]"


def force_name(i: int) -> str:
    """Parameter name of the input force on node ``i``."""
    return f"F[{i}]"


def output_name(a: int, b: int) -> str:
    """Output name of the squared distance of nodes ``a`` and ``b``."""
    return f"d2[{a},{b}]"


@dataclass(frozen=True)
class ElasticNetwork:
    """The graph of a network (plain data).

    Attributes
    ----------
    n_nodes : int
    edges : tuple of (i, j), i < j
        The trainable springs.
    pinned : tuple of int
        Nodes tied to the origin by a fixed spring of stiffness ``pin_stiffness``.
    inputs : tuple of int
        Nodes where the input forces act.
    outputs : tuple of (a, b)
        Node pairs whose squared distance is read out.
    mass, pin_stiffness : float
    """

    n_nodes: int
    edges: tuple[tuple[int, int], ...]
    pinned: tuple[int, ...]
    inputs: tuple[int, ...]
    outputs: tuple[tuple[int, int], ...]
    mass: float = 1.0
    pin_stiffness: float = 1.0

    def __post_init__(self) -> None:
        n = self.n_nodes
        if n < 2:
            raise ProblemError(f"a network needs at least 2 nodes, got {n}")
        for i, j in (*self.edges, *self.outputs):
            if not (0 <= i < j < n):
                raise ProblemError(f"node pair ({i}, {j}) must satisfy 0 <= i < j < {n}")
        for i in (*self.pinned, *self.inputs):
            if not 0 <= i < n:
                raise ProblemError(f"node {i} is out of range for {n} nodes")
        if len(set(self.edges)) != len(self.edges):
            raise ProblemError("an edge is listed twice")
        if not self.pinned:
            raise ProblemError("pin at least one node: a free network has a zero mode")
        if not (self.mass > 0 and self.pin_stiffness > 0):
            raise ProblemError("mass and pin_stiffness must be > 0")

    @property
    def spring_names(self) -> tuple[str, ...]:
        return tuple(spring_name(i, j) for i, j in self.edges)

    @property
    def force_names(self) -> tuple[str, ...]:
        return tuple(force_name(i) for i in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(output_name(a, b) for a, b in self.outputs)

    @cached_property
    def incidence(self) -> np.ndarray:
        """``D`` ``(n_edges, N)``: row ``e = (i, j)`` is ``e_i - e_j``."""
        d = np.zeros((len(self.edges), self.n_nodes))
        for e, (i, j) in enumerate(self.edges):
            d[e, i], d[e, j] = 1.0, -1.0
        return d

    @cached_property
    def readout(self) -> np.ndarray:
        """``(n_outputs, N)``: row ``o = (a, b)`` is ``e_a - e_b``."""
        d = np.zeros((len(self.outputs), self.n_nodes))
        for o, (a, b) in enumerate(self.outputs):
            d[o, a], d[o, b] = 1.0, -1.0
        return d

    def stiffness(self, springs: np.ndarray) -> np.ndarray:
        """``K = Dᵀ diag(k) D + κ P`` ``(N, N)`` (``P`` the projector on the pinned nodes)."""
        k = np.asarray(springs, dtype=float)
        out = self.incidence.T @ (k[:, None] * self.incidence)
        out[list(self.pinned), list(self.pinned)] += self.pin_stiffness
        return out

    def force_vector(self, forces: np.ndarray) -> np.ndarray:
        """Forces on every node ``(N,)`` from the input forces ``(n_inputs,)``."""
        f = np.zeros(self.n_nodes)
        np.add.at(f, list(self.inputs), np.asarray(forces, dtype=float))
        return f


def random_network(
    n_nodes: int, extra_edges: int, n_inputs: int, n_outputs: int, seed: int
) -> ElasticNetwork:
    """A connected random network: a random spanning chain plus ``extra_edges`` random springs;
    node 0 and node ``N-1`` of the chain pinned; inputs and output pairs on distinct random nodes.
    """
    if n_inputs < 1 or n_outputs < 1:
        raise ProblemError("a network needs at least one input and one output")
    if n_inputs + 2 * n_outputs > n_nodes:
        raise ProblemError(
            f"{n_inputs} inputs and {n_outputs} output pairs need at least "
            f"{n_inputs + 2 * n_outputs} nodes, got {n_nodes}"
        )
    most = n_nodes * (n_nodes - 1) // 2 - (n_nodes - 1)
    if not 0 <= extra_edges <= most:
        raise ProblemError(f"extra_edges must be in [0, {most}] for {n_nodes} nodes")
    rng = np.random.default_rng([seed, n_nodes, extra_edges, n_inputs, n_outputs])
    order = rng.permutation(n_nodes)
    edges = {tuple(sorted((int(a), int(b)))) for a, b in pairwise(order)}
    others = [(i, j) for i in range(n_nodes) for j in range(i + 1, n_nodes) if (i, j) not in edges]
    for idx in rng.choice(len(others), size=extra_edges, replace=False):
        edges.add(others[int(idx)])
    pinned = tuple(sorted({int(order[0]), int(order[-1])}))
    free = [int(i) for i in rng.permutation(n_nodes)]
    inputs = tuple(sorted(free[:n_inputs]))
    rest = free[n_inputs:]
    outputs = tuple(tuple(sorted((rest[2 * o], rest[2 * o + 1]))) for o in range(n_outputs))
    return ElasticNetwork(
        n_nodes,
        tuple(sorted(edges)),  # type: ignore[arg-type]
        pinned,
        inputs,
        outputs,  # type: ignore[arg-type]
    )


def quantum_system(net: ElasticNetwork, hbar: float = 1.0) -> QEPSystem:
    """Scellier's quantum oscillator network (eq. 41) as a QEP system.

    Parameters: the input forces ``F[i]`` (inputs, first) then the springs ``k[i,j]``
    (trainable); outputs ``d2[a,b] = (r_a - r_b)^2``.
    """
    terms: list[tuple[float, str] | tuple[float, str, str]] = []
    for i in range(net.n_nodes):
        terms.append((0.5 / net.mass, f"p{i} p{i}"))
    for i in net.pinned:
        terms.append((0.5 * net.pin_stiffness, f"r{i} r{i}"))
    for (i, j), name in zip(net.edges, net.spring_names, strict=True):
        terms += [(0.5, f"r{i} r{i}", name), (0.5, f"r{j} r{j}", name), (-1.0, f"r{i} r{j}", name)]
    for i, name in zip(net.inputs, net.force_names, strict=True):
        terms.append((-1.0, f"r{i}", name))
    ham = ModeHamiltonian(
        net.n_nodes, terms, params=[*net.force_names, *net.spring_names], hbar=hbar
    )
    outputs = {
        name: QuadSum.from_terms([(1.0, f"r{a} r{a}"), (1.0, f"r{b} r{b}"), (-2.0, f"r{a} r{b}")])
        for (a, b), name in zip(net.outputs, net.output_names, strict=True)
    }
    return QEPSystem(ham, outputs, trainable=list(net.spring_names))


class ClassicalNetwork:
    """The classical elastic network with the same springs, trained by classical EP.

    Energy ``E(r) = ½ rᵀ K(k) r - F·r``, cost ``C(r) = Σ_o ((d_oᵀ r)^2 - t_o)^2`` (the mean
    squared-distance loss of the quantum network), ``∂E/∂k_e = (d_eᵀ r)^2 / 2``.
    """

    def __init__(self, net: ElasticNetwork) -> None:
        self.net = net

    def equilibrium(
        self,
        springs: np.ndarray,
        forces: np.ndarray,
        nudge: float = 0.0,
        targets: np.ndarray | None = None,
        start: np.ndarray | None = None,
    ) -> np.ndarray:
        """``argmin_r E(r) + β C(r)`` ``(N,)``: ``K⁻¹F`` at ``β = 0``, else Newton's method from
        ``start`` (default: the free state), to a gradient norm of ``1e-13 (1 + |F|)``."""
        net = self.net
        k_mat = net.stiffness(springs)
        f = net.force_vector(forces)
        if nudge == 0.0:
            return np.linalg.solve(k_mat, f)
        r = np.linalg.solve(k_mat, f) if start is None else np.array(start, dtype=float)
        if targets is None:
            raise ProblemError("a nudged equilibrium needs the targets")
        d = net.readout
        t = np.asarray(targets, dtype=float)
        scale = 1e-13 * (1.0 + float(np.linalg.norm(f)) + float(np.linalg.norm(k_mat)))
        for _ in range(100):
            u = d @ r
            g = u**2 - t
            grad = k_mat @ r - f + nudge * (d.T @ (4.0 * g * u))
            if float(np.linalg.norm(grad)) <= scale:
                return r
            hess = k_mat + nudge * (d.T @ ((4.0 * (3.0 * u**2 - t))[:, None] * d))
            if np.linalg.eigvalsh(hess)[0] <= 0:
                raise ConvergenceError(
                    f"the classical energy E + βC has no minimum near the free state at "
                    f"β = {nudge:g}: the cost's curvature exceeds the network's stiffness; "
                    "lower the nudge"
                )
            r = r - np.linalg.solve(hess, grad)
        raise ConvergenceError(
            f"the nudged classical equilibrium did not converge (β = {nudge:g}); lower the nudge"
        )

    def outputs(self, springs: np.ndarray, forces: np.ndarray) -> np.ndarray:
        """``y_o = (r*_a - r*_b)^2`` ``(n_outputs,)``."""
        return (self.net.readout @ self.equilibrium(springs, forces)) ** 2

    def loss(self, springs: np.ndarray, forces: np.ndarray, targets: np.ndarray) -> float:
        """``C(r*) = Σ_o (y_o - t_o)^2``."""
        return float(np.sum((self.outputs(springs, forces) - np.asarray(targets)) ** 2))

    def energy_derivatives(self, r: np.ndarray) -> np.ndarray:
        """``∂E/∂k_e = (d_eᵀ r)^2 / 2`` ``(n_edges,)``."""
        return 0.5 * (self.net.incidence @ r) ** 2

    def exact_gradient(
        self, springs: np.ndarray, forces: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        """``dC(r*(k))/dk`` by the adjoint method: with ``λ = K⁻¹ ∂C/∂r``,
        ``dC/dk_e = -(d_eᵀ λ)(d_eᵀ r*)``."""
        net = self.net
        k_mat = net.stiffness(springs)
        r = np.linalg.solve(k_mat, net.force_vector(forces))
        u = net.readout @ r
        dc_dr = net.readout.T @ (4.0 * (u**2 - np.asarray(targets)) * u)
        lam = np.linalg.solve(k_mat, dc_dr)
        return -(net.incidence @ lam) * (net.incidence @ r)

    def ep_gradient(
        self,
        springs: np.ndarray,
        forces: np.ndarray,
        targets: np.ndarray,
        nudge: float,
        variant: str = "centered",
    ) -> np.ndarray:
        """Classical EP's estimate (Scellier eq. 10) of ``dC/dk``.

        ``positive``: ``(∂E/∂k(r^β) - ∂E/∂k(r^0))/β``; ``negative``: ``(∂E/∂k(r^0) -
        ∂E/∂k(r^{-β}))/β``; ``centered``: ``(∂E/∂k(r^β) - ∂E/∂k(r^{-β}))/2β``.
        """
        free = self.equilibrium(springs, forces)
        signs = {"positive": (1, 0), "negative": (0, -1), "centered": (1, -1)}.get(variant)
        if signs is None:
            raise ProblemError(f"unknown variant {variant!r}; choose positive, negative, centered")
        de = {}
        for s in set(signs):
            r = free if s == 0 else self.equilibrium(springs, forces, s * nudge, targets, free)
            de[s] = self.energy_derivatives(r)
        return (de[signs[0]] - de[signs[1]]) / ((signs[0] - signs[1]) * nudge)
