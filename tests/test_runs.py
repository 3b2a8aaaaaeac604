"""Run directories: files and their contents, refusal to overwrite, checkpoints, interruption
(in-process KeyboardInterrupt, SIGINT/SIGTERM/SIGKILL of a ``qeprop run`` subprocess) and resumption
reproducing an uninterrupted run exactly, provenance, ``--set`` parsing and the TOML writer.

The experiment is the toy of ``tests/toy_experiment.py`` (noisy momentum descent on a quadratic,
RNG state in ``TrainState.meta``), run by its ``"module:attribute"`` name."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qeprop.runs as runs
from qeprop.cli import main
from qeprop.errors import ProblemError, QEPError
from qeprop.experiments import TrainState, get_experiment
from qeprop.runs import (
    RunInterrupted,
    dump_toml,
    load_checkpoint,
    load_config,
    parse_overrides,
    read_metrics,
    resume_run,
    save_checkpoint,
    start_run,
)
from toy_experiment import TOY

TESTS = Path(__file__).resolve().parent
NAME = "toy_experiment:TOY"
SMALL = {"steps": 50, "eval_every": 10, "checkpoint_every": 20}
PROVENANCE_KEYS = {
    "qeprop_version", "git_revision", "git_dirty", "seed", "command_line", "python", "numpy",
    "scipy", "platform", "hostname", "started", "finished", "resumed_at", "timings",
}  # fmt: skip


def run_files(d: Path) -> dict[str, Any]:
    """What must agree between an interrupted-and-resumed and an uninterrupted run."""
    with np.load(d / "results.npz") as z:
        results = {k: z[k] for k in z.files}
    with np.load(d / "checkpoint.npz") as z:
        checkpoint = {k: z[k] for k in z.files}
    return {
        "metrics": (d / "metrics.jsonl").read_text(encoding="utf-8"),
        "results": results,
        "checkpoint": checkpoint,
        "checkpoint.json": json.loads((d / "checkpoint.json").read_text(encoding="utf-8")),
        "summary": json.loads((d / "summary.json").read_text(encoding="utf-8")),
        "config": (d / "config.toml").read_text(encoding="utf-8"),
    }


def assert_same_run(a: Path, b: Path, config_too: bool = True) -> None:
    fa, fb = run_files(a), run_files(b)
    assert fa["metrics"] == fb["metrics"]
    for part in ("results", "checkpoint"):
        assert fa[part].keys() == fb[part].keys()
        for k in fa[part]:
            if k == "__run__" and not config_too:  # the run record holds the configuration
                continue
            np.testing.assert_array_equal(fa[part][k], fb[part][k], err_msg=f"{part}: {k}")
    assert fa["checkpoint.json"] == fb["checkpoint.json"]
    assert fa["summary"] == fb["summary"]
    if config_too:
        assert fa["config"] == fb["config"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the toy with the SMALL configuration."""
    return start_run(NAME, SMALL, tmp_path_factory.mktemp("ref") / "run", progress=False)


