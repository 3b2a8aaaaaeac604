"""A corpus of broken inputs to the run machinery: each must give one line (exit status 2, or 130
for an interrupt), a refusal, or exactly the result of an undisturbed run -- never a traceback, a
silent restart, a lost or duplicated record.

Cases follow issue 10: (1) two writers of one run directory; (2) configuration values that make
a run impossible to finish; (3) resume after ``SIGKILL`` at seeded random steps, byte for byte;
(4) data that would be lost or misattributed (deleted or emptied files, edited configuration or
version, a full disk); (7) damaged files and odd command lines; (8) an ``--out`` below a file.
Most use the toy experiment of ``tests/toy_experiment.py`` in-process; the few that need real
processes (a concurrent writer, ``SIGKILL``, an early Ctrl-C) run ``qeprop`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qeprop.runs as runs
from _run_outputs import outputs
from qeprop import __version__
from qeprop.cli import main
from qeprop.errors import QEPError
from qeprop.experiments import get_experiment
from qeprop.runs import (
    RunInterrupted,
    load_checkpoint,
    read_metrics,
    resume_run,
    save_checkpoint,
    start_run,
)
from toy_experiment import TOY

TESTS = Path(__file__).resolve().parent
NAME = "toy_experiment:TOY"
SMALL = {"steps": 50, "eval_every": 10, "checkpoint_every": 20}


# ------------------------------------------------------------------------------------ helpers
def cli(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line(err: str, *needles: str) -> None:
    """A single ``qeprop: error:`` line containing every needle, no traceback."""
    assert err.startswith("qeprop: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(TOY, "interrupt_at", None)
    monkeypatch.setattr(TOY, "fail_at", None)
    return TOY


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return start_run(NAME, SMALL, tmp_path_factory.mktemp("ref") / "run", progress=False)


@pytest.fixture
def stopped(tmp_path: Path, toy: Any) -> Path:
    """A toy run interrupted at step 34: checkpoint at 34, records 0..30."""
    d = tmp_path / "r"
    toy.interrupt_at = 35
    with pytest.raises(RunInterrupted):
        start_run(NAME, SMALL, d, progress=False)
    toy.interrupt_at = None
    return d


def resume_refused(capsys: pytest.CaptureFixture, d: Path, *needles: str) -> str:
    """``qeprop run --resume d`` fails in one line and changes nothing in ``d``."""
    before = snapshot(d)
    code, out, err = cli(capsys, "run", "--resume", d, "--no-progress")
    assert code == 2 and out == ""
    assert_one_line(err, *needles)
    assert snapshot(d) == before  # no restart, no truncation, no repair behind the user's back
    return err


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def qeprop_cmd(*argv: str | Path) -> list[str]:
    return [sys.executable, "-m", "qeprop.cli", *map(str, argv)]


def wait_for(predicate: Any, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    raise AssertionError("timed out")


def checkpoint_step(d: Path) -> int:
    try:
        return int(json.loads((d / "checkpoint.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


# ------------------------------------------------------------------------------------ 1: one writer
def test_a_second_writer_is_refused_naming_the_holder(stopped: Path, capsys) -> None:
    lock = runs._Lock(stopped)  # another open file description: flock conflicts in-process too
    try:
        err = resume_refused(capsys, stopped, "in use by process", str(os.getpid()))
        assert "wait" in err
        with pytest.raises(QEPError, match="in use"):
            resume_run(stopped, progress=False)
    finally:
        lock.release()
    assert not (stopped / ".lock").exists()
    resume_run(stopped, progress=False)  # free again


def test_resume_while_the_run_is_going_is_refused(tmp_path: Path, capsys) -> None:
    """``qeprop run`` in one process, ``--resume`` of the same directory in another: refused;
    the run ends with exactly its own records."""
    d = tmp_path / "r"
    argv = ["run", NAME, "--out", d, "--no-progress", "--set", "steps=40", "--set", "eval_every=5",
            "--set", "checkpoint_every=3", "--set", "sleep=0.02"]  # fmt: skip
    proc = subprocess.Popen(qeprop_cmd(*argv), env=env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: checkpoint_step(d) >= 3, proc)
        code, out, err = cli(capsys, "run", "--resume", d, "--no-progress")
        assert code == 2 and out == ""
        assert_one_line(err, f"in use by process {proc.pid}")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert [r["step"] for r in read_metrics(d)] == list(range(0, 41, 5))
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["timings"]["steps_run"] == 40 and prov["resumed_at"] == []
    assert not (d / ".lock").exists()


def test_two_starts_of_one_directory(tmp_path: Path, toy: Any, monkeypatch, capsys) -> None:
    """Another run appears at ``--out`` while this one starts: this one gives way, leaving no
    trace, and the other is untouched."""
    d = tmp_path / "r"
    original = type(toy).init
    raced: list[bool] = []

    def init_and_race(self: Any, config: Any) -> Any:
        if not raced:
            raced.append(True)
            start_run(NAME, {"steps": 5}, d, progress=False)  # the "other" run
        return original(self, config)

    monkeypatch.setattr(type(toy), "init", init_and_race)
    code, _, err = cli(capsys, "run", NAME, "--out", d, "--no-progress")
    assert code == 2
    assert_one_line(err, str(d), "already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no partial directory
    assert json.loads((d / "summary.json").read_text())["steps"] == 5


# ------------------------------------------------------------------------------------ 2: values
@pytest.mark.parametrize(
    ("experiment", "sets", "key"),
    [
        ("phase-recognition", ["map_resolution=0"], "map_resolution"),
        ("phase-recognition", ["map_resolution=abc"], "map_resolution"),
        ("phase-recognition", ["map_resolution=-3"], "map_resolution"),
        ("phase-recognition", ["map_resolution=20000"], "map_resolution"),
        ("phase-recognition", ["map_resolution=true"], "map_resolution"),
        ("phase-recognition", ["estimator=linear_response"], "shots"),
        ("phase-recognition", ["soft_bound=true", "bound_slope=nan"], "bound_slope"),
        ("phase-recognition", ["nudge=1e308"], "nudge"),
        ("phase-recognition", ["nudge=inf"], "nudge"),
        ("phase-recognition", ["shots=0"], "shots"),
        ("phase-recognition", ["shots=2.5"], "shots"),
        ("phase-recognition", ['shots="10"'], "shots"),
        ("phase-recognition", ["steps=1e3"], "steps"),
        ("phase-recognition", ["learning_rate=-0.01"], "learning_rate"),
        ("phase-recognition", ["sensor_sites=[0, 0]"], "sensor_sites"),
        ("phase-recognition", ["sensor_sites=[0, 9]"], "sensor_sites"),
        ("phase-recognition", ["chain_length=1000000"], "chain_length"),
        ("phase-recognition", ["test_size=10000000000"], "test_size"),
        ("phase-recognition", ["couplings=xy"], "couplings"),
        ("phase-recognition", ["label=3"], "label"),
        ("phase-recognition", ["soft_bound=yes"], "soft_bound"),
        ("sensitivity", ["map_resolution=0"], "map_resolution"),
        ("sensitivity", ["map_x=[1e308, 1.7e308]"], "map_x[0]"),
        ("sensitivity", ["estimator=linear_response", "shots=10"], "shots"),
        ("sensitivity", ["observable=X0 X40"], "observable"),
        ("phase-exploration", ["initial=[0.1, nan]"], "initial[1]"),
        ("gradient-quality", ["nudges=[]"], "nudges"),
        ("gradient-quality", ["shots=[10, 0]"], "shots[1]"),
        ("gradient-quality", ["batches=0"], "batches"),
        ("kitaev-sensor", ["batch_size=7"], "batch_size"),
        ("kitaev-sensor", ["nx=5"], "nx"),
        ("kitaev-sensor", ["nx=6", "ny=4"], "nx"),
        ("kitaev-sensor", ["map_resolution=0"], "map_resolution"),
        ("kitaev-sensor", ["estimator=linear_response"], "shots"),
        ("kitaev-sensor", ["optimiser=sgd"], "optimiser"),
        ("kitaev-sensor", ["threads=0"], "threads"),
        ("kitaev-sensor", ["solver_tol=-1e-6"], "solver_tol"),
        ("kitaev-sensor", ["shots=2.5"], "shots"),
    ],
)
def test_values_a_run_cannot_finish_are_refused_before_it_starts(
    tmp_path: Path, capsys, experiment: str, sets: list[str], key: str
) -> None:
    d = tmp_path / "r"
    argv = ["run", experiment, "--out", d, "--no-progress"]
    code, out, err = cli(capsys, *argv, *[a for s in sets for a in ("--set", s)])
    assert code == 2 and out == ""
    assert_one_line(err, f"{key}: ")
    assert list(tmp_path.iterdir()) == []


def test_optional_values_can_be_unset() -> None:
    exp = get_experiment("phase-recognition")
    cfg = exp.resolve({"estimator": "linear_response", "shots": "none"})
    assert cfg.shots is None and cfg["shots"] is None
    assert cfg.to_dict()["shots"] == "none"
    assert exp.resolve(cfg.to_dict()) == cfg  # config.toml round trip
    # numpy scalars are numbers, text and booleans are not
    assert exp.resolve({"shots": np.int64(7), "nudge": np.float64(0.2)}).shots == 7
    for bad in ({"shots": True}, {"nudge": "0.5"}, {"steps": 10.0}):
        with pytest.raises(QEPError):
            exp.resolve(bad)


@pytest.mark.parametrize(
    "name",
    ["phase-recognition", "gradient-quality", "phase-exploration", "sensitivity", "kitaev-sensor"],
)
def test_every_configuration_is_typed_and_survives_config_toml(name: str) -> None:
    import tomllib

    from qeprop.config import Config
    from qeprop.runs import dump_toml

    exp = get_experiment(name)
    assert issubclass(exp.Config, Config)
    cfg = exp.resolve({})
    assert isinstance(cfg, exp.Config) and set(cfg) == set(exp.Config.fields())
    back = tomllib.loads(dump_toml(cfg.to_dict()))
    assert exp.resolve(back) == cfg and hash(exp.resolve(back)) == hash(cfg)
    # checked on construction too, not only when read from a file
    with pytest.raises(QEPError, match="eval_every"):
        exp.Config(eval_every=0)
    with pytest.raises(QEPError, match="unknown key"):
        exp.resolve({"no_such_key": 1})


def test_help_lists_the_configuration(capsys) -> None:
    code, out, err = cli(capsys, "run", "phase-recognition", "--help")
    assert code == 0 and err == ""
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    exp = get_experiment("phase-recognition")
    for key in exp.Config.fields():
        assert key in rows, key
    assert "int 2..200" in rows["map_resolution"] and " 24 " in rows["map_resolution"]
    assert "or none" in rows["shots"] and "shots per expectation value" in rows["shots"]
    assert "xyz|xz|zz" in rows["couplings"]
    code, out, err = cli(capsys, "run", "kitaev-sensor", "--help")
    assert code == 0 and err == ""
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    for key in get_experiment("kitaev-sensor").Config.fields():
        assert key in rows, key
    assert "adamax|adam" in rows["optimiser"] and "multiple of 6" in rows["batch_size"]
    assert "or none" in rows["shots"] and " 10000 " in rows["shots"]
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0 and "--force-version" in out
    code, _, err = cli(capsys, "run", "no-such-thing", "--help")
    assert code == 2
    assert_one_line(err, "unknown experiment")


# ------------------------------------------------------------------------------------ 3: resume
def test_sigkill_at_seeded_steps_then_resume_is_byte_identical(tmp_path: Path) -> None:
    """Kill the run (and then its resumes) at steps drawn from a seeded schedule, resume to
    the end: metrics.jsonl, summary.json and every results.npz array as uninterrupted."""
    config = {"steps": 60, "eval_every": 5, "checkpoint_every": 4, "sleep": 0.02}
    ref = start_run(NAME, {**config, "sleep": 0.0}, tmp_path / "ref", progress=False)
    d = tmp_path / "killed"
    rng = np.random.default_rng(2024)
    schedule = np.sort(rng.choice(np.arange(4, 56), size=3, replace=False))
    sets = [a for k, v in config.items() for a in ("--set", f"{k}={v}")]
    argv = qeprop_cmd("run", NAME, "--out", d, "--no-progress", *sets)
    resumed = []
    for k, target in enumerate(schedule):
        proc = subprocess.Popen(argv, env=env(), stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda t=target: checkpoint_step(d) >= t, proc)
            time.sleep(float(rng.uniform(0, 0.03)))  # somewhere inside the next step
            proc.kill()
        finally:
            proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, k
        assert not (d / "summary.json").exists()
        resumed.append(load_checkpoint(d).step)
        argv = qeprop_cmd("run", "--resume", d, "--no-progress")
    resume_run(d, progress=False)
    assert json.loads((d / "provenance.json").read_text())["resumed_at"] == resumed
    # the toy's sleep is part of the configuration, so compare everything else
    assert outputs(d)["metrics"] == outputs(ref)["metrics"]
    assert outputs(d)["results"] == outputs(ref)["results"]
    assert outputs(d)["summary"] == outputs(ref)["summary"]


def test_interrupt_inside_the_start_leaves_nothing(tmp_path: Path, toy: Any, monkeypatch) -> None:
    """Ctrl-C during the step-0 evaluation: no directory, no partial one; run it again."""
    d = tmp_path / "r"
    original = type(toy).evaluate

    def interrupted(self: Any, config: Any, state: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(type(toy), "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        start_run(NAME, SMALL, d, progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(type(toy), "evaluate", original)
    assert start_run(NAME, SMALL, d, progress=False) == d


@pytest.mark.parametrize("delay", np.random.default_rng(7).uniform(0.0, 0.5, 4).round(3).tolist())
def test_ctrl_c_in_the_first_half_second(tmp_path: Path, delay: float) -> None:
    """SIGINT ``delay`` seconds after ``qeprop`` was imported: exit 130 in one line; what is left
    is either nothing or a run that resumes to the end."""
    d = tmp_path / "r"
    code = (
        "import sys, qeprop.cli; print('ready', flush=True); "
        "sys.exit(qeprop.cli.main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-c", code, "run", NAME, "--out", str(d), "--no-progress",
            "--set", "steps=30", "--set", "sleep=0.02", "--set", "checkpoint_every=5"]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode == 0:  # finished before the signal
        return
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and err.startswith("qeprop: ") and "Traceback" not in err, err
    if d.exists():
        resume_run(d, progress=False)
        assert json.loads((d / "summary.json").read_text())["steps"] == 30
    else:
        assert [p.name for p in tmp_path.iterdir()] == []


# ------------------------------------------------------------------------------------ 4: data
def test_deleted_checkpoint_is_refused_not_restarted(stopped: Path, capsys) -> None:
    (stopped / "checkpoint.npz").unlink()
    (stopped / "checkpoint.json").unlink()
    resume_refused(capsys, stopped, "checkpoint.npz", "never restarts from step 0", "--config")


@pytest.mark.parametrize("damage", ["deleted", "emptied", "record-removed", "record-twice"])
def test_lost_metrics_are_refused(stopped: Path, capsys, damage: str) -> None:
    path = stopped / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    if damage == "deleted":
        path.unlink()
        resume_refused(capsys, stopped, "metrics.jsonl", "not found")
        return
    if damage == "emptied":
        path.write_text("")
        needles: tuple[str, ...] = ("steps 0, 10, 20, 30 are missing", "step 34")
    elif damage == "record-removed":
        path.write_text("".join(lines[:2] + lines[3:]))
        needles = ("steps 20 are missing",)
    else:
        path.write_text("".join(lines[:3] + lines[2:]))
        needles = ("step 20 is recorded twice",)
    resume_refused(capsys, stopped, "metrics.jsonl", *needles)


@pytest.mark.parametrize(("key", "value"), [("seed", "3"), ("dim", "6"), ("steps", "70")])
def test_edited_config_is_refused(stopped: Path, capsys, key: str, value: str) -> None:
    path = stopped / "config.toml"
    text = path.read_text()
    old = next(ln for ln in text.splitlines() if ln.startswith(f"{key} = "))
    path.write_text(text.replace(old, f"{key} = {value}"))
    err = resume_refused(capsys, stopped, "config.toml", f"{key}: ", "-> " + value, "new run")
    assert old.split(" = ")[1] in err


def test_a_neutral_edit_of_config_is_accepted(stopped: Path, reference: Path) -> None:
    path = stopped / "config.toml"
    path.write_text(path.read_text().replace("learning_rate = 0.05", "learning_rate = 5e-2"))
    resume_run(stopped, progress=False)
    assert outputs(stopped)["metrics"] == outputs(reference)["metrics"]


@pytest.mark.parametrize("where", ["provenance", "checkpoint"])
def test_other_version_needs_force_and_is_recorded(
    stopped: Path, reference: Path, capsys, where: str
) -> None:
    if where == "provenance":
        path = stopped / "provenance.json"
        prov = json.loads(path.read_text())
        path.write_text(json.dumps({**prov, "qeprop_version": "0.0.1"}))
    else:
        state, run = runs._load_checkpoint(stopped)
        assert run is not None and run["qeprop_version"] == __version__
        save_checkpoint(stopped, state, {**run, "qeprop_version": "0.0.1"})
    resume_refused(
        capsys, stopped, "qeprop 0.0.1", f"this is qeprop {__version__}", "--force-version"
    )
    code, _, err = cli(capsys, "run", "--resume", stopped, "--force-version", "--no-progress")
    assert code == 0, err
    prov = json.loads((stopped / "provenance.json").read_text())
    (entry,) = prov["resumes"]
    assert entry["step"] == 34 and entry["forced"] and entry["qeprop_version"] == __version__
    assert outputs(stopped)["metrics"] == outputs(reference)["metrics"]
    assert outputs(stopped)["results"] == outputs(reference)["results"]


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Every atomic write after the first ``writes`` fails as on a full disk."""
    original = runs._atomic_write
    count = {"n": 0}

    def write(path: Path, fn: Any) -> None:
        count["n"] += 1
        if count["n"] > writes:
            raise OSError(28, "No space left on device", str(path))
        original(path, fn)

    monkeypatch.setattr(runs, "_atomic_write", write)


