"""A corpus of corrupt and hostile inputs: each gets a one-line error, or the correct number.

Problem files go through the command line in-process (``qeprop.cli.main(["gradient", path])``):
a bad file must give exit status 2, nothing on stdout and exactly one line on stderr that names
the file and the offending key, with no traceback. Files that are odd but valid (a byte-order
mark, ``1e3`` written for an integer) must give the same result as the plain file.

The Python API gets the same treatment: sizes and indices are bounded before anything is
allocated, overflow to inf is reported against the input that causes it, cached arrays are
read-only, text is never a number, and numpy integers are integers.

The base problem is a 3-qubit transverse-field Ising chain with a projector output; every test
here runs in well under a second.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qeprop import (
    CrossEntropy,
    FunctionLoss,
    MeanSquaredError,
    ParametrisedHamiltonian,
    PauliString,
    PauliSum,
    QEPSystem,
    checks,
    estimate_gradient,
)
from qeprop.cli import main
from qeprop.errors import NudgeWindowWarning, PauliError, ProblemError
from qeprop.gradients import GradientOptions
from qeprop.hamiltonian import Term
from qeprop.losses import make_loss
from qeprop.models.sensor import sensor_layout

BASE: dict[str, Any] = {
    "qubits": 3,
    "params": {"j": 0.7, "g": 0.4},
    "inputs": {"x": 0.2},
    "terms": [
        {"pauli": "Z0 Z1", "param": "j"},
        {"pauli": "Z1 Z2", "param": "j"},
        {"pauli": "X0", "param": "g"},
        {"pauli": "X1", "param": "g"},
        {"pauli": "X2", "param": "g"},
        {"pauli": "Z0", "coeff": 0.3, "param": "x"},
    ],
    "outputs": [
        {"name": "up", "terms": [{"pauli": "", "coeff": 0.5}, {"pauli": "Z2", "coeff": 0.5}]}
    ],
    "loss": {"kind": "mse", "target": [0.2]},
    "state": {"kind": "ground"},
    "estimator": {"kind": "linear_response"},
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def base_toml() -> str:
    """:data:`BASE` written as TOML by hand (so that TOML-only values can be added in front)."""
    text = "qubits = 3\n"
    for t in BASE["terms"]:
        c, pauli, name = t.get("coeff", 1.0), t["pauli"], t["param"]
        text += f'[[terms]]\npauli = "{pauli}"\ncoeff = {c}\nparam = "{name}"\n'
    text += '[[outputs]]\nname = "up"\n[[outputs.terms]]\npauli = ""\ncoeff = 0.5\n'
    text += '[[outputs.terms]]\npauli = "Z2"\ncoeff = 0.5\n'
    text += '[loss]\nkind = "mse"\ntarget = [0.2]\n[estimator]\nkind = "linear_response"\n'
    return text + "[params]\nj = 0.7\ng = 0.4\n[inputs]\nx = 0.2\n"


def write(tmp_path: Path, content: dict[str, Any] | str | bytes, name: str = "p.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")  # NaN/inf as NaN/Infinity literals
    return path


def run(capsys: pytest.CaptureFixture, path: Path | str, *argv: str) -> tuple[int, str, str]:
    code = main(["gradient", str(path), "--json", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(capsys: pytest.CaptureFixture, path: Path | str, *expect: str) -> str:
    """Exit status 2, no output, one line on stderr naming the file and each of ``expect``."""
    code, out, err = run(capsys, path)
    assert code == 2, (code, out, err)
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("qeprop: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert str(path) in err, err
    for s in expect:
        assert s in err, (s, err)
    return err


#: the numbers of a ``--json`` result (wall-clock time and the like are left out)
NUMBERS = ("loss", "outputs", "gradient", "preparations", "shots")


def gradient_of(capsys: pytest.CaptureFixture, path: Path) -> dict[str, Any]:
    code, out, err = run(capsys, path)
    assert code == 0 and err == "", err
    obj = json.loads(out)
    return {k: obj[k] for k in NUMBERS}


def edit(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``d[a][b]...`` for ``"a.b.0.c"`` (numeric parts index lists)."""

    def fn(d: dict[str, Any]) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        obj: Any = d
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value

    return fn


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def fn(d: dict[str, Any]) -> None:
        keys = path.split(".")
        obj: Any = d
        for k in keys[:-1]:
            obj = obj[int(k) if k.isdigit() else k]
        del obj[keys[-1]]

    return fn


# ------------------------------------------------------------------ the issue's reproductions
def test_a_million_qubits_is_refused_with_the_limit_and_why(tmp_path: Path, capsys) -> None:
    d = base()
    d["qubits"] = 1_000_000
    err = assert_one_line_error(capsys, write(tmp_path, d), "qubits", "1024", "62", "64-bit")
    assert "1000000" in err


@pytest.mark.parametrize(
    "pauli",
    ["X12345678901234567890", "X99999999999", "Z0 X" + "9" * 5000, "X1024", "Y3"],
    ids=["20-digits", "11-digits", "5000-digits", "beyond-1024", "beyond-3"],
)
def test_huge_pauli_index_is_refused_before_allocating(tmp_path: Path, capsys, pauli: str) -> None:
    """``X99999999999`` used to build a 12.5 GB mask; an index is bounded before any shift."""
    d = base()
    d["terms"][2]["pauli"] = pauli
    start = time.perf_counter()
    err = assert_one_line_error(capsys, write(tmp_path, d), "terms[2].pauli", "out of range")
    assert time.perf_counter() - start < 2.0  # nothing large was built (usually ~10 ms)
    assert len(err) < 400  # a 5000-digit index is shown cut


