"""Gradient estimators against an independent dense reference (``_reference.DenseModel``).

The reference builds every operator from Kronecker products, diagonalises the full matrix with
``numpy.linalg.eigh`` and evaluates the exact gradient ``Σ_l ε_l ∂⟨O_l⟩/∂θ_j`` by first-order
perturbation theory (pure states) or the Daleckii-Krein divided differences of the Boltzmann
weights (Gibbs states); it is itself checked against finite differences (``eigh``) and against
``scipy.linalg.expm`` below. Problems are seeded random problems from ``_problems``.

Errors are measured relative to the gradient: ``max_j |g_j - g_ref_j| / ||g_ref||``.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from _problems import build, random_spec
from _reference import DenseModel, dense_state, response, thermal_expectation_expm
from qeprop import (
    CrossEntropy,
    DegeneracyError,
    FunctionLoss,
    MeanSquaredError,
    NudgeWindowWarning,
    ProblemError,
    StateSpec,
    estimate_gradient,
    susceptibility,
)
from qeprop.losses import make_loss
from qeprop.measurement import measurement_settings


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(got) - ref)) / np.linalg.norm(ref))


def state_spec(
    kind: str, temperature: float | None = None, level: int = 0, method: str = "auto"
) -> StateSpec:
    """``method="lanczos"`` with ``dense_max_dim=2`` forces ARPACK + MINRES even on 4 qubits
    (``"auto"`` is dense up to dimension 256, i.e. 8 qubits; Gibbs states are always dense)."""
    extra = {"dense_max_dim": 2} if method == "lanczos" else {}
    return StateSpec(kind=kind, temperature=temperature, level=level, method=method, **extra)


# ------------------------------------------------------------------------------------ the reference
def test_reference_against_finite_differences() -> None:
    """The dense reference itself: perturbation theory vs central differences of eigh / expm.

    Step 1e-5: truncation error ~ h² ≈ 1e-10 and round-off ~ 1e-16 / h ≈ 1e-11 relative to O(1)
    expectation values, so 1e-7 relative to a gradient of norm ≳ 1e-2 is a safe bound.
    """
    spec = random_spec(101, 4)
    model = DenseModel(spec)
    values = spec.values
    h = 1e-5
    for kind, temp in (("ground", None), ("thermal", 0.7)):
        _, _, loss = build(spec)
        ref = model.gradient(values, loss, kind, temp)[0]
        fd = []
        for name in spec.trainable:
            lv = []
            for s in (1.0, -1.0):
                vals = {**values, name: values[name] + s * h}
                if kind == "ground":
                    lv.append(model.loss_at(vals, loss))
                else:  # an eigh-free Gibbs state
                    hm = model.hamiltonian(vals)
                    y = np.array(
                        [thermal_expectation_expm(hm, o, temp) for o in model.outputs.values()]
                    )
                    lv.append(loss(y)[0])
            fd.append((lv[0] - lv[1]) / (2 * h))
        assert rel_err(np.array(fd), ref) < 1e-7, kind


# ------------------------------------------------------------------------------------ accuracy
# (seed, qubits, kind, temperature, method, real): ground states dense (auto: dim <= 256) and by
# Lanczos, Gibbs states at T = 0.5 and 2.0 (always dense), complex and real Hamiltonians.
CASES = [
    (1, 4, "ground", None, "auto", False),
    (2, 5, "ground", None, "auto", False),
    (3, 6, "ground", None, "auto", True),
    (4, 8, "ground", None, "auto", False),
    (1, 4, "ground", None, "lanczos", False),
    (3, 6, "ground", None, "lanczos", True),
    (5, 7, "ground", None, "lanczos", False),
    (4, 8, "ground", None, "lanczos", False),
    (6, 4, "thermal", 0.5, "auto", False),
    (7, 6, "thermal", 0.5, "auto", True),
    (8, 5, "thermal", 2.0, "auto", False),
    (9, 7, "thermal", 2.0, "auto", False),
]


def _case_id(c: tuple) -> str:
    seed, n, kind, t, method, real = c
    return f"s{seed}-{n}q-{kind}{'' if t is None else t}-{method}{'-real' if real else ''}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_linear_response_matches_reference(case: tuple) -> None:
    """Exact β -> 0 gradient. Dense: both sides are exact up to round-off (observed ~1e-14).
    Lanczos: eigenvector error ~ tol·||H||/gap with tol = 1e-12 and MINRES rtol 1e-12 (observed
    ≲ 1e-11), so 1e-8 leaves three orders of margin."""
    seed, n, kind, temp, method, real = case
    spec = random_spec(seed, n, real=real)
    system, values, loss = build(spec)
    assert system.hamiltonian.is_real == real
    ref, y_ref, l_ref, eps_ref = DenseModel(spec).gradient(values, loss, kind, temp)
    rec = estimate_gradient(
        system, values, loss, estimator="linear_response", state=state_spec(kind, temp, 0, method)
    )
    assert rec.params == spec.trainable
    assert rel_err(rec.gradient, ref) < 1e-8
    np.testing.assert_allclose(rec.outputs, y_ref, atol=1e-10)
    np.testing.assert_allclose(rec.error_signal, eps_ref, atol=1e-9)
    assert rec.loss == pytest.approx(l_ref, abs=1e-10)
    assert rec.preparations == 1 and rec.shots == 0 and rec.nudge is None
    assert np.all(rec.stderr == 0)


@pytest.mark.parametrize("case", [CASES[i] for i in (0, 2, 5, 8, 10)], ids=_case_id)
def test_finite_difference_and_centered_match_reference(case: tuple) -> None:
    """finite_difference (h = 1e-4): O(h²) ≈ 1e-8 truncation plus ~1e-16/h round-off, observed
    ≲ 1e-8 relative -> 1e-6. centered at β = 0.01: O(β²) bias, observed ≲ 7e-4 relative on these
    problems (gap ≥ 0.25) -> 1e-3."""
    seed, n, kind, temp, method, real = case
    spec = random_spec(seed, n, real=real)
    system, values, loss = build(spec)
    ref = DenseModel(spec).gradient(values, loss, kind, temp)[0]
    st = state_spec(kind, temp, 0, method)
    fd = estimate_gradient(system, values, loss, estimator="finite_difference", state=st)
    assert rel_err(fd.gradient, ref) < 1e-6
    assert fd.preparations == 2 * len(spec.trainable) + 1
    ce = estimate_gradient(system, values, loss, estimator="centered", nudge=0.01, state=st)
    assert rel_err(ce.gradient, ref) < 1e-3
    assert ce.preparations == 3 and ce.nudge == 0.01


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("method", ["auto", "lanczos"])
def test_eigenstate_gradients(level: int, method: str) -> None:
    """QEP in an excited eigenstate: the reference is perturbation theory on dense level ``level``
    (the problem's lowest four levels are ≥ 0.25 apart). Tolerances as for the ground state; the
    centered nudge 0.01 keeps β|ε|·||O|| well below the gaps so the followed level stays smooth."""
    spec = random_spec(20 + level, 5, levels=2)
    system, values, loss = build(spec)
    model = DenseModel(spec)
    ref = model.gradient(values, loss, "eigenstate", level=level)[0]
    ground = model.gradient(values, loss, "ground")[0]
    assert rel_err(ground, ref) > 1e-2  # the excited-state gradient is genuinely different
    st = state_spec("eigenstate", None, level, method)
    lr = estimate_gradient(system, values, loss, estimator="linear_response", state=st)
    assert rel_err(lr.gradient, ref) < 1e-8
    ce = estimate_gradient(system, values, loss, estimator="centered", nudge=0.01, state=st)
    assert rel_err(ce.gradient, ref) < 1e-3
    fd = estimate_gradient(system, values, loss, estimator="finite_difference", state=st)
    assert rel_err(fd.gradient, ref) < 1e-6


# ------------------------------------------------------------------------------------ orders
# β grid for the order fits. Lower end: with the dense solver expectation values are exact to
# ~1e-14 (eps·||H||/gap), so the difference quotients carry ≲ 1e-14/β ≈ 1e-11 of round-off at
# β = 1e-3, while the smallest bias measured (centered, ~c·β² with relative c·β² ≳ 1e-7 there) is
# still ≥ 1e-4 times larger. Upper end: β|ε|·||O|| ≤ 0.1 stays well below the gap (≥ 0.5 for these
# problems), so the Taylor series in β converges fast and the leading power dominates the fit.
BETAS = np.geomspace(1e-3, 3e-2, 6)


def _errors(system, values, loss, ref, estimator: str, st: StateSpec, **kw) -> np.ndarray:
    return np.array(
        [
            estimate_gradient(
                system, values, loss, estimator=estimator, nudge=b, state=st, **kw
            ).gradient
            - ref
            for b in BETAS
        ]
    )


def _slope(errs: np.ndarray) -> float:
    return float(np.polyfit(np.log(BETAS), np.log(np.linalg.norm(errs, axis=1)), 1)[0])


@pytest.mark.parametrize(("kind", "temp"), [("ground", None), ("thermal", 0.5), ("thermal", 2.0)])
def test_error_orders(kind: str, temp: float | None) -> None:
    spec = random_spec(31, 5, min_gap=0.5)
    system, values, loss = build(spec)
    ref = DenseModel(spec).gradient(values, loss, kind, temp)[0]
    st = state_spec(kind, temp)
    pos = _errors(system, values, loss, ref, "positive", st)
    neg = _errors(system, values, loss, ref, "negative", st)
    cen = _errors(system, values, loss, ref, "centered", st)
    assert 0.85 < _slope(pos) < 1.15
    assert 0.85 < _slope(neg) < 1.15
    assert 1.8 < _slope(cen) < 2.2
    # the O(β) terms are +β/2·g'' and -β/2·g'': opposite signs, cancelling in their sum
    p0, n0 = pos[0], neg[0]
    big = np.abs(p0) > 1e-2 * np.max(np.abs(p0))
    assert np.all(np.sign(p0[big]) == -np.sign(n0[big]))
    assert np.linalg.norm(p0 + n0) < 0.1 * np.linalg.norm(p0)
    # centered = (positive + negative) / 2 exactly (same three equilibria)
    np.testing.assert_allclose(cen, (pos + neg) / 2, atol=1e-10 * np.linalg.norm(ref) / BETAS[0])


# ------------------------------------------------------------------------------- cost observable
@pytest.fixture(scope="module")
def cost_problem():
    spec = random_spec(41, 5, cost=True, min_gap=0.5)
    system, values, _ = build(spec)
    ref = DenseModel(spec).gradient(values, None)[0]
    return spec, system, values, ref


@pytest.mark.parametrize(
    ("variant", "nudge", "tol"),
    # one-sided at β = 1e-4: O(β) bias ~ β·||C||/gap relative (≲ 1e-3 observed) -> 1e-2;
    # centered at β = 1e-3: O(β²) ~ 1e-6 relative -> 1e-4
    [("positive", 1e-4, 1e-2), ("negative", 1e-4, 1e-2), ("centered", 1e-3, 1e-4)],
)
def test_cost_observable_variants(cost_problem, variant: str, nudge: float, tol: float) -> None:
    spec, system, values, ref = cost_problem
    rec = estimate_gradient(
        system, values, None, estimator="cost_observable", variant=variant, nudge=nudge
    )
    assert rel_err(rec.gradient, ref) < tol
    model = DenseModel(spec)
    c_ref = model.state(values).expect(model.cost)
    assert rec.loss == pytest.approx(c_ref, abs=1e-10)
    assert rec.output_names == ("cost",)
    np.testing.assert_array_equal(rec.error_signal, [1.0])
    assert rec.preparations == (3 if variant == "centered" else 2)


def test_cost_observable_exact_estimators(cost_problem) -> None:
    _, system, values, ref = cost_problem
    lr = estimate_gradient(system, values, None, estimator="linear_response")
    assert rel_err(lr.gradient, ref) < 1e-8
    fd = estimate_gradient(system, values, None, estimator="finite_difference")
    assert rel_err(fd.gradient, ref) < 1e-6
    # the cost estimator needs a cost observable as the loss
    _, _, loss = build(random_spec(41, 5, cost=True, min_gap=0.5))
    with pytest.raises(ProblemError):
        estimate_gradient(system, values, loss, estimator="cost_observable")


def test_cost_observable_equals_output_nudging_with_linear_loss(cost_problem) -> None:
    """``H + βC`` (cost mode) and nudging a single output ``O = C`` with ``L = y`` (ε = 1) are the
    same computation: agreement to round-off."""
    spec, system, values, _ = cost_problem
    as_output = dataclasses.replace(spec, outputs={"c": spec.cost}, target=(0.0,), cost=None)
    out_system, _, _ = build(as_output)
    linear = FunctionLoss(lambda y: (float(y[0]), np.ones(1)))
    for variant in ("positive", "negative", "centered"):
        a = estimate_gradient(
            system, values, None, estimator="cost_observable", variant=variant, nudge=1e-3
        )
        b = estimate_gradient(out_system, values, linear, estimator=variant, nudge=1e-3)
        np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-9, atol=1e-12)
        assert a.loss == pytest.approx(b.loss, abs=1e-12)
    a = estimate_gradient(system, values, None, estimator="linear_response")
    b = estimate_gradient(out_system, values, linear, estimator="linear_response")
    np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------------------ Onsager
@pytest.mark.parametrize(
    ("kind", "temp", "method"),
    [("ground", None, "auto"), ("ground", None, "lanczos"), ("thermal", 1.0, "auto")],
)
def test_susceptibility_is_symmetric_and_matches_finite_differences(kind, temp, method) -> None:
    """χ_ab = ∂⟨A_a⟩/∂p_b over all parameters of ``system.full`` (couplings, the input, the output
    nudges). Each column is an independent linear-response solve, so symmetry (Onsager) holds
    only up to solver error: 1e-8 relative. The finite-difference χ (dense eigh, step 1e-5,
    O(h²) + round-off ≈ 1e-10) agrees to 1e-6 relative."""
    spec = random_spec(51, 5, cost=True)
    system, values, _ = build(spec)
    chi = susceptibility(system, values, state=state_spec(kind, temp, 0, method))
    names = system.full.params
    assert chi.shape == (len(names), len(names))
    scale = np.max(np.abs(chi))
    assert np.max(np.abs(chi - chi.T)) < 1e-8 * scale
    fd = DenseModel(spec).susceptibility(names, values, kind, temp)
    assert np.max(np.abs(chi - fd)) < 1e-6 * scale
    # ground-state susceptibilities are non-positive on the diagonal (second-order energy shift)
    if kind == "ground":
        assert np.all(np.diag(chi) <= 1e-12 * scale)


# ------------------------------------------------------------------------------------ shot noise
@pytest.fixture(scope="module")
def shot_problem():
    spec = random_spec(61, 4, min_gap=0.5)
    system, values, loss = build(spec)
    exact = estimate_gradient(system, values, loss, estimator="centered", nudge=0.02)
    return spec, system, values, loss, exact


def _shot_runs(system, values, loss, model: str, seeds: range, shots: int):
    recs = [
        estimate_gradient(
            system,
            values,
            loss,
            estimator="centered",
            nudge=0.02,
            shots=shots,
            shot_model=model,
            seed=s,
        )
        for s in seeds
    ]
    return np.array([r.gradient for r in recs]), np.array([r.stderr for r in recs])


@pytest.mark.parametrize("model", ["gaussian", "sampled"])
def test_shot_noise_is_unbiased_and_stderr_calibrated(shot_problem, model: str) -> None:
    """200 seeds: the sample mean is within 5 standard errors of the exact centered estimate
    (P ≤ 6 components, so a false alarm has probability ~1e-5), and the reported stderr agrees
    with the empirical spread within 20% (the relative SE of a std estimated from 200 samples is
    ~5%, so 20% is a 4σ bound)."""
    _, system, values, loss, exact = shot_problem
    grads, ses = _shot_runs(system, values, loss, model, range(200), shots=400)
    mean, std = grads.mean(axis=0), grads.std(axis=0, ddof=1)
    assert np.all(std > 0)
    assert np.all(np.abs(mean - exact.gradient) < 5 * std / np.sqrt(len(grads)))
    reported = ses.mean(axis=0)
    np.testing.assert_allclose(reported, std, rtol=0.2)
    if model == "gaussian":  # the gaussian stderr is sqrt(Var/M) of the exact state: seed-free
        np.testing.assert_allclose(ses, np.broadcast_to(ses[0], ses.shape), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gaussian", "sampled"])
def test_shot_noise_many_seeds(shot_problem, model: str) -> None:
    """2000 seeds (a few seconds): stderr within 8% of the empirical spread (relative SE of the
    std ~1.6%, so 5σ) and the mean within 5 standard errors of the exact centered estimate."""
    _, system, values, loss, exact = shot_problem
    grads, ses = _shot_runs(system, values, loss, model, range(1000, 3000), shots=100)
    std = grads.std(axis=0, ddof=1)
    assert np.all(np.abs(grads.mean(axis=0) - exact.gradient) < 5 * std / np.sqrt(len(grads)))
    np.testing.assert_allclose(ses.mean(axis=0), std, rtol=0.08)


def test_preparation_counts(shot_problem) -> None:
    spec, system, values, loss, exact = shot_problem
    p = len(spec.trainable)
    assert exact.preparations == 3 and exact.shots == 0 and exact.solves == 3
    for est, prep in (
        ("positive", 2),
        ("negative", 2),
        ("linear_response", 1),
        ("finite_difference", 2 * p + 1),
    ):
        rec = estimate_gradient(system, values, loss, estimator=est, nudge=0.02)
        assert rec.preparations == prep, est
        assert rec.shots == 0
    m = 50
    # every measurement setting (qubit-wise commuting group of the measured strings) costs M
    # preparations, whatever the shot model; the outputs are exact (one preparation of the free
    # state) unless noisy_outputs, in which case their settings cost M each as well
    full = system.full
    g_a = len(measurement_settings(full, full.derivative_coefficients[system.trainable_index]))
    g_y = len(measurement_settings(full, system.output_coefficients[1]))
    both = np.vstack(
        [system.output_coefficients[1], full.derivative_coefficients[system.trainable_index]]
    )
    assert 0 < g_a <= p and g_y >= 1
    rec = estimate_gradient(system, values, loss, estimator="centered", nudge=0.02, shots=m, seed=1)
    assert rec.shots == 2 * m * g_a
    assert rec.preparations == 1 + 2 * m * g_a
    assert [ph.phase for ph in rec.ledger] == ["free", "nudged+", "nudged-"]
    assert rec.ledger[0].settings == () and set(rec.ledger[0].exact) == {
        f"output:{o}" for o in spec.outputs
    }
    assert rec.ledger[1].shots == rec.ledger[2].shots == m * g_a
    measured = {o for _, _, obs in rec.ledger[1].settings for o in obs}
    assert measured == {f"coupling:{t}" for t in spec.trainable}
    rec = estimate_gradient(
        system, values, loss, estimator="centered", nudge=0.02, shots=m, seed=1, noisy_outputs=True
    )
    assert rec.shots == rec.preparations == m * g_y + 2 * m * g_a
    assert rec.ledger[0].shots == m * g_y and rec.ledger[0].exact == ()
    rec = estimate_gradient(system, values, loss, estimator="finite_difference", shots=m, seed=1)
    assert rec.shots == rec.preparations == (2 * p + 1) * m * g_y
    assert len(rec.ledger) == 2 * p + 1
    rec = estimate_gradient(
        system, values, loss, estimator="positive", nudge=0.02, shots=m, seed=1, noisy_outputs=True
    )
    # one-sided: outputs and ⟨A⟩_0 share the free phase's settings
    g_free = len(measurement_settings(full, both))
    assert rec.ledger[0].shots == m * g_free and rec.shots == m * (g_free + g_a)
    # sampled: the same settings, so the same count
    rec = estimate_gradient(
        system,
        values,
        loss,
        estimator="centered",
        nudge=0.02,
        shots=m,
        seed=1,
        shot_model="sampled",
    )
    assert rec.shots == 2 * m * g_a


def test_one_sided_preparation_count_without_noisy_outputs(shot_problem) -> None:
    spec, system, values, loss, _ = shot_problem
    p, m = len(spec.trainable), 50
    rec = estimate_gradient(system, values, loss, estimator="positive", nudge=0.02, shots=m, seed=1)
    # ⟨A⟩ at the free and at the nudged state, M shots per setting; outputs exact, which
    # costs one preparation of the free state (as for centered)
    g_a = len(
        measurement_settings(
            system.full, system.full.derivative_coefficients[system.trainable_index]
        )
    )
    assert 0 < g_a <= p
    assert rec.shots == 2 * m * g_a
    assert rec.preparations == 2 * m * g_a + 1


def test_noisy_outputs_and_seed_reproducibility(shot_problem) -> None:
    _, system, values, loss, exact = shot_problem
    kw = {"estimator": "centered", "nudge": 0.02, "shots": 100}
    quiet = estimate_gradient(system, values, loss, seed=3, **kw)
    np.testing.assert_array_equal(quiet.outputs, exact.outputs)  # exact outputs by default
    assert np.all(quiet.outputs_stderr == 0)
    noisy = estimate_gradient(system, values, loss, seed=3, noisy_outputs=True, **kw)
    assert not np.allclose(noisy.outputs, exact.outputs, rtol=0, atol=1e-12)
    assert np.all(noisy.outputs_stderr > 0)
    assert np.all(np.abs(noisy.outputs - exact.outputs) < 6 * noisy.outputs_stderr)
    assert not np.array_equal(noisy.error_signal, exact.error_signal)
    for model in ("gaussian", "sampled"):
        a = estimate_gradient(system, values, loss, seed=7, shot_model=model, **kw)
        b = estimate_gradient(system, values, loss, seed=7, shot_model=model, **kw)
        c = estimate_gradient(system, values, loss, seed=8, shot_model=model, **kw)
        r = estimate_gradient(
            system, values, loss, rng=np.random.default_rng(7), shot_model=model, **kw
        )
        np.testing.assert_array_equal(a.gradient, b.gradient)
        np.testing.assert_array_equal(a.stderr, b.stderr)
        np.testing.assert_array_equal(a.gradient, r.gradient)
        assert not np.array_equal(a.gradient, c.gradient)
    with pytest.raises(ProblemError):  # shots without randomness
        estimate_gradient(system, values, loss, **kw)
    with pytest.raises(ProblemError):  # linear_response is exact
        estimate_gradient(system, values, loss, estimator="linear_response", shots=10, seed=0)


# ------------------------------------------------------------------------------------ losses
def test_mse_loss_value_and_error_signal() -> None:
    spec = random_spec(71, 4, n_outputs=3)
    system, values, loss = build(spec)
    model = DenseModel(spec)
    y = model.outputs_at(model.state(values))
    t = np.array(spec.target)
    rec = estimate_gradient(system, values, loss, estimator="linear_response")
    assert rec.loss == pytest.approx(float(np.sum((y - t) ** 2)), abs=1e-12)
    np.testing.assert_allclose(rec.error_signal, 2 * (y - t), atol=1e-12)
    val, eps = MeanSquaredError(t)(y)
    assert val == pytest.approx(np.sum((y - t) ** 2)) and np.allclose(eps, 2 * (y - t))
    np.testing.assert_allclose(rec.outputs_dict()[next(iter(spec.outputs))], y[0], atol=1e-12)


def test_cross_entropy_loss() -> None:
    spec = random_spec(72, 5, n_outputs=2)  # two projectors: probabilities in (0, 1)
    system, values, _ = build(spec)
    target = np.array([0.3, 0.7])
    ce = CrossEntropy(target)

    def ref_loss(y: np.ndarray) -> tuple[float, np.ndarray]:
        return float(-target @ np.log(y)), -target / y

    model = DenseModel(spec)
    ref, y, l_ref, eps_ref = model.gradient(values, ref_loss)
    assert np.all((y > 1e-3) & (y < 1))
    rec = estimate_gradient(system, values, ce, estimator="linear_response")
    assert rec.loss == pytest.approx(l_ref, abs=1e-10)
    np.testing.assert_allclose(rec.error_signal, eps_ref, rtol=1e-9)
    assert rel_err(rec.gradient, ref) < 1e-8
    cen = estimate_gradient(system, values, ce, estimator="centered", nudge=1e-3)
    assert rel_err(cen.gradient, ref) < 1e-4  # O(β²) at β = 1e-3
    # below the floor the loss is clipped: y = 0 gives -t log(floor), ε = -t/floor
    val, eps = ce(np.array([0.0, 1.0]))
    assert val == pytest.approx(-0.3 * np.log(1e-6)) and eps[0] == pytest.approx(-0.3 / 1e-6)


def test_function_loss_equals_finite_difference_of_the_pipeline() -> None:
    """A nonlinear user loss: the QEP gradient equals the central difference of
    ``L(y(θ))`` computed end to end with the dense reference (h = 1e-5 -> ~1e-10 error)."""
    spec = random_spec(73, 5, n_outputs=3)
    system, values, _ = build(spec)

    def fn(y: np.ndarray) -> tuple[float, np.ndarray]:
        g = 3 * np.cos(3 * y)
        g[0] += y[1]
        g[1] += y[0]
        return float(np.sum(np.sin(3 * y)) + y[0] * y[1]), g

    loss = FunctionLoss(fn)
    model = DenseModel(spec)
    h = 1e-5
    fd = np.array(
        [
            (
                model.loss_at({**values, k: values[k] + h}, fn)
                - model.loss_at({**values, k: values[k] - h}, fn)
            )
            / (2 * h)
            for k in spec.trainable
        ]
    )
    lr = estimate_gradient(system, values, loss, estimator="linear_response")
    assert rel_err(lr.gradient, fd) < 1e-6
    assert rel_err(lr.gradient, model.gradient(values, fn)[0]) < 1e-8
    fd_src = estimate_gradient(system, values, loss, estimator="finite_difference")
    assert rel_err(fd_src.gradient, fd) < 1e-6
    cen = estimate_gradient(system, values, loss, estimator="centered", nudge=1e-3)
    assert rel_err(cen.gradient, fd) < 1e-4


def test_bad_losses() -> None:
    spec = random_spec(74, 4, n_outputs=2)
    system, values, _ = build(spec)
    for est in ("linear_response", "centered", "finite_difference"):
        with pytest.raises(ProblemError, match="target"):
            estimate_gradient(system, values, MeanSquaredError([0.5]), estimator=est)
    with pytest.raises(ProblemError):
        make_loss("mse", [0.1, 0.2, 0.3], 2)
    with pytest.raises(ProblemError):
        MeanSquaredError([0.1, float("nan")])
    with pytest.raises(ProblemError):  # dL/dy of the wrong shape
        estimate_gradient(system, values, FunctionLoss(lambda y: (0.0, np.ones(3))))
    with pytest.raises(ProblemError):  # non-finite loss
        estimate_gradient(system, values, FunctionLoss(lambda y: (np.nan, np.ones(2))))
    with pytest.raises(ProblemError):  # no loss and no cost observable
        estimate_gradient(system, values, None)


# ------------------------------------------------------------------------------------ degeneracy
@pytest.fixture(scope="module")
def degenerate_problem():
    """5 qubits, the last one untouched: every level is exactly two-fold degenerate. The mixture
    over the ground manifold is ρ' ⊗ 1/2 with ρ' the ground state of the 4-qubit problem, so its
    gradient is the reduced problem's (the reference)."""
    spec = random_spec(81, 5, untouched=True, min_gap=0.3)
    system, values, loss = build(spec)
    ref = DenseModel(spec.with_qubits(4)).gradient(values, loss)[0]
    ev = np.linalg.eigvalsh(DenseModel(spec).hamiltonian(values))
    assert ev[1] - ev[0] < 1e-12 and ev[2] - ev[1] > 0.3
    return spec, system, values, loss, ref


@pytest.mark.parametrize("method", ["auto", "lanczos"])
def test_degenerate_ground_state_mixture(degenerate_problem, method: str) -> None:
    _, system, values, loss, ref = degenerate_problem
    st = state_spec("ground", method=method)
    lr = estimate_gradient(system, values, loss, estimator="linear_response", state=st)
    ce = estimate_gradient(system, values, loss, estimator="centered", nudge=1e-3, state=st)
    fd = estimate_gradient(system, values, loss, estimator="finite_difference", state=st)
    assert lr.degeneracy == ce.degeneracy == fd.degeneracy == 2
    assert rel_err(lr.gradient, ref) < 1e-8
    assert rel_err(fd.gradient, lr.gradient) < 1e-6
    assert rel_err(ce.gradient, lr.gradient) < 1e-4


def test_degenerate_ground_state_error_mode(degenerate_problem) -> None:
    _, system, values, loss, _ = degenerate_problem
    for method in ("auto", "lanczos"):
        st = StateSpec(
            degeneracy="error", method=method, dense_max_dim=2 if method == "lanczos" else 256
        )
        for est in ("linear_response", "centered"):
            with pytest.raises(DegeneracyError, match="degenerate"):
                estimate_gradient(system, values, loss, estimator=est, state=st)


# ------------------------------------------------------------------------------------ nudge window
def test_nudge_window_warning() -> None:
    spec = random_spec(91, 4, min_gap=0.3)
    system, values, loss = build(spec)
    gap = np.diff(np.linalg.eigvalsh(DenseModel(spec).hamiltonian(values))[:2])[0]
    assert 0.3 <= gap < 3
    with pytest.warns(NudgeWindowWarning, match="gap"):
        estimate_gradient(system, values, loss, estimator="centered", nudge=10.0)
    with pytest.warns(NudgeWindowWarning, match="noise floor"):
        estimate_gradient(system, values, loss, estimator="centered", nudge=1e-13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate_gradient(system, values, loss, estimator="centered", nudge=0.01)
        estimate_gradient(system, values, loss, estimator="positive", nudge=0.01)
        # the check can be switched off for an intentionally large nudge
        estimate_gradient(system, values, loss, estimator="centered", nudge=10.0, warn_window=False)


def test_zero_error_signal_gives_zero_gradient() -> None:
    """On target (ε = 0) nothing is nudged: the gradient is exactly zero, one preparation."""
    spec = random_spec(92, 4, n_outputs=2)
    system, values, _ = build(spec)
    y = estimate_gradient(
        system, values, MeanSquaredError([0, 0]), estimator="linear_response"
    ).outputs
    rec = estimate_gradient(system, values, MeanSquaredError(y), estimator="centered")
    np.testing.assert_array_equal(rec.gradient, 0.0)
    assert rec.loss == pytest.approx(0.0, abs=1e-20)


def test_reference_response_is_symmetric() -> None:
    """Sanity of the reference's thermal kernel: ``d⟨A⟩/dλ_B = d⟨B⟩/dλ_A`` (Onsager)."""
    spec = random_spec(93, 4)
    model = DenseModel(spec)
    st = dense_state(model.hamiltonian(spec.values), "thermal", 0.8)
    a, b = model.derivs["th0"], next(iter(model.outputs.values()))
    assert response(st, [a], b)[0] == pytest.approx(response(st, [b], a)[0], rel=1e-12)