@pytest.mark.parametrize("writes", [0, 1, 3])
def test_full_disk_at_the_start_leaves_nothing(
    tmp_path: Path, toy: Any, monkeypatch, capsys, writes: int
) -> None:
    _full_disk_after(monkeypatch, writes)
    d = tmp_path / "r"
    code, out, err = cli(capsys, "run", NAME, "--out", d, "--no-progress")
    assert code == 2 and out == ""
    assert_one_line(err, "No space left on device", "nothing was kept")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert cli(capsys, "run", NAME, "--out", d, "--no-progress")[0] == 0


@pytest.mark.parametrize("writes", [5, 7])
def test_full_disk_during_the_run_keeps_the_last_checkpoint(
    tmp_path: Path, reference: Path, toy: Any, monkeypatch, capsys, writes: int
) -> None:
    """The start takes 5 atomic writes, each checkpoint 2: the disk fills up at the checkpoint
    of step 20 (the last one kept is step 0) or of step 40 (step 20 kept)."""
    _full_disk_after(monkeypatch, writes)
    d = tmp_path / "r"
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    code, _, err = cli(capsys, "run", NAME, "--out", d, "--no-progress", *sets)
    assert code == 2
    assert_one_line(err, "No space left on device", f"qeprop run --resume {d}")
    monkeypatch.undo()
    assert load_checkpoint(d).step == (0 if writes == 5 else 20)
    resume_run(d, progress=False)
    assert outputs(d) == outputs(reference)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_full_disk_while_appending_metrics_leaves_no_half_line(
    tmp_path: Path, reference: Path, toy: Any, monkeypatch, capsys
) -> None:
    """The disk fills up in the middle of a metrics record (half of it written): the half line
    is cut off again, the run stops in one line, and resumes to the undisturbed result."""
    real_write = os.write
    appends = {"n": 0}

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            appends["n"] += 1
            if appends["n"] == 4:  # the record of step 30: half of it, then the disk is full
                return real_write(fd, bytes(data)[: len(data) // 2])
            if appends["n"] == 5:
                raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    d = tmp_path / "r"
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    code, _, err = cli(capsys, "run", NAME, "--out", d, "--no-progress", *sets)
    monkeypatch.undo()
    assert code == 2
    assert_one_line(err, "metrics.jsonl", "No space left on device", "--resume")
    text = (d / "metrics.jsonl").read_text()
    assert text.endswith("\n") and [r["step"] for r in read_metrics(d)] == [0, 10, 20]
    resume_run(d, progress=False)
    assert outputs(d) == outputs(reference)


def test_a_killed_start_does_not_block_the_directory(tmp_path: Path, toy: Any) -> None:
    """A start killed before its directory was renamed into place leaves a hidden partial
    directory, which the next start of the same run removes."""
    partial = tmp_path / ".r.abc123.partial"
    partial.mkdir()
    (partial / "config.toml").write_text("steps = 3\n")
    os.utime(partial, (time.time() - 120, time.time() - 120))  # left two minutes ago
    d = start_run(NAME, {"steps": 5}, tmp_path / "r", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert json.loads((d / "summary.json").read_text())["steps"] == 5


# ------------------------------------------------------------------------------------ 7: damage
def _flip_bits(path: Path, seed: int) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(data), 3):
        data[pos] ^= 1 << int(rng.integers(8))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    ["truncated", "empty", "flipped-0", "flipped-1", "flipped-2", "random", "npy", "pickled",
     "no-step", "directory"],
)  # fmt: skip
def test_damaged_checkpoint_gives_one_line(stopped: Path, capsys, damage: str) -> None:
    path = stopped / "checkpoint.npz"
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage.startswith("flipped"):
        _flip_bits(path, int(damage[-1]))
    elif damage == "random":
        path.write_bytes(np.random.default_rng(5).bytes(len(data)))
    elif damage == "npy":
        np.save(path.with_suffix(".tmp.npy"), np.arange(3))
        path.write_bytes(path.with_suffix(".tmp.npy").read_bytes())
        path.with_suffix(".tmp.npy").unlink()
    elif damage == "pickled":
        with path.open("wb") as f:
            np.savez(f, params=np.array([{"a": 1}], dtype=object))
    elif damage == "no-step":
        with path.open("wb") as f:
            np.savez(f, params=np.zeros(4))
    else:
        path.unlink()
        path.mkdir()
    err = resume_refused(capsys, stopped, "checkpoint.npz")
    assert "allow_pickle" not in err


def test_damaged_checkpoint_json_is_rewritten_from_the_npz(stopped: Path, reference: Path) -> None:
    (stopped / "checkpoint.json").write_text("[1, 2")
    resume_run(stopped, progress=False)
    assert outputs(stopped) == outputs(reference)


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b"[1, 2]\n", ("provenance.json", "expected a JSON object")),
        (b'{"qeprop_version": ', ("provenance.json", "not valid JSON")),
        (b'{"a": "\xff\xfe"}', ("provenance.json", "not UTF-8")),
        (None, ("provenance.json", "not found")),
    ],
)
def test_damaged_provenance_gives_one_line(
    stopped: Path, capsys, content: bytes | None, needles: tuple[str, ...]
) -> None:
    path = stopped / "provenance.json"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    resume_refused(capsys, stopped, *needles)


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        (b'{"step": 10, "loss": "\xff"}', ("line 2", "not UTF-8")),
        (b"not json", ("line 2", "not a JSON record")),
        (b'{"step": "10"}', ("line 2", "integer 'step'")),
        (b"[10]", ("line 2", "integer 'step'")),
    ],
)
def test_damaged_metrics_give_one_line(
    stopped: Path, capsys, line: bytes, needles: tuple[str, ...]
) -> None:
    path = stopped / "metrics.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = line
    path.write_bytes(b"\n".join(lines))
    resume_refused(capsys, stopped, "metrics.jsonl", *needles)


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (None, ("config.toml", "not found")),
        (b"steps = [", ("config.toml", "invalid TOML")),
        (b'experiment = "nope"\n', ("config.toml: experiment", "unknown experiment")),
        (b"steps = 3\n", ("config.toml", "no 'experiment' name")),
        (b'experiment = "toy_experiment:TOY"\nsteps = 0\n', ("config.toml: steps", ">= 1")),
    ],
)
def test_damaged_config_gives_one_line(
    stopped: Path, capsys, content: bytes | None, needles: tuple[str, ...]
) -> None:
    path = stopped / "config.toml"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    resume_refused(capsys, stopped, *needles)