def test_index_bounds_in_the_api() -> None:
    for text in ("X99999999999", "X" + "9" * 20, "Z1024"):
        with pytest.raises(PauliError, match=r"out of range .*1024 qubits"):
            PauliString.parse(text)
    with pytest.raises(PauliError, match="out of range for 4 qubits"):
        PauliString.parse("X99999999999", n_qubits=4)
    with pytest.raises(PauliError, match="too many"):
        PauliString.parse("X" * 2000)
    with pytest.raises(PauliError):
        PauliString.from_letters({10**12: "X"})
    with pytest.raises(PauliError):
        PauliString(1 << 1100, 0)
    with pytest.raises(PauliError, match="non-negative integer"):
        PauliSum.projector({10**12: 0})
    with pytest.raises(ProblemError, match="1024"):
        ParametrisedHamiltonian(10**6, [(1.0, "X0")])
    assert PauliString.parse("X1023").max_qubit == 1023  # the largest index is fine


def test_a_trillion_sampled_shots_are_refused_before_allocating(tmp_path: Path, capsys) -> None:
    d = base()
    d.update(shots=1e12, shot_model="sampled", seed=0)
    d["estimator"] = {"kind": "centered"}
    start = time.perf_counter()
    err = assert_one_line_error(capsys, write(tmp_path, d), "shots", "sampled", "at most")
    assert time.perf_counter() - start < 2.0
    assert "GiB" in err or "TiB" in err or "MiB" in err


def test_gaussian_shots_as_an_integral_float_give_the_same_numbers(tmp_path: Path, capsys) -> None:
    """``1e3`` is how JSON writers print 1000: same result as the integer (same seed)."""
    d = base()
    d.update(shots=1000, seed=4)
    d["estimator"] = {"kind": "centered"}
    ref = gradient_of(capsys, write(tmp_path, d, "int.json"))
    d["shots"] = 1e3
    assert gradient_of(capsys, write(tmp_path, d, "float.json")) == ref


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (
            lambda d: d["terms"].extend(
                [{"pauli": "X0 X1", "coeff": 1e308}, {"pauli": "X0 X1", "coeff": 1e308}]
            ),
            ["terms[6]", "terms[7]", "X0 X1", "overflow"],
        ),
        (
            lambda d: d["outputs"][0]["terms"].extend(
                [{"pauli": "Z1", "coeff": 1e308}, {"pauli": "Z1", "coeff": 1e308}]
            ),
            ["outputs[0]", "Z1", "overflow"],
        ),
        (
            lambda d: (d["params"].update(j=1e300), d["terms"][0].update(coeff=1e10)),
            ["Z0 Z1", "'j'", "overflow"],
        ),
        (lambda d: d["terms"][4].update(coeff=1e200), ["terms[4]", "'X2'", "1e+150"]),
        (lambda d: d["params"].update(g=1e200), ["params", "'g'", "1e+150"]),
    ],
    ids=["hamiltonian-terms", "output-terms", "param-times-coeff", "one-huge-coeff", "huge-param"],
)
def test_coefficients_that_overflow_name_the_terms(
    tmp_path: Path, capsys, mutate: Callable[[dict[str, Any]], Any], expect: list[str]
) -> None:
    d = base()
    mutate(d)
    assert_one_line_error(capsys, write(tmp_path, d), *expect)


def test_a_huge_but_supported_scale_gives_the_same_state() -> None:
    """Scaling H by 1e100 (coefficients below the 1e150 limit) leaves the ground state, hence
    the output, unchanged and scales the gradient by 1e-100 (linear response: exact up to
    rounding, rtol 1e-9)."""
    system, values = _system()
    h = system.hamiltonian
    scaled_terms = [(1e100 * t.coeff, t.pauli, t.param) for t in h.terms if t.param is None]
    scaled_terms += [(t.coeff, t.pauli, t.param) for t in h.terms if t.param is not None]
    big = QEPSystem(ParametrisedHamiltonian(3, scaled_terms), system.outputs, trainable=["g"])
    loss = MeanSquaredError([0.3, -0.2])
    ref = estimate_gradient(system, values, loss, estimator="linear_response")
    rec = estimate_gradient(
        big, {k: 1e100 * v for k, v in values.items()}, loss, estimator="linear_response"
    )
    np.testing.assert_allclose(rec.outputs, ref.outputs, rtol=1e-9)
    np.testing.assert_allclose(rec.gradient * 1e100, ref.gradient, rtol=1e-9)


def test_overflow_in_the_api_names_the_terms() -> None:
    with pytest.raises(ProblemError, match=r"terms\[0\], terms\[1\].*'X0'.*overflow"):
        ParametrisedHamiltonian(1, [(1e308, "X0"), (1e308, "X0")])
    with pytest.raises(PauliError, match="'X0' overflows"):
        PauliSum.from_terms([(1e308, "X0"), (1e308, "X0")])
    h = ParametrisedHamiltonian(1, [(1e10, "X0", "a")])
    with pytest.raises(ProblemError, match=r"'X0'.*\['a'\]"):
        h.values({"a": 1e300})


def test_cross_entropy_of_an_output_that_is_not_a_probability(tmp_path: Path, capsys) -> None:
    """⟨Z0⟩ lies in [-1, 1]: refused when the file is read, naming the output."""
    d = base()
    d["outputs"] = [{"name": "z0", "pauli": "Z0"}]
    d["loss"] = {"kind": "cross_entropy", "target": [1.0]}
    for est in ("linear_response", "centered"):
        d["estimator"] = {"kind": est}
        assert_one_line_error(capsys, write(tmp_path, d), "cross_entropy", "'z0'", "[-1, 1]")
    # a projector is a probability: accepted, and the loss is -t log y
    d["outputs"] = [{"name": "p", "terms": [{"pauli": ""}, {"pauli": "Z0"}]}]  # 1 + Z0: in [0, 2]
    assert_one_line_error(capsys, write(tmp_path, d), "'p'", "[0, 2]")
    d["outputs"] = [
        {"name": "p", "terms": [{"pauli": "", "coeff": 0.5}, {"pauli": "Z0", "coeff": 0.5}]}
    ]
    out = gradient_of(capsys, write(tmp_path, d))
    assert out["loss"] == pytest.approx(-math.log(out["outputs"]["p"]), rel=1e-12)


