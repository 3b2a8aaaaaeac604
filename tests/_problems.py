"""Seeded random QEP problems for the gradient and CLI tests.

A problem is first drawn as a :class:`ProblemSpec` (plain labels and numbers), from which

* :func:`build` makes the qeprop objects ``(QEPSystem, values, loss)``,
* :func:`problem_dict` makes the problem-file dict (the JSON form of :mod:`qeprop.problem`) and
  :func:`to_toml` its TOML text,
* ``_reference.DenseModel(spec)`` makes the independent dense reference.

Random problems (:func:`random_spec`) have

* a random field ``h_q · (a X + b Y + c Z)`` on every qubit (``Y`` left out for real problems), so
  that every qubit is touched and the spectrum is generically non-degenerate;
* ``n + 1 .. n + 3`` random 2- and 3-body couplings with letters from ``XYZ`` (``Y`` included);
* trainable couplings ``th*`` shared by several terms (at least one parameter has two terms), a
  trainable field parameter ``hz0`` and one fixed input ``x0`` (not trained);
* 2-3 outputs: a one-qubit projector, a two-qubit projector and (for 3 outputs) a Pauli
  observable; an mse target in ``[0, 1]`` for projectors, ``[-1, 1]`` for Pauli observables;
* optionally a cost observable ``C`` (a sum of 2-3 Pauli strings).

The draw is repeated (with a derived seed) until the couplings connect all qubits and the lowest
``levels + 2`` energies are separated by at least ``min_gap`` (checked with a dense ``eigvalsh``
of our own Kronecker-product matrix), so ground and low excited states are well separated from
their neighbours.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np

from _reference import eigvalsh, op_matrix
from qeprop import MeanSquaredError, ParametrisedHamiltonian, PauliSum, QEPSystem

Terms = tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class ProblemSpec:
    """A QEP problem in plain data.

    ``terms`` are ``(coeff, "X0 Y3", param or None)``; ``params`` are the trainable couplings and
    ``inputs`` the fixed ones (both name -> value); ``outputs`` name -> ``((coeff, label), ...)``.
    """

    n_qubits: int
    terms: tuple[tuple[float, str, str | None], ...]
    params: dict[str, float]
    inputs: dict[str, float]
    outputs: dict[str, Terms]
    target: tuple[float, ...]
    cost: Terms | None = None

    @property
    def trainable(self) -> tuple[str, ...]:
        return tuple(self.params)

    @property
    def values(self) -> dict[str, float]:
        return {**self.params, **self.inputs}

    def with_qubits(self, n: int) -> ProblemSpec:
        """The same terms on ``n`` qubits (extra qubits untouched, fewer must be unused)."""
        return replace(self, n_qubits=n)


# ------------------------------------------------------------------------------------ builders
def build(spec: ProblemSpec) -> tuple[QEPSystem, dict[str, float], MeanSquaredError]:
    """``(QEPSystem, values, mse loss)`` of a spec."""
    ham = ParametrisedHamiltonian(
        spec.n_qubits,
        [(c, lab, p) for c, lab, p in spec.terms],
        params=[*spec.params, *spec.inputs],
    )
    outputs = {name: PauliSum.from_terms(t) for name, t in spec.outputs.items()}
    cost = PauliSum.from_terms(spec.cost) if spec.cost is not None else None
    system = QEPSystem(ham, outputs, trainable=list(spec.params), cost=cost)
    return system, spec.values, MeanSquaredError(list(spec.target))


def random_problem(
    seed: int, n_qubits: int, **kwargs: Any
) -> tuple[QEPSystem, dict[str, float], MeanSquaredError]:
    """``build(random_spec(seed, n_qubits, **kwargs))``."""
    return build(random_spec(seed, n_qubits, **kwargs))


def _terms_list(terms: Terms) -> list[dict[str, Any]]:
    return [{"pauli": lab, "coeff": c} for c, lab in terms]


def problem_dict(
    spec: ProblemSpec,
    *,
    state: dict[str, Any] | None = None,
    estimator: dict[str, Any] | None = None,
    shots: int | None = None,
    seed: int | None = 0,
    **extra: Any,
) -> dict[str, Any]:
    """The problem-file dict (JSON form) of a spec; ``loss`` is the cost observable if present."""
    terms = []
    for c, lab, p in spec.terms:
        t: dict[str, Any] = {"pauli": lab, "coeff": c}
        if p is not None:
            t["param"] = p
        terms.append(t)
    d: dict[str, Any] = {
        "qubits": spec.n_qubits,
        "params": dict(spec.params),
        "inputs": dict(spec.inputs),
        "terms": terms,
        "outputs": [{"name": n, "terms": _terms_list(t)} for n, t in spec.outputs.items()],
    }
    if spec.cost is not None:
        d["loss"] = {"kind": "observable", "terms": _terms_list(spec.cost)}
    else:
        d["loss"] = {"kind": "mse", "target": list(spec.target)}
    d["state"] = dict(state or {"kind": "ground"})
    d["estimator"] = dict(estimator or {"kind": "centered", "nudge": 0.01})
    d["shots"] = shots
    d["seed"] = seed
    d.update(extra)
    return d


# ------------------------------------------------------------------------------------ TOML
def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest round-trip form; TOML accepts "1e-05", "0.1", "-2.5"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(d: dict[str, Any]) -> str:
    """TOML text of a problem dict (``None`` values are left out, as TOML has no null)."""
    lines: list[str] = []
    tables: list[str] = []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append(f"\n[{_toml_key(k)}]")
            tables += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in v.items() if b is not None]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                tables.append(f"\n[[{_toml_key(k)}]]")
                tables += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in item.items()]
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    return "\n".join(lines + tables) + "\n"


# ------------------------------------------------------------------------------------ random
def _label(letters: dict[int, str]) -> str:
    return " ".join(f"{c}{q}" for q, c in sorted(letters.items()))


def _projector(bits: dict[int, int]) -> Terms:
    """``Π_q (1 + (-1)^b_q Z_q)/2`` expanded by hand (independent of ``PauliSum.projector``)."""
    qs = sorted(bits)
    out = []
    for mask in range(1 << len(qs)):
        chosen = [q for i, q in enumerate(qs) if mask >> i & 1]
        sign = math.prod((-1) ** bits[q] for q in chosen)
        out.append((sign / 2 ** len(qs), _label({q: "Z" for q in chosen})))
    return tuple(out)


def _draw(rng: np.random.Generator, n: int, n_outputs: int, real: bool, cost: bool) -> ProblemSpec:
    letters = "XZ" if real else "XYZ"
    terms: list[tuple[float, str, str | None]] = []
    # couplings, then trainable parameters shared between terms
    n_c = n + int(rng.integers(1, 4))
    n_p = int(rng.integers(3, 4 + n // 3))
    couplings = []
    for _ in range(n_c):
        w = 2 if rng.random() < 0.7 else 3
        qs = rng.choice(n, size=w, replace=False)
        lets = {int(q): str(rng.choice(list("XYZ"))) for q in qs}
        if real and sum(c == "Y" for c in lets.values()) % 2:
            q0 = min(q for q, c in lets.items() if c == "Y")
            lets[q0] = "Z"  # an even number of Y letters keeps the matrix real
        couplings.append((float(rng.normal(0.0, 0.7)), _label(lets)))
    names = [f"th{k}" for k in range(n_p)]
    assign: list[str | None] = list(names)  # every parameter used at least once ...
    assign.append(names[int(rng.integers(n_p))])  # ... and at least one used twice
    assign += [
        names[int(rng.integers(n_p))] if rng.random() < 0.6 else None
        for _ in range(n_c - len(assign))
    ]
    assign = [assign[i] for i in rng.permutation(len(assign))]
    for (c, lab), p in zip(couplings, assign, strict=True):
        terms.append((c, lab, p))
    # a random field on every qubit: h_q (a X + b Y + c Z) with (a, b, c) a random unit vector
    params = {p: float(rng.uniform(0.4, 1.2) * rng.choice([-1, 1])) for p in names}
    for q in range(n):
        direction = rng.normal(size=3)
        if real:
            direction[1] = 0.0
        direction /= np.linalg.norm(direction)
        h = float(rng.uniform(0.6, 1.2))
        for letter, comp in zip("XYZ", direction, strict=True):
            if comp == 0.0:
                continue
            param = (
                "hz0"
                if (q == 0 and letter == "Z")
                else ("x0" if (q == 1 and letter == "X") else None)
            )
            terms.append((h * float(comp), f"{letter}{q}", param))
    params["hz0"] = float(rng.uniform(0.5, 1.5))
    inputs = {"x0": float(rng.uniform(0.5, 1.5))}
    # outputs
    q1, q2, q3 = (int(q) for q in rng.choice(n, size=3, replace=False))
    outputs: dict[str, Terms] = {
        f"p{q1}": _projector({q1: int(rng.integers(2))}),
        f"p{q2}{q3}": _projector({q2: int(rng.integers(2)), q3: int(rng.integers(2))}),
    }
    target = [float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.0, 1.0))]
    if n_outputs == 3:
        qs = rng.choice(n, size=2, replace=False)
        lets = {int(qs[0]): str(rng.choice(list(letters))), int(qs[1]): "Z"}
        outputs["obs"] = ((float(rng.uniform(0.5, 1.0)), _label(lets)),)
        target.append(float(rng.uniform(-1.0, 1.0)))
    cost_terms: Terms | None = None
    if cost:
        k = int(rng.integers(2, 4))
        cost_terms = tuple(
            (
                float(rng.normal()),
                _label({int(q): str(rng.choice(list(letters))) for q in rng.choice(n, 2, False)}),
            )
            for _ in range(k)
        )
    return ProblemSpec(n, tuple(terms), params, inputs, outputs, tuple(target), cost_terms)


def _connected(spec: ProblemSpec) -> bool:
    """Do the multi-qubit terms connect all qubits? (Otherwise low levels can differ only on a
    decoupled qubit, and excited-level gradients would just repeat the ground-state one.)"""
    parent = list(range(spec.n_qubits))

    def find(q: int) -> int:
        while parent[q] != q:
            q = parent[q]
        return q

    for _, lab, _ in spec.terms:
        qs = [int(tok[1:]) for tok in lab.split()]
        for q in qs[1:]:
            parent[find(q)] = find(qs[0])
    return len({find(q) for q in range(spec.n_qubits)}) == 1


def _spectral_gaps(spec: ProblemSpec, count: int) -> np.ndarray:
    h = op_matrix(
        [(c * (spec.values[p] if p else 1.0), lab) for c, lab, p in spec.terms], spec.n_qubits
    )
    ev = eigvalsh(h)
    return np.diff(ev[: count + 1])


@cache
def random_spec(
    seed: int,
    n_qubits: int,
    *,
    n_outputs: int | None = None,
    real: bool = False,
    cost: bool = False,
    min_gap: float = 0.25,
    levels: int = 0,
    untouched: bool = False,
) -> ProblemSpec:
    """A seeded random problem on ``n_qubits`` qubits (see the module docstring).

    ``levels``: the largest eigenstate level that will be used (0: ground state); the lowest
    ``levels + 2`` energies are separated by at least ``min_gap``.
    ``untouched``: the last qubit carries no term and no output, so every level of ``H`` is
    exactly two-fold degenerate; the problem on ``n_qubits - 1`` qubits is then the non-degenerate
    reduced problem (``spec.with_qubits(n_qubits - 1)``).
    """
    n_active = n_qubits - 1 if untouched else n_qubits
    assert 3 <= n_active
    for attempt in range(200):
        rng = np.random.default_rng([seed, n_qubits, attempt])
        n_out = n_outputs if n_outputs is not None else int(rng.integers(2, 4))
        spec = _draw(rng, n_active, n_out, real, cost)
        if _connected(spec) and np.min(_spectral_gaps(spec, levels + 1)) >= min_gap:
            return spec.with_qubits(n_qubits)
    raise RuntimeError(f"no problem with gap >= {min_gap} for seed {seed}")  # pragma: no cover
