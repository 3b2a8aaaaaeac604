"""The ``qeprop gradient`` command: output formats, overrides, accuracy and one-line errors.

Everything calls :func:`qeprop.cli.main` in-process (fast, output captured with ``capsys``),
except one end-to-end test of the installed ``qeprop`` entry point in a subprocess. Problem files
are written from seeded random problems (``_problems``) and the gradients are compared with the
independent dense reference (``_reference``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _problems import ProblemSpec, build, problem_dict, random_spec, to_toml
from _reference import DenseModel
from qeprop import estimate_gradient
from qeprop.cli import main
from qeprop.measurement import measurement_settings
from qeprop.problem import load_problem

JSON_KEYS = {
    "loss", "outputs", "gradient", "stderr", "outputs_stderr", "estimator", "nudge",
    "contrastive", "preparations", "shots", "ledger", "backend", "symmetry_sectors", "site_order",
}  # fmt: skip


def write(tmp_path: Path, d: dict[str, Any] | str, name: str = "problem.json") -> Path:
    path = tmp_path / name
    if isinstance(d, str):
        path.write_text(d, encoding="utf-8")
    elif name.endswith(".toml"):
        path.write_text(to_toml(d), encoding="utf-8")
    else:
        path.write_text(json.dumps(d), encoding="utf-8")  # NaN/inf become NaN/Infinity literals
    return path


def run(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    code = main(["gradient", *map(str, argv)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def run_json(capsys: pytest.CaptureFixture, *argv: str | Path) -> dict[str, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1  # exactly one JSON object, on one line
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


def rel_err(got: dict[str, float], ref: np.ndarray, names: tuple[str, ...]) -> float:
    g = np.array([got[n] for n in names])
    return float(np.max(np.abs(g - ref)) / np.linalg.norm(ref))


# ------------------------------------------------------------------------------------ progress
def test_progress_line_on_a_terminal_only(tmp_path: Path, capsys, monkeypatch) -> None:
    """On a terminal's stderr the solves show a live line (solve number, kind, backend, Lanczos
    level, products, residual), cleared at the end; with --no-progress, or when stderr is not a
    terminal (as in every other test here), stderr stays empty and stdout is unchanged."""
    spec = random_spec(1, 5, n_outputs=3)
    d = problem_dict(spec)
    # dense_max_dim = 1: the Lanczos solver even at 5 qubits (not the dense fallback)
    d["state"] = {"kind": "ground", "method": "matrix-free", "dense_max_dim": 1}
    path = write(tmp_path, d)
    quiet = run_json(capsys, path)
    monkeypatch.setattr("qeprop.cli._SolveProgress.MININTERVAL", 0.0)  # draw every step
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(capsys, path, "--json")
    assert code == 0
    assert json.loads(out) == quiet
    for part in ("solve 1 (ground, matrix-free)", "solve 3 (ground, matrix-free)", "level 0",
                 "products, residual"):  # fmt: skip
        assert part in err, err
    code, out, err = run(capsys, path, "--json", "--no-progress")  # still on a "terminal"
    assert code == 0 and err == "" and json.loads(out) == quiet


# ------------------------------------------------------------------------------------ JSON output
def test_json_output_has_exactly_the_documented_keys(tmp_path: Path, capsys) -> None:
    spec = random_spec(1, 5, n_outputs=3)
    obj = run_json(capsys, write(tmp_path, problem_dict(spec)))
    assert set(obj) == JSON_KEYS
    assert list(obj["gradient"]) == list(spec.trainable)  # every trainable param, inputs excluded
    assert "x0" not in obj["gradient"]
    assert list(obj["outputs"]) == list(spec.outputs)
    assert all(isinstance(v, float) and math.isfinite(v) for v in obj["gradient"].values())
    assert isinstance(obj["loss"], float)
    assert obj["preparations"] == 3 and obj["shots"] == 0  # centered, exact


def test_json_and_toml_give_identical_output(tmp_path: Path, capsys) -> None:
    spec = random_spec(2, 6)
    d = problem_dict(
        spec,
        state={"kind": "thermal", "temperature": 0.7},
        estimator={"kind": "centered", "nudge": 0.02},
    )
    pj = write(tmp_path, d, "p.json")
    pt = write(tmp_path, d, "p.toml")
    for extra in ([], ["--estimator", "linear_response"], ["--shots", "50", "--seed", "3"]):
        code_j, out_j, err_j = run(capsys, pj, "--json", *extra)
        code_t, out_t, err_t = run(capsys, pt, "--json", *extra)
        assert code_j == code_t == 0, (err_j, err_t)
        assert out_j == out_t


def test_command_line_overrides_the_file(tmp_path: Path, capsys) -> None:
    spec = random_spec(3, 5)
    system, values, loss = build(spec)
    d = problem_dict(spec, estimator={"kind": "centered", "nudge": 0.01}, seed=11)
    path = write(tmp_path, d)

    def direct(**kw: Any) -> dict[str, float]:
        kw.setdefault("estimator", "centered")
        kw.setdefault("nudge", 0.01)
        return estimate_gradient(system, values, loss, **kw).gradient_dict()

    base = run_json(capsys, path)
    assert base["gradient"] == pytest.approx(direct(), rel=1e-12)
    # --estimator
    lr = run_json(capsys, path, "--estimator", "linear_response")
    assert lr["preparations"] == 1
    assert lr["gradient"] == pytest.approx(direct(estimator="linear_response"), rel=1e-12)
    assert lr["gradient"] != base["gradient"]
    # --nudge
    big = run_json(capsys, path, "--nudge", "0.05")
    assert big["gradient"] == pytest.approx(direct(nudge=0.05), rel=1e-12)
    assert big["gradient"] != base["gradient"]
    # --shots (seed from the file) and --seed
    shots = run_json(capsys, path, "--shots", "40")
    p = len(spec.trainable)
    # centered: M shots per setting of the ⟨A_j⟩ at +β and -β, and of the outputs (measured
    # with shots by default in problem files) at the free state
    per_phase = [ph["shots"] for ph in shots["ledger"]]
    assert [ph["phase"] for ph in shots["ledger"]] == ["free", "nudged+", "nudged-"]
    assert shots["shots"] == sum(per_phase) and all(s % 40 == 0 and s > 0 for s in per_phase)
    coupling_settings = measurement_settings(
        system.full, system.full.derivative_coefficients[system.trainable_index]
    )
    assert per_phase[1] == per_phase[2] == 40 * len(coupling_settings)
    assert shots["gradient"] == pytest.approx(
        direct(shots=40, seed=11, noisy_outputs=True), rel=1e-12
    )
    again = run_json(capsys, path, "--shots", "40")
    assert again == shots  # reproducible
    other = run_json(capsys, path, "--shots", "40", "--seed", "12")
    assert other["gradient"] == pytest.approx(
        direct(shots=40, seed=12, noisy_outputs=True), rel=1e-12
    )
    assert other["gradient"] != shots["gradient"]
    # shots in the file, overridden on the command line
    path2 = write(tmp_path, {**d, "shots": 20}, "shots.json")
    assert run_json(capsys, path2)["shots"] == shots["shots"] // 2
    assert run_json(capsys, path2, "--shots", "5")["shots"] == shots["shots"] // 8
    # noisy_outputs false: the outputs are taken exact, and the ledger says so
    path4 = write(tmp_path, {**d, "shots": 20, "noisy_outputs": False}, "exact_out.json")
    exact_out = run_json(capsys, path4)
    assert exact_out["ledger"][0]["shots"] == 0
    assert exact_out["ledger"][0]["exact"] == [f"output:{o}" for o in spec.outputs]
    assert exact_out["shots"] == shots["shots"] // 2 - exact_out["ledger"][0]["shots"] - (
        shots["ledger"][0]["shots"] // 2
    )
    # the file's estimator options are used when not overridden
    path3 = write(
        tmp_path, {**d, "estimator": {"kind": "finite_difference", "fd_step": 1e-3}}, "fd.json"
    )
    fd = run_json(capsys, path3)
    assert fd["preparations"] == 2 * p + 1
    assert fd["gradient"] == pytest.approx(
        direct(estimator="finite_difference", fd_step=1e-3), rel=1e-12
    )


# (seed, qubits, state): ground states on 4-10 qubits (dense up to 8, Lanczos above), Gibbs
# states up to 7 qubits (a full dense spectrum per solve).
REFERENCE_CASES = [
    (11, 4, {"kind": "ground"}),
    (12, 6, {"kind": "ground"}),
    (13, 8, {"kind": "ground"}),
    (14, 9, {"kind": "ground"}),
    (15, 10, {"kind": "ground"}),
    (16, 5, {"kind": "thermal", "temperature": 0.5}),
    (17, 7, {"kind": "thermal", "temperature": 2.0}),
    (19, 6, {"kind": "eigenstate", "level": 1}),
]


@pytest.mark.parametrize(
    ("seed", "n", "state"),
    REFERENCE_CASES,
    ids=[f"{c[1]}q-{c[2]['kind']}" for c in REFERENCE_CASES],
)
def test_cli_gradients_match_the_dense_reference(tmp_path: Path, capsys, seed, n, state) -> None:
    """Tolerances: linear_response is exact up to solver error (Lanczos tol 1e-12 -> ≲ 1e-10
    relative) -> 1e-6; finite_difference O(h²) with h = 1e-4 (≲ 1e-8) -> 1e-5; centered at
    β = 0.01 has an O(β²) ≈ 1e-4 relative bias on these problems (gap ≥ 0.25) -> 1e-3."""
    spec = random_spec(seed, n, levels=state.get("level", 0))
    _, values, loss = build(spec)
    ref, y_ref, l_ref, _ = DenseModel(spec).gradient(
        values, loss, state["kind"], state.get("temperature"), state.get("level", 0)
    )
    path = write(tmp_path, problem_dict(spec, state=state))
    names = spec.trainable
    for est, tol in (("linear_response", 1e-6), ("finite_difference", 1e-5), ("centered", 1e-3)):
        obj = run_json(capsys, path, "--estimator", est, "--nudge", "0.01")
        assert rel_err(obj["gradient"], ref, names) < tol, est
        assert obj["loss"] == pytest.approx(l_ref, abs=1e-9)
        np.testing.assert_allclose(list(obj["outputs"].values()), y_ref, atol=1e-9)


def test_cli_cost_observable_problem(tmp_path: Path, capsys) -> None:
    """``loss = {kind: observable}``: the default estimator is cost_observable (centered)."""
    spec = random_spec(18, 5, cost=True)
    _, values, _ = build(spec)
    ref = DenseModel(spec).gradient(values, None)[0]
    d = problem_dict(spec)
    del d["estimator"]
    path = write(tmp_path, d)
    obj = run_json(capsys, path)
    assert list(obj["outputs"]) == ["cost"]
    assert rel_err(obj["gradient"], ref, spec.trainable) < 1e-3
    obj = run_json(capsys, path, "--estimator", "linear_response")
    assert rel_err(obj["gradient"], ref, spec.trainable) < 1e-6


# ------------------------------------------------------------------------------------ human output
def test_human_readable_output_lists_everything(tmp_path: Path, capsys) -> None:
    spec = random_spec(4, 5, n_outputs=3)
    path = write(tmp_path, problem_dict(spec, estimator={"kind": "linear_response"}))
    obj = run_json(capsys, path)
    code, out, err = run(capsys, path)
    assert code == 0 and err == ""
    assert "Traceback" not in out
    lines = out.splitlines()
    assert str(path) in lines[0]

    def value_of(name: str) -> float:
        hits = [ln.split() for ln in lines if ln.split() and ln.split()[0] == name]
        assert len(hits) == 1, (name, out)
        return float(hits[0][1])

    # printed with 8 significant digits
    for name, y in obj["outputs"].items():
        assert value_of(name) == pytest.approx(y, rel=1e-7, abs=1e-12)
    for name, g in obj["gradient"].items():
        assert value_of(name) == pytest.approx(g, rel=1e-7, abs=1e-12)
    assert any(ln.startswith("loss") for ln in lines)
    # with shots, every value carries a standard error
    code, out, _ = run(capsys, path, "--estimator", "centered", "--shots", "30")
    assert code == 0
    for name in [*spec.outputs, *spec.trainable]:
        (line,) = [ln for ln in out.splitlines() if ln.split() and ln.split()[0] == name]
        if name in spec.trainable:
            assert "±" in line


# ------------------------------------------------------------------------------------ errors
def _mutate(fn: Callable[[dict[str, Any]], None]) -> Callable[[ProblemSpec], dict[str, Any]]:
    def make(spec: ProblemSpec) -> dict[str, Any]:
        d = problem_dict(spec)
        fn(d)
        return d

    return make


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``d[a][b]...`` for a path ``"a.b.0.c"``."""

    def fn(d: dict[str, Any]) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        obj: Any = d
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value

    return fn