def test_cross_entropy_in_the_api() -> None:
    h = ParametrisedHamiltonian(2, [(1.0, "Z0 Z1"), (1.0, "X0", "g"), (1.0, "X1", "g")])
    # decided from the operator: eigenvalues ±1
    with pytest.raises(ProblemError, match=r"'z0'.*not in \[0, 1\]"):
        CrossEntropy([1.0]).for_outputs({"z0": PauliSum.from_terms([(1.0, "Z0")])})
    with pytest.raises(ProblemError, match="'z0'"):
        make_loss("cross_entropy", [1.0], 1, outputs={"z0": PauliSum.from_terms([(1.0, "Z0")])})
    # not decided in advance: the value is checked where the loss is evaluated
    ce = CrossEntropy([1.0], names=("z0",))
    with pytest.raises(ProblemError, match=r"output 'z0' = -0.5 is not in \[0, 1\]"):
        ce(np.array([-0.5]))
    # rounding is tolerated (1e-9), the clip floor still applies
    assert ce(np.array([1.0 + 1e-12]))[0] == pytest.approx(0.0, abs=1e-11)
    # a non-commuting sum with a spectrum in [0, 1]: (1 + (X0 + Z0)/√2) / 2 is a projector
    s = 1 / math.sqrt(2)
    proj = PauliSum.from_terms([(0.5, ""), (0.5 * s, "X0"), (0.5 * s, "Z0")])
    lo, hi = proj.spectrum_bounds()
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(1.0, abs=1e-12)
    bound = CrossEntropy([1.0]).for_outputs({"p": proj})
    assert bound.domain_tol == math.inf and bound.names == ("p",)
    system = QEPSystem(h, {"p": proj})
    rec = estimate_gradient(system, {"g": 0.3}, bound, estimator="linear_response")
    assert rec.loss == pytest.approx(-math.log(rec.outputs[0]), rel=1e-12)
    with pytest.raises(ProblemError, match="non-negative"):
        CrossEntropy([-0.5])


def test_cross_entropy_on_z0_through_the_api_is_refused() -> None:
    """The issue's case through :func:`estimate_gradient` with a plain ``CrossEntropy``: the
    value check at evaluation refuses ⟨Z0⟩ < 0 (here ⟨Z0⟩ = -0.78 in the ground state)."""
    h = ParametrisedHamiltonian(2, [(1.0, "Z0"), (0.5, "X0"), (1.0, "Z0 Z1", "j")])
    system = QEPSystem(h, {"z0": "Z0"})
    with pytest.raises(ProblemError, match="probabilities"):
        estimate_gradient(system, {"j": 0.1}, CrossEntropy([1.0]), estimator="linear_response")


@pytest.mark.parametrize("target", [1e300, -1e308, 1e160])
def test_huge_target_names_the_target(tmp_path: Path, capsys, target: float) -> None:
    """Used to say "nu[up] not finite": the error signal 2(y - t) overflowed into a nudge."""
    d = base()
    d["loss"]["target"] = [target]
    for est in ("linear_response", "centered"):
        d["estimator"] = {"kind": est}
        err = assert_one_line_error(capsys, write(tmp_path, d), "loss.target")
        assert "nu[" not in err


def test_huge_target_in_the_api() -> None:
    mse = MeanSquaredError([1e300])
    with pytest.raises(ProblemError, match=r"loss\.target"):
        mse(np.array([0.5]))
    assert MeanSquaredError([1e3])(np.array([0.0]))[0] == 1e6  # large but harmless


def test_duplicate_sensor_site_is_one_short_message() -> None:
    with pytest.raises(ProblemError) as info:
        sensor_layout((8, 9), (0, 0))
    assert str(info.value) == "sensor_sites has a duplicate site 0"
    with pytest.raises(ProblemError, match="sensor_qubits has a duplicate qubit 8"):
        sensor_layout((8, 8), (0, 1))
    with pytest.raises(ProblemError, match=r"sensor_sites\[0\]"):
        sensor_layout((8, 9), ("0", 1))


def test_duplicate_parameter_names_are_listed_once() -> None:
    names = [f"p{i}" for i in range(57)]
    with pytest.raises(ProblemError) as info:
        ParametrisedHamiltonian(1, [(1.0, "X0")], params=[*names, "p3"])
    msg = str(info.value)
    assert "['p3']" in msg and "p40" not in msg


# ------------------------------------------------------------------ read-only results
def _system() -> tuple[QEPSystem, dict[str, float]]:
    h = ParametrisedHamiltonian(
        3,
        [(1.0, "Z0 Z1", "j"), (1.0, "Z1 Z2", "j"), (1.0, "X0", "g"), (1.0, "X1", "g"),
         (1.0, "X2", "g"), (0.3, "Z0")],
    )  # fmt: skip
    outputs = {"up": PauliSum.projector({2: 0}), "m": PauliSum.from_terms([(1.0, "Z0")])}
    return QEPSystem(h, outputs, trainable=["g"], cost="X1"), {"j": 0.7, "g": 0.4}


