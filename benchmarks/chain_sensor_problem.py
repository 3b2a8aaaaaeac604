"""The large-system gradient problem: an N-site cluster-Ising chain with a 2-qubit sensor.

A 2-qubit sensor on qubits ``N, N+1`` is coupled to chain sites 0 and 1 through every product of
single-qubit Paulis (36 couplings), has 6 single-qubit and 9 two-qubit terms (51 trainable
couplings in all), and reads out three Z-basis projectors with an MSE loss towards
``(1, 0, 0)``. ``N = 20`` gives the 22-qubit problem.

Usage::

    python benchmarks/chain_sensor_problem.py 20 p22.json [--method matrix-free]
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any


def chain_sensor_problem(n_sites: int, method: str | None = None, seed: int = 5) -> dict[str, Any]:
    """The problem file (as a dict) for a chain of ``n_sites`` sites (``n_sites + 2`` qubits)."""
    rnd = random.Random(seed)
    s1, s2 = n_sites, n_sites + 1
    terms: list[dict[str, Any]] = []
    for j in range(n_sites):
        if 0 < j < n_sites - 1:
            terms.append({"pauli": f"Z{j - 1} X{j} Z{j + 1}", "coeff": 1.2})
        terms.append({"pauli": f"X{j}", "coeff": -1.0})
        if j < n_sites - 1:
            terms.append({"pauli": f"Z{j} Z{j + 1}", "coeff": -1.5})
    params: dict[str, float] = {}
    k = 0
    for c in (0, 1):
        for a in "XYZ":
            for s in (s1, s2):
                for b in "XYZ":
                    params[f"w{k}"] = rnd.uniform(-0.1, 0.1)
                    terms.append({"pauli": f"{a}{c} {b}{s}", "coeff": 1.0, "param": f"w{k}"})
                    k += 1
    for s in (s1, s2):
        for b in "XYZ":
            params[f"w{k}"] = rnd.gauss(0, 1)
            terms.append({"pauli": f"{b}{s}", "coeff": 1.0, "param": f"w{k}"})
            k += 1
    for a in "XYZ":
        for b in "XYZ":
            params[f"w{k}"] = rnd.gauss(0, 1)
            terms.append({"pauli": f"{a}{s1} {b}{s2}", "coeff": 1.0, "param": f"w{k}"})
            k += 1

    def proj(sa: int, sb: int) -> list[dict[str, Any]]:
        return [
            {"pauli": "", "coeff": 0.25},
            {"pauli": f"Z{s1}", "coeff": 0.25 * sa},
            {"pauli": f"Z{s2}", "coeff": 0.25 * sb},
            {"pauli": f"Z{s1} Z{s2}", "coeff": 0.25 * sa * sb},
        ]

    outs = [
        {"name": "p_cluster", "terms": proj(1, 1)},
        {"name": "p_ferro", "terms": proj(1, -1)},
        {"name": "p_para", "terms": proj(-1, -1)},
    ]
    state: dict[str, Any] = {"kind": "ground"}
    if method is not None:
        state["method"] = method
    return {
        "qubits": n_sites + 2,
        "params": params,
        "terms": terms,
        "outputs": outs,
        "loss": {"kind": "mse", "target": [1, 0, 0]},
        "state": state,
        "estimator": {"kind": "centered", "nudge": 0.4},
        "shots": None,
        "seed": 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sites", type=int, help="chain length N (N + 2 qubits)")
    ap.add_argument("out", help="output JSON file")
    ap.add_argument("--method", default=None, help="state.method to write into the file")
    args = ap.parse_args()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(chain_sensor_problem(args.sites, args.method), f)


if __name__ == "__main__":
    main()