# (id, make problem dict from the 5-qubit spec, file suffix, extra argv, substrings of the message)
ERROR_CASES: list[tuple[str, Callable[[ProblemSpec], Any], str, list[str], list[str]]] = [
    ("pauli-letter", _mutate(_set("terms.2.pauli", "Q0 X1")), ".json", [], ["terms[2].pauli"]),
    ("pauli-letter-toml", _mutate(_set("terms.2.pauli", "X0 W1")), ".toml", [], ["terms[2].pauli"]),
    ("qubit-index", _mutate(_set("terms.1.pauli", "X1 Z5")), ".json", [], ["terms[1].pauli", "5"]),
    (
        "qubit-index-output",
        _mutate(_set("outputs.0.terms.1.pauli", "Z7")),
        ".json",
        [],
        ["outputs[0].terms[1].pauli"],
    ),
    (
        "undefined-param",
        _mutate(_set("terms.0.param", "nope")),
        ".json",
        [],
        ["terms[0].param", "nope"],
    ),
    ("nan-param", _mutate(_set("params.th0", float("nan"))), ".json", [], ["params.th0"]),
    ("inf-coeff", _mutate(_set("terms.3.coeff", float("inf"))), ".json", [], ["terms[3].coeff"]),
    ("nan-input", _mutate(_set("inputs.x0", float("nan"))), ".json", [], ["inputs.x0"]),
    ("nan-target", _mutate(_set("loss.target.1", float("nan"))), ".json", [], ["loss.target[1]"]),
    ("nan-param-toml", _mutate(_set("params.th1", float("nan"))), ".toml", [], ["params.th1"]),
    (
        "inf-coeff-toml",
        _mutate(_set("terms.0.coeff", float("-inf"))),
        ".toml",
        [],
        ["terms[0].coeff"],
    ),
    (
        "nan-output-coeff",
        _mutate(_set("outputs.1.terms.0.coeff", float("nan"))),
        ".json",
        [],
        ["outputs[1].terms[0].coeff"],
    ),
    ("target-length", _mutate(_set("loss.target", [0.5])), ".json", [], ["loss.target"]),
    (
        "target-length-toml",
        _mutate(_set("loss.target", [0.1, 0.2, 0.3, 0.4])),
        ".toml",
        [],
        ["loss.target"],
    ),
    (
        "estimator-file",
        _mutate(_set("estimator.kind", "backprop")),
        ".json",
        [],
        ["estimator.kind", "backprop"],
    ),
    (
        "estimator-cli",
        _mutate(lambda d: None),
        ".json",
        ["--estimator", "backprop"],
        ["--estimator", "backprop"],
    ),
    ("state-kind", _mutate(_set("state.kind", "excited")), ".json", [], ["state", "excited"]),
    (
        "thermal-no-temperature",
        _mutate(_set("state.kind", "thermal")),
        ".json",
        [],
        ["state", "temperature"],
    ),
    (
        "negative-temperature",
        _mutate(_set("state", {"kind": "thermal", "temperature": -1.0})),
        ".toml",
        [],
        ["state", "temperature"],
    ),
    ("unknown-top-key", _mutate(_set("hamiltonian", 1)), ".json", [], ["hamiltonian"]),
    ("unknown-term-key", _mutate(_set("terms.0.weight", 1)), ".json", [], ["terms[0].weight"]),
    ("bad-nudge-file", _mutate(_set("estimator.nudge", -0.1)), ".json", [], ["estimator"]),
    ("bad-nudge-cli", _mutate(lambda d: None), ".json", ["--nudge", "-0.1"], ["--nudge"]),
    ("bad-shots-cli", _mutate(lambda d: None), ".json", ["--shots", "0"], ["--shots"]),
    ("param-and-input", _mutate(_set("inputs.th0", 0.5)), ".json", [], ["inputs.th0"]),
    (
        "duplicate-output",
        _mutate(lambda d: [_set(f"outputs.{i}.name", "y")(d) for i in (0, 1)]),
        ".json",
        [],
        ["outputs[1].name"],
    ),
    ("loss-kind", _mutate(_set("loss.kind", "hinge")), ".json", [], ["loss.kind", "hinge"]),
    (
        "loss-observable-bad",
        _mutate(_set("loss", {"kind": "observable", "terms": [{"pauli": "Z9"}]})),
        ".json",
        [],
        ["loss.terms[0].pauli"],
    ),
    ("shots-file", _mutate(_set("shots", -3)), ".json", [], ["shots"]),
    ("shots-fraction", _mutate(_set("shots", 2.5)), ".toml", [], ["shots"]),
    (
        "shot-model",
        _mutate(lambda d: d.update(shots=10, shot_model="poisson")),
        ".json",
        [],
        ["shot_model"],
    ),
    ("seed-fraction", _mutate(_set("seed", 1.5)), ".json", [], ["seed"]),
    ("noisy-outputs", _mutate(_set("noisy_outputs", "yes")), ".json", [], ["noisy_outputs"]),
    ("zero-qubits", _mutate(_set("qubits", 0)), ".json", [], ["qubits"]),
    ("bool-qubits", _mutate(_set("qubits", True)), ".json", [], ["qubits"]),
    ("missing-terms", _mutate(lambda d: d.pop("terms")), ".json", [], ["terms"]),
    ("coeff-string", _mutate(_set("terms.0.coeff", "1.0")), ".json", [], ["terms[0].coeff"]),
    (
        "state-level",
        _mutate(_set("state", {"kind": "eigenstate", "level": 1.5})),
        ".json",
        [],
        ["state.level"],
    ),
    ("state-key", _mutate(_set("state.temperatur", 1.0)), ".toml", [], ["state.temperatur"]),
    ("estimator-key", _mutate(_set("estimator.beta", 0.1)), ".json", [], ["estimator.beta"]),
    ("negative-seed-file", _mutate(lambda d: d.update(shots=10, seed=-1)), ".json", [], ["seed"]),
    (
        "negative-seed-cli",
        _mutate(lambda d: None),
        ".json",
        ["--shots", "5", "--seed", "-1"],
        ["--seed"],
    ),
    ("malformed-json", lambda spec: '{"qubits": 5, "terms": [', ".json", [], ["invalid JSON"]),
    ("malformed-toml", lambda spec: "qubits = 5\nterms = [\n", ".toml", [], ["invalid TOML"]),
    ("not-an-object", lambda spec: "[1, 2]", ".json", [], ["expected a table/object"]),
]