def test_cached_arrays_are_read_only_and_results_cannot_be_corrupted() -> None:
    system, values = _system()
    loss = MeanSquaredError([0.3, -0.2])
    before = estimate_gradient(system, values, loss, estimator="linear_response").gradient
    ident, coef = system.output_coefficients
    arrays = {
        "output identity parts": ident,
        "output coefficients": coef,
        "derivative_coefficients": system.full.derivative_coefficients,
        "hamiltonian derivative_coefficients": system.hamiltonian.derivative_coefficients,
        "trainable_index": system.trainable_index,
        "output_index": system.output_index,
        "cost coefficients": system.cost_coefficients[1],
        "coefficients_of": system.full.coefficients_of(system.outputs["m"])[1],
        "loss target": loss.target,
    }
    for name, a in arrays.items():
        assert not a.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 7
    after = estimate_gradient(system, values, loss, estimator="linear_response").gradient
    np.testing.assert_array_equal(before, after)  # bit for bit
    copy_ = system.full.derivative_coefficients.copy()  # a copy is the caller's to change
    copy_[0] = 1.0


# ------------------------------------------------------------------ text is never a number
def test_text_is_never_a_number() -> None:
    system, values = _system()
    h = system.hamiltonian
    with pytest.raises(ProblemError, match=r"'g'.*'0.5'"):
        h.values({"j": 0.7, "g": "0.5"})
    with pytest.raises(ProblemError, match="real numbers"):
        h.check_values(["0.7", "0.5"])
    with pytest.raises(ProblemError, match="real numbers"):
        h.check_values(np.array([True, False]))
    with pytest.raises(ProblemError, match="real numbers"):
        h.check_values(np.array([0.7 + 1j, 0.5]))
    with pytest.raises(ProblemError, match="finite real"):
        Term.make("0.5", "X0")
    with pytest.raises(ProblemError, match="finite real"):
        Term(True, PauliString.parse("X0"))
    with pytest.raises(PauliError, match="must be a number"):
        PauliSum.from_terms([("0.5", "X0")])
    with pytest.raises(ProblemError, match=r"loss.target\[0\]"):
        MeanSquaredError(["0.5"])
    with pytest.raises(ProblemError, match=r"'0\.5'"):
        estimate_gradient(system, {"j": 0.7, "g": "0.5"}, MeanSquaredError([0.3, 0.1]))
    with pytest.raises(ProblemError, match=r"nu\[up\]"):
        system.full_values(values, {"nu[up]": "0.1"})
    with pytest.raises(ProblemError, match="unknown nudge"):
        system.full_values(values, {"j": 0.1})
    for bad in ("0.5", True, None, [0.5], float("nan"), 1j):
        with pytest.raises(ProblemError):
            checks.finite_real(bad, "x")


def test_numpy_numbers_are_numbers() -> None:
    system, _ = _system()
    loss = MeanSquaredError(np.array([0.3, -0.2], dtype=np.float32))
    ref = estimate_gradient(system, {"j": 0.7, "g": 0.4}, loss, estimator="linear_response")
    rec = estimate_gradient(
        system, {"j": np.float64(0.7), "g": np.float32(0.4)}, loss, estimator="linear_response"
    )
    np.testing.assert_allclose(rec.gradient, ref.gradient, rtol=1e-6)  # float32(0.4) = 0.4 + 6e-9
    assert checks.positive_int(np.int64(5), "shots") == 5
    assert checks.nonnegative_int(np.uint8(0), "seed") == 0
    assert type(checks.positive_int(np.int32(3), "n")) is int
    for bad in (np.float64(2.0), 2.0, True, np.bool_(True), "2"):
        with pytest.raises(ProblemError, match="shots"):
            checks.positive_int(bad, "shots")
    assert checks.positive_int(2.0, "shots", integral_float=True) == 2
    with pytest.raises(ProblemError, match=r"in 1\.\.10, got 11"):
        checks.positive_int(11, "n", 10)
    assert ParametrisedHamiltonian(np.int64(2), [(1.0, "X1")]).n_qubits == 2


def test_numpy_integer_shots_and_seed_alike() -> None:
    system, values = _system()
    loss = MeanSquaredError([0.3, -0.2])
    a = estimate_gradient(system, values, loss, estimator="centered", shots=50, seed=3)
    b = estimate_gradient(
        system, values, loss, estimator="centered", shots=np.int64(50), seed=np.int64(3)
    )
    np.testing.assert_array_equal(a.gradient, b.gradient)


def test_function_loss_returning_nonsense_is_refused() -> None:
    system, values = _system()
    cases: list[tuple[Callable[[np.ndarray], Any], str]] = [
        (lambda y: (float("nan"), 2 * y), "NaN or inf"),
        (lambda y: (0.0, np.full_like(y, np.inf)), "NaN or inf"),
        (lambda y: (0.0, np.zeros(3)), "shape"),
        (lambda y: (0.0, 2 * y, 1), "must return"),
        (lambda y: ("0.5", 2 * y), "real number"),
        (lambda y: (0.0, 2j * y), "real"),
        (lambda y: None, "must return"),
    ]
    for fn, match in cases:
        with pytest.raises(ProblemError, match=match):
            estimate_gradient(system, values, FunctionLoss(fn), estimator="linear_response")
    with pytest.raises(ProblemError, match="callable"):
        FunctionLoss(3)


def test_system_refuses_ambiguous_names() -> None:
    h = ParametrisedHamiltonian(2, [(1.0, "X0", "nu[y]"), (1.0, "Z1", "b")])
    with pytest.raises(ProblemError, match="reserved"):
        QEPSystem(h, {"y": "Z0"})
    h2 = ParametrisedHamiltonian(2, [(1.0, "X0", "a")])
    with pytest.raises(ProblemError, match="'cost'"):
        QEPSystem(h2, {"cost": "Z0"}, cost="Z1")
    with pytest.raises(ProblemError, match="more than once"):
        QEPSystem(h2, {"y": "Z0"}, trainable=["a", "a"])
    with pytest.raises(ProblemError, match="output names"):
        QEPSystem(h2, {0: "Z0"})