def test_resume_of_what_is_not_a_run(tmp_path: Path, capsys) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = cli(capsys, "run", "--resume", f)
    assert code == 2
    assert_one_line(err, str(f), "not a run directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(capsys, "run", "--resume", empty)
    assert code == 2
    assert_one_line(err, "config.toml", "not found")
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize(
    "target",
    ["qeprop.runs:start_run", "qeprop.runs:CHECKPOINT_EVERY", "toy_experiment:Toy", "qeprop:cli"],
)
def test_run_of_something_that_is_not_an_experiment(tmp_path: Path, capsys, target: str) -> None:
    d = tmp_path / "r"
    code, out, err = cli(capsys, "run", target, "--out", d)
    assert code == 2 and out == ""
    assert_one_line(err, repr(target) if target != "toy_experiment:Toy" else "class")
    assert not d.exists()


def test_plot_errors_are_one_line(tmp_path: Path, reference: Path, capsys) -> None:
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"x")
    code, _, err = cli(capsys, "plot", reference, "--out", taken)
    assert code == 2
    assert_one_line(err, "--out", "not a directory")
    assert taken.read_bytes() == b"x"
    code, _, err = cli(capsys, "plot", reference, "--out", taken / "sub")
    assert code == 2
    assert_one_line(err, "--out", "not a directory")
    code, _, err = cli(capsys, "plot", tmp_path / "nowhere")
    assert code == 2
    assert_one_line(err, "no such run directory")


