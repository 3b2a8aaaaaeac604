"""Workloads on the phase sensor (:mod:`sensor`) shared by several comparisons.

* :func:`qeprop_batch`: qeprop's gradient of the MSE loss averaged over a batch, one
  ``estimate_gradient`` per sample (NudgeWindowWarnings are collected, not raised);
* :func:`naive_batch`: the same with the naive baseline of :mod:`naive`;
* :func:`nudged_values`: the free and nudged parameter vectors of one sample and its free state.
"""

from __future__ import annotations

import warnings
from typing import Any

import naive
import numpy as np
import sensor

import qeprop
from qeprop import NudgeWindowWarning, estimate_gradient
from qeprop.measurement import expectations
from qeprop.solvers import StateSpec, solve

NUDGES = (0.01, 0.4)  # the small nudge and the paper's β
COSINE_MIN = 0.999  # gradients of independent implementations must agree at least this well

SENSOR_INTRO = (
    "Problem: the Wanjura-Marquardt phase sensor (`benchmarks/sensor.py`), an 8-site periodic "
    "cluster-Ising chain (qubits 0-7) with 2 sensor qubits (8, 9): 10 qubits, dimension 1024, 51 "
    "trainable couplings, 3 projector outputs, MSE loss against one-hot phase labels, a batch of "
    "10 inputs on the triangle g_zxz + g_zz + g_x = 4. Ground states; gradients without shot noise."
)


def qeprop_batch(
    system: qeprop.QEPSystem, batch: sensor.Batch, estimator: str, **opts: Any
) -> dict[str, Any]:
    """Batch-averaged gradient with qeprop: one ``estimate_gradient`` per sample."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NudgeWindowWarning)
        recs = [
            estimate_gradient(system, batch.values(i), batch.loss(i), estimator=estimator, **opts)
            for i in range(len(batch))
        ]
    return {
        "gradient": np.mean([r.gradient for r in recs], axis=0),
        "per_sample": np.array([r.gradient for r in recs]),
        "loss": float(np.mean([r.loss for r in recs])),
        "preparations": int(sum(r.preparations for r in recs)),
        "solves": int(sum(r.solves for r in recs)),
        "gaps": np.array([r.gap for r in recs]),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, NudgeWindowWarning)],
    }


def naive_batch(batch: sensor.Batch, beta: float, stages: dict[str, float]) -> dict[str, Any]:
    """Batch-averaged centred gradient of the naive baseline; ``stages`` accumulates its time
    split (build H, eigsh, expectations)."""
    recs = [
        naive.centered_gradient(batch.inputs[i], batch.theta, batch.targets[i], beta, stages)
        for i in range(len(batch))
    ]
    return {
        "gradient": np.mean([r.gradient for r in recs], axis=0),
        "per_sample": np.array([r.gradient for r in recs]),
        "loss": float(np.mean([r.loss for r in recs])),
        "solves": int(sum(r.solves for r in recs)),
    }


def nudged_values(
    system: qeprop.QEPSystem, batch: sensor.Batch, i: int, beta: float, spec: StateSpec
) -> tuple[np.ndarray, np.ndarray, qeprop.Equilibrium]:
    """Free parameter vector, nudged vector ``ν = β ε`` on the outputs, and the free state."""
    h = system.full
    v = system.full_values(batch.values(i))
    free = solve(h, v, spec)
    ident, coef = system.output_coefficients
    _, eps = batch.loss(i)(expectations(h, free, ident, coef))
    vn = v.copy()
    vn[system.output_index] += beta * eps
    return v, vn, free