# ------------------------------------------------------------------ hostile problem files
CASES: list[tuple[str, Callable[[dict[str, Any]], Any], list[str]]] = [
    # wrong types at every key
    ("qubits-text", edit("qubits", "3"), ["qubits", "(text)"]),
    ("qubits-list", edit("qubits", [3]), ["qubits"]),
    ("qubits-null", edit("qubits", None), ["qubits"]),
    ("qubits-fraction", edit("qubits", 2.5), ["qubits"]),
    ("qubits-negative", edit("qubits", -3), ["qubits"]),
    ("qubits-1e300", edit("qubits", 1e300), ["qubits", "1024"]),
    ("qubits-bigint", edit("qubits", 10**40), ["qubits", "1024"]),
    ("params-list", edit("params", [0.7, 0.4]), ["params"]),
    ("params-text", edit("params", "j=0.7"), ["params"]),
    ("param-value-text", edit("params.j", "0.7"), ["params.j", "(text)"]),
    ("param-value-list", edit("params.j", [0.7]), ["params.j"]),
    ("param-value-bool", edit("params.j", True), ["params.j"]),
    ("param-value-null", edit("params.j", None), ["params.j"]),
    ("param-value-nan-text", edit("params.j", "nan"), ["params.j"]),
    ("param-value-inf-text", edit("params.g", "inf"), ["params.g"]),
    ("param-value-nan", edit("params.j", float("nan")), ["params.j"]),
    ("param-value-huge", edit("params.j", 1e400), ["params.j"]),
    ("inputs-list", edit("inputs", [0.2]), ["inputs"]),
    ("input-value-text", edit("inputs.x", "-inf"), ["inputs.x"]),
    ("param-name-empty", lambda d: d["params"].update({"": 0.1}), ["params"]),
    ("param-name-reserved", lambda d: d["params"].update({"nu[up]": 0.1}), ["params.nu[up]"]),
    ("terms-table", edit("terms", {"pauli": "X0"}), ["terms"]),
    ("terms-text", edit("terms", "X0 Z1"), ["terms"]),
    ("terms-null", edit("terms", None), ["terms"]),
    ("term-number", edit("terms.0", 5), ["terms[0]"]),
    ("term-list", edit("terms.0", ["Z0 Z1", 1.0]), ["terms[0]"]),
    ("term-pauli-number", edit("terms.0.pauli", 5), ["terms[0].pauli"]),
    ("term-pauli-list", edit("terms.0.pauli", ["Z0", "Z1"]), ["terms[0].pauli"]),
    ("term-pauli-junk", edit("terms.0.pauli", "Z0 Z1 %$"), ["terms[0].pauli"]),
    ("term-pauli-negative", edit("terms.0.pauli", "Z-1"), ["terms[0].pauli"]),
    ("term-pauli-repeated", edit("terms.0.pauli", "Z0 X0"), ["terms[0].pauli", "twice"]),
    ("term-coeff-bool", edit("terms.0.coeff", True), ["terms[0].coeff"]),
    ("term-coeff-null", edit("terms.0.coeff", None), ["terms[0].coeff"]),
    ("term-coeff-nan-text", edit("terms.0.coeff", "NaN"), ["terms[0].coeff"]),
    ("term-coeff-table", edit("terms.0.coeff", {"re": 1}), ["terms[0].coeff"]),
    ("term-coeff-neg-inf", edit("terms.0.coeff", float("-inf")), ["terms[0].coeff"]),
    ("term-param-number", edit("terms.0.param", 5), ["terms[0].param"]),
    ("term-param-empty", edit("terms.0.param", ""), ["terms[0].param"]),
    ("term-param-list", edit("terms.0.param", ["j"]), ["terms[0].param"]),
    ("term-unknown-key", edit("terms.0.weight", 2), ["terms[0].weight"]),
    ("term-missing-pauli", drop("terms.0.pauli"), ["terms[0].pauli", "missing"]),
    ("outputs-table", edit("outputs", {"up": "Z2"}), ["outputs"]),
    ("output-number", edit("outputs.0", 3), ["outputs[0]"]),
    ("output-name-number", edit("outputs.0.name", 3), ["outputs[0].name"]),
    ("output-name-empty", edit("outputs.0.name", ""), ["outputs[0].name"]),
    ("output-terms-table", edit("outputs.0.terms", {"pauli": "Z2"}), ["outputs[0].terms"]),
    ("output-no-operator", drop("outputs.0.terms"), ["outputs[0]"]),
    ("output-unknown-key", edit("outputs.0.weight", 1), ["outputs[0].weight"]),
    ("output-qubit-range", edit("outputs.0.terms.1.pauli", "Z9"), ["outputs[0].terms[1].pauli"]),
    ("loss-list", edit("loss", ["mse"]), ["loss"]),
    ("loss-text", edit("loss", "mse"), ["loss"]),
    ("loss-kind-number", edit("loss.kind", 1), ["loss.kind"]),
    ("loss-kind-empty", edit("loss.kind", ""), ["loss.kind"]),
    ("loss-kind-list", edit("loss.kind", ["mse"]), ["loss.kind"]),
    ("target-text", edit("loss.target", "0.2"), ["loss.target"]),
    ("target-table", edit("loss.target", {"up": 0.2}), ["loss.target"]),
    ("target-nested", edit("loss.target", [[0.2]]), ["loss.target[0]"]),
    ("target-entry-text", edit("loss.target", ["0.2"]), ["loss.target[0]"]),
    ("target-entry-nan-text", edit("loss.target", ["nan"]), ["loss.target[0]"]),
    ("target-entry-inf", edit("loss.target", [float("inf")]), ["loss.target[0]"]),
    ("target-missing", drop("loss.target"), ["loss.target", "missing"]),
    ("loss-unknown-key", edit("loss.weight", 1), ["loss.weight"]),
    ("state-list", edit("state", ["ground"]), ["state"]),
    ("state-kind-number", edit("state.kind", 0), ["state.kind"]),
    ("state-kind-list", edit("state.kind", ["ground"]), ["state.kind"]),
    ("state-kind-empty", edit("state.kind", ""), ["state"]),
    ("state-method-table", edit("state.method", {"a": 1}), ["state.method"]),
    ("state-degeneracy-list", edit("state.degeneracy", ["error"]), ["state.degeneracy"]),
    ("state-level-text", edit("state", {"kind": "eigenstate", "level": "1"}), ["state.level"]),
    ("state-level-negative", edit("state", {"kind": "eigenstate", "level": -1}), ["state.level"]),
    ("state-level-huge", edit("state", {"kind": "eigenstate", "level": 1e30}), ["state.level"]),
    ("state-temperature-text", edit("state", {"kind": "thermal", "temperature": "1"}), ["state"]),
    (
        "state-temperature-nan",
        edit("state", {"kind": "thermal", "temperature": float("nan")}),
        ["state.temperature"],
    ),
    ("state-tol-bool", edit("state.tol", True), ["state.tol"]),
    ("state-maxiter-zero", edit("state.maxiter", 0), ["state.maxiter"]),
    ("state-dense-max-dim-huge", edit("state.dense_max_dim", 10**30), ["state.dense_max_dim"]),
    ("state-unknown-key", edit("state.beta", 1), ["state.beta"]),
    ("estimator-list", edit("estimator", ["centered"]), ["estimator"]),
    ("estimator-kind-number", edit("estimator.kind", 1), ["estimator.kind"]),
    ("estimator-kind-list", edit("estimator.kind", ["centered"]), ["estimator.kind"]),
    ("estimator-kind-empty", edit("estimator.kind", ""), ["estimator.kind"]),
    ("estimator-nudge-text", edit("estimator.nudge", "0.01"), ["estimator.nudge"]),
    ("estimator-nudge-bool", edit("estimator.nudge", True), ["estimator.nudge"]),
    ("estimator-nudge-inf-text", edit("estimator.nudge", "inf"), ["estimator.nudge"]),
    ("estimator-variant-number", edit("estimator.variant", 3), ["estimator.variant"]),
    ("estimator-unknown-key", edit("estimator.beta", 0.1), ["estimator.beta"]),
    ("shots-text", edit("shots", "100"), ["shots", "(text)"]),
    ("shots-bool", edit("shots", True), ["shots"]),
    ("shots-list", edit("shots", [100]), ["shots"]),
    ("shots-zero", edit("shots", 0), ["shots"]),
    ("shots-negative", edit("shots", -5), ["shots"]),
    ("shots-inf", edit("shots", float("inf")), ["shots"]),
    ("shots-beyond-2^53", edit("shots", 1e30), ["shots"]),
    ("shot-model-number", lambda d: d.update(shots=10, shot_model=1), ["shot_model"]),
    ("shot-model-list", lambda d: d.update(shots=10, shot_model=["sampled"]), ["shot_model"]),
    ("shot-model-empty", lambda d: d.update(shots=10, shot_model=""), ["shot_model"]),
    ("seed-text", edit("seed", "1"), ["seed"]),
    ("seed-bool", edit("seed", False), ["seed"]),
    ("seed-negative", edit("seed", -1), ["seed"]),
    ("seed-huge", edit("seed", 10**30), ["seed"]),
    ("noisy-number", edit("noisy_outputs", 1), ["noisy_outputs"]),
    ("noisy-text", edit("noisy_outputs", "true"), ["noisy_outputs"]),
    ("name-number", edit("name", 5), ["name"]),
    ("description-list", edit("description", ["a"]), ["description"]),
    ("unknown-top-key", edit("hamiltonian", {}), ["hamiltonian"]),
    ("param-and-input", lambda d: d["inputs"].update(j=0.1), ["inputs.j"]),
    (
        "duplicate-output-name",
        lambda d: d["outputs"].append(dict(d["outputs"][0])),
        ["outputs[1].name"],
    ),
    ("undefined-param", edit("terms.0.param", "nope"), ["terms[0].param", "nope"]),
    # deeply nested junk in a key that expects a number
    ("nested-junk", edit("params.j", [[[[[[[[[[{"a": [[[1]]]}]]]]]]]]]]), ["params.j"]),
]


