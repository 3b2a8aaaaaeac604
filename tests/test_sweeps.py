"""Sweeps (``qeprop sweep``): sweep files, the sweep directory, and runs on a real Dask cluster.

* Sweep files are checked before anything runs: each mistake is one line naming the file and
  the place (``grid.nudge``), exit status 2.
* On a real two-worker cluster (loopback only), a worker killed (``SIGKILL``) in the middle of a
  run loses nothing: Dask gives the task to a worker again, the run resumes from its checkpoint,
  and every run ends exactly once, byte for byte equal to a serial run of the same point.
* ``qeprop sweep examples/sweeps/smoke.toml`` interrupted with ``SIGINT`` and started again
  finishes without redoing the runs that had finished; results.csv reads with pandas.
* The multi-host recipe of docs/sweeps.md (``dask scheduler``, ``dask worker`` as commands)
  runs the same sweep through ``--scheduler``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qeprop.sweeps as sweeps
from _run_outputs import outputs
from qeprop.cli import main
from qeprop.errors import ProblemError, QEPError
from qeprop.runs import start_run
from qeprop.sweeps import (
    RESULTS_CSV,
    SWEEP_JSON,
    is_sweep_dir,
    load_sweep,
    parse_sweep,
    read_results,
    run_point,
    run_sweep,
)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TOY = "toy_experiment:TOY"
SMOKE = ROOT / "examples" / "sweeps" / "smoke.toml"
STUDY = ROOT / "examples" / "sweeps" / "phase-recognition.toml"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def load_csv(path: Path) -> list[dict[str, Any]]:
    """results.csv through pandas (a dev dependency), as a user reads it; the columns must
    come out typed (numbers as numbers) and agree with the stdlib csv reading."""
    import pandas as pd

    frame = pd.read_csv(path)
    with path.open(newline="", encoding="utf-8") as f:
        plain = list(csv.DictReader(f))
    assert list(frame.columns) == list(plain[0]) and len(frame) == len(plain)
    for column in ("max_choice_accuracy", "steps", "wall_seconds"):
        if column in frame and frame[column].notna().all():
            assert pd.api.types.is_numeric_dtype(frame[column]), column
    return frame.to_dict("records")


# ------------------------------------------------------------------------------------ (a) files
def test_grid_zip_and_groups_expand_in_order(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", "steps = 7\ndim = 3\n")
    f = write(
        tmp_path / "s.toml",
        f"""
