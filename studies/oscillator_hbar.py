"""How zero-point motion changes what an oscillator network learns: a sweep over ħ.

Runs ``qeprop run oscillator-network`` (through :func:`qeprop.runs.start_run`, one run directory
per ħ under ``OUT``) with the default settings and ``hbar`` in ``HBARS``, each beside its
classical twin (same initial springs, same batches, classical EP), then writes

* ``docs/results/oscillator-network/hbar.png``: final test loss of the quantum network and of
  its twin, the zero-point part of the outputs, and the relative distance between the springs
  the two learned, against ħ; and the learned springs of the smallest and largest ħ against the
  twin's;
* ``docs/results/oscillator-network/hbar.md``: the table behind it.

Usage::

    .venv/bin/python studies/oscillator_hbar.py OUT [KEY=VALUE ...]

``KEY=VALUE`` are further configuration overrides (TOML literals), e.g. ``steps=100``.
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from qeprop.runs import read_npz, start_run

HBARS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "results" / "oscillator-network"


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    out = Path(argv[0])
    overrides: dict[str, object] = {}
    for item in argv[1:]:
        key, _, value = item.partition("=")
        overrides[key] = tomllib.loads(f"v = {value}")["v"]
    rows = []
    springs = {}
    for hbar in HBARS:
        t0 = time.perf_counter()
        run = start_run(
            "oscillator-network", {**overrides, "hbar": hbar}, out / f"hbar-{hbar:g}",
            progress=False,
        )  # fmt: skip
        final = json.loads((run / "summary.json").read_text())["final"]
        res = read_npz(run / "results.npz")
        springs[hbar] = (res["params"], res["twin_params"])
        rows.append((hbar, final, time.perf_counter() - t0))
        print(
            f"hbar {hbar:g}: test loss {final['test_loss']:.4g} (twin "
            f"{final['twin_test_loss']:.4g}), zero-point {final['zero_point']:.4g}, springs "
            f"differ by {final['spring_difference']:.3g}",
            flush=True,
        )
    DOCS.mkdir(parents=True, exist_ok=True)
    cmd = "studies/oscillator_hbar.py OUT " + " ".join(argv[1:])
    lines = [
        "| ħ | test loss (initial → final) | reduction | twin test loss (initial → final) "
        "| zero-point part of y | spring difference | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for hbar, f, secs in rows:
        lines.append(
            f"| {hbar:g} | {f['initial_test_loss']:.4g} → {f['test_loss']:.4g} | "
            f"{f['test_loss_reduction']:.3g}× | {f['initial_twin_test_loss']:.4g} → "
            f"{f['twin_test_loss']:.4g} | {f['zero_point']:.4g} | "
            f"{f['spring_difference']:.3g} | {secs:.0f} |"
        )
    (DOCS / "hbar.md").write_text(
        f"Produced by `.venv/bin/python {cmd}`.\n\n" + "\n".join(lines) + "\n"
    )
    _figure(rows, springs)


def _figure(rows: list, springs: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = np.array([r[0] for r in rows])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.loglog(h, [r[1]["test_loss"] for r in rows], "o-", label="quantum network (QEP)")
    ax.loglog(h, [r[1]["twin_test_loss"] for r in rows], "s--", label="classical twin (EP)")
    ax.loglog(h, [r[1]["zero_point"] for r in rows], "^:", label="zero-point part of y")
    ax.set_xlabel("ħ")
    ax.set_ylabel("test loss / ⟨Δr²⟩ fluctuation")
    ax.legend(fontsize=8)
    ax.set_title("loss after training")
    ax = axes[1]
    ax.semilogx(h, [r[1]["spring_difference"] for r in rows], "o-")
    ax.set_xlabel("ħ")
    ax.set_ylabel("|k_quantum - k_classical| / |k_classical|")
    ax.set_title("what is learned")
    ax = axes[2]
    for hbar in (h[0], h[-1]):
        q, c = springs[hbar]
        ax.plot(c, q, "o", label=f"ħ = {hbar:g}")
    lim = [0, max(float(np.max(v)) for pair in springs.values() for v in pair) * 1.05]
    ax.plot(lim, lim, "k:", lw=0.8)
    ax.set_xlabel("spring learned by the classical twin")
    ax.set_ylabel("spring learned by the quantum network")
    ax.legend(fontsize=8)
    ax.set_title("learned springs")
    fig.tight_layout()
    fig.savefig(DOCS / "hbar.png", dpi=120)


if __name__ == "__main__":
    main(sys.argv[1:])