@pytest.mark.parametrize(("mutate", "expect"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_hostile_problem_file(
    tmp_path: Path, capsys, mutate: Callable[[dict[str, Any]], Any], expect: list[str]
) -> None:
    d = base()
    mutate(d)
    assert_one_line_error(capsys, write(tmp_path, d), *expect)


RAW: list[tuple[str, str | bytes, str, list[str]]] = [
    ("empty-json", "", "p.json", ["invalid JSON"]),
    ("whitespace-json", "  \n ", "p.json", ["invalid JSON"]),
    ("empty-toml", "", "p.toml", ["qubits", "missing"]),
    ("json-list", "[1, 2]", "p.json", ["expected a table/object"]),
    ("json-number", "3", "p.json", ["expected a table/object"]),
    ("json-null", "null", "p.json", ["expected a table/object"]),
    ("duplicate-key", '{"qubits": 3, "qubits": 4, "terms": []}', "p.json", ["'qubits'", "twice"]),
    (
        "duplicate-param",
        json.dumps(BASE).replace('"j": 0.7', '"j": 0.7, "j": 9'),
        "p.json",
        ["'j'", "twice"],
    ),
    ("deep-json", "[" * 100_000 + "]" * 100_000, "p.json", ["nested too deeply"]),
    (
        "deep-json-value",
        '{"qubits": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "p.json",
        ["nested too deeply"],
    ),
    ("deep-toml", "a = " + "[" * 100_000 + "]" * 100_000, "p.toml", ["TOML"]),
    ("huge-int-json", '{"qubits": ' + "9" * 5000 + "}", "p.json", ["invalid JSON"]),
    ("huge-int-toml", "qubits = " + "9" * 5000, "p.toml", ["TOML"]),
    ("not-utf8", b'{"qubits": 3, "name": "caf\xe9"}', "p.json", ["UTF-8"]),
    ("not-utf8-toml", b'qubits = 3\nname = "\xff\xfe"', "p.toml", ["UTF-8"]),
    ("utf16", '{"qubits": 3}'.encode("utf-16"), "p.json", ["UTF-8"]),
    (
        "random-bytes",
        bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)),
        "p.json",
        [],
    ),
    (
        "toml-datetime-seed",
        "seed = 1979-05-27T07:32:00Z\n" + base_toml(),
        "p.toml",
        ["seed", "datetime"],
    ),
    ("toml-date-qubits", "qubits = 1979-05-27\nterms = []", "p.toml", ["qubits"]),
    (
        "toml-time-coeff",
        'qubits = 1\n[[terms]]\npauli = "X0"\ncoeff = 07:32:00',
        "p.toml",
        ["terms[0].coeff"],
    ),
    ("toml-inf", 'qubits = 1\n[[terms]]\npauli = "X0"\ncoeff = inf', "p.toml", ["terms[0].coeff"]),
    (
        "toml-nan",
        'qubits = 1\n[params]\na = nan\n[[terms]]\npauli = "X0"',
        "p.toml",
        ["params.a"],
    ),
    ("json-nan-literal", '{"qubits": NaN}', "p.json", ["qubits"]),
    (
        "json-infinity-literal",
        '{"qubits": 3, "params": {"a": -Infinity}, "terms": []}',
        "p.json",
        ["params.a"],
    ),
    (
        "toml-array-of-tables-outputs",
        'qubits = 1\nterms = []\n[outputs]\nname = "y"',
        "p.toml",
        ["outputs"],
    ),
]


