"""Architecture rules: the core is light, has no I/O, and every estimator honours the registry API.

* Core modules never pull in the file-format / command-line layer (``qeprop.problem``,
  ``qeprop.cli``, ``tomllib``) or plotting (``matplotlib``): checked in fresh interpreters, since
  the test process itself has imported everything.
* ``import qeprop`` is fast and imports no optional heavy backend (matplotlib, quimb, dask).
* Core modules do not print and do not open files (checked on the syntax tree, so docstrings
  and comments may mention them).
* Every entry of ``ESTIMATORS`` returns a well-formed :class:`GradientRecord`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import random_system
from qeprop import ESTIMATORS, GradientRecord, MeanSquaredError, estimate_gradient

CORE_MODULES = [
    "qeprop.errors",
    "qeprop.pauli",
    "qeprop.quadratures",
    "qeprop.hamiltonian",
    "qeprop.modes",
    "qeprop.states",
    "qeprop.system",
    "qeprop.solvers",
    "qeprop.solvers.exact",
    "qeprop.solvers.gaussian",
    "qeprop.measurement",
    "qeprop.losses",
    "qeprop.gradients",
]
# modules of the file-format / command-line layer, and plotting: never needed by the core
FORBIDDEN_IN_CORE = ["qeprop.cli", "qeprop.problem", "tomllib", "matplotlib"]
HEAVY_BACKENDS = ["matplotlib", "quimb", "dask"]


LOADED = """
import json, sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
print(json.dumps({{"modules": sorted(sys.modules), "elapsed": elapsed}}))
"""
# what the dependencies alone import (numpy/scipy import e.g. ``argparse`` and ``json``
# themselves, so such standard modules cannot be held against qeprop)
DEPENDENCIES = "numpy, scipy.linalg, scipy.sparse, scipy.sparse.linalg, threadpoolctl"


def fresh_pythons(modules: list[str]) -> dict[str, dict]:
    """Import each entry of ``modules`` in its own new interpreter (all started at once) and
    return ``{entry: {"modules": sorted sys.modules, "elapsed": import seconds}}``."""
    procs = {
        m: subprocess.Popen(
            [sys.executable, "-c", LOADED.format(module=m)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in modules
    }
    out = {}
    for m, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out[m] = json.loads(stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, dict]:
    return fresh_pythons([DEPENDENCIES, *CORE_MODULES])


def matches(loaded: list[str], names: list[str]) -> list[str]:
    return [m for m in loaded if any(m == n or m.startswith(n + ".") for n in names)]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_io_layer(module, fresh_imports):
    loaded = fresh_imports[module]["modules"]
    assert module in loaded
    baseline = set(fresh_imports[DEPENDENCIES]["modules"])
    forbidden = [n for n in FORBIDDEN_IN_CORE if n not in baseline]
    assert "qeprop.cli" in forbidden and "qeprop.problem" in forbidden
    assert matches(loaded, forbidden) == []


def test_import_qeprop_is_fast_and_light():
    # 2 s is ~5x the import time on an idle 2-core machine (numpy + scipy dominate); the best of
    # three attempts keeps a busy CI machine from failing the test on a single slow start
    best = float("inf")
    for _ in range(3):
        result = fresh_pythons(["qeprop"])["qeprop"]
        assert matches(result["modules"], HEAVY_BACKENDS) == []
        assert matches(result["modules"], ["qeprop.cli", "qeprop.problem"]) == []
        best = min(best, result["elapsed"])
        if best < 2.0:
            break
    assert best < 2.0


def core_source_files() -> list[Path]:
    files = []
    for name in CORE_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        files.append(Path(spec.origin))
    return files


@pytest.mark.parametrize("path", core_source_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_core_has_no_print_or_open(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if name in ("print", "open"):
                calls.append(f"{path.name}:{node.lineno}: {name}(")
    assert calls == []


def test_syntax_tree_check_would_catch_calls():
    # guard against a vacuous check: the same walker flags both forms
    src = "print('x')\nwith open('f') as fh: pass\npath.open()\n"
    names = [
        n.func.id if isinstance(n.func, ast.Name) else n.func.attr
        for n in ast.walk(ast.parse(src))
        if isinstance(n, ast.Call)
    ]
    assert sorted(names) == ["open", "open", "print"]


# ------------------------------------------------------------------------------- registry
EXPECTED_ESTIMATORS = {
    "positive",
    "negative",
    "centered",
    "cost_observable",
    "linear_response",
    "finite_difference",
}


def test_registry_names():
    assert set(ESTIMATORS) == EXPECTED_ESTIMATORS


@pytest.mark.parametrize("name", sorted(EXPECTED_ESTIMATORS))
def test_every_estimator_returns_a_well_formed_record(name):
    system, values = random_system(n_qubits=4, seed=3, cost=True)
    loss = None if name == "cost_observable" else MeanSquaredError([0.6, -0.2])
    # one-sided estimates at the default nudge are 12 % off on this system and warn about it
    # (tests/test_backends.py checks that warning); this test is about the record's shape
    rec = estimate_gradient(system, values, loss, estimator=name, warn_window=False)
    p = len(system.trainable)
    n_out = 1 if loss is None else len(system.outputs)
    assert isinstance(rec, GradientRecord)
    assert rec.estimator == name
    assert rec.params == tuple(system.trainable)
    assert rec.gradient.shape == rec.stderr.shape == (p,)
    assert rec.outputs.shape == rec.outputs_stderr.shape == rec.error_signal.shape == (n_out,)
    assert np.all(np.isfinite(rec.gradient)) and np.all(np.isfinite(rec.stderr))
    assert np.all(np.isfinite(rec.outputs)) and np.isfinite(rec.loss)
    np.testing.assert_array_equal(rec.stderr, 0.0)  # exact expectation values: no shot noise
    assert rec.preparations >= 1 and rec.solves >= 1 and rec.shots == 0
    assert rec.gap > 0 and rec.degeneracy == 1
    assert set(rec.gradient_dict()) == set(system.trainable)
    json.dumps(rec.as_dict())  # plain Python all the way down