@pytest.mark.parametrize("damage", ["results", "metrics"])
def test_plot_of_damaged_files(tmp_path: Path, capsys, damage: str) -> None:
    """A finished phase-recognition-like run whose results.npz was cut short, or whose
    metrics.jsonl holds a byte that is not UTF-8."""
    d = tmp_path / "pr"
    d.mkdir()
    (d / "config.toml").write_text('experiment = "phase-recognition"\n')
    rec = b'{"step": 0, "max_choice_accuracy": 0.3, "single_shot_accuracy": 0.3}\n'
    (d / "metrics.jsonl").write_bytes(
        rec + (b'{"step": 9, "x": "\xff"}\n' + rec) * (damage == "metrics")
    )
    (d / "summary.json").write_text('{"experiment": "phase-recognition", "final": {}}')
    with (d / "results.npz").open("wb") as f:
        np.savez(f, grid_points=np.zeros((3, 3)), grid_probs=np.zeros((3, 3)))
    if damage == "results":
        data = (d / "results.npz").read_bytes()
        (d / "results.npz").write_bytes(data[:-40])
    code, _, err = cli(capsys, "plot", d, "--out", tmp_path / "plots")
    assert code == 2
    if damage == "results":
        assert_one_line(err, "results.npz", "damaged")
    else:
        assert_one_line(err, "metrics.jsonl", "line 2", "not UTF-8")