@pytest.mark.parametrize(
    ("content", "name", "expect"), [pytest.param(*c[1:], id=c[0]) for c in RAW]
)
def test_malformed_file(
    tmp_path: Path, capsys, content: str | bytes, name: str, expect: list[str]
) -> None:
    assert_one_line_error(capsys, write(tmp_path, content, name), *expect)


def test_directory_device_and_missing_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "dir.json").mkdir()
    assert_one_line_error(capsys, tmp_path / "dir.json", "directory")
    if Path("/dev/zero").exists():  # would be read forever
        assert_one_line_error(capsys, "/dev/zero", "not a regular file")
    assert_one_line_error(capsys, tmp_path / "missing.json", "not found")


def test_byte_order_mark_gives_the_same_numbers(tmp_path: Path, capsys) -> None:
    ref = gradient_of(capsys, write(tmp_path, base(), "plain.json"))
    bom = write(tmp_path, "\ufeff" + json.dumps(base()), "bom.json")
    assert gradient_of(capsys, bom) == ref
    toml = base_toml()
    assert gradient_of(capsys, write(tmp_path, "\ufeff" + toml, "bom.toml")) == ref


def test_the_base_problem_gives_the_dense_reference_gradient(tmp_path: Path, capsys) -> None:
    """The corpus's base problem is itself right: dL/dθ = 2 (y - t) dy/dθ with dy/dθ from a
    central difference of the dense ground state (h = 1e-5: error ~1e-10, tolerance 1e-7)."""
    out = gradient_of(capsys, write(tmp_path, base()))
    x, z, i2 = np.array([[0, 1], [1, 0]]), np.diag([1.0, -1.0]), np.eye(2)

    def kron(*ms: np.ndarray) -> np.ndarray:
        r = np.ones((1, 1))
        for m in ms:
            r = np.kron(r, m)
        return r

    def y(j: float, g: float) -> float:
        h = j * (kron(z, z, i2) + kron(i2, z, z)) + g * (kron(x, i2, i2) + kron(i2, x, i2))
        h = h + g * kron(i2, i2, x) + 0.3 * 0.2 * kron(z, i2, i2)
        v = np.linalg.eigh(h)[1][:, 0]
        return float(v @ ((kron(i2, i2, i2) + kron(i2, i2, z)) / 2) @ v)

    y0, eps = y(0.7, 0.4), 1e-5
    assert out["outputs"]["up"] == pytest.approx(y0, abs=1e-10)
    dj = (y(0.7 + eps, 0.4) - y(0.7 - eps, 0.4)) / (2 * eps)
    dg = (y(0.7, 0.4 + eps) - y(0.7, 0.4 - eps)) / (2 * eps)
    assert out["gradient"]["j"] == pytest.approx(2 * (y0 - 0.2) * dj, abs=1e-7)
    assert out["gradient"]["g"] == pytest.approx(2 * (y0 - 0.2) * dg, abs=1e-7)


