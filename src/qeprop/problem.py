"""QEP problems written as JSON or TOML files.

A problem file defines the system, the loss, the state and the estimator::

    {"qubits": 6,
     "params": {"gX": 0.3, "w0": -0.1},
     "terms": [{"pauli": "Z0 X1 Z2", "coeff": 1.5},
               {"pauli": "X0", "coeff": -1.0, "param": "gX"},
               {"pauli": "X3 Z5", "coeff": 1.0, "param": "w0"}],
     "outputs": [{"name": "p_up", "terms": [{"pauli": "", "coeff": 0.5},
                                            {"pauli": "Z5", "coeff": 0.5}]}],
     "loss": {"kind": "mse", "target": [1.0]},
     "state": {"kind": "ground"},
     "estimator": {"kind": "centered", "nudge": 0.01},
     "shots": null, "seed": 0}

Keys
----
``qubits``      number of qubits (qubit 0 = leftmost Kronecker factor).
``params``      trainable couplings θ and their values; every one gets a gradient.
``inputs``      optional fixed parameters x (same form as ``params``, not trained).
``terms``       Hamiltonian terms ``{"pauli", "coeff" (default 1), "param" (optional)}``.
``outputs``     output observables ``{"name", "terms": [...]}`` (or ``"pauli"``/``"coeff"``).
``loss``        ``{"kind": "mse" | "cross_entropy", "target": [...]}`` or
                ``{"kind": "observable", "terms": [...]}`` (``L = ⟨C⟩``, Scellier's cost
                observable).
``state``       ``{"kind": "ground" | "eigenstate" | "thermal", ...}`` with the fields of
                :class:`~qeprop.solvers.StateSpec` (``temperature``, ``level``, ``method``, ``tol``,
                ``degeneracy``, ``degeneracy_tol``, ``dense_max_dim``, ``maxiter``).
``estimator``   ``{"kind": <name>, "nudge", "variant", "fd_step"}``.
``shots``       ``null`` (exact) or ``M``; ``shot_model`` ``"gaussian"`` | ``"sampled"``;
                ``noisy_outputs`` (bool); ``seed`` (int).

Every error names its place (``file: terms[3].pauli``).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PauliError, ProblemError, QEPError
from .gradients import ESTIMATORS, GradientOptions
from .hamiltonian import ParametrisedHamiltonian, Term
from .losses import Loss, make_loss
from .pauli import PauliString, PauliSum
from .solvers import StateSpec
from .system import QEPSystem

__all__ = ["Problem", "load_problem", "parse_problem"]

_TOP_KEYS = {
    "qubits", "params", "inputs", "terms", "outputs", "loss", "state", "estimator",
    "shots", "shot_model", "noisy_outputs", "seed", "name", "description",
}  # fmt: skip
_STATE_KEYS = {
    "kind", "temperature", "level", "method", "tol", "maxiter", "degeneracy",
    "degeneracy_tol", "gap_tol", "dense_max_dim",
}  # fmt: skip
_ESTIMATOR_KEYS = {"kind", "nudge", "variant", "fd_step"}


@dataclass(frozen=True)
class Problem:
    """A parsed problem: everything :func:`~qeprop.gradients.estimate_gradient` needs."""

    system: QEPSystem
    values: dict[str, float]
    loss: Loss | None
    estimator: str
    options: GradientOptions
    seed: int | None
    source: str = "<problem>"


def _err(where: str, msg: str) -> ProblemError:
    return ProblemError(msg, where=where)


def _number(v: Any, where: str, *, integer: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _err(where, f"expected a number, got {v!r}")
    if not math.isfinite(v):
        raise _err(where, f"value {v!r} is not finite (NaN or inf)")
    if integer and not float(v).is_integer():
        raise _err(where, f"expected an integer, got {v!r}")
    return int(v) if integer else float(v)


def _table(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise _err(where, f"expected a table/object, got {type(v).__name__}")
    return v


def _check_keys(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise _err(
            f"{where}.{extra[0]}" if where else extra[0], f"unknown key; allowed: {sorted(allowed)}"
        )


def _pauli(v: Any, n: int, where: str) -> PauliString:
    if not isinstance(v, str):
        raise _err(where, f"expected a Pauli string such as 'X0 Z3', got {v!r}")
    try:
        return PauliString.parse(v, n_qubits=n)
    except PauliError as e:
        raise _err(where, e.message) from None


def _term_list(v: Any, n: int, where: str, params: set[str] | None) -> list[Term]:
    if not isinstance(v, list):
        raise _err(where, "expected a list of terms")
    out = []
    for i, t in enumerate(v):
        w = f"{where}[{i}]"
        t = _table(t, w)
        _check_keys(t, {"pauli", "coeff", "param"} if params is not None else {"pauli", "coeff"}, w)
        if "pauli" not in t:
            raise _err(f"{w}.pauli", "missing")
        p = _pauli(t["pauli"], n, f"{w}.pauli")
        c = _number(t.get("coeff", 1.0), f"{w}.coeff")
        name = t.get("param")
        if name is not None:
            if not isinstance(name, str):
                raise _err(f"{w}.param", f"expected a parameter name, got {name!r}")
            if params is not None and name not in params:
                raise _err(
                    f"{w}.param", f"parameter {name!r} is used but not defined in params or inputs"
                )
        out.append(Term(c, p, name))
    return out


def _operator(v: Mapping[str, Any], n: int, where: str) -> PauliSum:
    if "terms" in v:
        terms = _term_list(v["terms"], n, f"{where}.terms", None)
    elif "pauli" in v:
        terms = _term_list([{k: v[k] for k in ("pauli", "coeff") if k in v}], n, where, None)
    else:
        raise _err(where, "an observable needs 'terms' (or 'pauli' and 'coeff')")
    return PauliSum.from_terms((t.coeff, t.pauli) for t in terms)


def _values(v: Any, where: str) -> dict[str, float]:
    return {str(k): _number(x, f"{where}.{k}") for k, x in _table(v, where).items()}


def parse_problem(data: Mapping[str, Any], source: str = "<problem>") -> Problem:
    """Validate a problem given as plain data (parsed JSON/TOML) and build it.

    Raises :class:`~qeprop.errors.ProblemError` whose location starts with ``source``.
    """
    try:
        return _parse(_table(data, ""), source)
    except QEPError as e:
        where = f"{source}: {e.where}" if e.where else source
        raise type(e)(e.message, where=where) from None


def _parse(data: Mapping[str, Any], source: str) -> Problem:
    _check_keys(data, _TOP_KEYS, "")
    if "qubits" not in data:
        raise _err("qubits", "missing")
    n = _number(data["qubits"], "qubits", integer=True)
    if n < 1:
        raise _err("qubits", f"must be at least 1, got {n}")
    n = int(n)
    params = _values(data.get("params", {}), "params")
    inputs = _values(data.get("inputs", {}), "inputs")
    both = sorted(set(params) & set(inputs))
    if both:
        raise _err(f"inputs.{both[0]}", "defined both as a trainable param and as an input")
    if "terms" not in data:
        raise _err("terms", "missing")
    terms = _term_list(data["terms"], n, "terms", set(params) | set(inputs))
    ham = ParametrisedHamiltonian(n, terms, params=[*params, *inputs])

    outputs: dict[str, PauliSum] = {}
    raw_out = data.get("outputs", [])
    if not isinstance(raw_out, list):
        raise _err("outputs", "expected a list of outputs")
    for i, o in enumerate(raw_out):
        w = f"outputs[{i}]"
        o = _table(o, w)
        _check_keys(o, {"name", "terms", "pauli", "coeff"}, w)
        name = o.get("name", f"y{i}")
        if not isinstance(name, str) or name in outputs:
            raise _err(f"{w}.name", f"output names must be distinct strings, got {name!r}")
        outputs[name] = _operator(o, n, w)

    loss_d = _table(data.get("loss", {"kind": "mse"}), "loss")
    kind = loss_d.get("kind", "mse")
    cost = None
    loss: Loss | None = None
    if kind == "observable":
        _check_keys(loss_d, {"kind", "terms", "pauli", "coeff"}, "loss")
        cost = _operator(loss_d, n, "loss")
    else:
        _check_keys(loss_d, {"kind", "target"}, "loss")
        if "target" not in loss_d:
            raise _err("loss.target", f"missing (one value per output, {len(outputs)} here)")
        tgt = loss_d["target"]
        if not isinstance(tgt, list):
            raise _err("loss.target", "expected a list of numbers")
        target = [_number(t, f"loss.target[{i}]") for i, t in enumerate(tgt)]
        if not outputs:
            raise _err("outputs", f"a {kind!r} loss needs at least one output")
        try:
            loss = make_loss(str(kind), target, len(outputs))
        except ProblemError as e:
            raise _err("loss.target" if "target" in e.message else "loss.kind", e.message) from None

    system = QEPSystem(ham, outputs, trainable=list(params), cost=cost)

    st = dict(_table(data.get("state", {}), "state"))
    _check_keys(st, _STATE_KEYS, "state")
    for key in ("temperature", "tol", "degeneracy_tol", "gap_tol"):
        if key in st and st[key] is not None:
            st[key] = _number(st[key], f"state.{key}")
    for key in ("level", "dense_max_dim", "maxiter"):
        if key in st and st[key] is not None:
            st[key] = _number(st[key], f"state.{key}", integer=True)
    try:
        spec = StateSpec(**st)
    except ProblemError as e:
        raise _err("state", e.message) from None

    est = dict(_table(data.get("estimator", {}), "estimator"))
    _check_keys(est, _ESTIMATOR_KEYS, "estimator")
    ekind = est.pop("kind", "centered" if cost is None else "cost_observable")
    if ekind not in ESTIMATORS:
        raise _err(
            "estimator.kind", f"unknown estimator {ekind!r}; choose one of {list(ESTIMATORS)}"
        )
    for key in ("nudge", "fd_step"):
        if key in est:
            est[key] = _number(est[key], f"estimator.{key}")
    shots = data.get("shots")
    if shots is not None:
        shots = _number(shots, "shots", integer=True)
        if shots < 1:
            raise _err("shots", f"must be a positive integer or null, got {shots}")
    seed = data.get("seed")
    if seed is not None:
        seed = _number(seed, "seed", integer=True)
        if seed < 0:
            raise _err("seed", f"must be a non-negative integer, got {seed}")
    noisy = data.get("noisy_outputs", False)
    if not isinstance(noisy, bool):
        raise _err("noisy_outputs", f"expected true or false, got {noisy!r}")
    try:
        options = GradientOptions(
            state=spec,
            shots=shots,  # type: ignore[arg-type]
            shot_model=data.get("shot_model", "gaussian"),
            noisy_outputs=noisy,
            **est,
        )
    except ProblemError as e:
        raise _err("estimator" if "shot" not in e.message else "shot_model", e.message) from None
    return Problem(system, {**params, **inputs}, loss, ekind, options, seed, source)  # type: ignore[arg-type]


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file; a missing, unreadable or non-UTF-8 file raises ProblemError."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemError("file not found", where=str(p)) from None
    except OSError as e:
        raise ProblemError(f"cannot read: {e.strerror}", where=str(p)) from None
    except UnicodeDecodeError as e:
        raise ProblemError(f"not UTF-8 text (byte {e.start})", where=str(p)) from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; errors name the file."""
    try:
        return tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as e:
        raise ProblemError(f"invalid TOML: {e}", where=str(path)) from None


def load_problem(path: str | Path) -> Problem:
    """Read a ``.json`` or ``.toml`` problem file (by extension; JSON otherwise)."""
    p = Path(path)
    if p.suffix.lower() == ".toml":
        return parse_problem(load_toml(p), source=str(p))
    text = read_text(p)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProblemError(
            f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", where=str(p)
        ) from None
    return parse_problem(data, source=str(p))
