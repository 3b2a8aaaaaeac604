"""phase-recognition on open chains through the dmrg backend, init_from and steps = 0.

Tolerances: on a 10-site open chain (12 qubits) with ``solver_tol = 1e-10`` both methods solve
the same Hamiltonian (the edge terms included) to an energy tolerance of about ``1e-9 ||H||``;
DMRG at bond dimension 64 truncates nothing there (the cutoff 1e-10 discards weights below
1e-10), so the readout probabilities agree to ~1e-7 and the centred QEP gradients (differences
of nudged expectation values divided by ``2β = 0.8``) to ~1e-6; asserted with a factor of 10-100
to spare: 1e-5 (probabilities) and 1e-4 (gradients, relative to the largest component).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qeprop.errors import DegeneracyError, ProblemError
from qeprop.experiments.phase_recognition import (
    EXPERIMENT,
    build_model,
    coupling_roles,
    default_sensor_sites,
    triangle_grid,
)
from qeprop.models import cluster_ising
from qeprop.runs import read_metrics, read_npz, start_run

#: a short open chain that both methods hold: 10 sites + 2 sensor qubits
SHORT = {
    "chain_length": 10,
    "boundary": "open",
    "sensor_sites": [4, 5],
    "edge_field": 1.0,
    "solver_tol": 1e-10,
}
POINTS = np.array([[3.0, 0.5, 0.5], [0.5, 3.0, 0.5], [0.5, 0.5, 3.0], [1.6, 1.2, 1.2]])


def _config(**over: object):
    return EXPERIMENT.resolve({**SHORT, **over})


def _theta(config) -> np.ndarray:
    return EXPERIMENT.init(config).arrays["params"]


def test_dmrg_probabilities_and_gradients_match_the_exact_method() -> None:
    exact, dmrg = _config(), _config(method="dmrg")
    theta = _theta(exact)
    assert np.array_equal(theta, _theta(dmrg))
    p_ex = EXPERIMENT.probabilities(exact, theta, POINTS)
    p_mps = EXPERIMENT.probabilities(dmrg, theta, POINTS)
    assert p_ex.shape == (4, 3)
    assert np.max(np.abs(p_ex - p_mps)) <= 1e-5
    exact, dmrg = _config(shots=None), _config(method="dmrg", shots=None)
    x, labels = POINTS[:2], cluster_ising.phase_indices(POINTS[:2])
    g_ex, loss_ex = EXPERIMENT.batch_gradient(exact, theta, x, labels, None)
    g_mps, loss_mps = EXPERIMENT.batch_gradient(dmrg, theta, x, labels, None)
    assert np.max(np.abs(g_ex - g_mps)) <= 1e-4 * np.max(np.abs(g_ex))
    assert loss_mps == pytest.approx(loss_ex, abs=1e-6)


def test_dmrg_run_gives_the_exact_runs_metrics(tmp_path: Path) -> None:
    # exact gradients: the batched (exact) and per-sample (dmrg) pipelines draw shot noise in
    # different orders, so runs with shots agree only in distribution
    small = {"steps": 1, "batch_size": 2, "test_size": 3, "map_resolution": 2, "shots": None}
    runs = {
        m: start_run(
            "phase-recognition", {**SHORT, **small, "method": m}, tmp_path / m, progress=False
        )
        for m in ("auto", "dmrg")
    }
    res = {m: read_npz(d / "results.npz") for m, d in runs.items()}
    # the same batch (one rng) and gradients to ~1e-6: the first Adam step (about ±lr per
    # coupling) moves the couplings alike
    assert np.max(np.abs(res["auto"]["params"] - res["dmrg"]["params"])) <= 1e-6
    for key in ("test_probs", "grid_probs"):
        assert np.max(np.abs(res["auto"][key] - res["dmrg"][key])) <= 1e-5
    assert len(res["dmrg"]["grid_points"]) == len(triangle_grid(2)) == 6
    final = {m: json.loads((d / "summary.json").read_text())["final"] for m, d in runs.items()}
    for k in ("max_choice_accuracy", "single_shot_accuracy", "loss"):
        assert final["dmrg"][k] == pytest.approx(final["auto"][k], abs=1e-5)


def test_defaults_and_one_line_configuration_errors(tmp_path: Path) -> None:
    long = EXPERIMENT.resolve({"chain_length": 64, "boundary": "open", "method": "dmrg"})
    assert long.sensor_sites == (31, 32) == default_sensor_sites(64, "dmrg")
    assert long.edge_field == 1.0 and long.bond_dim == 64 and long.cutoff == 1e-10
    plain = EXPERIMENT.resolve({})
    assert plain.sensor_sites == (0, 1) and plain.edge_field == 0.0 and plain.method == "auto"
    bad = [
        ({"chain_length": 64}, "chain_length", "method = 'dmrg'"),
        ({"chain_length": 64, "method": "dmrg"}, "boundary", "boundary = 'open'"),
        ({"edge_field": 0.5}, "edge_field", "open chain"),
        ({"method": "dmrg", "boundary": "open", "estimator": "linear_response", "shots": None},
         "estimator", "nudged"),
        ({"init_from": str(tmp_path / "nowhere")}, "init_from", "no config.toml"),
    ]  # fmt: skip
    for over, key, words in bad:
        with pytest.raises(ProblemError) as err:
            EXPERIMENT.resolve(over)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(key) and words in msg, msg


def test_exact_edge_modes_are_refused_without_edge_terms_naming_the_point() -> None:
    config = _config(method="dmrg", edge_field=0.0, chain_length=8, sensor_sites=[3, 4])
    with pytest.raises(DegeneracyError, match=r"\(4, 0, 0\).*edge_field"):
        EXPERIMENT.probabilities(config, _theta(config), np.array([[4.0, 0.0, 0.0]]))


def _source_run(d: Path, couplings: str = "xyz") -> np.ndarray:
    """A finished 8-site periodic phase-recognition run (couplings 0, 1, 2, ...), by hand."""
    d.mkdir()
    layout = build_model(8, "periodic", couplings, (0, 1)).layout
    (d / "config.toml").write_text(
        f'experiment = "phase-recognition"\nchain_length = 8\nboundary = "periodic"\n'
        f'couplings = "{couplings}"\nsensor_sites = [0, 1]\n'
    )
    values = np.arange(len(layout.names), dtype=float)
    np.savez(d / "results.npz", params=values, param_names=np.array(layout.names))
    return values


def test_init_from_maps_couplings_by_role(tmp_path: Path) -> None:
    src = _source_run(tmp_path / "src")
    old = build_model(8, "periodic", "xyz", (0, 1)).layout.names
    config = EXPERIMENT.resolve(
        {
            "chain_length": 20,
            "boundary": "open",
            "method": "dmrg",
            "init_from": str(tmp_path / "src"),
        }
    )
    assert config.sensor_sites == (9, 10) and Path(config.init_from).is_absolute()
    theta = _theta(config)
    model = EXPERIMENT.model(config)
    new = model.layout.names
    for a, b in [("v[Z0,X8]", "v[Z9,X20]"), ("v[Y1,Z9]", "v[Y10,Z21]"), ("h[Y8]", "h[Y20]"),
                 ("j[X8,Z9]", "j[X20,Z21]")]:  # fmt: skip
        assert theta[new.index(b)] == src[old.index(a)]
    assert coupling_roles(old, (0, 1), (8, 9)) == coupling_roles(new, (9, 10), (20, 21))
    # the value lands on the operator: the coefficient of Z9 X20 in H is that of v[Z0,X8]
    ham = model.system.hamiltonian
    coef = ham.string_coefficients(model.values([1.0, 1.0, 2.0], theta))
    strings = [str(p) for p in ham.strings]
    assert coef[strings.index("Z9 X20")] == src[old.index("v[Z0,X8]")]
    _source_run(tmp_path / "xz", couplings="xz")
    with pytest.raises(ProblemError, match=r"^init_from: .*'xz' coupling set") as err:
        EXPERIMENT.resolve({"init_from": str(tmp_path / "xz")})
    assert "\n" not in str(err.value)


def test_steps_zero_evaluates_the_initial_couplings_as_a_finished_run(tmp_path: Path) -> None:
    src = _source_run(tmp_path / "src")
    over = {
        **SHORT,
        "steps": 0,
        "test_size": 3,
        "map_resolution": 2,
        "init_from": str(tmp_path / "src"),
    }
    run = start_run("phase-recognition", over, tmp_path / "eval", progress=False)
    records = read_metrics(run)
    assert [r["step"] for r in records] == [0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 0
    for k in ("max_choice_accuracy", "single_shot_accuracy", "loss"):
        assert summary["final"][k] == records[0][k]
    res = read_npz(run / "results.npz")
    assert sorted(res["params"]) == sorted(src)  # the source's couplings, reordered by role
    assert res["grid_probs"].shape == (6, 3)