@pytest.mark.parametrize(
    ("make", "suffix", "argv", "expect"),
    [pytest.param(*c[1:], id=c[0]) for c in ERROR_CASES],
)
def test_bad_input_gives_one_line_error(tmp_path: Path, capsys, make, suffix, argv, expect) -> None:
    spec = random_spec(5, 5, n_outputs=2)
    d = make(spec)
    path = write(tmp_path, d, "bad" + suffix)
    code, out, err = run(capsys, path, "--json", *argv)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert err.startswith("qeprop: error: ")
    if not argv:
        assert str(path) in err  # the file ...
    for s in expect:  # ... and the place in it (or the command-line option)
        assert s in err, (s, err)


def test_file_that_is_not_utf8(tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"qubits": 4, "name": "caf\xe9"}')
    code, out, err = run(capsys, path, "--json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert str(path) in err and "Traceback" not in err


def test_missing_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "nowhere.json"
    code, out, err = run(capsys, path, "--json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert str(path) in err and "not found" in err and "Traceback" not in err


def test_degenerate_ground_state_in_error_mode(tmp_path: Path, capsys) -> None:
    spec = random_spec(81, 5, untouched=True, min_gap=0.3)  # the last qubit carries no term
    d = problem_dict(spec, state={"kind": "ground", "degeneracy": "error"})
    path = write(tmp_path, d)
    code, out, err = run(capsys, path, "--json")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and "state" in err and "degenerate" in err
    # the default (mixture) mode handles it, and says so in the human-readable output
    d["state"] = {"kind": "ground"}
    ok = write(tmp_path, d, "ok.json")
    assert run_json(capsys, ok)["preparations"] == 3
    code, out, err = run(capsys, ok)
    assert code == 0 and err == ""
    assert "2-fold degenerate" in out


def test_too_large_problem_fails_fast(tmp_path: Path, capsys) -> None:
    """40 qubits: a 2^40-dimensional state cannot be stored. The error must come from the memory
    check before anything of that size is allocated (so quickly, and without a MemoryError)."""
    d = problem_dict(random_spec(6, 5))
    d["qubits"] = 40
    d["terms"].append({"pauli": "Z39 X20", "coeff": 0.5})
    path = write(tmp_path, d)
    start = time.perf_counter()
    code, out, err = run(capsys, path, "--json")
    assert time.perf_counter() - start < 10
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and "qubits" in err and "GiB" in err
    # a Gibbs state needs the full dense spectrum: 16 qubits is too much for it
    d16 = problem_dict(random_spec(6, 5), state={"kind": "thermal", "temperature": 1.0})
    d16["qubits"] = 16
    path = write(tmp_path, d16, "thermal16.json")
    start = time.perf_counter()
    code, out, err = run(capsys, path, "--json")
    assert time.perf_counter() - start < 10
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and "GiB" in err


def test_solver_that_does_not_converge(tmp_path: Path, capsys) -> None:
    """Lanczos with maxiter=1 (one restart) on 9 qubits cannot reach tol = 1e-12."""
    spec = random_spec(7, 9)
    state = {"kind": "ground", "method": "lanczos", "maxiter": 1, "dense_max_dim": 2}
    path = write(tmp_path, problem_dict(spec, state=state))
    code, out, err = run(capsys, path, "--json", "--estimator", "linear_response")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and "state" in err
    assert "did not converge" in err and "maxiter" in err


def test_argparse_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["gradient", "x.json", "--nudge", "abc"])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_problem_file_round_trip(tmp_path: Path) -> None:
    """The generator's problem dict describes the same problem as ``build(spec)``."""
    spec = random_spec(8, 6, n_outputs=3)
    system, values, _ = build(spec)
    for suffix in (".json", ".toml"):
        prob = load_problem(write(tmp_path, problem_dict(spec), "p" + suffix))
        assert prob.system.trainable == system.trainable
        assert prob.values == values
        assert prob.system.hamiltonian.params == system.hamiltonian.params
        assert prob.system.output_names == system.output_names
        v = prob.system.hamiltonian.values(values)
        np.testing.assert_array_equal(prob.system.hamiltonian.dense(v), system.hamiltonian.dense(v))
    # an output may be written as a single {"pauli", "coeff"} instead of a term list
    d = problem_dict(spec)
    d["outputs"].append({"name": "zz", "pauli": "Z0 Z1", "coeff": 0.5})
    d["loss"]["target"].append(0.0)
    prob = load_problem(write(tmp_path, d, "short.json"))
    assert prob.system.output_names[-1] == "zz"
    assert prob.system.outputs["zz"].coefficient("Z0 Z1") == 0.5


# ------------------------------------------------------------------------------------ entry point
def test_installed_entry_point(tmp_path: Path) -> None:
    """The console script of the installed package (``.venv/bin/qeprop``), end to end."""
    exe = Path(sys.executable).with_name("qeprop")
    assert exe.exists(), exe
    spec = random_spec(9, 4)
    path = write(tmp_path, problem_dict(spec))
    ok = subprocess.run(
        [str(exe), "gradient", str(path), "--json", "--estimator", "linear_response"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    obj = json.loads(ok.stdout)
    assert set(obj) == JSON_KEYS
    _, values, loss = build(spec)
    ref = DenseModel(spec).gradient(values, loss)[0]
    assert rel_err(obj["gradient"], ref, spec.trainable) < 1e-6
    bad = subprocess.run(
        [str(exe), "gradient", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_run_help_names_every_registered_experiment(capsys) -> None:
    """`qeprop run --help` lists every registered experiment."""
    from qeprop.experiments import EXPERIMENTS

    assert main(["run", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    for name in EXPERIMENTS:
        assert name in shown.replace("- ", "-"), name
