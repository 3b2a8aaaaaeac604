"""Ready-made model Hamiltonians and their exactly known properties (phase diagrams, energies).

Each model is a submodule (import it explicitly, e.g. ``from qeprop.models import cluster_ising``);
this package imports nothing on its own so that ``import qeprop`` stays light.
"""
