"""The names of the registered experiments, importable without the experiments themselves.

:data:`EXPERIMENTS` maps a name (``qeprop run NAME``) to the ``"module:attribute"`` of an
object implementing :class:`qeprop.experiments.Experiment`; :mod:`qeprop.experiments` imports
the object on first use, and the command line lists the names without that (heavy) import.
"""

from __future__ import annotations

__all__ = ["EXPERIMENTS"]

#: experiment name -> "module:attribute" of an object implementing ``Experiment``
EXPERIMENTS: dict[str, str] = {
    "phase-recognition": "qeprop.experiments.phase_recognition:EXPERIMENT",
    "gradient-quality": "qeprop.experiments.gradient_quality:EXPERIMENT",
    "phase-exploration": "qeprop.experiments.unsupervised:PHASE_EXPLORATION",
    "sensitivity": "qeprop.experiments.unsupervised:SENSITIVITY",
    "kitaev-sensor": "qeprop.experiments.kitaev_sensor:EXPERIMENT",
    "tfim-network": "qeprop.experiments.tfim_network:EXPERIMENT",
    "oscillator-network": "qeprop.experiments.oscillator_network:EXPERIMENT",
}