@pytest.mark.parametrize(
    ("sets", "plot", "needles"),
    [
        ([], "x.jpgx", ("--plot", "'.jpgx'", ".png")),
        ([], "noext", ("--plot", "no suffix")),
        (["x_range=[1e308, 1.7e308]"], None, ("x_range[0]", "1e+308")),
        (["y_range=[1, -1]"], None, ("y_range", "lo < hi")),
        (["fixed=3"], None, ("fixed",)),
        (["fixed={g_zxz = 1}"], None, ("fixed",)),
        (["resolution=0"], None, ("resolution",)),
        (["resolution=4.0"], None, ("resolution",)),
        (["tol=0"], None, ("tol",)),
        (["degeneracy_tol=nan"], None, ("degeneracy_tol",)),
        (["boundary=twisted"], None, ("boundary",)),
        (["observable=Q1"], None, ("observable",)),
        (["chain_length=1000000"], None, ("chain_length",)),
    ],
)
def test_map_errors_are_one_line_and_compute_nothing(
    tmp_path: Path, capsys, sets: list[str], plot: str | None, needles: tuple[str, ...]
) -> None:
    cache = tmp_path / "cache"
    argv = ["map", "--cache", cache, "--no-progress", *[a for s in sets for a in ("--set", s)]]
    if plot is not None:
        argv += ["--plot", tmp_path / plot]
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert_one_line(err, *needles)
    assert not cache.exists()


# ------------------------------------------------------------------------------------ 8: --out
def test_out_below_a_file(tmp_path: Path, capsys) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = cli(capsys, "run", NAME, "--out", f / "sub" / "run")
    assert code == 2
    assert_one_line(err, f"{f} is a file, not a directory")
    assert "concurrently" not in err
    code, _, err = cli(capsys, "run", NAME, "--out", f)
    assert code == 2
    assert_one_line(err, "already exists")
    assert f.read_text() == "x"