experiment = "{TOY}"
config = "base.toml"
[base]
eval_every = 7
[grid]
seed = [0, 1]
[zip]
learning_rate = [0.1, 0.2]
noise = [0.0, 0.5]
[[group]]
name = "a"
[[group]]
name = "b"
set = {{ dim = 2 }}
grid = {{ label = ["x/y"] }}
""",
    )
    sweep = load_sweep(f)
    names = [p.name for p in sweep.points]
    assert names[:4] == [
        "a,seed=0,learning_rate=0.1,noise=0.0",
        "a,seed=0,learning_rate=0.2,noise=0.5",
        "a,seed=1,learning_rate=0.1,noise=0.0",
        "a,seed=1,learning_rate=0.2,noise=0.5",
    ]
    assert names[4] == "b,seed=0,learning_rate=0.1,noise=0.0,label=x-y"  # sanitised
    assert len(names) == 8 and len(set(names)) == 8
    assert sweep.varied == ("seed", "learning_rate", "noise", "dim", "label")
    assert sweep.axis_keys == ("seed", "learning_rate", "noise", "label")
    p = sweep.points[5]
    assert p.group == "b" and p.config["dim"] == 2 and p.config["steps"] == 7
    assert p.config["eval_every"] == 7 and p.variant == "b,learning_rate=0.2,noise=0.5,label=x/y"
    assert p.overrides == {
        "steps": 7,
        "dim": 2,
        "eval_every": 7,
        "seed": 0,
        "learning_rate": 0.2,
        "noise": 0.5,
        "label": "x/y",
    }


def test_study_sweep_file_covers_the_study() -> None:
    """examples/sweeps/phase-recognition.toml: the 25 runs of docs/results/phase-recognition.md."""
    sweep = load_sweep(STUDY)
    by_group: dict[str, list[Any]] = {}
    for p in sweep.points:
        by_group.setdefault(p.group, []).append(p)
    assert {g: len(v) for g, v in by_group.items()} == {
        "default": 10,
        "xz": 5,
        "zz": 5,
        "patches": 5,
    }
    assert all(p.config["steps"] == 5000 for p in by_group["default"])
    assert [p.config["seed"] for p in by_group["default"]] == list(range(10))
    for g, couplings in (("xz", "xz"), ("zz", "zz"), ("patches", "xyz")):
        assert all(
            p.config["steps"] == 2000 and p.config["couplings"] == couplings for p in by_group[g]
        )
    assert all(
        p.config["training_region"] == "patches" and p.config["soft_bound"]
        for p in by_group["patches"]
    )
    assert by_group["default"][0].name == "default,seed=0"
    assert {p.variant for p in sweep.points} == {"default", "xz", "zz", "patches"}


BAD = [
    ("nonsense = 1", "s.toml: nonsense: unknown key"),
    ('experiment = "no-such"', "s.toml: experiment: unknown experiment 'no-such'"),
    ("[grid]\nseed = [0]", "s.toml: experiment: name the experiment"),
    (f'experiment = "{TOY}"\n[grid]\nsede = [0, 1]', "s.toml: grid.sede: unknown configuration"),
    (f'experiment = "{TOY}"\n[grid]\nseed = []', "s.toml: grid.seed: is empty"),
    (f'experiment = "{TOY}"\n[grid]\nseed = 3', "s.toml: grid.seed: must be a list"),
    (f'experiment = "{TOY}"\n[grid]\nseed = [1, 2, 1]', "s.toml: grid.seed: value 1 appears twice"),
    (
        f'experiment = "{TOY}"\n[zip]\nseed = [1, 2]\nnoise = [0.1]',
        "s.toml: zip.noise: has 1 values but zip.seed has 2",
    ),
    (
        f'experiment = "{TOY}"\n[grid]\nseed = [1]\n[zip]\nseed = [2]',
        "s.toml: zip.seed: is also varied at grid.seed",
    ),
    (
        f'experiment = "{TOY}"\n[grid]\nnoise = [0.1, -1.0]',
        "s.toml: grid.noise: must be a finite number >= 0",
    ),
    (f'experiment = "{TOY}"\n[base]\nsteps = 0', "s.toml: base.steps: must be an integer >= 1"),
    (f'experiment = "{TOY}"\nconfig = "missing.toml"', "s.toml: config: "),
    (f'experiment = "{TOY}"\n[base]\nexperiment = "x"', "s.toml: base.experiment: 'experiment'"),
    (
        f'experiment = "{TOY}"\n[grid]\nseed = [1]\n[[group]]\nname = "a"\nset = {{ seed = 2 }}',
        "s.toml: group[0].set.seed: is also varied at grid.seed",
    ),
    (
        f'experiment = "{TOY}"\n[[group]]\nname = "a"\n[[group]]\nname = "a"',
        "s.toml: group[1].name: two groups are named 'a'",
    ),
    (
        f'experiment = "{TOY}"\n[[group]]\nname = "a"\nset = {{ noise = 0.5 }}\n[[group]]\n'
        'name = "b"\nset = { noise = 0.5 }',
        "runs 'a' and 'b' have the same configuration",
    ),
    (f'experiment = "{TOY}"\n[[group]]\nnom = "a"', "s.toml: group[0].nom: unknown key"),
    (
        f'experiment = "{TOY}"\n[grid]\nsteps = [1, 2]\n[base]\neval_every = 0',
        "s.toml: base.eval_every: must be",
    ),
    ("experiment = ", "s.toml: invalid TOML"),
]


@pytest.mark.parametrize(("text", "expect"), BAD, ids=[e for _, e in BAD])
def test_sweep_file_errors_are_one_line(tmp_path: Path, capsys, text: str, expect: str) -> None:
    f = write(tmp_path / "s.toml", text + "\n")
    with pytest.raises(QEPError) as info:
        load_sweep(f)
    assert expect in str(info.value), str(info.value)
    code = main(["sweep", str(f), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("qeprop: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was created


def test_config_file_of_another_experiment_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "c.toml", 'experiment = "kitaev-sensor"\n')
    f = write(tmp_path / "s.toml", f'experiment = "{TOY}"\nconfig = "c.toml"\n')
    with pytest.raises(ProblemError, match="is a configuration of 'kitaev-sensor'"):
        load_sweep(f)


def test_values_are_resolved_by_the_experiment() -> None:
    with pytest.raises(ProblemError, match=r"s: grid\.couplings: must be one of .*\(run couplings"):
        parse_sweep(
            {"experiment": "phase-recognition", "grid": {"couplings": ["xyz", "yy"]}}, source="s"
        )
    # 1 and 1.0 of a float key are the same point
    with pytest.raises(ProblemError, match="have the same configuration"):
        parse_sweep({"experiment": TOY, "grid": {"noise": [1, 1.0]}}, source="s")


def test_names_are_safe_and_unique() -> None:
    sweep = parse_sweep({"experiment": TOY, "grid": {"label": ["a b", "a/b", "A B", "..x"]}})
    names = [p.name for p in sweep.points]
    assert names == ["label=a-b", "label=a-b-2", "label=A-B-3", "label=..x"]
    assert all("/" not in n and " " not in n for n in names)


def test_dry_run_lists_the_runs(capsys) -> None:
    assert main(["sweep", str(SMOKE), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs of phase-recognition" in out and "couplings=xz,seed=1" in out
    assert main(["sweep", str(SMOKE)]) == 2
    assert (
        capsys.readouterr().err == "qeprop: error: --out: give the sweep directory with --out DIR\n"
    )


def test_workers_and_scheduler_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(SMOKE), "--out", "x", "--workers", "2", "--scheduler", "tcp://a:1"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_sweep_directory_belongs_to_one_sweep(tmp_path: Path) -> None:
    one = parse_sweep({"experiment": TOY, "grid": {"seed": [0, 1], "steps": [3]}}, text="one")
    other = parse_sweep({"experiment": TOY, "grid": {"seed": [0, 2], "steps": [3]}}, text="two")
    out = tmp_path / "sw"
    # all runs already finished: nothing to submit, so no cluster is started
    sweeps._prepare(out, one, ["test"]).release()
    for p in one.points:
        start_run(TOY, p.overrides, out / "runs" / p.name, progress=False)
    stream = io.StringIO()
    outcome = run_sweep(one, out, stream=stream)
    assert outcome.skipped == 2 and outcome.ran == 0 and outcome.failed == []
    assert "2 already done, 0 to run" in stream.getvalue()
    assert is_sweep_dir(out)
    record = json.loads((out / SWEEP_JSON).read_text())
    assert record["sweep_text"] == "one" and [p["name"] for p in record["points"]] == [
        "seed=0,steps=3",
        "seed=1,steps=3",
    ]
    rows = read_results(out)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert list(rows[0])[:5] == ["run", "seed", "steps", "status", "error"]
    assert {"loss", "accuracy", "wall_seconds"} <= set(rows[0]) and "label" in rows[0]
    with pytest.raises(QEPError, match=r"sweep\.json: was written by another sweep \(run "):
        run_sweep(other, out, stream=io.StringIO())
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(QEPError, match="is not a sweep directory"):
        run_sweep(one, tmp_path / "busy", stream=io.StringIO())


def test_run_point_reports_failures_and_refuses_a_foreign_run(tmp_path: Path) -> None:
    sweep = parse_sweep({"experiment": TOY, "grid": {"seed": [0]}, "base": {"steps": 3}})
    p = sweep.points[0]
    task = {
        "run_dir": str(tmp_path / "r"),
        "experiment": TOY,
        "overrides": p.overrides,
        "config": p.config,
        "command_line": ["test"],
        "lock_wait": 0,
    }
    assert run_point(task)["status"] == "done"
    assert run_point(task)["action"] == "skipped"
    start_run(
        TOY,
        {"steps": 3, "seed": 5, "checkpoint_every": 1, "eval_every": 1},
        tmp_path / "s",
        progress=False,
    )
    (tmp_path / "s" / "summary.json").unlink()  # an unfinished run of another configuration
    res = run_point({**task, "run_dir": str(tmp_path / "s")})
    assert res["status"] == "failed" and "another configuration than the sweep's" in res["error"]
    assert "seed: 0 -> 5" in res["error"] and "\n" not in res["error"]


def test_plot_a_sweep_from_its_files(tmp_path: Path, capsys) -> None:
    """``qeprop plot DIR`` of a gradient-quality sweep: overlaps per variant and the metrics
    against the varied key (files written by hand: plotting reads nothing else)."""
    sweep = parse_sweep(
        {"experiment": "gradient-quality", "grid": {"couplings": ["xyz", "xz"], "seed": [0, 1]}},
        text="",
    )
    out = tmp_path / "sw"
    from qeprop.sweeps import _points_record

    out.mkdir()
    (out / SWEEP_JSON).write_text(
        json.dumps(
            {
                "experiment": "gradient-quality",
                "varied": list(sweep.varied),
                "axes": list(sweep.axis_keys),
                "groups": False,
                "points": _points_record(sweep),
            }
        )
    )
    rng = np.random.default_rng(0)
    for i, p in enumerate(sweep.points):
        d = out / "runs" / p.name
        d.mkdir(parents=True)
        (d / "metrics.jsonl").write_text('{"step": 0}\n')
        final = {"median_overlap": 0.9 - 0.1 * i, "couplings": p.config["couplings"]}
        (d / "summary.json").write_text(json.dumps({"final": final, "steps": 2}))
        np.savez(
            d / "results.npz",
            nudges=np.array([0.1, 0.4]),
            overlap_vs_nudge=rng.uniform(0.5, 1, (2, 4)),
            shots=np.array([10, 100]),
            shot_nudges=np.array([0.1, 0.4]),
            overlap_vs_shots=rng.uniform(0, 1, (2, 2, 4)),
        )
    assert main(["plot", str(out)]) == 0
    written = capsys.readouterr().out.split()
    assert [Path(w).name for w in written] == ["overlaps.png", "sweep_couplings.png"]
    assert all(Path(w).stat().st_size > 10_000 for w in written)


# ------------------------------------------------------------------------------------ (b) Dask
@pytest.fixture(scope="module")
def two_workers() -> Any:
    """A real local Dask cluster: a scheduler and two worker processes, loopback only."""
    distributed = pytest.importorskip("distributed")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env()["PYTHONPATH"]  # the workers import the toy experiments
    try:
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # any free port: 8787 may be another cluster's
            memory_limit=0,
            silence_logs=50,
        )
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        yield cluster
    finally:
        cluster.close()


def test_a_failed_run_does_not_stop_the_sweep(tmp_path: Path, two_workers: Any, capsys) -> None:
    f = write(
        tmp_path / "s.toml",
        'experiment = "sweep_toys:FAILING"\n[base]\nsteps = 6\n'
        "[grid]\nfail_at = [0, 2, 5]\nseed = [3]\n",
    )
    out = tmp_path / "sw"
    code = main(["sweep", str(f), "--out", str(out), "--scheduler", two_workers.scheduler_address])
    cap = capsys.readouterr()
    assert code == 1, cap.err
    assert "FAILED  fail_at=2,seed=3: RuntimeError: toy failure in step 2" in cap.err
    assert "failed runs:" in cap.out and "fail_at=5,seed=3  RuntimeError: toy failure" in cap.out
    rows = {r["run"]: r for r in read_results(out)}
    assert rows["fail_at=0,seed=3"]["status"] == "done" and rows["fail_at=0,seed=3"]["error"] == ""
    assert rows["fail_at=2,seed=3"]["status"] == "failed"
    assert rows["fail_at=2,seed=3"]["error"] == "RuntimeError: toy failure in step 2"
    assert rows["fail_at=2,seed=3"]["loss"] == ""
    # progress lines count training steps: a failed run's steps left are no longer work
    last = re.findall(r"steps (\d+)/(\d+)", cap.err)[-1]
    assert last[0] == last[1], cap.err


def test_progress_counts_steps_from_checkpoints(tmp_path: Path) -> None:
    """The time left is the steps left over this session's steps per second: runs of different
    lengths and resumed runs count right (a run-count estimate would say 3x too much here)."""
    sweep = parse_sweep(
        {
            "experiment": TOY,
            "base": {"dim": 2},
            "grid": {"steps": [10, 30], "seed": [0, 1]},
        }
    )
    runs = tmp_path / "runs"
    names = [p.name for p in sweep.points]

    def checkpoint(name: str, step: int) -> None:
        (runs / name).mkdir(parents=True, exist_ok=True)
        path = runs / name / "checkpoint.json"
        path.write_text(json.dumps({"step": step, "meta": {}}))
        os.utime(path, ns=(time.time_ns(), time.time_ns() + step))  # a new mtime each write

    checkpoint(names[2], 6)  # resumed: 6 steps were done before this session
    status = dict.fromkeys(names, "pending")
    status[names[0]] = "done"
    meter = sweeps._StepMeter(sweep, runs, status)
    assert meter.known and meter.all_steps == 10 + 10 + 30 + 30
    assert meter.done_steps == 10 + 6 and meter.remaining(5.0) is None  # no step made yet
    checkpoint(names[2], 16)
    checkpoint(names[3], 10)
    meter.poll()
    assert meter.done_steps == 10 + 16 + 10
    assert meter.remaining(20.0) == pytest.approx((80 - 36) * 20.0 / 20)
    meter.close(names[1], done=False)  # failed at step 0: its 10 steps leave the total
    assert meter.all_steps == 70 and meter.done_steps == 36
    meter.close(names[2], done=True)
    assert meter.done_steps == 50
    checkpoint(names[2], 3)  # a closed run is not read again
    meter.poll()
    assert meter.done_steps == 50
    (runs / names[3] / "checkpoint.json").write_text("{damaged")  # unreadable: last value kept
    meter.poll()
    assert meter.done_steps == 50


KILL_CASES = [
    pytest.param(
        {
            "experiment": TOY,
            "grid": {"seed": [0, 1, 2], "noise": [0.5, 1.0]},
            "base": {"steps": 24, "eval_every": 4, "checkpoint_every": 3, "dim": 3, "sleep": 0.05},
        },
        {"sleep": 0.0},  # the serial runs need not sleep: sleeping changes no number
        id="toy",
    ),
    pytest.param(
        {
            "experiment": "phase-recognition",
            "grid": {"couplings": ["xyz", "xz"], "seed": [0, 1]},
            "base": {
                "steps": 24,
                "eval_every": 4,
                "checkpoint_every": 3,
                "test_size": 20,
                "map_resolution": 4,
            },
        },
        {},
        id="phase-recognition",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("data", "serial_changes"), KILL_CASES)
def test_a_killed_worker_loses_no_run(
    tmp_path: Path, two_workers: Any, data: dict[str, Any], serial_changes: dict[str, Any]
) -> None:
    """SIGKILL the worker process holding a run half-way: the sweep still ends with every run
    once, each byte for byte equal (metrics, summary, final couplings and every other array of
    results.npz) to a serial run of the same point."""
    sweep = parse_sweep(data)
    out = tmp_path / "sw"
    killed: list[tuple[str, int]] = []

    def kill_one() -> None:  # the first run past its third checkpoint, while it is held
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for d in sorted((out / "runs").glob("*")):
                try:
                    step = json.loads((d / "checkpoint.json").read_text())["step"]
                    pid = int((d / ".lock").read_text().split()[0])
                except (OSError, ValueError, KeyError, IndexError):
                    continue
                if 9 <= step < 24 and pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
                    killed.append((d.name, pid))
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    stream = io.StringIO()
    outcome = run_sweep(sweep, out, scheduler=two_workers.scheduler_address, stream=stream)
    killer.join(timeout=5)
    assert killed, "no run was caught in the middle"
    assert outcome.failed == [] and len(outcome.done) == len(sweep.points), stream.getvalue()
    names = sorted(p.name for p in sweep.points)
    assert sorted(p.name for p in (out / "runs").iterdir()) == names  # once each, no leftovers
    prov = json.loads((out / "runs" / killed[0][0] / "provenance.json").read_text())
    assert prov["resumed_at"], "the killed run was not resumed from its checkpoint"
    serial = tmp_path / "serial"
    for p in sweep.points:
        overrides = {**p.overrides, **serial_changes}
        ref = start_run(sweep.experiment, overrides, serial / p.name, progress=False)
        assert outputs(out / "runs" / p.name) == outputs(ref), p.name
    rows = load_csv(out / RESULTS_CSV)
    assert [str(r["run"]) for r in rows] == [p.name for p in sweep.points]
    assert {r["status"] for r in rows} == {"done"}
    if sweep.experiment == "phase-recognition":  # the figures of a real sweep
        from qeprop.sweep_plots import plot_sweep

        names = [p.name for p in plot_sweep(out, out / "plots")]
        assert names == ["accuracy_curves.png", "accuracy_histograms.png", "sweep_couplings.png"]


# ------------------------------------------------------------------------------------ (c) CLI
def test_smoke_sweep_interrupted_and_started_again(tmp_path: Path) -> None:
    """examples/sweeps/smoke.toml on two local workers: SIGINT once a run has finished (exit
    130, results.csv written), then the same command finishes without redoing finished runs."""
    out = tmp_path / "smoke"
    cmd = [
        sys.executable,
        "-m",
        "qeprop.cli",
        "sweep",
        str(SMOKE),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list((out / "runs").glob("*/summary.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted with" in err and "Traceback" not in err, err
    first = {r["run"]: r["status"] for r in read_results(out)}
    finished = [n for n, s in first.items() if s == "done"]
    assert 1 <= len(finished) < 4, first
    before = {
        n: (
            (out / "runs" / n / "summary.json").stat().st_mtime_ns,
            (out / "runs" / n / "provenance.json").read_bytes(),
        )
        for n in finished
    }

    again = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} already done, {4 - len(finished)} to run" in again.stderr
    for n, (mtime, prov) in before.items():  # not run again, not even touched
        assert (out / "runs" / n / "summary.json").stat().st_mtime_ns == mtime
        assert (out / "runs" / n / "provenance.json").read_bytes() == prov
    rows = load_csv(out / RESULTS_CSV)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    assert all(0 <= float(r["max_choice_accuracy"]) <= 1 for r in rows)
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(r["run"] for r in rows)


def test_smoke_sweep_on_a_cluster_started_from_the_dask_commands(tmp_path: Path) -> None:
    """The multi-host recipe of docs/sweeps.md on one machine: ``dask scheduler`` and ``dask
    worker`` started as separate commands (loopback only), ``qeprop sweep --scheduler`` on
    them; every run is done once and results.csv reads with pandas."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip(f"no dask command next to {sys.executable}")
    address_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen[str]] = []
    logs = [(tmp_path / f"{name}.log").open("w") for name in ("scheduler", "workers")]
    try:
        procs.append(
            subprocess.Popen(
                [
                    str(dask),
                    "scheduler",
                    *("--host", "127.0.0.1", "--port", "0"),
                    *("--no-dashboard", "--scheduler-file", str(address_file)),
                ],
                env={**env(), "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"},
                stdout=logs[0],
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        deadline = time.monotonic() + 60
        while not address_file.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, "no scheduler"
            time.sleep(0.1)
        time.sleep(0.2)  # the file is complete once it parses
        address = json.loads(address_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [
                    str(dask),
                    "worker",
                    address,
                    *("--nworkers", "2", "--nthreads", "1"),
                    *("--memory-limit", "0", "--no-dashboard", "--host", "127.0.0.1"),
                ],
                env=env(),
                stdout=logs[1],
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "smoke"
        cmd = [sys.executable, "-m", "qeprop.cli", "sweep", str(SMOKE), "--out", str(out)]
        done = subprocess.run(
            [*cmd, "--scheduler", address, "--no-progress"],
            env=env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr
        assert address in done.stderr, done.stderr  # the cluster it ran on is named
        rows = load_csv(out / RESULTS_CSV)
        assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}, rows
        assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(r["run"] for r in rows)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


EXPERIMENT_SWEEPS = [
    pytest.param(
        "oscillator-network",
        "steps = 4\neval_every = 2\ncheckpoint_every = 2\nnodes = 6\nextra_edges = 3\n"
        "n_train = 8\nn_test = 6\nbatch_size = 2\n[grid]\nhbar = [0.01, 0.3]\n",
        ["oscillator_curves.png", "sweep_hbar.png"],
        id="oscillator-network",
    ),
    pytest.param(
        "tfim-network",
        "steps = 1\neval_every = 1\nbatch_size = 4\nshots = 100\n[grid]\nnudge = [0.1, 0.3]\n",
        ["tfim_curves.png", "sweep_nudge.png"],
        id="tfim-network",
    ),
    pytest.param(
        "kitaev-sensor",
        "steps = 1\neval_every = 1\nnx = 4\nmap_resolution = 1\n[grid]\nseed = [0, 1]\n",
        ["kitaev_curves.png", "sweep_seed.png"],  # only replicates vary: against the first
        id="kitaev-sensor",
    ),
    pytest.param(  # phase recognition on long open chains, as matrix product states
        "phase-recognition",
        'method = "dmrg"\nboundary = "open"\nsteps = 1\neval_every = 1\nbatch_size = 1\n'
        "test_size = 2\nmap_resolution = 2\nshots = 100\n[grid]\nchain_length = [6, 8]\n",
        ["accuracy_curves.png", "accuracy_histograms.png", "sweep_chain_length.png"],
        id="phase-recognition-dmrg",
    ),
]


@pytest.mark.parametrize(("experiment", "body", "figures"), EXPERIMENT_SWEEPS)
def test_the_other_experiments_run_as_sweeps(
    tmp_path: Path, two_workers: Any, experiment: str, body: str, figures: list[str]
) -> None:
    """Every experiment runs as a sweep on the cluster (tiny settings) and `qeprop plot` draws
    its summary: learning curves of the finished runs and final metrics against the axis."""
    text = f'experiment = "{experiment}"\n[base]\n{body}'
    sweep = parse_sweep(tomllib.loads(text))
    out = tmp_path / "sw"
    stream = io.StringIO()
    outcome = run_sweep(sweep, out, scheduler=two_workers.scheduler_address, stream=stream)
    assert outcome.failed == [] and len(outcome.done) == 2, stream.getvalue()
    rows = load_csv(out / RESULTS_CSV)
    assert [r["status"] for r in rows] == ["done", "done"]
    from qeprop.sweep_plots import plot_sweep

    names = [p.name for p in plot_sweep(out, out / "plots")]
    assert names == figures


def test_local_workers_run_without_the_profiler() -> None:
    """The local cluster's worker processes get its quiet settings (no statistical profiler,
    slower monitors), which cost a worker ~0.4 s of CPU per second of run otherwise."""
    from qeprop._dask_cluster import LOCAL_CONFIG, connect

    def settings() -> list[Any]:
        import dask

        return [dask.config.get(k) for k in LOCAL_CONFIG]

    client, cluster = connect(None, 1)
    try:
        (got,) = client.run(settings).values()
    finally:
        client.close()
        cluster.close()
    assert got == list(LOCAL_CONFIG.values())
