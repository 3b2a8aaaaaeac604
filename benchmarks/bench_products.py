"""Matrix-free products against CSR products, and the products one centred gradient needs.

A matrix-free gradient's time is, to first order, (products per gradient) × (time per product):
this comparison measures both factors on the chain-sensor problem (:mod:`chain_sensor_problem`)
so that the time of a gradient at a size, and the floor under it, can be read off.

Measurements, per qubit count:

* one product ``H v`` of the full Hamiltonian with a random complex vector: the ``matrix-free``
  kernel (``PauliKernel.apply`` into a reused output) with 1 and 2 threads, and ``scipy.sparse``
  CSR ``H @ v`` (the ``sparse`` backend's product; baseline) where its matrix fits in memory;
* the products each solve of one centred gradient spends on the ``matrix-free`` backend (free
  ground state with its gap level, nudged states at ``±β ε`` warm-started from the free state),
  from the solver's own count, at sizes up to ``--count-qubits``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial
from itertools import pairwise

import numpy as np
from chain_sensor_problem import chain_sensor_problem
from common import Report, bench, fmt_time

from qeprop.errors import QEPError
from qeprop.measurement import expectations
from qeprop.memory import check_memory
from qeprop.problem import Problem, parse_problem
from qeprop.solvers import solve
from qeprop.solvers.exact import kernel_for

DESCRIPTION = "matrix-free vs CSR product time and products per centred gradient (chain sensor)"
#: the issue's time targets of one centred gradient (seconds), to set against the product floor
TARGETS = {22: 60.0, 24: 240.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--product-qubits",
        default="14,16,18,20,22,24",
        help="products: comma-separated qubit counts (even, >= 4; default 14-24)",
    )
    parser.add_argument(
        "--csr-qubits",
        type=int,
        default=20,
        help="CSR baseline up to this many qubits (default 20; its matrix takes minutes beyond)",
    )
    parser.add_argument(
        "--count-qubits",
        type=int,
        default=20,
        help="count the products of a centred gradient up to this many qubits (default 20)",
    )


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise SystemExit(f"--product-qubits: not a list of integers: {text!r}") from None
    if not sizes or any(n < 4 or n % 2 for n in sizes):
        raise SystemExit(f"--product-qubits: even qubit counts >= 4 expected, got {text!r}")
    return sizes


def _problem(n: int) -> Problem:
    return parse_problem(chain_sensor_problem(n - 2), f"chain sensor, {n} qubits")


def _gradient_products(n: int) -> tuple[int, int, int]:
    """Products spent by the free solve and the two nudged solves of one centred gradient."""
    prob = _problem(n)
    system, beta = prob.system, float(prob.options.nudge)
    # Lanczos at every size (tiny problems would otherwise be solved densely)
    spec = replace(prob.options.state, method="matrix-free", dense_max_dim=1)
    values = system.full_values(prob.values)
    free = solve(system.full, values, spec)
    ident, coef = system.output_coefficients
    assert prob.loss is not None
    _, eps = prob.loss(expectations(system.full, free, ident, coef))
    nudged = []
    for sign in (1.0, -1.0):
        v = values.copy()
        v[system.output_index] += sign * beta * eps
        nudged.append(solve(system.full, v, spec, free).matvecs)
    return free.matvecs, nudged[0], nudged[1]


def run(report: Report, args: argparse.Namespace) -> None:
    repeats: int = args.repeats
    sizes = _sizes(args.product_qubits)
    if args.quick:
        sizes = [n for n in sizes if n <= 16] or sizes[:1]
    count_max = min(args.count_qubits, 16) if args.quick else args.count_qubits
    report.intro.append(
        "Problem: `benchmarks/chain_sensor_problem.py`, an (N-2)-site open cluster-Ising chain "
        "with a 2-qubit sensor (N qubits, 51 couplings; sensor terms with one Y make `H` complex), "
        "centred nudge 0.4, ground state."
    )
    report.repeats_note = f"median of {repeats} timed products after 1 untimed warm-up"
    rng = np.random.default_rng(7)
    product_1: dict[int, float] = {}
    rows: list[list[str]] = []
    for n in sizes:
        report.stage(f"[p] products at {n} qubits")
        prob = _problem(n)
        ham = prob.system.full
        values = prob.system.full_values(prob.values)
        d = ham.dim
        try:  # input, output and the random draws
            check_memory(4 * 16 * d, f"a product at {n} qubits (4 complex vectors)")
        except QEPError as exc:
            report.note(f"{n} qubits: skipped ({exc})")
            continue
        v = rng.standard_normal(d) + 1j * rng.standard_normal(d)
        out = np.empty_like(v)
        kernel, coef = kernel_for(ham), ham.string_coefficients(values)
        csr_name = f"CSR product H @ v, {n} qubits"
        t_csr = None
        if n <= args.csr_qubits:
            try:  # builds the CSR structure, after estimating its memory
                h = ham.sparse(values)
            except QEPError as exc:
                report.note(f"{n} qubits: no CSR baseline ({str(exc).splitlines()[0]})")
            else:
                t_csr = bench(partial(h.__matmul__, v), repeats)
                report.add(csr_name, t_csr, f"nnz {h.nnz:,}")
                del h
        timings = {}
        for threads in (1, 2):
            t = bench(partial(kernel.apply, coef, v, out=out, threads=threads), repeats)
            timings[threads] = t
            report.add(
                f"matrix-free product, {n} qubits, {threads} thread{'s' if threads > 1 else ''}",
                t,
                f"{kernel.n_groups} X-mask groups, {kernel.n_strings} strings",
                baseline=csr_name if t_csr is not None else None,
            )
        product_1[n] = timings[1].median
        ns_per = 1e9 * timings[1].median / (d * kernel.n_groups)
        rows.append(
            [
                str(n),
                fmt_time(t_csr.median) if t_csr is not None else "-",
                fmt_time(timings[1].median),
                fmt_time(timings[2].median),
                f"{timings[1].median / timings[2].median:.2f}x",
                f"{ns_per:.2f} ns",
            ]
        )
        del v, out, prob, ham, kernel
    report.table(
        "Products",
        [
            "qubits",
            "CSR `H @ v`",
            "matrix-free, 1 thread",
            "2 threads",
            "1 / 2 threads",
            "per amplitude and group, 1 thread",
        ],
        rows,
    )

    counts: dict[int, tuple[int, int, int]] = {}
    for n in [n for n in sizes if n <= count_max]:
        report.stage(f"[c] products of one centred gradient at {n} qubits")
        try:
            counts[n] = _gradient_products(n)
        except QEPError as exc:  # e.g. more memory than this machine has
            report.note(f"{n} qubits: products not counted ({str(exc).splitlines()[0]})")
            break
        report.note(
            f"{n} qubits: free solve (ground + gap level) {counts[n][0]} products, nudged "
            f"+β {counts[n][1]}, nudged -β {counts[n][2]}"
        )
    if counts:
        largest = max(counts)
        total = sum(counts[largest])
        totals = [sum(c) for _, c in sorted(counts.items())]
        growing = all(a <= b for a, b in pairwise(totals))
        report.check(
            "products per gradient do not fall with size (so the largest count is a floor for "
            "larger sizes)",
            f"{' <= '.join(map(str, totals))}: {'OK' if growing else 'NOT MONOTONE'}",
        )
        report.table(
            "Products per centred gradient (matrix-free backend, from the solver's count)",
            ["qubits", "free (ground + gap)", "nudged +β", "nudged -β", "total"],
            [[str(n), *map(str, c), str(sum(c))] for n, c in sorted(counts.items())],
        )
        for n, target in TARGETS.items():
            if n in product_1 and growing and n >= largest:
                floor = total * product_1[n]
                report.value(
                    f"products alone at {n} qubits, 1 thread ({total} products as counted at "
                    f"{largest} qubits × {fmt_time(product_1[n])}) against the {target:g} s "
                    "target of a whole gradient",
                    f"{fmt_time(floor)} ({floor / target:.2f} × the target)",
                )
    report.describe(
        "*CSR product*: `ham.sparse(values) @ v` (scipy CSR, complex, the `sparse` backend's "
        "operator).",
        "*matrix-free product*: `kernel_for(ham).apply(coef, v, out=out, threads=T)`.",
        "*products per gradient*: `Equilibrium.matvecs` of `qeprop.solvers.solve` with "
        "`method='matrix-free'` for the free state (random start; its gap level to 1 % of the "
        "gap) and the two nudged states (warm-started from the free state), all to the default "
        "tolerance 1e-12 |E|. Where the counts do not fall with size (checked), the count at the "
        "largest counted size times the product time at a larger size is a floor under that "
        "size's gradient: it leaves out the Lanczos steps, the first touch of the Lanczos "
        "vectors, start-up and the measurements.",
    )
