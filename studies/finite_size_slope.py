"""Finite-size shift of the sensitivity optimum: where |d<X0 X4>/dg_x| peaks on the open chain.

Exact diagonalisation (4 lowest levels, ground state) of the 10-site open cluster-Ising chain at
g_zxz = -0.5 on a g_x grid of spacing 0.025, for several g_zz; prints the peak position next to
the exact (infinite-chain) critical g_x values of the same cut. Usage:
``.venv/bin/python studies/finite_size_slope.py [LENGTH]``.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.sparse.linalg import eigsh

from qeprop.models import cluster_ising
from qeprop.pauli import as_pauli_sum


def main(length: int = 10) -> None:
    h = cluster_ising.hamiltonian(length, boundary="open")
    op = as_pauli_sum("X0 X4").to_sparse(length)
    gxs = np.linspace(-2, 2, 161)
    for gzz in (-1.5, -0.85, 0.0, 0.5, 1.0):
        ys = []
        for gx in gxs:
            ev, v = eigsh(h.sparse(np.array([-0.5, gzz, gx])), k=4, which="SA", tol=1e-10)
            g = v[:, np.argmin(ev)]
            ys.append(g @ (op @ g))
        slope = np.abs(np.gradient(np.array(ys), gxs))
        exact = [gzz + 0.5, 0.5 - gzz] + ([-0.5] if abs(gzz) < 1 else [])
        print(
            f"g_zz = {gzz:+.2f}: 10-site peak of |dy/dg_x| = {slope.max():.2f} at "
            f"g_x = {gxs[np.argmax(slope)]:+.3f}; exact critical g_x: {exact}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
