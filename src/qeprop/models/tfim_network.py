r"""Transverse-field Ising networks (Scellier 2024, Sec. 4.1) as QEP systems.

The trainable part is Scellier's eq. 33 on the edges ``E`` of a graph,

.. math::

    H(x, J, h) = -\sum_{(j,k) \in E} J_{jk} Z_j Z_k \;-\; \sum_k h_k X_k
                 \;-\; \sum_{i} x_i Z_{\mathrm{in}(i)}
                 \;\big[-\; \sum_{k \notin \mathrm{in}} g_k Z_k \big],

with ``∂H/∂J_jk = -Z_j Z_k`` and ``∂H/∂h_k = -X_k`` (eq. 38): every coupling's observable is a
``ZZ`` string and every field's an ``X`` string, so all of them are read in two measurement
settings (all-Z and all-X). The prediction is ``⟨Z_o⟩`` of the output spins in the ground
state.

How inputs enter (the paper leaves it open)
-------------------------------------------
Inputs are **longitudinal** fields ``-x_i Z`` on the input spins, the quantum version of the bias
fields ``h_k σ_k`` of the classical Ising network (eq. 15). Transverse (``X``) input fields
cannot work: every term of eq. 33 commutes with the spin flip ``P = Π_k X_k``, which maps
``Z_k -> -Z_k``, so a non-degenerate ground state is a ``P`` eigenstate and ``⟨Z_o⟩ = 0`` for
every input. ``Z`` inputs break that symmetry, but ``P`` still maps ``H(x)`` to ``H(-x)``: with
eq. 33 alone the outputs are odd functions of the inputs, ``⟨Z_o⟩(-x) = -⟨Z_o⟩(x)``, and an input
at the origin (an average flower, after standardising) gives ``⟨Z_o⟩ = 0`` for every class. The
``bias`` option removes that constraint:

``"spin"`` (default)
    one more input spin whose field is a constant ``bias_field`` (the bias unit of a neural
    network): its couplings to the network act as trainable biases, and the trainable
    parameters stay those of eq. 33.
``"fields"``
    trainable longitudinal fields ``g_k`` on every hidden and output spin (eq. 15's biases).
``"none"``
    eq. 33 alone (outputs odd in ``x``).

Spins, graphs and names
-----------------------
Spins are numbered input spins first (``0 .. n_inputs - 1``), then the bias spin (``"spin"``),
the hidden spins layer by layer, and the output spins last; qubit ``q`` is spin ``q``. Graphs:

``"layered"``     all-to-all couplings between consecutive layers (inputs and bias spin,
                  hidden layers, outputs), none inside a layer;
``"all-to-all"``  every pair of spins (the hidden spins form one pool: only their number counts);
``"edges"``       the given list of spin pairs.

Parameter names: inputs ``x[0]``, ``x[1]``, ... and ``x[bias]`` (fixed, not trainable),
couplings ``J[j,k]`` (``j < k``, in edge order), transverse fields ``h[k]`` on every spin,
longitudinal biases ``g[k]`` (``bias="fields"``). Outputs ``Z<q>`` (e.g. ``"Z10"``), in the order
of the output spins.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..checks import finite_real, nonnegative_int, positive_int
from ..errors import ProblemError
from ..hamiltonian import ParametrisedHamiltonian, Term
from ..pauli import PauliString, PauliSum
from ..system import QEPSystem

__all__ = [
    "BIASES",
    "GRAPHS",
    "MAX_SPINS",
    "TFIMNetwork",
    "build_network",
    "graph_edges",
    "parse_edges",
]

GRAPHS = ("layered", "all-to-all", "edges")
BIASES = ("spin", "fields", "none")
#: most spins of a network (2^24 amplitudes; a training loop wants far fewer, see the experiment)
MAX_SPINS = 24


@dataclass(frozen=True)
class TFIMNetwork:
    """A transverse-field Ising network as a QEP system (see the module docstring).

    Attributes
    ----------
    system : QEPSystem
        ``H(x, θ)`` with the inputs ``x`` (``input_names``) first and the trainable parameters
        ``θ = (J, h[, g])`` after them (= ``system.trainable``); outputs ``Z<q>`` of the output
        spins.
    input_spins, hidden_spins, output_spins : tuples of int
        The data input spins, the hidden spins and the output spins.
    bias_spin : int or None
        The spin with the constant input field ``bias_field`` (``bias="spin"``).
    edges : tuple of (j, k)
        The coupled pairs, ``j < k``, in the order of ``coupling_names``.
    input_names, coupling_names, field_names, bias_names : tuples of str
        ``x[i]`` (and ``x[bias]``), ``J[j,k]``, ``h[k]``, ``g[k]``.
    bias_field : float
        The constant field of the bias spin.
    """

    system: QEPSystem
    input_spins: tuple[int, ...]
    bias_spin: int | None
    hidden_spins: tuple[int, ...]
    output_spins: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]
    input_names: tuple[str, ...]
    coupling_names: tuple[str, ...]
    field_names: tuple[str, ...]
    bias_names: tuple[str, ...]
    bias_field: float

    @property
    def n_spins(self) -> int:
        return self.system.hamiltonian.n_qubits

    @property
    def n_inputs(self) -> int:
        return len(self.input_spins)

    @property
    def trainable(self) -> tuple[str, ...]:
        return self.system.trainable

    def values(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Parameter vectors of ``H(x, θ)``: ``(n_inputs,)`` -> ``(P,)``, ``(B, n_inputs)`` ->
        ``(B, P)`` (the bias spin's constant field is appended to each input)."""
        x = np.asarray(x, dtype=float)
        theta = np.asarray(theta, dtype=float)
        if x.shape[-1] != self.n_inputs or theta.shape != (len(self.trainable),):
            raise ProblemError(
                f"expected inputs (..., {self.n_inputs}) and {len(self.trainable)} couplings, "
                f"got {x.shape} and {theta.shape}"
            )
        batch = x.reshape(-1, self.n_inputs)
        cols = [batch]
        if self.bias_spin is not None:
            cols.append(np.full((len(batch), 1), self.bias_field))
        cols.append(np.broadcast_to(theta, (len(batch), len(theta))))
        out = np.concatenate(cols, axis=1)
        return out[0] if x.ndim == 1 else out

    def init_params(
        self,
        rng: np.random.Generator,
        coupling_scale: float = 0.5,
        field: float = 1.0,
        field_spread: float = 0.1,
    ) -> np.ndarray:
        """Initial ``θ``: ``J ~ N(0, coupling_scale²)``, ``h ~ field · (1 + field_spread N(0,
        1))``, ``g = 0``.

        The transverse fields start away from zero: at ``h = 0`` the Hamiltonian is diagonal
        (a classical ground state, whose outputs do not respond to small changes) and
        ``∂⟨Z_o⟩/∂h_k = 0`` there by the symmetry ``h_k -> -h_k`` (conjugation by ``Z_k``).
        """
        j = coupling_scale * rng.standard_normal(len(self.coupling_names))
        h = field * (1.0 + field_spread * rng.standard_normal(len(self.field_names)))
        return np.concatenate([j, h, np.zeros(len(self.bias_names))])

    def dense(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The dense matrix of ``H(x, θ)`` (small networks; for checks)."""
        return self.system.hamiltonian.dense(self.values(x, theta))


def parse_edges(
    items: Sequence[str] | Sequence[Sequence[int]], n_spins: int
) -> list[tuple[int, int]]:
    """Edges from ``"j-k"`` text or ``(j, k)`` pairs, as sorted pairs ``(min, max)``.

    Every spin must be one of ``0 .. n_spins - 1``; self-loops and repeated pairs (in either
    order) are refused, naming the item (``edges[2]``).
    """
    out: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        where = f"edges[{i}]"
        if isinstance(item, str):
            parts = item.replace(",", "-").split("-")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise ProblemError(f"expected 'j-k' (two spin numbers), got {item!r}", where=where)
            pair = [int(p) for p in parts]
        elif isinstance(item, Sequence) and len(item) == 2:
            pair = [nonnegative_int(v, where) for v in item]
        else:
            raise ProblemError(f"expected 'j-k' or a pair of spins, got {item!r}", where=where)
        j, k = sorted(pair)
        if k >= n_spins:
            raise ProblemError(
                f"spin {k} is not a spin of the network (spins 0..{n_spins - 1})", where=where
            )
        if j == k:
            raise ProblemError(f"a spin cannot be coupled to itself ({item!r})", where=where)
        if (j, k) in out:
            raise ProblemError(f"the pair {j}-{k} is listed twice", where=where)
        out.append((j, k))
    if not out:
        raise ProblemError("the edge list is empty", where="edges")
    return out


def graph_edges(
    graph: str,
    layers: Sequence[Sequence[int]],
    edges: Sequence[str] | Sequence[Sequence[int]] = (),
) -> list[tuple[int, int]]:
    """The coupled pairs ``(j, k)``, ``j < k``, of a graph over the spins of ``layers``.

    ``layers`` lists the spins layer by layer (inputs with the bias spin, hidden layers,
    outputs); ``"layered"`` couples consecutive layers all-to-all, ``"all-to-all"`` every pair,
    ``"edges"`` takes ``edges`` (:func:`parse_edges`).
    """
    spins = sorted(q for layer in layers for q in layer)
    if graph == "layered":
        out = []
        for a, b in itertools.pairwise(layers):
            out += [(min(j, k), max(j, k)) for j in a for k in b]
        return out
    if graph == "all-to-all":
        return [(j, k) for i, j in enumerate(spins) for k in spins[i + 1 :]]
    if graph == "edges":
        return parse_edges(edges, len(spins))
    raise ProblemError(f"unknown graph {graph!r}; choose one of {list(GRAPHS)}", where="graph")


def _check_connected(
    edges: Sequence[tuple[int, int]], sources: Sequence[int], outputs: Sequence[int]
) -> None:
    """Every output spin must be reachable from an input spin (else it ignores the data)."""
    nbrs: dict[int, set[int]] = {}
    for j, k in edges:
        nbrs.setdefault(j, set()).add(k)
        nbrs.setdefault(k, set()).add(j)
    seen = set(sources)
    todo = list(sources)
    while todo:
        for k in nbrs.get(todo.pop(), ()):
            if k not in seen:
                seen.add(k)
                todo.append(k)
    cut = [o for o in outputs if o not in seen]
    if cut:
        raise ProblemError(
            f"output spin {cut[0]} is not connected to any input spin through the edges: its "
            "⟨Z⟩ would not depend on the data",
            where="edges",
        )


@lru_cache(maxsize=16)
def build_network(
    n_inputs: int,
    n_outputs: int,
    hidden: tuple[int, ...] = (3,),
    graph: str = "layered",
    edges: tuple[str, ...] = (),
    bias: str = "spin",
    bias_field: float = 1.0,
) -> TFIMNetwork:
    """A transverse-field Ising network with ``n_inputs`` input and ``n_outputs`` output spins.

    Parameters
    ----------
    n_inputs, n_outputs:
        Data inputs (one input spin each) and output spins (one per class).
    hidden:
        Widths of the hidden layers (``"layered"``); for the other graphs only their sum, the
        number of hidden spins, counts. ``()``: no hidden spins.
    graph:
        ``"layered"``, ``"all-to-all"`` or ``"edges"`` (see the module docstring).
    edges:
        ``"j-k"`` pairs of spin numbers for ``graph="edges"``.
    bias:
        ``"spin"``, ``"fields"`` or ``"none"`` (see the module docstring).
    bias_field:
        The constant input field of the bias spin.

    Raises
    ------
    ProblemError
        Naming the key: ``hidden`` (a width below 1), ``graph``, ``edges`` (a pair outside the
        network, repeated, a self-loop, or an output not connected to an input), ``bias``, or a
        network of more than :data:`MAX_SPINS` spins.
    """
    n_in = positive_int(n_inputs, "n_inputs")
    n_out = positive_int(n_outputs, "n_outputs")
    if isinstance(hidden, str | bytes) or not isinstance(hidden, Sequence):
        raise ProblemError(f"must be a list of layer widths, got {hidden!r}", where="hidden")
    widths = [positive_int(w, f"hidden[{i}]") for i, w in enumerate(hidden)]
    if graph not in GRAPHS:
        raise ProblemError(f"unknown graph {graph!r}; choose one of {list(GRAPHS)}", where="graph")
    if bias not in BIASES:
        raise ProblemError(f"unknown bias {bias!r}; choose one of {list(BIASES)}", where="bias")
    b_field = finite_real(bias_field, "bias_field")
    if graph != "edges" and edges:
        raise ProblemError(f"an edge list needs graph = 'edges', not {graph!r}", where="edges")
    n_bias = 1 if bias == "spin" else 0
    n = n_in + n_bias + sum(widths) + n_out
    if n > MAX_SPINS:
        raise ProblemError(
            f"{n} spins ({n_in} inputs, {n_bias} bias, {sum(widths)} hidden, {n_out} outputs) "
            f"are more than the {MAX_SPINS} an exact ground state holds",
            where="hidden",
        )
    inputs = list(range(n_in))
    bias_spin = n_in if n_bias else None
    first = [*inputs, *([bias_spin] if bias_spin is not None else [])]
    layers = [first]
    q = len(first)
    for w in widths:
        layers.append(list(range(q, q + w)))
        q += w
    outputs = list(range(q, q + n_out))
    layers.append(outputs)
    hidden_spins = [s for layer in layers[1:-1] for s in layer]
    pairs = graph_edges(graph, layers, edges)
    _check_connected(pairs, inputs, outputs)

    terms: list[Term] = []
    input_names = [f"x[{i}]" for i in range(n_in)] + (["x[bias]"] if n_bias else [])
    for name, spin in zip(input_names, first, strict=True):
        terms.append(Term(-1.0, PauliString.parse(f"Z{spin}"), name))
    coupling_names = [f"J[{j},{k}]" for j, k in pairs]
    for name, (j, k) in zip(coupling_names, pairs, strict=True):
        terms.append(Term(-1.0, PauliString.parse(f"Z{j} Z{k}"), name))
    field_names = [f"h[{k}]" for k in range(n)]
    for k, name in enumerate(field_names):
        terms.append(Term(-1.0, PauliString.parse(f"X{k}"), name))
    bias_names = [f"g[{k}]" for k in (*hidden_spins, *outputs)] if bias == "fields" else []
    for name in bias_names:
        terms.append(Term(-1.0, PauliString.parse(f"Z{name[2:-1]}"), name))
    trainable = [*coupling_names, *field_names, *bias_names]
    ham = ParametrisedHamiltonian(n, terms, params=[*input_names, *trainable])
    readout = {f"Z{o}": PauliSum.from_terms([(1.0, f"Z{o}")]) for o in outputs}
    system = QEPSystem(ham, readout, trainable=trainable)
    return TFIMNetwork(
        system=system,
        input_spins=tuple(inputs),
        bias_spin=bias_spin,
        hidden_spins=tuple(hidden_spins),
        output_spins=tuple(outputs),
        edges=tuple(pairs),
        input_names=tuple(input_names),
        coupling_names=tuple(coupling_names),
        field_names=tuple(field_names),
        bias_names=tuple(bias_names),
        bias_field=b_field,
    )