@pytest.fixture
def toy_hooks(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(TOY, "interrupt_at", None)
    monkeypatch.setattr(TOY, "fail_at", None)
    return TOY


# ------------------------------------------------------------------------------------ files
def test_run_writes_every_file(tmp_path: Path, toy_hooks: Any) -> None:
    d = tmp_path / "nested" / "run"
    argv = ["qeprop", "run", NAME, "--out", str(d)]
    assert start_run(NAME, {**SMALL, "seed": 3}, d, command_line=argv, progress=False) == d
    assert {p.name for p in d.iterdir()} == {
        "config.toml", "provenance.json", "metrics.jsonl", "checkpoint.npz", "checkpoint.json",
        "results.npz", "summary.json",
    }  # fmt: skip
    # config.toml: the experiment's name and the whole resolved configuration
    config = tomllib.loads((d / "config.toml").read_text(encoding="utf-8"))
    assert config == {"experiment": NAME, **TOY.resolve({**SMALL, "seed": 3})}
    assert load_config(d / "config.toml") == config
    # metrics: step 0, then every eval_every steps
    records = read_metrics(d)
    assert [r["step"] for r in records] == [0, 10, 20, 30, 40, 50]
    assert all(set(r) == {"step", "loss", "accuracy"} for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    # the arrays are exactly those of the experiment driven by hand
    cfg = {k: v for k, v in config.items() if k != "experiment"}
    state = TOY.init(cfg)
    for _ in range(50):
        state = TOY.step(cfg, state)
    with np.load(d / "results.npz") as z:
        np.testing.assert_array_equal(z["params"], state.arrays["params"])
        assert list(z["param_names"]) == ["x0", "x1", "x2", "x3"]
    ck = load_checkpoint(d)
    assert ck.step == 50 and ck.meta == json.loads(json.dumps(state.meta))
    np.testing.assert_array_equal(ck.arrays["velocity"], state.arrays["velocity"])
    assert json.loads((d / "checkpoint.json").read_text())["step"] == 50
    summary = json.loads((d / "summary.json").read_text())
    assert summary == {
        "experiment": NAME,
        "final": {**TOY.evaluate(cfg, state), "label": "toy"},
        "steps": 50,
    }
    # provenance
    prov = json.loads((d / "provenance.json").read_text())
    assert set(prov) == PROVENANCE_KEYS
    assert prov["seed"] == 3 and prov["command_line"] == argv and prov["resumed_at"] == []
    assert prov["numpy"] == np.__version__ and prov["python"].count(".") == 2
    for key in ("started", "finished"):
        assert prov[key].endswith("+00:00"), prov[key]
    assert prov["timings"]["steps_run"] == 50 and prov["timings"]["wall_seconds"] > 0
    # both are written rounded to 1e-6 s; a fast toy run takes well under 1 ms per step
    assert prov["timings"]["seconds_per_step"] == pytest.approx(
        prov["timings"]["wall_seconds"] / 50, rel=1e-3, abs=1.1e-6
    )
    rev = prov["git_revision"]
    assert rev is None or re.fullmatch(r"[0-9a-f]{40}", rev)
    assert (rev is None) == (prov["git_dirty"] is None)
    head = subprocess.run(
        ["git", "-C", str(Path(runs.__file__).parent), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode == 0 and rev is not None:
        assert rev == head.stdout.strip()
    # no temporary files left behind
    assert not [p for p in d.iterdir() if p.name.startswith(".")]


def test_metrics_at_the_last_step_too(tmp_path: Path, toy_hooks: Any) -> None:
    d = start_run(NAME, {"steps": 45, "eval_every": 10}, tmp_path / "r", progress=False)
    assert [r["step"] for r in read_metrics(d)] == [0, 10, 20, 30, 40, 45]


def test_existing_directory_is_refused(tmp_path: Path, capsys, reference: Path) -> None:
    before = run_files(reference)
    with pytest.raises(QEPError, match="--resume"):
        start_run(NAME, SMALL, reference, progress=False)
    assert_same_run(reference, reference)
    assert run_files(reference)["metrics"] == before["metrics"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["run", NAME, "--out", str(empty), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("qeprop: error: ")
    assert str(empty) in err and "--resume" in err
    assert list(empty.iterdir()) == []


def test_failure_before_the_first_checkpoint_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def broken_init(config: dict[str, Any]) -> TrainState:
        raise ProblemError("cannot start", where="dim")

    monkeypatch.setattr(TOY, "init", broken_init)
    d = tmp_path / "r"
    assert main(["run", NAME, "--out", str(d), "--no-progress"]) == 2
    assert "dim: cannot start" in capsys.readouterr().err
    assert not d.exists()


# ------------------------------------------------------------------------------------ interrupt
@pytest.mark.parametrize("at", [1, 20, 21, 37, 50])
def test_interrupt_then_resume_equals_uninterrupted(
    tmp_path: Path, reference: Path, toy_hooks: Any, at: int
) -> None:
    """KeyboardInterrupt inside the step reaching ``at``, after the toy already changed its
    arrays in place: the checkpoint holds step ``at - 1``, intact."""
    d = tmp_path / "r"
    toy_hooks.interrupt_at = at
    with pytest.raises(RunInterrupted) as exc:
        start_run(NAME, SMALL, d, progress=False)
    assert exc.value.step == at - 1
    assert str(exc.value) == f"interrupted at step {at - 1}; continue with: qeprop run --resume {d}"
    assert load_checkpoint(d).step == at - 1
    assert not (d / "summary.json").exists()
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["timings"]["steps_run"] == at - 1 and prov["finished"] is None
    toy_hooks.interrupt_at = None
    assert resume_run(d, progress=False) == d
    assert_same_run(d, reference)
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["resumed_at"] == [at - 1]
    assert prov["timings"]["steps_run"] == 50 and prov["finished"] is not None


@pytest.mark.parametrize("where", ["evaluate", "finish", "checkpoint"])
def test_interrupt_outside_the_step(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    calls = {"n": 0}
    if where == "checkpoint":
        target, original, hit = runs, runs.save_checkpoint, 3  # the checkpoint at step 40
    else:
        target, original, hit = TOY, getattr(TOY, where), 4 if where == "evaluate" else 1

    def wrapped(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == hit:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(target, "save_checkpoint" if where == "checkpoint" else where, wrapped)
    d = tmp_path / "r"
    with pytest.raises(RunInterrupted):
        start_run(NAME, SMALL, d, progress=False)
    monkeypatch.undo()
    resume_run(d, progress=False)
    assert_same_run(d, reference)


def test_torn_metrics_line_and_extra_records_are_dropped(
    tmp_path: Path, reference: Path, toy_hooks: Any
) -> None:
    d = tmp_path / "r"
    toy_hooks.interrupt_at = 35
    with pytest.raises(RunInterrupted):
        start_run(NAME, SMALL, d, progress=False)
    toy_hooks.interrupt_at = None
    # as if killed after evaluations past the checkpoint, while appending a line
    with (d / "metrics.jsonl").open("a") as f:
        f.write('{"step": 40, "loss": 1.0, "accuracy": 0.0}\n{"step": 5')
    resume_run(d, progress=False)
    assert_same_run(d, reference)


def test_resume_a_finished_run_changes_nothing(reference: Path, capsys) -> None:
    before = {p.name: p.read_bytes() for p in reference.iterdir()}
    assert main(["run", "--resume", str(reference), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "already finished" in captured.err and captured.err.count("\n") == 1
    assert f"{reference}: {NAME} finished after 50 steps" in captured.out
    assert {p.name: p.read_bytes() for p in reference.iterdir()} == before


def test_cli_interrupt_and_resume(tmp_path: Path, reference: Path, toy_hooks: Any, capsys) -> None:
    d = tmp_path / "r"
    toy_hooks.interrupt_at = 26
    argv = ["run", NAME, "--out", str(d), "--no-progress"]
    argv += [f"--set={k}={v}" for k, v in SMALL.items()]
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    hint = f"interrupted at step 25; continue with: qeprop run --resume {d}"
    assert captured.err == f"qeprop: {hint}\n"
    toy_hooks.interrupt_at = None
    assert main(["run", "--resume", str(d), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{d}: {NAME} finished after 50 steps\n") and "loss" in out
    assert_same_run(d, reference)


def _cli(d: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qeprop.cli", "run", NAME, "--out", str(d), *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _finish(proc: subprocess.Popen) -> str:
    """Wait for ``proc`` (killing it if it hangs) and return its stderr."""
    try:
        return proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def _wait_for_checkpoint(d: Path, proc: subprocess.Popen, min_step: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            step = json.loads((d / "checkpoint.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            step = -1
        if step >= min_step:
            return int(step)
        time.sleep(0.01)
    raise AssertionError("no checkpoint within 60 s")


SLOW = ["--set", "steps=120", "--set", "eval_every=5", "--set", "checkpoint_every=7",
        "--set", "sleep=0.04", "--no-progress"]  # fmt: skip
SLOW_CONFIG = {"steps": 120, "eval_every": 5, "checkpoint_every": 7}


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return start_run(NAME, SLOW_CONFIG, tmp_path_factory.mktemp("sref") / "run", progress=False)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, slow_reference: Path) -> None:
    d = tmp_path / "r"
    proc = subprocess.Popen(_cli(d, *SLOW), env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(d, proc, 7)
        time.sleep(float(np.random.default_rng().uniform(0, 0.3)))
        proc.kill()
    finally:
        _finish(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not (d / "summary.json").exists()
    resume_run(d, progress=False)
    assert_same_run(d, slow_reference, config_too=False)  # config.toml differs in "sleep"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_and_exits_130(
    tmp_path: Path, slow_reference: Path, sig: signal.Signals
) -> None:
    d = tmp_path / "r"
    # a process started with SIGINT ignored (a background job of a non-interactive shell, as
    # `make test &` gives) keeps ignoring it, as POSIX programs do: start the run with the
    # default disposition so that the test does not depend on how the test run was launched
    proc = subprocess.Popen(
        _cli(d, *SLOW),
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for_checkpoint(d, proc, 7)
        proc.send_signal(sig)
    finally:
        err = _finish(proc)
    assert proc.returncode == 130, err
    m = re.fullmatch(
        r"qeprop: interrupted at step (\d+); continue with: qeprop run --resume (\S+)\n", err
    )
    assert m, err
    assert m.group(2) == str(d) and load_checkpoint(d).step == int(m.group(1))
    done = subprocess.run(
        [sys.executable, "-m", "qeprop.cli", "run", "--resume", str(d), "--no-progress"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert_same_run(d, slow_reference, config_too=False)
    assert json.loads((d / "provenance.json").read_text())["resumed_at"] == [int(m.group(1))]


# ------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_and_consistency(tmp_path: Path) -> None:
    arrays = {
        "x": np.arange(6.0).reshape(2, 3),
        "n": np.array([1, 2], dtype=np.int32),
        "names": np.array(["a", "bc"]),
        "c": np.array([1 + 2j]),
    }
    rng = np.random.default_rng(5)
    meta = {"rng": rng.bit_generator.state, "lr": 0.1, "hist": [1, 2.5, None, "s"]}
    save_checkpoint(tmp_path, TrainState(step=7, arrays=arrays, meta=meta))
    st = load_checkpoint(tmp_path)
    assert st.step == 7 and st.meta == meta and st.arrays.keys() == arrays.keys()
    for k, v in arrays.items():
        np.testing.assert_array_equal(st.arrays[k], v)
        assert st.arrays[k].dtype == v.dtype
    again = np.random.default_rng()
    again.bit_generator.state = st.meta["rng"]
    assert again.random() == rng.random()
    # a crash between the two renames leaves the newer .npz and the older .json: the .npz wins
    old_json = (tmp_path / "checkpoint.json").read_bytes()
    save_checkpoint(tmp_path, TrainState(step=8, arrays=arrays, meta={"k": 1}))
    (tmp_path / "checkpoint.json").write_bytes(old_json)
    st = load_checkpoint(tmp_path)
    assert st.step == 8 and st.meta == {"k": 1}
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 8  # repaired
    # a .json ahead of its .npz cannot come from a crash: refuse
    (tmp_path / "checkpoint.json").write_text('{"step": 9, "meta": {}}')
    with pytest.raises(QEPError, match=r"step 8 but checkpoint\.json at step 9"):
        load_checkpoint(tmp_path)


def test_checkpoint_is_never_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    save_checkpoint(tmp_path, TrainState(step=1, arrays={"x": np.ones(3)}, meta={}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def dies_halfway(file: Any, **arrays: Any) -> None:
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, TrainState(step=2, arrays={"x": np.zeros(3)}, meta={}))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file either
    monkeypatch.undo()
    assert load_checkpoint(tmp_path).step == 1


def test_checkpoint_refuses_object_arrays(tmp_path: Path) -> None:
    with pytest.raises(QEPError, match="dtype object"):
        save_checkpoint(tmp_path, TrainState(arrays={"x": np.array([{}, 1], dtype=object)}))


# ------------------------------------------------------------------------------------ CLI
def test_cli_config_file_and_set(tmp_path: Path, capsys, toy_hooks: Any) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('experiment = "toy_experiment:TOY"\nsteps = 20\nseed = 4\nlabel = "from-file"\n')
    d = tmp_path / "r"
    argv = ["run", "--config", str(cfg), "--set", "seed=9", "--out", str(d), "--no-progress"]
    assert main(argv) == 0
    config = load_config(d / "config.toml")
    assert config["steps"] == 20 and config["seed"] == 9 and config["label"] == "from-file"
    assert json.loads((d / "provenance.json").read_text())["command_line"] == ["qeprop", *argv]
    out = capsys.readouterr().out
    assert "finished after 20 steps" in out and "from-file" in out


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["run", "--out", "{d}"], "EXPERIMENT"),
        (["run", NAME], "--out"),
        (["run", "no-such-experiment", "--out", "{d}"], "unknown experiment"),
        (["run", "nomodule_xyz:X", "--out", "{d}"], "cannot import"),
        (["run", NAME, "--out", "{d}", "--set", "stepz=3"], "stepz"),
        (["run", NAME, "--out", "{d}", "--set", "steps=many"], "steps"),
        (["run", NAME, "--out", "{d}", "--set", "noequals"], "--set"),
        (["run", NAME, "--out", "{d}", "--config", "{d}.toml"], "not found"),
        (["run", "--resume", "{d}"], "no such run directory"),
        (["run", "--resume", "{d}", NAME], "EXPERIMENT"),
        (["run", "--resume", "{d}", "--set", "steps=3"], "--set"),
    ],
)
def test_cli_run_errors(tmp_path: Path, capsys, argv: list[str], expect: str) -> None:
    d = str(tmp_path / "r")
    code = main([a.replace("{d}", d) for a in argv])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("qeprop: error: ") and captured.err.count("\n") == 1
    assert expect in captured.err and "Traceback" not in captured.err
    assert not Path(d).exists()


def test_progress_bar_only_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, toy_hooks: Any
) -> None:
    start_run(NAME, {"steps": 20}, tmp_path / "quiet")
    assert capsys.readouterr().err == ""  # stderr is not a terminal here

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    start_run(NAME, {"steps": 20}, tmp_path / "shown")
    assert "20/20" in term.getvalue() and "acc=" in term.getvalue() and "loss=" in term.getvalue()
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    start_run(NAME, {"steps": 20}, tmp_path / "off", progress=False)
    assert term.getvalue() == ""


def test_progress_fields() -> None:
    fields = runs._postfix(
        {"step": 3, "max_choice_accuracy": 0.931, "single_shot_accuracy": 0.5, "loss": 0.12345}
    )
    assert fields == {"mc_acc": "0.931", "ss_acc": "0.5", "loss": "0.123"}
    assert runs._postfix({"accuracy": 1.0, "note": "x"}) == {"acc": "1"}


# ------------------------------------------------------------------------------------ parsing
def test_parse_overrides() -> None:
    got = parse_overrides(["steps=100", "couplings=xz", "nudge=0.4", "boundary=open"])
    assert got == {"steps": 100, "couplings": "xz", "nudge": 0.4, "boundary": "open"}
    assert type(got["steps"]) is int and type(got["nudge"]) is float
    cases = {
        "flag=true": True,
        "flag=false": False,
        "sites=[0, 2]": [0, 2],
        "xs=[1, 2.5, 'a']": [1, 2.5, "a"],
        'name="quoted value"': "quoted value",
        "name=two words": "two words",
        "empty=": "",
        "neg=-3": -3,
        "big=1e6": 1e6,
        "inf=inf": math.inf,
        "date=2024-01-01": "2024-01-01",
        "table={a = 1}": "{a = 1}",
        "expr=__import__('os').getcwd()": "__import__('os').getcwd()",
        "eq=a=b": "a=b",
        " spaced = 7 ": 7,
    }
    for item, value in cases.items():
        (v,) = parse_overrides([item]).values()
        assert v == value and type(v) is type(value), (item, v)
    assert math.isnan(parse_overrides(["x=nan"])["x"])
    assert parse_overrides(["a=1", "a=2"]) == {"a": 2}
    for bad in ["novalue", "=3", "bad key=1", "a.b=1"]:
        with pytest.raises(ProblemError, match="--set"):
            parse_overrides([bad])


def test_toml_round_trip() -> None:
    data = {
        "s": 'quote " backslash \\ newline \n tab \t unicode β ✓ \x01',
        "i": -(2**62),
        "f": [0.1, 1e-300, -0.0, 1.5e300, 3.0, math.inf, -math.inf],
        "b": [True, False],
        "nested": [[1, 2], [], ["x"]],
        "key with spaces": 1,
        "np": np.float64(0.25),
        "npi": np.int64(3),
        "arr": np.array([1.0, 2.0]),
        "table": {"a": 1, "deeper": {"b": "c"}},
        "after": "plain",
    }
    text = dump_toml(data)
    back = tomllib.loads(text)
    assert back == {**data, "np": 0.25, "npi": 3, "arr": [1.0, 2.0]}
    assert str(back["f"][2]) == "-0.0"
    assert math.isnan(tomllib.loads(dump_toml({"x": math.nan}))["x"])
    assert tomllib.loads(dump_toml({"a": None, "b": 1})) == {"b": 1}
    with pytest.raises(ProblemError, match=r"x\.y"):
        dump_toml({"x": {"y": object()}})
    with pytest.raises(ProblemError, match="TOML"):
        dump_toml({"c": 1j})


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [1,\n")
    with pytest.raises(ProblemError, match=r"bad\.toml: invalid TOML"):
        load_config(bad)


def test_get_experiment_by_module_attribute() -> None:
    assert get_experiment(NAME) is TOY
    with pytest.raises(ProblemError, match="has no 'NOPE'"):
        get_experiment("toy_experiment:NOPE")
    with pytest.raises(ProblemError, match="module:attribute"):
        get_experiment("a:b:c")


def test_a_key_added_since_the_run_started_is_not_a_change() -> None:
    """Runs (and sweeps) recorded before a key existed resume when the key's value today is
    what their configuration resolves to, even where its declared default (None) is not that
    value: phase-recognition's edge_field resolves None to 0.0 for exact methods."""
    from qeprop.runs import _config_changes, _plain_config

    exp = get_experiment("phase-recognition")
    now = _plain_config(exp.resolve({"steps": 10}))
    before = {k: v for k, v in now.items() if k not in ("edge_field", "method", "init_from")}
    defaults = exp.Config.defaults()
    assert defaults["edge_field"] in (None, "none") and now["edge_field"] == 0.0
    assert _config_changes(before, now, defaults, exp) == []
    assert _config_changes(before, now, defaults) == ['edge_field: "(absent)" -> 0.0']
    changed = {**now, "edge_field": 0.5}  # a real change is still one
    assert _config_changes(before, changed, defaults, exp) == ['edge_field: "(absent)" -> 0.5']


def test_wall_seconds_include_the_initial_evaluation(tmp_path: Path, monkeypatch) -> None:
    """The step-0 evaluation runs before the run directory appears; its time belongs to the
    run (for an evaluation-only run it is nearly all of it)."""
    evaluate = TOY.evaluate

    def slow_at_start(config: Any, state: TrainState) -> dict[str, Any]:
        if state.step == 0:
            time.sleep(0.3)
        return evaluate(config, state)

    monkeypatch.setattr(TOY, "evaluate", slow_at_start)
    d = start_run(NAME, {"steps": 1}, tmp_path / "r", progress=False)
    timings = json.loads((d / "provenance.json").read_text())["timings"]
    assert timings["wall_seconds"] >= 0.3 and timings["steps_run"] == 1
