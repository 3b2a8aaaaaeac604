"""The chain-plus-sensor gradient problem for the dmrg backend: the sensor near the chain's middle.

The same 51 trainable couplings, outputs and loss as ``chain_sensor_problem.py``, but the 2-qubit
sensor (qubits ``N, N+1``) couples to the chain sites ``N/2 - 1`` and ``N/2`` of the open
cluster-Ising chain, and the state is ``{"kind": "ground", "method": "dmrg"}`` with the given
bond dimension and cutoff. The dmrg backend orders the sites so that the sensor sits next to the
sites it couples to.

Usage::

    python benchmarks/dmrg_sensor_problem.py 64 p64.json [--bond-dim 64] [--cutoff 1e-10]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from chain_sensor_problem import chain_sensor_problem


def dmrg_sensor_problem(
    n_sites: int, bond_dim: int = 64, cutoff: float = 1e-10, seed: int = 5
) -> dict[str, Any]:
    """The problem (a dict) with the sensor on chain sites ``n_sites // 2 - 1, n_sites // 2``."""
    prob = chain_sensor_problem(n_sites, "dmrg", seed)
    c = n_sites // 2 - 1
    moved = {"0": str(c), "1": str(c + 1)}
    for term in prob["terms"]:
        if "param" in term:  # a sensor coupling: chain sites 0, 1 move to c, c + 1
            parts = term["pauli"].split()
            term["pauli"] = " ".join(
                p[0] + moved[p[1:]] if int(p[1:]) < n_sites else p for p in parts
            )
    prob["state"].update({"bond_dim": bond_dim, "cutoff": cutoff})
    return prob


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sites", type=int, help="chain length N (N + 2 qubits)")
    ap.add_argument("out", help="output JSON file")
    ap.add_argument("--bond-dim", type=int, default=64)
    ap.add_argument("--cutoff", type=float, default=1e-10)
    args = ap.parse_args()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(dmrg_sensor_problem(args.sites, args.bond_dim, args.cutoff), f)


if __name__ == "__main__":
    main()
