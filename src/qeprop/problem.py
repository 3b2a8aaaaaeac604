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
                ``degeneracy``, ``degeneracy_tol``, ``dense_max_dim``, ``maxiter``, ``threads``,
                ``symmetry``, and for ``method = "dmrg"`` ``bond_dim`` and ``cutoff``).
``estimator``   ``{"kind": <name>, "nudge", "variant", "fd_step"}``.
``shots``       ``null`` (exact) or ``M`` shots per measurement setting; ``shot_model``
                ``"gaussian"`` | ``"sampled"``; ``noisy_outputs`` (bool, default ``true``: the
                outputs that set the error signal are measured with shots too, as an experiment
                must; ``false`` takes them exact, as the papers' experiments do); ``seed`` (int).

Oscillator networks (quantum harmonic oscillators, Scellier eqs. 41-42) are written the same way
with ``"modes"`` in place of ``"qubits"`` and ``"quad"`` in place of ``"pauli"``; a spring
``½k(r0 - r1)²`` is three terms sharing the parameter ``k`` (``examples/oscillators.json``)::

    {"modes": 2, "hbar": 1.0,
     "params": {"k": 0.8}, "inputs": {"force": 0.3},
     "terms": [{"quad": "p0 p0", "coeff": 0.5}, {"quad": "p1 p1", "coeff": 0.5},
               {"quad": "r0 r0", "coeff": 1.0},
               {"quad": "r0 r0", "coeff": 0.5, "param": "k"},
               {"quad": "r1 r1", "coeff": 0.5, "param": "k"},
               {"quad": "r0 r1", "coeff": -1.0, "param": "k"},
               {"quad": "r1", "coeff": -1.0, "param": "force"}],
     "outputs": [{"name": "x1", "quad": "r1"}],
     "loss": {"kind": "mse", "target": [0.5]}}

``modes``       number of oscillator modes ``N`` (instead of ``qubits``; never both).
``hbar``        ``ħ`` of ``[r_i, p_j] = iħ δ_ij`` (modes only; finite, > 0; default 1).
``quad``        a quadrature string ``"r0 p1"`` of a term, output or cost observable (instead of
                ``pauli``; a product of two non-commuting factors is symmetrised, see
                ``docs/conventions.md``).

A mode problem is solved by the ``gaussian`` backend (``state.method`` ``"auto"`` or
``"gaussian"``; qubit backends are refused) in a ``ground`` or ``thermal`` state; its quadratic
part must be positive definite. Its outputs are unbounded, so ``cross_entropy`` and ``spin_cost``
losses are refused: use ``mse`` or an observable loss. Mixing ``quad`` and ``pauli`` is an error.

Every error names its place (``file: terms[3].pauli``).

Limits, checked before anything is built: ``qubits`` ≤ 1024 (``modes`` ≤ 100000, memory
permitting) and every qubit (mode) index below
``qubits`` (state vectors stop at 62 qubits, whose basis indices are 64-bit integers; longer chains
need ``state.method = "dmrg"``); every Hamiltonian coefficient, and the scale ``Σ|c|`` of
``H`` at the given values, below 1e150 (solvers square it); ``shots`` ≤ 1e15, and with the
``"sampled"`` model no more than the outcome arrays of one measurement fit in memory; ``seed``
below 2**63. Text is never a number (``"0.5"``, ``"nan"``), ``true``/``false`` are not numbers,
an integral float (``1e3``) counts as an integer; JSON objects with a repeated key, files over
64 MiB and anything but a regular UTF-8 file (a leading byte-order mark is allowed) are refused.
A ``cross_entropy`` loss is refused for an output whose eigenvalues are not all in ``[0, 1]``.
"""

from __future__ import annotations

import json
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checks
from .errors import PauliError, ProblemError, QEPError
from .gradients import ESTIMATORS, GradientOptions
from .hamiltonian import ParametrisedHamiltonian, Term
from .losses import LOSSES, Loss, make_loss
from .measurement import SHOT_MODELS
from .memory import available_memory, format_bytes
from .modes import Hamiltonian, ModeHamiltonian, ModeTerm
from .pauli import PauliString, PauliSum, qubitwise_commute_groups
from .quadratures import MAX_MODES, QuadString, QuadSum, quad_settings
from .solvers import StateSpec
from .system import COST_NUDGE, QEPSystem, nudge_param

__all__ = ["Problem", "load_problem", "parse_problem"]

_TOP_KEYS = {
    "qubits", "modes", "hbar", "params", "inputs", "terms", "outputs", "loss", "state", "estimator",
    "shots", "shot_model", "noisy_outputs", "seed", "name", "description",
}  # fmt: skip
_STATE_KEYS = {
    "kind", "temperature", "level", "method", "tol", "maxiter", "degeneracy",
    "degeneracy_tol", "gap_tol", "dense_max_dim", "threads", "symmetry", "bond_dim", "cutoff",
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
    """A finite real (or an integer, where ``1e3`` written as a float counts) read from a file."""
    if integer:
        return checks.integer(v, where, integral_float=True)
    return checks.finite_real(v, where)


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise _err(where, f"expected text, got {checks.shown(v)}")
    return v


def _name(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _err(where, f"expected a non-empty name, got {checks.shown(v)}")
    return v


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
        raise _err(where, f"expected a Pauli string such as 'X0 Z3', got {checks.shown(v)}")
    try:
        return PauliString.parse(v, n_qubits=n)
    except PauliError as e:
        raise _err(where, e.message) from None


def _quad(v: Any, n: int, where: str) -> QuadString:
    if not isinstance(v, str):
        raise _err(where, f"expected a quadrature string such as 'r0 r1', got {checks.shown(v)}")
    try:
        return QuadString.parse(v, n_modes=n)
    except ProblemError as e:
        raise _err(where, e.message) from None


@dataclass(frozen=True)
class _Register:
    """What differs between a qubit problem and an oscillator problem: the key of a term's
    operator (``pauli`` | ``quad``, also the attribute of :class:`~qeprop.hamiltonian.Term` |
    :class:`~qeprop.modes.ModeTerm` that holds it), and how its strings, terms, observables and
    Hamiltonian are made. Everything else is parsed once."""

    key: str
    string: Callable[[Any, str], Any]
    term: Callable[[float, Any, str | None], Term | ModeTerm]
    observable: Callable[[list[tuple[float, Any]]], PauliSum | QuadSum]
    hamiltonian: Callable[[list[Any], list[str]], Hamiltonian]
    #: loss kind -> why this register refuses it
    refused_losses: Mapping[str, str] = field(default_factory=dict)

    def check_kind(self, t: Mapping[str, Any], where: str) -> None:
        """Refuse a term or observable written for the other kind of problem."""
        other = "quad" if self.key == "pauli" else "pauli"
        if other in t:
            raise _err(
                f"{where}.{other}" if where else other,
                "a quadrature term ('quad') in a qubit problem: quadrature terms need 'modes' in "
                "place of 'qubits'"
                if other == "quad"
                else "a Pauli term in a problem of oscillator modes: write quadrature terms with "
                "'quad' (e.g. 'r0 r1'), or use 'qubits' for a qubit problem",
            )


def _qubit_register(data: Mapping[str, Any]) -> _Register:
    """The register of a qubit problem (``"qubits": n``, Pauli terms)."""
    if "hbar" in data:
        raise _err("hbar", "only oscillator problems ('modes') have ħ; a qubit problem has none")
    if "qubits" not in data:
        raise _err("qubits", "missing")
    n = checks.positive_int(data["qubits"], "qubits", integral_float=True)
    if n > checks.MAX_QUBITS:
        raise _err(
            "qubits",
            f"{checks.shown(n)} is more than the {checks.MAX_QUBITS} qubits qeprop supports "
            f"(state vectors stop at {checks.MAX_VECTOR_QUBITS}: their basis indices are 64-bit "
            "integers; larger chains need the dmrg backend)",
        )

    def observable(terms: list[tuple[float, Any]]) -> PauliSum:
        return PauliSum.from_terms(terms)

    return _Register(
        "pauli",
        lambda v, where: _pauli(v, n, where),
        Term,
        observable,
        lambda terms, params: ParametrisedHamiltonian(n, terms, params=params),
    )


def _mode_register(data: Mapping[str, Any]) -> _Register:
    """The register of an oscillator problem (``"modes": N``, optional ``"hbar"``, quadrature
    terms)."""
    if "qubits" in data:
        raise _err(
            "modes",
            "a problem has either 'qubits' (Pauli terms) or 'modes' (oscillators, quadrature "
            "terms), not both",
        )
    n = checks.positive_int(data["modes"], "modes", integral_float=True)
    if n > MAX_MODES:
        raise _err("modes", f"{checks.shown(n)} is more than the {MAX_MODES} modes supported")
    hbar = checks.positive_real(data.get("hbar", 1.0), "hbar")

    def observable(terms: list[tuple[float, Any]]) -> QuadSum:
        return QuadSum.from_terms(terms)

    not_probability = (
        "the outputs of an oscillator network (quadrature observables, unbounded) are not "
        "probabilities or ±1 spins; use the mse loss or an observable loss"
    )
    return _Register(
        "quad",
        lambda v, where: _quad(v, n, where),
        ModeTerm,
        observable,
        lambda terms, params: ModeHamiltonian(n, terms, params=params, hbar=hbar),
        {"cross_entropy": not_probability, "spin_cost": not_probability},
    )


def _term_list(v: Any, reg: _Register, where: str, params: set[str] | None) -> list[Any]:
    if not isinstance(v, list):
        raise _err(where, f"expected a list of terms, got {type(v).__name__}")
    key = reg.key
    out = []
    for i, t in enumerate(v):
        w = f"{where}[{i}]"
        t = _table(t, w)
        reg.check_kind(t, w)
        _check_keys(t, {key, "coeff", "param"} if params is not None else {key, "coeff"}, w)
        if key not in t:
            raise _err(f"{w}.{key}", "missing")
        p = reg.string(t[key], f"{w}.{key}")
        c = _number(t.get("coeff", 1.0), f"{w}.coeff")
        name = t.get("param")
        if name is not None:
            _name(name, f"{w}.param")
            if params is not None and name not in params:
                raise _err(
                    f"{w}.param", f"parameter {name!r} is used but not defined in params or inputs"
                )
        out.append(reg.term(c, p, name))
    return out


def _operator(v: Mapping[str, Any], reg: _Register, where: str) -> PauliSum | QuadSum:
    key = reg.key
    reg.check_kind(v, where)
    if "terms" in v:
        terms = _term_list(v["terms"], reg, f"{where}.terms", None)
    elif key in v:
        terms = _term_list([{k: v[k] for k in (key, "coeff") if k in v}], reg, where, None)
    else:
        raise _err(where, f"an observable needs 'terms' (or '{key}' and 'coeff')")
    try:
        return reg.observable([(t.coeff, getattr(t, key)) for t in terms])
    except (PauliError, ProblemError) as e:  # coefficients adding up beyond the float range
        raise _err(where, e.message) from None


def _values(v: Any, where: str) -> dict[str, float]:
    out = {}
    for k, x in _table(v, where).items():
        _name(k, f"{where}.{k}" if k else where)
        out[str(k)] = _number(x, f"{where}.{k}")
    return out


#: most shots a problem may ask for: counts beyond 2**53 are no longer exact as floats
MAX_SHOTS = 10**15
#: largest seed (seeds are stored as signed 64-bit integers)
MAX_SEED = 2**63 - 1


def _sampled_shot_limit(system: QEPSystem) -> tuple[int, int]:
    """``(most shots, bytes per shot)`` the sampled shot model can hold in memory at once.

    The sampled model draws ``M`` outcomes per qubit-wise commuting group and keeps, per group,
    the outcomes, their parities for every string of the group and the per-shot values of every
    observable measured together: about ``24 + 40 g + 24 K`` bytes per shot for groups of at most
    ``g`` strings and ``K`` observables (outputs and trainable couplings together, an upper bound).
    """
    h = system.full
    groups = (
        quad_settings(h.strings)
        if isinstance(h, ModeHamiltonian)
        else qubitwise_commute_groups(h.strings)
    )
    g = max((len(x) for x in groups), default=1)
    n_ops = len(system.outputs) + len(system.trainable) + 1
    per_shot = 24 + 40 * g + 24 * n_ops
    return max(1, available_memory() // per_shot), per_shot


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
    for key in ("name", "description"):
        if key in data:
            _text(data[key], key)
    reg = _mode_register(data) if "modes" in data else _qubit_register(data)
    params = _values(data.get("params", {}), "params")
    inputs = _values(data.get("inputs", {}), "inputs")
    both = sorted(set(params) & set(inputs))
    if both:
        raise _err(f"inputs.{both[0]}", "defined both as a trainable param and as an input")
    if "terms" not in data:
        raise _err("terms", "missing")
    terms = _term_list(data["terms"], reg, "terms", set(params) | set(inputs))
    try:
        ham = reg.hamiltonian(terms, [*params, *inputs])
    except ProblemError as e:  # coefficients beyond the supported range, named by term
        raise _err("terms", e.message) from None

    outputs: dict[str, PauliSum | QuadSum] = {}
    raw_out = data.get("outputs", [])
    if not isinstance(raw_out, list):
        raise _err("outputs", f"expected a list of outputs, got {type(raw_out).__name__}")
    for i, o in enumerate(raw_out):
        w = f"outputs[{i}]"
        o = _table(o, w)
        reg.check_kind(o, w)
        _check_keys(o, {"name", "terms", reg.key, "coeff"}, w)
        name = o.get("name", f"y{i}")
        if not isinstance(name, str) or not name.strip() or name in outputs:
            raise _err(f"{w}.name", f"output names must be distinct strings, got {name!r}")
        outputs[name] = _operator(o, reg, w)
    for pname in [*params, *inputs]:
        if pname == COST_NUDGE or any(pname == nudge_param(o) for o in outputs):
            where = f"params.{pname}" if pname in params else f"inputs.{pname}"
            raise _err(where, f"the name {pname!r} is reserved for the nudge of an output")

    loss_d = _table(data.get("loss", {"kind": "mse"}), "loss")
    kind = loss_d.get("kind", "mse")
    if not isinstance(kind, str):
        raise _err("loss.kind", f"expected text, got {checks.shown(kind)}")
    cost = None
    loss: Loss | None = None
    if kind == "observable":
        reg.check_kind(loss_d, "loss")
        _check_keys(loss_d, {"kind", "terms", reg.key, "coeff"}, "loss")
        cost = _operator(loss_d, reg, "loss")
        if "cost" in outputs:
            raise _err("outputs", "an output named 'cost' cannot be used with an observable loss")
    else:
        _check_keys(loss_d, {"kind", "target"}, "loss")
        if kind not in LOSSES:
            raise _err(
                "loss.kind", f"unknown loss {kind!r}; choose one of {[*LOSSES, 'observable']}"
            )
        if kind in reg.refused_losses:
            raise _err("loss.kind", f"{kind}: {reg.refused_losses[kind]}")
        if "target" not in loss_d:
            raise _err("loss.target", f"missing (one value per output, {len(outputs)} here)")
        tgt = loss_d["target"]
        if not isinstance(tgt, list):
            raise _err("loss.target", f"expected a list of numbers, got {type(tgt).__name__}")
        target = [_number(t, f"loss.target[{i}]") for i, t in enumerate(tgt)]
        if not outputs:
            raise _err("outputs", f"a {kind!r} loss needs at least one output")
        # a cross-entropy of outputs that are not probabilities is refused here, before any solve
        loss = make_loss(kind, target, len(outputs), outputs=outputs)

    system = QEPSystem(ham, outputs, trainable=list(params), cost=cost)
    # parameter values whose products with the coefficients overflow are refused here
    try:
        ham.values({**params, **inputs})
    except ProblemError as e:
        raise _err("params", e.message) from None

    st = dict(_table(data.get("state", {}), "state"))
    _check_keys(st, _STATE_KEYS, "state")
    for key in ("kind", "method", "degeneracy", "symmetry"):
        if key in st:
            _text(st[key], f"state.{key}")
    for key in ("temperature", "tol", "degeneracy_tol", "gap_tol", "cutoff"):
        if key in st and st[key] is not None:
            st[key] = _number(st[key], f"state.{key}")
    for key, lo in (
        ("level", 0), ("dense_max_dim", 1), ("maxiter", 1), ("threads", 1), ("bond_dim", 1)
    ):  # fmt: skip
        if key in st and st[key] is not None:
            st[key] = checks.integer(
                st[key], f"state.{key}", lo=lo, hi=MAX_SEED, integral_float=True
            )
    try:
        spec = StateSpec(**st)
    except ProblemError as e:
        raise _err("state", e.message) from None

    est = dict(_table(data.get("estimator", {}), "estimator"))
    _check_keys(est, _ESTIMATOR_KEYS, "estimator")
    ekind = est.pop("kind", "centered" if cost is None else "cost_observable")
    if not isinstance(ekind, str) or ekind not in ESTIMATORS:
        raise _err(
            "estimator.kind", f"unknown estimator {ekind!r}; choose one of {list(ESTIMATORS)}"
        )
    if "variant" in est:
        _text(est["variant"], "estimator.variant")
    for key in ("nudge", "fd_step"):
        if key in est:
            est[key] = _number(est[key], f"estimator.{key}")
    shot_model = checks.choice(data.get("shot_model", "gaussian"), SHOT_MODELS, "shot_model")
    shots = data.get("shots")
    if shots is not None:
        shots = checks.positive_int(shots, "shots", integral_float=True)
        if shots > MAX_SHOTS:
            raise _err(
                "shots",
                f"{checks.shown(shots)} is more than the {MAX_SHOTS:.0e} shots supported "
                "(counts beyond 2**53 are not exact in floating point)",
            )
        if shot_model == "sampled":
            most, per_shot = _sampled_shot_limit(system)
            if shots > most:
                raise _err(
                    "shots",
                    f"{shots} sampled shots need about {format_bytes(shots * per_shot)} at once, "
                    f"more than this process can allocate; at most {most} fit "
                    "(or use shot_model 'gaussian')",
                )
    seed = data.get("seed")
    if seed is not None:
        seed = checks.nonnegative_int(seed, "seed", integral_float=True)
        if seed > MAX_SEED:
            raise _err(
                "seed", f"{checks.shown(seed)} is not below 2**63 (seeds are stored as int64)"
            )
    # an experiment measures the outputs that set the error signal: with shots, they cost shots too
    noisy = checks.boolean(data.get("noisy_outputs", True), "noisy_outputs")
    try:
        options = GradientOptions(
            state=spec,
            shots=shots,
            shot_model=shot_model,
            noisy_outputs=noisy,
            **est,
        )
    except ProblemError as e:
        raise _err("estimator" if "shot" not in e.message else "shot_model", e.message) from None
    return Problem(system, {**params, **inputs}, loss, ekind, options, seed, source)


#: largest problem file read (a problem file is a few kB; this only stops runaway input)
MAX_FILE_BYTES = 64 << 20


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file (a leading byte-order mark dropped).

    A missing, unreadable, non-regular (directory, device) or non-UTF-8 file raises
    :class:`ProblemError` naming the file.
    """
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ProblemError("is a directory, not a file", where=str(p))
        if not stat.S_ISREG(st.st_mode):
            raise ProblemError("is not a regular file", where=str(p))
        if st.st_size > MAX_FILE_BYTES:
            raise ProblemError(
                f"is {st.st_size / 2**20:.0f} MiB, more than the {MAX_FILE_BYTES >> 20} MiB "
                "a problem or config file may have",
                where=str(p),
            )
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemError("file not found", where=str(p)) from None
    except OSError as e:
        raise ProblemError(f"cannot read: {e.strerror}", where=str(p)) from None
    except UnicodeDecodeError as e:
        raise ProblemError(f"not UTF-8 text (byte {e.start})", where=str(p)) from None
    return text.removeprefix("\ufeff")


def load_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; errors name the file."""
    text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProblemError(f"invalid TOML: {e}", where=str(path)) from None
    except RecursionError:
        raise ProblemError("invalid TOML: nested too deeply", where=str(path)) from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise ProblemError(f"invalid TOML: {e}", where=str(path)) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ProblemError(f"invalid JSON: key {k!r} appears twice in one object")
        out[k] = v
    return out


def load_json(path: str | Path) -> Any:
    """A JSON file as plain data; duplicate keys, NaN-free syntax errors and runaway nesting
    raise :class:`ProblemError` naming the file (``NaN``/``Infinity`` literals are read as
    floats and refused where a number is expected, with the key named)."""
    p = Path(path)
    text = read_text(p)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise ProblemError(
            f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", where=str(p)
        ) from None
    except ProblemError as e:
        raise ProblemError(e.message, where=str(p)) from None
    except RecursionError:
        raise ProblemError("invalid JSON: nested too deeply", where=str(p)) from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise ProblemError(f"invalid JSON: {e}", where=str(p)) from None


def load_problem(path: str | Path) -> Problem:
    """Read a ``.json`` or ``.toml`` problem file (by extension; JSON otherwise)."""
    p = Path(path)
    if p.suffix.lower() == ".toml":
        return parse_problem(load_toml(p), source=str(p))
    return parse_problem(load_json(p), source=str(p))