# ------------------------------------------------------------------ the shared checks
def test_shared_checks_module() -> None:
    """The one set of input checks (``qeprop.checks``) the CLI, the problem files and the API
    use: plain Python results, bounds as documented, messages that start with the input's name."""
    assert checks.finite_real(np.float32(0.5), "x") == 0.5
    assert type(checks.finite_real(np.int64(2), "x")) is float
    assert checks.finite_real(np.array(1.5), "x") == 1.5  # a 0-d array is a number
    assert checks.finite_real(0.0, "x", 0.0, 1.0) == 0.0  # closed bounds by default
    with pytest.raises(ProblemError, match=r"^x: must be in \(0, 1\], got 0\.0$"):
        checks.finite_real(0.0, "x", 0.0, 1.0, open_lo=True)
    with pytest.raises(ProblemError, match=r"^nudge: must be > 0, got -1\.0$"):
        checks.positive_real(-1.0, "nudge")
    with pytest.raises(ProblemError, match="finite"):
        checks.finite_real(10**400, "x")
    assert checks.probability(1, "p") == 1.0
    with pytest.raises(ProblemError, match=r"\[0, 1\]"):
        checks.probability(1.5, "p")
    assert checks.boolean(np.bool_(True), "flag") is True
    for bad in (1, 0, "true", None):
        with pytest.raises(ProblemError, match=r"^flag: must be true or false"):
            checks.boolean(bad, "flag")
    assert checks.choice(np.str_("sampled"), ("gaussian", "sampled"), "shot_model") == "sampled"
    with pytest.raises(ProblemError, match=r"one of \[1, 2\], got True"):
        checks.choice(True, (1, 2), "k")
    assert checks.index(np.int64(2), 3, "level") == 2
    for bad_index in (3, -1, 1.0):
        with pytest.raises(ProblemError, match=r"^level: "):
            checks.index(bad_index, 3, "level")
    v = checks.real_vector((1, np.float32(2.5)), "target", 2)
    assert v.tolist() == [1.0, 2.5] and not v.flags.writeable
    with pytest.raises(ProblemError, match=r"^target\[1\]: "):
        checks.real_vector([1.0, float("nan")], "target")
    with pytest.raises(ProblemError, match="expected 3"):
        checks.real_vector([1.0], "target", 3)
    with pytest.raises(ProblemError, match="bits"):  # an integer too long to print is described
        checks.positive_int(10**5000, "shots", 10)
    a = np.zeros(3)
    assert checks.readonly(a) is a and not a.flags.writeable


def test_function_loss_with_a_huge_error_signal_names_it() -> None:
    system, values = _system()
    loss = FunctionLoss(lambda y: (0.0, np.full_like(y, 1e200)))
    with pytest.raises(ProblemError, match=r"dL/dy of size 1e\+200") as info:
        estimate_gradient(system, values, loss, estimator="centered")
    assert "nu[" not in str(info.value)


def test_spectrum_bounds_match_dense_eigenvalues() -> None:
    """:meth:`PauliSum.spectrum_bounds` (used to refuse cross-entropy of non-probabilities)
    agrees with a dense ``eigvalsh`` on seeded random sums: qubit-wise commuting ones (the
    enumeration path, on qubits far apart) and general ones (the small dense path); 1e-12 is
    rounding for O(1) coefficients."""
    rng = np.random.default_rng(11)
    for trial in range(40):
        n = int(rng.integers(1, 5))
        letters = "XYZ"
        if trial % 2 == 0:  # one letter per qubit: qubit-wise commuting
            fixed = [letters[int(rng.integers(3))] for _ in range(n)]
            labels = [
                " ".join(f"{fixed[q]}{q}" for q in range(n) if rng.random() < 0.6) for _ in range(5)
            ]
        else:
            labels = [
                " ".join(
                    f"{letters[int(rng.integers(3))]}{q}" for q in range(n) if rng.random() < 0.6
                )
                for _ in range(5)
            ]
        op = PauliSum.from_terms([(float(rng.normal()), lab) for lab in labels])
        ev = np.linalg.eigvalsh(op.to_dense(n)) if len(op) else np.zeros(1)
        bounds = op.spectrum_bounds()
        assert bounds is not None
        assert bounds[0] == pytest.approx(ev[0], abs=1e-12)
        assert bounds[1] == pytest.approx(ev[-1], abs=1e-12)
    # qubits far apart are compacted: a projector on qubits 3 and 40
    proj = PauliSum.projector({3: 1, 40: 0})
    assert proj.spectrum_bounds() == pytest.approx((0.0, 1.0), abs=1e-15)
    # not decidable cheaply: a non-commuting sum on 12 qubits
    wide = PauliSum.from_terms([(1.0, " ".join(f"X{q}" for q in range(12))), (1.0, "Z0")])
    assert wide.spectrum_bounds() is None


def test_gradient_options_guard_their_numbers() -> None:
    """Nudges that overflow ν = βε, finite-difference steps below rounding, states as dicts."""
    system, values = _system()
    loss = MeanSquaredError([0.3, -0.2])
    with pytest.raises(ProblemError, match="nudge"):
        GradientOptions(nudge=1e308)
    with pytest.raises(ProblemError, match="fd_step"):
        GradientOptions(fd_step=1e-300)
    with pytest.raises(ProblemError, match="shots"):
        GradientOptions(shots=10**16)
    with pytest.raises(ProblemError, match="state"):
        GradientOptions(state={"kind": "ground", "nonsense": 1})  # type: ignore[arg-type]
    spec = GradientOptions(state={"kind": "ground", "method": "dense"}).state  # type: ignore[arg-type]
    assert spec.method == "dense"
    # a huge error signal times the largest nudge stays finite (both are bounded) and warns
    big = MeanSquaredError([1e95, 0.0])
    with pytest.warns(NudgeWindowWarning, match="not small compared with the gap"):
        estimate_gradient(system, values, big, estimator="centered", nudge=1e8)
    # the default step still agrees with linear response
    fd = estimate_gradient(system, values, loss, estimator="finite_difference")
    lr = estimate_gradient(system, values, loss, estimator="linear_response")
    np.testing.assert_allclose(fd.gradient, lr.gradient, atol=1e-6)


def test_sampled_shots_beyond_memory_are_refused_through_the_api() -> None:
    """``shots=1e12`` with the sampled model would need ~90 TB of outcomes: one-line refusal
    before anything is drawn (problem files are bounded earlier, in the parser)."""
    from qeprop.errors import ProblemTooLargeError

    system, values = _system()
    with pytest.raises(ProblemTooLargeError, match="shots per commuting group"):
        estimate_gradient(
            system, values, MeanSquaredError([0.3, -0.2]), estimator="centered",
            shots=10**12, seed=1, shot_model="sampled",
        )  # fmt: skip
