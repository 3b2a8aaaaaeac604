"""The benchmark harness (benchmarks/): discovery, reports, partial result updates, scaling runs.

Nothing here times anything for real: the reports get hand-made timings, and the scaling helpers
run one tiny ``qeprop gradient`` process or a short Python child.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.append(str(BENCH))  # after tests/ and site-packages: no shadowing

import bench_scaling  # noqa: E402
import common  # noqa: E402
import run as runner  # noqa: E402

from qeprop.errors import ProblemTooLargeError  # noqa: E402
from qeprop.hamiltonian import check_memory  # noqa: E402


def _report(name: str, naive_s: float, fast_s: float) -> common.Report:
    rep = common.Report(name, title=f"{name} comparison")
    rep.add("naive", common.Timing([naive_s, naive_s, naive_s]))
    rep.add("fast", common.Timing([fast_s, fast_s, fast_s * 2]), baseline="naive")
    rep.stamp = [("date (UTC)", "2030-01-01 00:00:00"), ("command", "`make bench`")]
    rep.validate()
    return rep


def test_every_comparison_module_is_discovered_and_loadable() -> None:
    found = runner.discover()
    assert list(found)[: len(runner.ORDER)] == [n for n in runner.ORDER if n in found]
    assert {"gradient", "training", "scaling"} <= set(found)
    for name in found:
        module = runner.load(name)
        assert isinstance(module.DESCRIPTION, str) and "\n" not in module.DESCRIPTION
        assert callable(module.run)


def test_report_renders_stamp_and_ratio_against_its_baseline() -> None:
    text = _report("demo", naive_s=3.0, fast_s=0.5).render()
    assert text.startswith(common.section_begin("demo"))
    assert text.endswith(common.section_end("demo"))
    assert "| date (UTC) | 2030-01-01 00:00:00 |" in text
    naive_row = next(line for line in text.splitlines() if line.startswith("| naive |"))
    fast_row = next(line for line in text.splitlines() if line.startswith("| fast |"))
    assert "| B1 |" in naive_row
    assert "| 6x vs B1 |" in fast_row  # median 0.5 s against the baseline's 3 s


def test_a_baseline_missing_from_the_report_is_an_error() -> None:
    rep = common.Report("demo")
    rep.add("fast", common.Timing([1.0]), baseline="not measured")
    with pytest.raises(KeyError, match="not measured"):
        rep.validate()


def test_partial_run_replaces_its_section_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    order = ["alpha", "beta", "gamma"]
    first = {n: _report(n, 2.0, 1.0).render() for n in ("alpha", "beta")}
    common.write_results(path, "# results\n", first, order)
    rerun = _report("beta", 8.0, 1.0).render()
    new = _report("gamma", 3.0, 1.0).render()
    common.write_results(path, "# results\n", {"beta": rerun, "gamma": new}, order)
    sections = common.read_sections(path)
    assert list(sections) == order
    assert sections == {"alpha": first["alpha"], "beta": rerun, "gamma": new}
    assert "8x vs B1" in sections["beta"] and "2x vs B1" in sections["alpha"]
    assert path.read_text(encoding="utf-8").startswith("# results\n")


def test_run_process_reports_exit_status_peak_memory_and_the_cap(tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    code, wall, peak, timed_out = bench_scaling.run_process(
        [sys.executable, "-c", "b = bytearray(200 * 2**20); raise SystemExit(3)"], 60.0, out, err
    )
    assert (code, timed_out) == (3, False)
    assert peak > 0.19  # the child touched a 200 MiB buffer (GiB units)
    code, wall, _, timed_out = bench_scaling.run_process(
        [sys.executable, "-c", "import time; time.sleep(30)"], 0.5, out, err
    )
    assert timed_out and code < 0
    assert wall < 10.0  # killed at the 0.5 s cap, not after the 30 s sleep


def test_memory_refusals_are_recognised() -> None:
    with pytest.raises(ProblemTooLargeError) as info:
        check_memory(2**40, "dense diagonalisation of dimension 2^20", budget=2**30)
    assert bench_scaling.is_memory_message(f"qeprop: error: p.json: qubits: {info.value}")
    assert not bench_scaling.is_memory_message("qeprop: error: p.json: state: did not converge")


def test_an_unknown_backend_is_skipped_with_a_note(tmp_path: Path) -> None:
    point = bench_scaling.measure(
        "no-such-method", 4, 120.0, tmp_path, bench_scaling.qeprop_command()
    )
    assert point.status == "unknown method"
    assert bench_scaling.UNKNOWN_METHOD in point.message


def test_max_relative_difference_of_gradients() -> None:
    ref = {"a": 2.0, "b": -1.0}
    assert bench_scaling.max_rel_diff({"a": 2.0, "b": -1.0}, ref) == 0.0
    assert bench_scaling.max_rel_diff({"a": 2.0, "b": -0.9}, ref) == pytest.approx(0.05)


def test_quick_runs_do_not_default_to_the_published_results() -> None:
    assert runner.default_results(quick=False) == common.RESULTS
    assert runner.default_results(quick=True).parent != common.RESULTS.parent


def test_per_backend_caps_are_parsed_and_checked() -> None:
    caps = bench_scaling.parse_caps("dense=120, matrix-free=5400", 600.0)
    assert caps == {"dense": 120.0, "sparse": 600.0, "matrix-free": 5400.0, "auto": 600.0}
    with pytest.raises(ValueError, match="BACKEND=SECONDS"):
        bench_scaling.parse_caps("gpu=3", 600.0)


def test_own_cpu_time_counts_finished_child_processes() -> None:
    """A benchmark that runs qeprop in subprocesses must not count them as other load."""
    import subprocess

    before = common.own_cpu_seconds()
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    subprocess.run([sys.executable, "-c", code], check=True)
    # the child burnt 0.3 s of CPU (interpreter start-up adds more); clock ticks are 10 ms
    assert common.own_cpu_seconds() - before >= 0.28


def test_products_comparison_runs_on_tiny_chains() -> None:
    import argparse

    import bench_products

    assert bench_products._sizes("8, 6,8") == [6, 8]
    for bad in ("7", "2", "x"):
        with pytest.raises(SystemExit):
            bench_products._sizes(bad)
    rep = common.Report("products")
    args = argparse.Namespace(
        repeats=1, quick=False, product_qubits="6,8", csr_qubits=8, count_qubits=8
    )
    bench_products.run(rep, args)
    rep.validate()
    titles = [t.title for t in rep.tables]
    assert titles[0] == "Products" and [r[0] for r in rep.tables[0].rows] == ["6", "8"]
    counts = rep.tables[1].rows
    # free solve (ground + gap level) and two nudged solves, each at least one product
    assert [r[0] for r in counts] == ["6", "8"] and all(int(x) > 0 for r in counts for x in r[1:])
    assert any(name.startswith("products per gradient do not fall") for name, _ in rep.checks)
    # CSR baseline rows exist up to csr_qubits and every matrix-free row names one
    mf = [r for r in rep.rows if r.name.startswith("matrix-free")]
    assert len(mf) == 4 and all(r.baseline and r.baseline.startswith("CSR") for r in mf)
