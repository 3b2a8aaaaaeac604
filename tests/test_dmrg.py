"""The dmrg backend against the exact backends and the free-fermion open cluster-Ising chain.

Tolerances: DMRG with the default cutoff 1e-10 and a bond dimension that is not reached on these
sizes is exact up to its convergence criterion (energy changes below ``10 cutoff ||H||`` between
sweeps), which leaves energies to ~1e-10 relative and expectation values to ~1e-8 (a state error
``ε`` changes ``⟨P⟩`` by ``O(ε)`` and ``E`` by ``O(ε²)``). The backend's targets (1e-8 relative
for energies, 1e-6 for expectation values, 1e-5 for QEP gradients) are what is asserted.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qeprop.errors import DegeneracyError, ProblemError, ProblemTooLargeError
from qeprop.gradients import estimate_gradient
from qeprop.hamiltonian import ParametrisedHamiltonian
from qeprop.measurement import measure, string_expectations
from qeprop.models import cluster_ising as ci
from qeprop.pauli import PauliString
from qeprop.problem import parse_problem
from qeprop.solvers import StateSpec, choose_backend, linear_response, solve
from qeprop.states import MPSEquilibrium

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.append(str(BENCH))

import dmrg_sensor_problem  # noqa: E402

DMRG = StateSpec(method="dmrg")


def _chain_with_y(n: int, seed: int = 0) -> ParametrisedHamiltonian:
    """A chain with cluster-Ising terms plus random XY couplings, odd-Y strings and a constant."""
    rng = np.random.default_rng(seed)
    terms: list[tuple[Any, ...]] = []
    for j in range(n):
        terms.append((-1.0, f"X{j}", "gx"))
        terms.append((0.3 * rng.standard_normal(), f"Z{j}"))
        if j < n - 1:
            terms.append((-0.7, f"Z{j} Z{j + 1}", "gzz"))
            terms.append((0.3 * rng.standard_normal(), f"X{j} Y{j + 1}"))
        if 0 < j < n - 1:
            terms.append((0.4, f"Z{j - 1} X{j} Z{j + 1}"))
    terms += [(0.5, "Y3"), (0.2, ""), (0.3, "Y1 Z2 Y4")]
    return ParametrisedHamiltonian(n, terms)


def test_energy_and_every_expectation_value_match_the_dense_backend() -> None:
    ham = _chain_with_y(10)
    values = np.array([1.0, 0.8])
    st = solve(ham, values, DMRG)
    ex = solve(ham, values, StateSpec(method="dense"))
    assert isinstance(st, MPSEquilibrium) and st.backend == "dmrg" and st.is_pure
    assert abs(st.energy - ex.energy) <= 1e-8 * abs(ex.energy)
    # the gap is estimated by state-averaged sweeps in single precision (its rounding, a few
    # eps32 ||H|| ~ 1e-6 ||H||, is the error here: the sweeps are exact at this size)
    assert st.gap == pytest.approx(ex.gap, rel=1e-5)
    # odd numbers of Y (Y3, X_j Y_j+1) flip sign if the MPS were the complex conjugate
    odd = [i for i, p in enumerate(ham.strings) if p.n_y % 2]
    assert odd
    ps, ref = string_expectations(ham, st), string_expectations(ham, ex)
    assert np.max(np.abs(ps - ref)) <= 1e-6
    assert np.max(np.abs(ref[odd])) > 0.05  # the odd-Y values are not trivially zero
    assert abs(abs(np.vdot(ex.vectors[:, 0], st.to_vector())) - 1) <= 1e-8
    assert 0 <= st.variance <= 1e-6 and st.residual == pytest.approx(math.sqrt(st.variance))


def test_strings_outside_the_hamiltonian_and_multi_string_variances() -> None:
    ham = _chain_with_y(8, seed=3)
    values = np.array([0.9, 1.1])
    st, ex = solve(ham, values, DMRG), solve(ham, values, StateSpec(method="dense"))
    big = ham.with_terms([], extra_strings=[PauliString.parse(s) for s in ("Y0 X7", "Z2 Y5 X6")])
    assert np.allclose(string_expectations(big, st), string_expectations(big, ex), atol=1e-6)
    coef = np.zeros((1, len(ham.strings)))
    coef[0, :4] = [0.5, -1.0, 0.25, 2.0]
    rng = np.random.default_rng(1)
    a = measure(ham, st, np.zeros(1), coef, shots=100, rng=rng)
    b = measure(ham, ex, np.zeros(1), coef, shots=100, rng=np.random.default_rng(1))
    assert a.stderr == pytest.approx(b.stderr, rel=1e-5)  # Var(A) of a multi-string A
    with pytest.raises(ProblemError, match=r"sampled shot model.*gaussian"):
        measure(ham, st, np.zeros(1), coef, shots=10, model="sampled", rng=rng)


def _sensor_problem(n_sites: int, **state: Any) -> dict[str, Any]:
    prob = dmrg_sensor_problem.dmrg_sensor_problem(n_sites)
    # paramagnet of the chain (unique ground state) with the sensor in the middle
    for t in prob["terms"]:
        if "param" not in t and t["pauli"].count(" ") == 0:
            t["coeff"] = -2.0
    prob["state"].update(state)
    return prob


def test_qep_gradient_matches_the_exact_backends() -> None:
    d = _sensor_problem(8)
    p = parse_problem(json.loads(json.dumps(d)))
    got = estimate_gradient(p.system, p.values, p.loss, estimator="centered", options=p.options)
    opts = p.options
    ref = estimate_gradient(
        p.system,
        p.values,
        p.loss,
        estimator="centered",
        options=type(opts)(nudge=opts.nudge, state=StateSpec(method="sparse")),
    )
    assert got.backend == "dmrg"
    assert np.max(np.abs(got.gradient - ref.gradient)) <= 1e-5 * max(
        1.0, float(np.max(np.abs(ref.gradient)))
    )
    assert np.allclose(got.outputs, ref.outputs, atol=1e-6)


def test_sensor_is_ordered_next_to_the_chain_sites_it_couples_to() -> None:
    from qeprop.solvers.dmrg import MAX_TERM_DISTANCE, format_order, site_order

    p = parse_problem(_sensor_problem(16))
    order = site_order(p.system.full)
    pos = {q: k for k, q in enumerate(order)}
    assert sorted(order) == list(range(18))
    assert abs(pos[16] - pos[7]) <= 3 and abs(pos[17] - pos[8]) <= 3
    spans = [max(pos[q] for q in s.letters()) - min(pos[q] for q in s.letters())
             for s in p.system.full.strings if s.weight]  # fmt: skip
    assert max(spans) <= MAX_TERM_DISTANCE
    assert format_order([0, 1, 2, 5, 3, 4]) == "0-2, 5, 3, 4"


def test_growing_sweeps_that_do_not_settle_in_single_precision_go_on_in_double(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qeprop.solvers import _dmrg_sweeps, dmrg

    # one single-precision growing half-sweep allowed: the bond dimensions (beyond the 16 of
    # the gap sweeps) are still growing after it, so the growing two-site sweeps must go on in
    # double precision rather than hand a half-grown state to the one-site sweeps
    p = parse_problem(_sensor_problem(12))
    h, values = p.system.full, p.system.full_values(p.values)
    ex = solve(h, values, StateSpec(method="sparse"))
    grown: list[tuple[str, int]] = []
    sweep2 = _dmrg_sweeps.Sweeper.sweep2

    def spy(self: Any, direction: str, chi: int, *args: Any) -> float:
        out = sweep2(self, direction, chi, *args)
        grown.append((self.dtype.name, chi))
        return out

    monkeypatch.setattr(_dmrg_sweeps.Sweeper, "sweep2", spy)
    monkeypatch.setattr(dmrg, "_SINGLE_SWEEPS", 1)
    st = solve(h, values, p.options.state)
    assert isinstance(st, MPSEquilibrium) and st.bond_dim > 16
    assert ("complex128", p.options.state.bond_dim) in grown  # growing in double precision
    assert abs(st.energy - ex.energy) <= 1e-8 * abs(ex.energy)
    assert np.max(np.abs(string_expectations(h, st) - string_expectations(h, ex))) <= 1e-6


def test_warm_started_nudged_solve_takes_few_sweeps_and_agrees_with_a_cold_one() -> None:
    ham = _chain_with_y(10, seed=2)
    values = np.array([1.0, 0.8])
    free = solve(ham, values, DMRG)
    moved = values + np.array([0.01, -0.02])
    warm = solve(ham, moved, DMRG, free)
    cold = solve(ham, moved, DMRG)
    assert isinstance(warm, MPSEquilibrium) and warm.warm_started and not cold.warm_started
    assert warm.sweeps < cold.sweeps
    assert abs(warm.energy - cold.energy) <= 1e-8 * abs(cold.energy)
    assert np.allclose(string_expectations(ham, warm), string_expectations(ham, cold), atol=1e-6)
    assert warm.gap == free.gap  # a warm-started record carries the gap of its start


def test_a_nudged_solve_starts_at_the_nudged_outputs_and_agrees_with_a_residual_search() -> None:
    import dataclasses

    from qeprop.solvers.dmrg import changed_site, site_order

    p = parse_problem(_sensor_problem(24))
    h, values = p.system.full, p.system.full_values(p.values)
    spec = p.options.state
    free = solve(h, values, spec)
    assert isinstance(free, MPSEquilibrium) and free.coefficients is not None
    nudged = values.copy()
    nudged[p.system.output_index] = 0.4
    order = site_order(h)
    site = changed_site(h, order, h.string_coefficients(nudged), free.coefficients)
    # the outputs are projectors on the two sensor qubits (24 and 25): the start is one of them
    assert site is not None and order[site] in (24, 25)
    assert changed_site(h, order, h.string_coefficients(values), free.coefficients) is None
    assert changed_site(h, order, h.string_coefficients(nudged), None) is None
    # without the coefficients (a record of another origin) the start is found by a pass over
    # the chain's local residuals; both give the same state to the solver's precision
    warm = solve(h, nudged, spec, free)
    probed = solve(h, nudged, spec, dataclasses.replace(free, coefficients=None))
    assert isinstance(warm, MPSEquilibrium) and isinstance(probed, MPSEquilibrium)
    assert abs(warm.energy - probed.energy) <= 1e-9 * abs(warm.energy)
    assert np.max(np.abs(string_expectations(h, warm) - string_expectations(h, probed))) <= 1e-6
    assert warm.matvecs < probed.matvecs  # the pass costs one product per site


def test_nudged_solve_of_the_sensor_costs_a_fraction_of_a_cold_one() -> None:
    p = parse_problem(_sensor_problem(24))
    h, values = p.system.full, p.system.full_values(p.values)
    spec = p.options.state
    free = solve(h, values, spec)
    nudged = values.copy()
    nudged[p.system.output_index] = 0.4
    warm, cold = solve(h, nudged, spec, free), solve(h, nudged, spec)
    assert isinstance(warm, MPSEquilibrium) and warm.sweeps <= 4
    assert 3 * warm.matvecs <= cold.matvecs  # local products: the bulk of the work
    assert abs(warm.energy - cold.energy) <= 1e-8 * abs(cold.energy)
    assert np.max(np.abs(string_expectations(h, warm) - string_expectations(h, cold))) <= 1e-5


def _mpo_dense(mpo: list[np.ndarray], order: tuple[int, ...]) -> np.ndarray:
    """The dense matrix of an MPO ``W_k[w, w', out, in]`` on the MPS sites, in qubit order."""
    m = mpo[0][0]  # (w', out, in)
    for w in mpo[1:]:
        m = np.einsum("aij,abkl->bikjl", m, w)
        m = m.reshape(m.shape[0], m.shape[1] * m.shape[2], m.shape[3] * m.shape[4])
    n = len(order)
    t = m[0].reshape([2] * (2 * n))
    # MPS site k holds qubit order[k]: axis k of the tensor is that qubit
    perm = np.argsort(order)
    t = t.transpose([*perm, *(perm + n)])
    return t.reshape(2**n, 2**n)


def test_mpo_template_matches_the_dense_hamiltonian_and_is_refilled_not_rebuilt() -> None:
    from qeprop.solvers.dmrg import mpo_template, site_order

    ham = _chain_with_y(6, seed=4)
    order = site_order(ham)
    for values in (np.array([1.0, 0.8]), np.array([-0.3, 1.7])):
        coef = ham.string_coefficients(values)
        tpl = mpo_template(ham, order, coef)
        dense = _mpo_dense(tpl.arrays(coef), order) + tpl.offset(coef) * np.eye(2**6)
        assert np.allclose(dense, ham.dense(values), atol=1e-12)
    assert mpo_template(ham, order, ham.string_coefficients(np.array([2.0, 3.0]))) is tpl
    # a chain with a sensor keeps its MPO bond dimension small in the chosen order
    p = parse_problem(_sensor_problem(16))
    h = p.system.full
    coef = h.string_coefficients(p.system.full_values(p.values))
    dims = mpo_template(h, site_order(h), coef).dims
    assert max(dims) <= 12 and np.median(dims) <= 4


def test_block_krylov_resolves_an_exactly_degenerate_pair() -> None:
    from qeprop.solvers._dmrg_sweeps import lanczos_lowest, ritz_lowest

    rng = np.random.default_rng(3)
    q = np.linalg.qr(rng.standard_normal((120, 120)))[0]
    spectrum = np.r_[-2.0, -2.0, np.linspace(0.0, 5.0, 118)]
    a = (q * spectrum) @ q.T
    vals, vecs, _ = ritz_lowest(lambda v: a @ v, rng.standard_normal((2, 120)), 1e-10, 120)
    assert np.allclose(vals, [-2.0, -2.0], atol=1e-9)
    assert np.allclose(vecs @ vecs.T, np.eye(2), atol=1e-8)
    val, vec, used = lanczos_lowest(lambda v: a @ v, rng.standard_normal(120), 1e-10, 120)
    assert val[0] == pytest.approx(-2.0, abs=1e-9) and used < 120
    assert np.linalg.norm(a @ vec - val[0] * vec) <= 1e-9
    # from a nearly converged start, with an unreachable tolerance and a wide spectrum (as in a
    # late sweep): the Krylov basis must stay orthogonal, no spurious value below the spectrum
    wide = (q * np.r_[-1.0, np.linspace(-0.999, 300.0, 119)]) @ q.T
    start = q[:, 0] + 1e-7 * rng.standard_normal(120)
    val, vec, used = lanczos_lowest(lambda v: wide @ v, start, 1e-15, 40)
    assert used == 40 and val[0] >= -1.0 - 1e-12
    assert np.vdot(vec, wide @ vec).real == pytest.approx(val[0], abs=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_block_orthonormalisation_keeps_the_new_span_and_drops_dependent_rows(dtype: Any) -> None:
    from qeprop.solvers._dmrg_sweeps import _orthonormal_rows

    rng = np.random.default_rng(4)
    cplx = np.dtype(dtype).kind == "c"

    def rand(*shape: int) -> np.ndarray:
        x = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)
        return np.asarray(x, dtype=dtype)

    basis = np.linalg.qr(rand(200, 5))[0].T.astype(dtype)  # 5 orthonormal rows
    fresh = rand(2, 200)
    # rows: two new directions, a combination of them and one inside the basis (both dependent)
    new = np.vstack([fresh, fresh[0] - 2 * fresh[1], 3 * basis[1] - basis[4]])
    q = _orthonormal_rows(new, basis)
    # single precision: orthonormal to a few eps32 * sqrt(200)
    tol = 1e-5 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-12
    assert q.shape == (2, 200) and q.dtype == np.dtype(dtype)
    assert np.allclose(q.conj() @ q.T, np.eye(2), atol=tol)
    assert np.max(np.abs(q.conj() @ basis.T)) <= tol
    # the span of the new directions, less their part in the basis
    target = fresh - (fresh.conj() @ basis.T).conj() @ basis
    coeffs = np.linalg.lstsq(q.T, target.T, rcond=None)[0]
    assert np.allclose(q.T @ coeffs, target.T, atol=100 * tol)
    assert _orthonormal_rows(basis[:2].copy(), basis).shape == (0, 200)


def test_long_ranged_terms_are_refused_naming_them() -> None:
    n = 12
    terms = [(-1.0, f"X{j}") for j in range(n)]
    terms += [(0.1, f"Z{i} Z{j}") for i in range(n) for j in range(i + 1, n)]
    ham = ParametrisedHamiltonian(n, terms)
    with pytest.raises(ProblemError, match=r"state.method: .*within 8 sites.*'Z\d+ Z\d+' \(\d+ "):
        solve(ham, np.zeros(0), DMRG)


@pytest.mark.parametrize(
    ("g", "phase"),
    [((0.0, 2.0, 0.2), "ferromagnet"), ((2.0, 0.0, 0.02), "cluster")],
)
@pytest.mark.parametrize("mode", ["error", "mixture"])
def test_degenerate_open_cluster_ising_ground_state_is_never_returned(
    g: tuple[float, float, float], phase: str, mode: str
) -> None:
    ham = ci.hamiltonian(10, boundary="open")
    # edge modes split the manifold by ~ (g_X / g_ZZ)^L or (g_X / g_ZXZ)^(L/2) ~ 1e-10: far below
    # the degeneracy threshold 1e-8
    with pytest.raises(DegeneracyError):
        solve(ham, np.array(g), StateSpec(method="dense", degeneracy="error"))
    with pytest.raises(DegeneracyError, match=r"degenerate" if mode == "error" else r"mixture"):
        solve(ham, np.array(g), StateSpec(method="dmrg", degeneracy=mode, bond_dim=16))


@pytest.mark.parametrize(
    ("n", "g"),
    [(80, (0.0, 2.0, 0.2)), (80, (0.0, 1.0, 0.7)), (80, (2.0, 0.0, 0.02))],
)
def test_degenerate_long_chains_are_refused_at_the_default_bond_dimension(
    n: int, g: tuple[float, float, float]
) -> None:
    # splittings (g_X / g_ZZ)^L or (g_X / g_ZXZ)^(L/2) far below 1e-8; a symmetry-broken ground
    # state found first would hide its partner (the deep ferromagnet at 80 sites did)
    with pytest.raises(DegeneracyError, match="degenerate"):
        solve(ci.hamiltonian(n, boundary="open"), np.array(g), DMRG)


@pytest.mark.parametrize(
    ("n", "g", "high"),
    [
        (40, (0.2, 0.6, 1.0), 1.01),  # paramagnet: a bulk excitation
        (40, (0.0, 1.0, 0.7), 1.01),  # ferromagnet, edge splitting 6.5e-7: not degenerate
        (40, (1.2, 1.5, 1.0), 1.15),  # cluster phase, two nearly degenerate edge modes
    ],
)
def test_gap_estimate_is_close_above_the_free_fermion_gap(
    n: int, g: tuple[float, float, float], high: float
) -> None:
    st = solve(ci.hamiltonian(n, boundary="open"), np.array(g), DMRG)
    exact = ci.open_chain_correlators(n, *g)["gap"]
    assert isinstance(st, MPSEquilibrium)
    assert 0.999 * exact <= st.gap <= high * exact


def test_spec_validation_and_one_line_refusals() -> None:
    for bad in ({"bond_dim": 0}, {"bond_dim": 2.5}, {"cutoff": float("nan")}, {"cutoff": -1e-3}):
        with pytest.raises(ProblemError, match=r"bond_dim|cutoff"):
            StateSpec(method="dmrg", **bad)  # type: ignore[arg-type]
    with pytest.raises(ProblemError, match="symmetry"):
        StateSpec(method="dmrg", symmetry="auto")
    ham = _chain_with_y(6)
    with pytest.raises(ProblemError, match="cannot prepare eigenstate"):
        choose_backend(ham, StateSpec(method="dmrg", kind="eigenstate", level=1))
    assert choose_backend(ham, StateSpec()) != "dmrg"  # auto never picks dmrg
    with pytest.raises(ProblemTooLargeError, match="more than"):
        choose_backend(ham, StateSpec(method="dmrg", bond_dim=4096), budget=10**6)
    st = solve(ham, np.array([1.0, 1.0]), DMRG)
    a = ham.derivative_coefficients
    with pytest.raises(ProblemError, match="linear_response is not available on the dmrg"):
        linear_response(ham, np.array([1.0, 1.0]), st, a, a[0])
    with pytest.raises(ProblemTooLargeError, match="dmrg"):
        choose_backend(ParametrisedHamiltonian(100, [(1.0, "X0 X1")]), StateSpec())


def test_problem_file_and_cli_report_the_site_order(tmp_path: Path, capsys) -> None:
    from qeprop.cli import main

    path = tmp_path / "p.json"
    path.write_text(json.dumps(_sensor_problem(8, bond_dim=32, cutoff=1e-11)), encoding="utf-8")
    assert main(["gradient", str(path), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["backend"] == "dmrg" and sorted(obj["site_order"]) == list(range(10))
    assert main(["gradient", str(path)]) == 0
    out = capsys.readouterr().out
    assert "backend    dmrg" in out and "MPS order of the qubits" in out
    d = _sensor_problem(8, bond_dim=0)
    with pytest.raises(ProblemError, match=r"state.*bond_dim"):
        parse_problem(d)


# ------------------------------------------------------------------ free fermions
@pytest.mark.parametrize("n", [8, 11])
@pytest.mark.parametrize("g", [(0.3, 0.5, 1.2), (0.5, 0.4, 1.1), (-0.2, 0.9, 1.0)])
def test_open_chain_free_fermions_match_exact_diagonalisation(
    n: int, g: tuple[float, float, float]
) -> None:
    ham = ci.hamiltonian(n, boundary="open")
    ex = solve(ham, np.array(g), StateSpec(method="sparse" if n > 8 else "dense"))
    ff = ci.open_chain_correlators(n, *g)
    ps = dict(zip(ham.strings, string_expectations(ham, ex), strict=True))
    assert ff["energy"] == pytest.approx(ex.energy, rel=1e-12)
    assert ff["gap"] == pytest.approx(ex.gap, rel=1e-8)
    x = [ps[PauliString.parse(f"X{j}")] for j in range(n)]
    zz = [ps[PauliString.parse(f"Z{j} Z{j + 1}")] for j in range(n - 1)]
    zxz = [ps[PauliString.parse(f"Z{j - 1} X{j} Z{j + 1}")] for j in range(1, n - 1)]
    assert np.allclose(ff["x"], x, atol=1e-10)
    assert np.allclose(ff["zz"], zz, atol=1e-10)
    assert np.allclose(ff["zxz"], zxz, atol=1e-10)
    # Hellmann-Feynman: dE/dg_X = -Σ⟨X_j⟩, dE/dg_ZZ = -Σ⟨Z_j Z_j+1⟩
    der = ci.open_chain_derivatives(n, *g)
    assert der["g_x"]["energy"] == pytest.approx(-np.sum(x), rel=1e-7)
    assert der["g_zz"]["energy"] == pytest.approx(-np.sum(zz), rel=1e-7)


def test_bond_dimension_convergence_against_free_fermions() -> None:
    n, g = 24, (0.2, 0.6, 1.0)  # paramagnet near its boundary: entangled enough to need χ ≳ 8
    ham = ci.hamiltonian(n, boundary="open")
    ff = ci.open_chain_correlators(n, *g)
    errors = []
    for chi in (2, 4, 12):
        st = solve(ham, np.array(g), StateSpec(method="dmrg", bond_dim=chi, cutoff=0.0))
        errors.append(abs(st.energy - float(ff["energy"])))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] <= 1e-8 * abs(float(ff["energy"]))


def _chain_problem(n: int, g: tuple[float, float, float], bond_dim: int) -> dict[str, Any]:
    """A bare open chain with shared g_X, g_ZZ, outputs ⟨Z_j Z_j+1⟩ and ⟨X_j⟩ in the middle."""
    j = n // 2
    terms = [
        {
            "pauli": str(t.pauli),
            "coeff": t.coeff,
            **({"param": t.param} if t.param != "g_zxz" else {}),
        }
        for t in ci.hamiltonian_terms(n, boundary="open")
    ]
    for t in terms:
        if "param" not in t:
            t["coeff"] = t["coeff"] * g[0]
    return {
        "qubits": n,
        "params": {"g_zz": g[1], "g_x": g[2]},
        "terms": terms,
        "outputs": [
            {"name": "zz", "terms": [{"pauli": f"Z{j} Z{j + 1}", "coeff": 1.0}]},
            {"name": "x", "terms": [{"pauli": f"X{j}", "coeff": 1.0}]},
        ],
        "loss": {"kind": "mse", "target": [0.0, 0.0]},
        "state": {"kind": "ground", "method": "dmrg", "bond_dim": bond_dim, "cutoff": 1e-12},
        "estimator": {"kind": "centered", "nudge": 1e-3},
    }


@pytest.mark.slow
@pytest.mark.parametrize("n", [64, 128])
def test_long_chain_gradients_match_free_fermions(n: int) -> None:
    g = (0.2, 0.6, 1.0)
    p = parse_problem(_chain_problem(n, g, 48))
    rec = estimate_gradient(p.system, p.values, p.loss, estimator="centered", options=p.options)
    j = n // 2
    ff = ci.open_chain_correlators(n, *g)
    der = ci.open_chain_derivatives(n, *g)
    y = np.array([ff["zz"][j], ff["x"][j]])
    assert np.allclose(rec.outputs, y, atol=1e-7)
    eps = 2 * y  # mse towards 0
    expect = [eps[0] * der[name]["zz"][j] + eps[1] * der[name]["x"][j] for name in ("g_zz", "g_x")]
    got = [rec.gradient_dict()["g_zz"], rec.gradient_dict()["g_x"]]
    assert np.allclose(got, expect, rtol=1e-4)


@pytest.mark.slow
def test_twenty_qubits_against_the_matrix_free_backend() -> None:
    p = parse_problem(_sensor_problem(18))
    got = estimate_gradient(p.system, p.values, p.loss, estimator="centered", options=p.options)
    opts = p.options
    ref = estimate_gradient(
        p.system, p.values, p.loss, estimator="centered",
        options=type(opts)(nudge=opts.nudge, state=StateSpec(method="matrix-free")),
    )  # fmt: skip
    scale = max(1.0, float(np.max(np.abs(ref.gradient))))
    assert np.max(np.abs(got.gradient - ref.gradient)) <= 1e-5 * scale


def test_solve_many_in_threads_matches_one_by_one() -> None:
    """``dmrg.solve_many`` with ``threads = 2`` (the two nudged solves of a centred gradient at
    once) gives the same states as solving one after the other."""
    import dataclasses

    from qeprop.solvers import dmrg

    ham = _chain_with_y(10, seed=1)
    free = solve(ham, np.array([1.0, 0.8]), DMRG)
    values = [np.array([1.0, 0.8 + s]) for s in (0.05, -0.05)]
    seq = dmrg.solve_many(ham, values, DMRG, [free, free])
    par = dmrg.solve_many(ham, values, dataclasses.replace(DMRG, threads=2), [free, free])
    for a, b, v in zip(seq, par, values, strict=True):
        assert a.warm_started and b.warm_started
        assert a.energy == b.energy
        assert all(np.array_equal(x, y) for x, y in zip(a.tensors, b.tensors, strict=True))
        exact = solve(ham, v, StateSpec(method="dense"))
        assert abs(a.energy - exact.energy) <= 1e-8 * abs(exact.energy)


def test_centred_gradient_with_two_threads_is_the_one_thread_gradient(monkeypatch) -> None:
    """With ``state.threads = 2`` the estimator pipeline solves the ±β nudged states side by
    side (``solve_many``); the gradient is bit for bit the one-thread gradient."""
    import dataclasses

    from qeprop.solvers import dmrg

    calls: list[int] = []
    original = dmrg.solve_many

    def spy(ham: Any, values: Any, spec: StateSpec, warm: Any) -> Any:
        calls.append(spec.threads)
        return original(ham, values, spec, warm)

    monkeypatch.setattr(dmrg, "solve_many", spy)
    p = parse_problem(json.loads(json.dumps(_sensor_problem(8))))
    one = estimate_gradient(p.system, p.values, p.loss, estimator="centered", options=p.options)
    opts = dataclasses.replace(p.options, state=dataclasses.replace(p.options.state, threads=2))
    two = estimate_gradient(p.system, p.values, p.loss, estimator="centered", options=opts)
    assert two.backend == "dmrg" and two.solves == one.solves == 3
    assert calls == [1, 2]  # both hand the pair to the backend; threads decides how
    assert np.array_equal(one.gradient, two.gradient)


def test_progress_observer_sees_each_dmrg_solve_and_half_sweep() -> None:
    """Progress of a centred DMRG gradient: one thread, three solves one after the other, each
    followed by its half-sweeps (1- or 2-site, finite energies, bond dimensions within the
    spec's); two threads, the free solve and then the nudged pair as one start of two solves
    (their sweeps run in worker threads, which report nothing)."""
    import dataclasses

    from conftest import ProgressRecorder
    from qeprop.solvers import observe_progress

    p = parse_problem(json.loads(json.dumps(_sensor_problem(8))))
    one = ProgressRecorder()
    with observe_progress(one):
        estimate_gradient(p.system, p.values, p.loss, estimator="centered", options=p.options)
    starts = [i for i, e in enumerate(one.events) if e[0] == "solve"]
    assert [one.events[i] for i in starts] == [("solve", "dmrg", "ground", 1)] * 3
    for a, b in zip(starts, [*starts[1:], len(one.events)], strict=True):
        sweeps = one.events[a + 1 : b]
        assert sweeps and all(e[0] == "sweep" and e[1] in (1, 2) for e in sweeps)
        assert all(math.isfinite(e[2]) and 1 <= e[3] <= p.options.state.bond_dim for e in sweeps)
    two = ProgressRecorder()
    opts = dataclasses.replace(p.options, state=dataclasses.replace(p.options.state, threads=2))
    with observe_progress(two):
        estimate_gradient(p.system, p.values, p.loss, estimator="centered", options=opts)
    assert [e for e in two.events if e[0] == "solve"] == [
        ("solve", "dmrg", "ground", 1), ("solve", "dmrg", "ground", 2)
    ]  # fmt: skip
    assert two.events[-1][0] == "solve"  # no sweeps from the worker threads


def test_random_start_of_a_long_chain_is_finite_and_right_canonical() -> None:
    """The cold start's random MPS: its raw norm grows like ``(2 chi)^(n/2)`` and overflowed
    float64 at 512 sites (the first tensor became 0 and the sweeps started from nothing). The
    rescaled canonicalisation keeps every tensor finite and exactly right-canonical, and reports
    the norm as a logarithm (checked on a product state of known norm ``3^n``)."""
    from qeprop.solvers import dmrg

    for n, cplx in ((700, True), (1000, False)):
        ts = dmrg._random_tensors(n, 8, cplx)
        assert all(np.all(np.isfinite(t)) for t in ts)
        assert np.linalg.norm(ts[0]) == pytest.approx(1.0, abs=1e-12)
        for t in ts[1:]:
            m = t.reshape(t.shape[0], -1)
            np.testing.assert_allclose(m @ m.conj().T, np.eye(t.shape[0]), atol=1e-12)
    product = [np.full((1, 2, 1), 3.0 / np.sqrt(2.0))] * 700  # norm 3^700 ≈ 1e334
    _, log_norm = dmrg.right_canonical(product)
    assert log_norm == pytest.approx(700 * math.log(3.0), rel=1e-12)


@pytest.mark.parametrize(("n", "site"), [(80, 70), (120, 60)])
@pytest.mark.parametrize("h", [0.3, -0.3])
def test_a_local_field_selects_the_magnetisation_of_a_long_ferromagnet(
    n: int, site: int, h: float
) -> None:
    """An open Ising chain deep in its ferromagnet, with one field ``h Z_site``: the ground state
    is the sector with ``Z = -sign(h)``, the other sector lies about ``2|h|`` above. Sweeps from
    a random state commit to a magnetisation near the chain's ends, before they reach the field;
    without the flip check (``∏X``, a symmetry of every term but the field) the solve returned
    the other sector for ``h = 0.3`` in both chains and a bulk gap of 3.6 instead of 0.6: a
    silent excited state."""
    terms: list[tuple[Any, ...]] = [(-0.2, f"X{j}") for j in range(n)]
    terms += [(-2.0, f"Z{j} Z{j + 1}") for j in range(n - 1)]
    terms.append((h, f"Z{site}"))
    ham = ParametrisedHamiltonian(n, terms)
    from qeprop.solvers.dmrg import flip_candidates, mps_string_expectations

    assert flip_candidates(ham, ham.string_coefficients(np.zeros(0))) == ["X"]
    st = solve(ham, np.zeros(0), DMRG)
    assert isinstance(st, MPSEquilibrium)
    z = mps_string_expectations(st, [PauliString.parse(f"Z{j}") for j in (0, site, n - 1)])
    assert np.all(np.sign(z) == -np.sign(h)) and np.all(np.abs(z) > 0.9)
    # the gap is the other sector: 2|h| |m| up to its relaxation near the field
    assert st.gap == pytest.approx(2 * abs(h), rel=0.1)


def test_flip_check_finds_the_ferromagnetic_sector_of_the_sensor_at_16_sites() -> None:
    """The 8-site-trained sensor of the scale study (its committed couplings) on the middle of a
    16-site open chain deep in the ferromagnet: ``∏X`` anticommutes with a quarter of the
    strings (the sensor's couplings). DMRG must find the exact ground state's sector (18 qubits:
    against the matrix-free backend); with the flip check limited to 20 % of the strings the
    solve returned the other sector, 0.66 higher, and the readout "cluster" (p = 0.82)."""
    from qeprop.experiments.phase_recognition import EXPERIMENT

    source = ROOT / "docs" / "results" / "phase-recognition-scale" / "source"
    over = {"chain_length": 16, "boundary": "open", "method": "dmrg", "steps": 0}
    cfg = EXPERIMENT.resolve({**over, "init_from": str(source)})
    model = EXPERIMENT.model(cfg)
    h = model.system.full
    theta = np.asarray(EXPERIMENT.init(cfg).arrays["params"])
    v = model.system.full_values(model.values(np.array([0.159, 3.688, 0.154]), theta))
    st = solve(h, v, EXPERIMENT.spec(cfg))
    ex = solve(h, v, StateSpec(method="matrix-free", tol=1e-10))
    assert abs(st.energy - ex.energy) <= 1e-8 * abs(ex.energy)
    ident, coef = model.system.output_coefficients
    np.testing.assert_allclose(
        ident + coef @ string_expectations(h, st),
        ident + coef @ string_expectations(h, ex),
        atol=1e-6,
    )
