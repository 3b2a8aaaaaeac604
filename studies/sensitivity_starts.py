"""Sensitivity task from random starting points: QEP/exact cosine, loss rises, end distances.

Runs the ``sensitivity`` experiment in memory (default settings, or ``KEY=VALUE`` overrides as
TOML literals) from ``N`` starts drawn uniformly from ``[-1.8, 1.8]^3`` (seed 7; pairs closer
than 0.2 are moved 0.5 apart) and prints one line per run: the smallest cosine between the QEP
gradient and exact linear response, the largest rise of the exact loss between steps, the
start and end loss, the end point, its distance to the exact critical lines and to the 10-site
slope maximum. Usage::

    .venv/bin/python studies/sensitivity_starts.py [N] [KEY=VALUE ...]
    .venv/bin/python studies/sensitivity_starts.py 8 estimator='"positive"' lr_decay=0
"""

from __future__ import annotations

import sys
import tomllib

import numpy as np

from qeprop.experiments.unsupervised import SENSITIVITY


def run(initial: list[float], overrides: dict[str, object]) -> str:
    config = SENSITIVITY.resolve({**overrides, "initial": initial, "cut_points": 2})
    state = SENSITIVITY.init(config)
    losses = [SENSITIVITY.evaluate(config, state)["loss"]]
    cosines = []
    for _ in range(config["steps"]):
        state = SENSITIVITY.step(config, state)
        rec = SENSITIVITY.evaluate(config, state)
        losses.append(rec["loss"])
        cosines.append(rec["gradient_cosine"])
    final = SENSITIVITY.finish(config, state)[0]
    start = ", ".join(f"{x:+.2f}" for x in initial)
    end = f"({final['g_x1']:+.3f}, {final['g_x2']:+.3f}, {final['g_zz']:+.3f})"
    return (
        f"start ({start}): min cos {min(cosines):.4f}, max loss rise "
        f"{max(np.diff(losses)):.3f}, loss {losses[0]:.2f} -> {losses[-1]:.2f}, end {end}, "
        f"boundary {max(final['boundary_distance']):.3f}, peak {max(final['peak_distance']):.3f}"
    )


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv and "=" not in argv[0] else 8
    overrides = {}
    for item in argv[1 if argv and "=" not in argv[0] else 0 :]:
        key, _, value = item.partition("=")
        overrides[key] = tomllib.loads(f"v = {value}")["v"]
    rng = np.random.default_rng(7)
    for _ in range(count):
        g1, g2, zz = rng.uniform(-1.8, 1.8, 3)
        if abs(g1 - g2) < 0.2:
            g2 = g1 + 0.5
        print(run([round(float(v), 3) for v in (g1, g2, zz)], overrides), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
