"""Metrics of a sensor that classifies phases by the probabilities of its readouts.

A trained sensor returns, for each of ``N`` test points, the probabilities ``p (N, K)`` of its
``K`` readout outcomes, one per class; the target of a point of class ``c`` is the one-hot vector
``e_c``. These helpers are shared by the supervised experiments; they are pure functions of
arrays.
"""

from __future__ import annotations

import numpy as np

from ..errors import ProblemError

__all__ = ["classification_metrics", "one_hot"]


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(N, n_classes)`` one-hot rows ``e_c`` for integer ``labels (N,)``."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ProblemError(f"labels must lie in 0..{n_classes - 1}, got {np.unique(labels)}")
    return np.eye(n_classes)[labels]


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Max-choice and single-shot accuracy and the mean one-hot MSE loss.

    Parameters
    ----------
    probs:
        ``(N, K)`` readout probabilities ``p_{ik}`` (exact expectation values of the projectors).
    labels:
        ``(N,)`` true classes ``c_i``.

    Returns
    -------
    dict
        ``max_choice_accuracy`` = fraction of points with ``argmax_k p_ik = c_i`` (the answer after
        many queries); ``single_shot_accuracy`` = mean ``p_{i c_i}`` (the probability that one
        measurement names the right class); ``loss`` = mean ``Σ_k (p_ik - δ_{k c_i})²`` (the
        training loss, a sum over outputs); ``n_correct`` = number of max-choice hits.
    """
    probs = np.asarray(probs, dtype=float)
    labels = np.asarray(labels, dtype=int)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ProblemError(
            f"probs must be (N, K) with N = {len(labels)} labels, got shape {probs.shape}"
        )
    rows = np.arange(len(labels))
    hits = np.argmax(probs, axis=1) == labels
    target = one_hot(labels, probs.shape[1])
    return {
        "max_choice_accuracy": float(np.mean(hits)),
        "single_shot_accuracy": float(np.mean(probs[rows, labels])),
        "loss": float(np.mean(np.sum((probs - target) ** 2, axis=1))),
        "n_correct": int(np.sum(hits)),
    }
