"""Command line.

``qeprop gradient FILE [--estimator K] [--nudge B] [--shots M] [--seed S] [--json] [--no-progress]``
``qeprop run EXPERIMENT --out DIR [--config FILE] [--set KEY=VALUE ...] [--no-progress]``
``qeprop run EXPERIMENT --help`` (the experiment's configuration keys, types, defaults, meanings)
``qeprop run --resume DIR [--force-version] [--no-progress]``
``qeprop plot DIR... [--out PLOTDIR] [--cache DIR] [--no-background]``
``qeprop sweep SWEEP.toml --out DIR [--workers N | --scheduler ADDR] [--dry-run] [--no-progress]``
``qeprop map [RUN_DIR] [--set KEY=VALUE ...] [--cache DIR] [--plot FILE] [--no-progress]``

Errors in the input (and failed file operations, such as a full disk) are reported in one line
naming their place, with exit status 2. An interrupted run (Ctrl-C, ``SIGTERM``) is checkpointed
and exits with status 130; Ctrl-C at any other moment exits with status 130 too, in one line.
A sweep in which some run failed exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from . import __version__
from ._registry import EXPERIMENTS
from .errors import ProblemTooLargeError, QEPError, QEPWarning, SolverError

if TYPE_CHECKING:
    from .gradients import GradientRecord
    from .maps import MapSpec

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qeprop", description="Quantum Equilibrium Propagation.")
    p.add_argument("--version", action="version", version=f"qeprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    g = sub.add_parser(
        "gradient",
        help="estimate dL/dθ for a problem file (JSON or TOML)",
        description="Estimate the training gradient of every trainable parameter of a problem.",
    )
    g.add_argument("file", help="problem file (.json or .toml)")
    g.add_argument("--estimator", help="positive, negative, centered, cost_observable, "
                   "linear_response or finite_difference (overrides the file)")  # fmt: skip
    g.add_argument("--nudge", type=float, help="nudge strength β (overrides the file)")
    g.add_argument(
        "--shots", type=int, help="measurement shots M per observable (overrides the file)"
    )
    g.add_argument("--seed", type=int, help="random seed for shot noise (overrides the file)")
    g.add_argument(
        "--method",
        help="equilibrium backend: auto, dense, sparse, matrix-free or dmrg (qubits), gaussian "
        "(oscillator modes) (overrides state.method)",
    )
    g.add_argument(
        "--threads",
        type=int,
        help="threads of the matrix-free backend (overrides state.threads; default 1)",
    )
    g.add_argument(
        "--symmetry",
        choices=("none", "auto"),
        help="auto: solve ground states through the sectors of the Pauli symmetries of H "
        "(overrides state.symmetry; default none)",
    )
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.add_argument(
        "--no-progress",
        action="store_true",
        help="no live line of the solves' progress (shown on a terminal's stderr only)",
    )

    r = sub.add_parser(
        "run",
        add_help=False,
        help="run an experiment into a new run directory, or resume one",
        description="Run an experiment into a new run directory (config.toml, provenance.json, "
        "metrics.jsonl, checkpoints, results.npz, summary.json), or resume an interrupted run. "
        "'qeprop run EXPERIMENT --help' lists the experiment's configuration keys.",
        epilog="examples: qeprop run phase-recognition --out runs/xyz --set steps=500 "
        "--set couplings=xz;  qeprop run --resume runs/xyz;  qeprop run sensitivity --help",
    )
    r.add_argument(
        "-h",
        "--help",
        action="store_true",
        help="show this help (with EXPERIMENT: its configuration keys) and exit",
    )
    r.add_argument(
        "experiment",
        nargs="?",
        help=f"{', '.join(EXPERIMENTS)} (or 'module:attribute' of your own)",
    )
    r.add_argument("--out", metavar="DIR", help="new run directory (must not exist)")
    r.add_argument("--config", metavar="FILE", help="TOML file of configuration values")
    r.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="configuration value (TOML literal or plain string; 'none' unsets an optional "
        "value), after --config; repeatable",
    )
    r.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    r.add_argument(
        "--force-version",
        action="store_true",
        help="with --resume: continue a run started with another qeprop version (recorded)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(run_help=r.format_help)

    pl = sub.add_parser(
        "plot",
        help="plot saved run directories",
        description="Draw the figures of one or more run directories (from their saved files).",
    )
    pl.add_argument("dirs", nargs="+", metavar="DIR",
                    help="run directories, or one sweep directory (qeprop sweep)")  # fmt: skip
    pl.add_argument(
        "--out",
        metavar="PLOTDIR",
        help="where to write PNG files (default: DIR/plots for one run, ./plots for several)",
    )
    pl.add_argument("--cache", metavar="DIR", help="map cache (default: $QEPROP_CACHE or "
                    "~/.cache/qeprop)")  # fmt: skip
    pl.add_argument(
        "--no-background",
        action="store_true",
        help="draw trajectories without the phase-diagram map (never computes one)",
    )

    sw = sub.add_parser(
        "sweep",
        help="run an experiment over a grid of settings (a sweep file), on Dask",
        description="Run every point of a sweep file (an experiment, a base configuration and the "
        "settings to vary: grids and zipped lists) as its own run directory DIR/runs/NAME, on a "
        "local Dask cluster or an existing one. DIR/results.csv gets one row per run (varied "
        "values, status, error, final metrics). Starting the same command again skips finished "
        "runs and resumes started ones. Exit status: 0 all runs done, 1 some run failed, "
        "2 an error in the input, 130 interrupted. See docs/sweeps.md.",
        epilog="examples: qeprop sweep examples/sweeps/smoke.toml --out runs/smoke --workers 2;  "
        "qeprop sweep examples/sweeps/phase-recognition.toml --out runs/phase-recognition "
        "--scheduler tcp://head-node:8786;  qeprop plot runs/smoke",
    )
    sw.add_argument("file", metavar="SWEEP.toml", help="sweep file")
    sw.add_argument("--out", metavar="DIR",
                    help="sweep directory (new, or one this sweep file started)")  # fmt: skip
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", metavar="N", type=int,
                       help="worker processes of the local cluster (default: one per core, at "
                       "most one per run; one thread each)")  # fmt: skip
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://head-node:8786 (its "
                       "workers must see DIR at the same path)")  # fmt: skip
    sw.add_argument("--dry-run", action="store_true",
                    help="check the sweep file and list its runs; run nothing")  # fmt: skip
    sw.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress bar (a line per finished run is still printed)",
    )

    m = sub.add_parser(
        "map",
        help="map an expectation value (or its derivative) over a slice of couplings, cached",
        description="Compute, or find in the cache, a phase-diagram map of the cluster-Ising "
        "chain: <observable> (or its derivative) on a grid of two couplings with the third "
        "fixed, plus the exact phase labels and critical lines. With RUN_DIR, the map that run's "
        "plots use. Prints the cached file.",
        epilog="examples: qeprop map runs/explore-1;  qeprop map --set derivative=g_x "
        "--set resolution=81 --plot dxx.png",
    )
    m.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a phase-exploration or "
                   "sensitivity run directory")  # fmt: skip
    m.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="map setting (chain_length, boundary, fixed, x, y, x_range, y_range, "
                   "resolution, observable, derivative, degeneracy_tol, tol)")  # fmt: skip
    m.add_argument("--cache", metavar="DIR", help="cache directory")
    m.add_argument("--plot", metavar="FILE", help="also draw the map into this PNG file")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _format_order(order: list[int]) -> str:
    from .solvers.dmrg import format_order

    return format_order(order)


def _register(ham: object) -> tuple[str, str]:
    """``("6 qubits", "qubits")`` or ``("3 modes (ħ = 1)", "modes")``: the size of a problem."""
    n_modes = getattr(ham, "n_modes", None)
    if n_modes is not None:
        return f"{n_modes} modes (ħ = {getattr(ham, 'hbar', 1.0):g})", "modes"
    return f"{getattr(ham, 'n_qubits', '?')} qubits", "qubits"


def _fmt_pm(v: float, se: float) -> str:
    return f"{v: .8g}" + (f" ± {se:.2g}" if se > 0 else "")


def _gradient(args: argparse.Namespace, out: TextIO) -> int:
    from .gradients import ESTIMATORS, estimate_gradient
    from .problem import load_problem

    t_start = time.perf_counter()
    prob = load_problem(args.file)
    estimator = args.estimator or prob.estimator
    if estimator not in ESTIMATORS:
        raise QEPError(f"unknown estimator {estimator!r}; choose one of {list(ESTIMATORS)}",
                       where="--estimator")  # fmt: skip
    changes: dict[str, object] = {}
    if args.nudge is not None:
        if not (math.isfinite(args.nudge) and args.nudge > 0):
            raise QEPError(f"must be a finite number > 0, got {args.nudge}", where="--nudge")
        changes["nudge"] = args.nudge
    if args.shots is not None:
        if args.shots < 1:
            raise QEPError(f"must be a positive integer, got {args.shots}", where="--shots")
        changes["shots"] = args.shots
    if args.seed is not None and args.seed < 0:
        raise QEPError(f"must be a non-negative integer, got {args.seed}", where="--seed")
    spec = prob.options.state
    for flag, key, value in (
        ("--method", "method", args.method),
        ("--threads", "threads", args.threads),
        ("--symmetry", "symmetry", args.symmetry),
    ):
        if value is not None:
            try:
                spec = spec.with_(**{key: value})
            except QEPError as e:
                raise QEPError(e.message, where=flag) from None
    if spec is not prob.options.state:
        changes["state"] = spec
    opts = replace(prob.options, **changes) if changes else prob.options  # type: ignore[arg-type]
    seed = args.seed if args.seed is not None else prob.seed
    if opts.shots is not None and seed is None:
        seed = 0
    from .solvers import observe_progress

    watcher = _SolveProgress.on_terminal(not args.no_progress)
    try:
        with observe_progress(watcher):
            rec = estimate_gradient(
                prob.system, prob.values, prob.loss, estimator=estimator, options=opts, seed=seed
            )
    except QEPError as e:  # solver failures belong to the state, memory to the problem size
        field = e.where
        if field is None:
            field = "problem"
            if isinstance(e, SolverError):
                field = "state"
            elif isinstance(e, ProblemTooLargeError):
                field = _register(prob.system.hamiltonian)[1]
        raise type(e)(e.message, where=f"{prob.source}: {field}") from None
    finally:
        if watcher is not None:
            watcher.close()
    sectors = None
    if opts.state.symmetry == "auto":
        from .solvers.sectors import sector_form

        form = sector_form(prob.system.full)
        sectors = form.n_sectors if form is not None else 1
    site_order = None
    if rec.backend == "dmrg":
        from .solvers.dmrg import site_order as _site_order

        site_order = list(_site_order(prob.system.full))
    if args.json:
        obj = {
            "loss": rec.loss,
            "outputs": rec.outputs_dict(),
            "gradient": rec.gradient_dict(),
            "stderr": dict(zip(rec.params, rec.stderr.tolist(), strict=True)),
            "outputs_stderr": dict(zip(rec.output_names, rec.outputs_stderr.tolist(), strict=True)),
            "estimator": rec.estimator,
            "nudge": rec.nudge,
            "contrastive": rec.contrastive,
            "preparations": rec.preparations,
            "shots": rec.shots,
            "ledger": [ph.as_dict() for ph in rec.ledger],
            "backend": rec.backend,
            "symmetry_sectors": sectors,
            "site_order": site_order,
        }
        out.write(json.dumps(obj) + "\n")
        return 0
    sysm = prob.system
    st = opts.state
    state = st.kind + (f" (T = {st.temperature:g})" if st.kind == "thermal" else "")
    state += f" (level {st.level})" if st.kind == "eigenstate" else ""
    if st.kind != "thermal" and rec.degeneracy > 1:
        state += f", {rec.degeneracy}-fold degenerate (equal-weight mixture)"
    lines = [
        f"problem    {prob.source}: {_register(sysm.hamiltonian)[0]}, "
        f"{len(sysm.hamiltonian.terms)} terms, {len(sysm.trainable)} trainable parameters",
        f"state      {state}, gap {rec.gap:.4g}",
        f"backend    {rec.backend}"
        + (f", through {sectors} symmetry sectors" if sectors else "")
        + f" ({time.perf_counter() - t_start:.2f} s)",
        *(
            [f"sites      MPS order of the qubits: {_format_order(site_order)}"]
            if site_order
            else []
        ),
        f"estimator  {rec.estimator}"
        + (f" (nudge {rec.nudge:g})" if rec.nudge else "")
        + f", {rec.preparations} preparations, {rec.shots} shots",
        *_ledger_lines(rec),
        f"loss       {rec.loss:.8g}",
        *([f"contrastive {rec.contrastive:.8g}"] if rec.contrastive is not None else []),
        "outputs",
    ]
    w = max([len(n) for n in (*rec.output_names, *rec.params)] + [4])
    for n, y, se in zip(rec.output_names, rec.outputs, rec.outputs_stderr, strict=True):
        lines.append(f"  {n:<{w}} {_fmt_pm(y, se)}")
    lines.append("gradient")
    for n, g, se in zip(rec.params, rec.gradient, rec.stderr, strict=True):
        lines.append(f"  {n:<{w}} {_fmt_pm(g, se)}")
    out.write("\n".join(lines) + "\n")
    return 0


def _ledger_lines(rec: GradientRecord) -> list[str]:
    """One line per phase: its settings and shots, and the observables taken exact."""
    lines = []
    for ph in rec.ledger:
        parts = []
        if ph.settings:
            shots = {m for _, m, _ in ph.settings}
            each = f" x {shots.pop()} shots" if len(shots) == 1 else ""
            bases = ", ".join(b for b, _, _ in ph.settings)
            n = len(ph.settings)
            parts.append(f"{n} setting{'s' if n > 1 else ''} ({bases}){each}")
        if ph.exact and rec.shots:
            parts.append("exact: " + ", ".join(ph.exact))
        if parts:
            lines.append(f"measured   {ph.phase}: " + "; ".join(parts))
    return lines


def _print_summary(run_dir: Path, out: TextIO) -> None:
    from .runs import SUMMARY, _read_json_object

    summary = _read_json_object(run_dir / SUMMARY)
    out.write(
        f"{run_dir}: {summary.get('experiment')} finished after {summary.get('steps')} steps\n"
    )
    final = summary.get("final")
    if isinstance(final, dict):
        scalars = {k: v for k, v in final.items() if isinstance(v, int | float | str)}
        w = max([len(k) for k in scalars] + [4])
        for k, v in scalars.items():
            text = f"{v:.6g}" if isinstance(v, float) else str(v)
            out.write(f"  {k:<{w}} {text}\n")


def _run(args: argparse.Namespace, argv: Sequence[str] | None, out: TextIO) -> int:
    from .runs import load_config, parse_overrides, resume_run, start_run

    progress = not args.no_progress
    if args.help:
        out.write(args.run_help())
        if args.experiment:
            out.write("\n" + _config_help(args.experiment))
        return 0
    if args.force_version and args.resume is None:
        raise QEPError("only applies to --resume", where="--force-version")
    if args.resume is not None:
        given = {
            "EXPERIMENT": args.experiment,
            "--out": args.out,
            "--config": args.config,
            "--set": args.overrides,
        }
        for flag, value in given.items():
            if value:
                raise QEPError(
                    "cannot be combined with --resume (a run keeps its configuration)", where=flag
                )
        run_dir = resume_run(args.resume, progress=progress, force_version=args.force_version)
    else:
        overrides: dict[str, object] = {}
        if args.config is not None:
            overrides.update(load_config(args.config))
        overrides.update(parse_overrides(args.overrides))
        name = args.experiment
        if name is None:
            name = overrides.get("experiment")
            if not isinstance(name, str):
                raise QEPError(
                    "name the experiment to run (e.g. phase-recognition), or give --resume DIR",
                    where="EXPERIMENT",
                )
        if args.out is None:
            raise QEPError("give a new run directory with --out DIR", where="--out")
        command_line = sys.argv if argv is None else ["qeprop", *argv]
        run_dir = start_run(name, overrides, args.out, command_line=command_line, progress=progress)
    _print_summary(run_dir, out)
    return 0


def _config_help(name: str) -> str:
    """The configuration keys of experiment ``name``: type, default and meaning of each."""
    from .config import Config, describe
    from .experiments import get_experiment

    experiment = get_experiment(name)
    head = (
        f"configuration of {name} (--set KEY=VALUE, or KEY = VALUE lines in --config FILE; "
        "'none' unsets an optional value):\n"
    )
    config_type = getattr(experiment, "Config", None)
    if isinstance(config_type, type) and issubclass(config_type, Config):
        return head + describe(config_type) + "\n"
    defaults = getattr(experiment, "defaults", None)
    if not callable(defaults):
        return head + "  (this experiment does not list its keys)\n"
    items = defaults()
    w = max([len(str(k)) for k in items] + [3])
    return head + "".join(f"  {k!s:<{w}}  {v!r}\n" for k, v in items.items())


def _run_map_spec(run_dir: Path) -> MapSpec:
    """The map a run's trajectories are drawn over (its experiment's ``background``)."""
    from .runs import _read_run_config

    if not run_dir.is_dir():
        raise QEPError("no such run directory", where=str(run_dir))
    name, experiment, config = _read_run_config(run_dir)
    background = getattr(experiment, "background", None)
    if background is None:
        raise QEPError(f"experiment {name!r} has no phase-diagram map", where=str(run_dir))
    spec: MapSpec = background(config)
    return spec


class _SolveProgress:
    """A live stderr line over the solves of one gradient (a
    :class:`~qeprop.solvers.ProgressObserver`): solve number, state kind, backend and time; for
    the matrix-free Lanczos solver the current level, its products and its relative residual
    against the target at which it stops; for DMRG the half-sweeps, the bond dimension and the
    energy change from the previous half-sweep."""

    #: seconds between redraws of the line
    MININTERVAL = 0.1

    def __init__(self) -> None:
        from tqdm import tqdm

        self.solves = 0
        self.sweeps = 0
        self.energy = math.nan
        self.bar = tqdm(
            total=None,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            mininterval=self.MININTERVAL,
            desc="solving: ",
            bar_format="{desc}{elapsed}{postfix}",  # set_description appends ": "
        )

    @classmethod
    def on_terminal(cls, show: bool) -> _SolveProgress | None:
        """An instance when ``show`` and stderr is a terminal, else ``None``."""
        return cls() if show and sys.stderr.isatty() else None

    def solve_started(self, backend: str, kind: str, count: int = 1) -> None:
        first = self.solves + 1
        self.solves += count
        self.sweeps = 0
        self.energy = math.nan
        which = f"solve {first}" if count == 1 else f"solves {first}-{self.solves}"
        self.bar.set_postfix_str("", refresh=False)
        self.bar.set_description(f"{which} ({kind}, {backend})", refresh=True)

    def lanczos_step(self, level: int, products: int, residual: float, target: float) -> None:
        self.bar.set_postfix_str(
            f"level {level}, {products} products, residual {residual:.1e} → {target:.0e}",
            refresh=False,
        )
        self.bar.update(1)

    def dmrg_sweep(self, sites: int, energy: float, bond_dim: int) -> None:
        self.sweeps += 1
        change = abs(energy - self.energy)
        self.energy = energy
        self.bar.set_postfix_str(
            f"sweep {self.sweeps} ({sites}-site), bond dimension {bond_dim}"
            + (f", energy change {change:.1e}" if math.isfinite(change) else ""),
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _map_progress(show: bool) -> tuple[object, object]:
    """(callback, bar) of a tqdm bar over map rows, or (None, None)."""
    if not show or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, desc="map", unit="row", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar


def _get_map(spec: MapSpec, cache: str | None, progress: bool) -> tuple[dict, Path]:
    import time

    from .mapcache import cached_map, map_path

    path = map_path(spec, cache)
    if not path.exists():
        sys.stderr.write(f"qeprop: computing the map {spec.title()} (cached in {path})\n")
    callback, bar = _map_progress(progress)
    started = time.perf_counter()
    try:
        data, path, computed = cached_map(spec, cache, progress=callback)  # type: ignore[arg-type]
    finally:
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
    if computed:
        sys.stderr.write(f"qeprop: map computed in {time.perf_counter() - started:.0f} s\n")
    assert data is not None
    return data, path


def _map(args: argparse.Namespace, out: TextIO) -> int:
    from .maps import MapSpec
    from .runs import parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.run_dir:
        fields = _run_map_spec(Path(args.run_dir)).as_dict()
    else:
        fields = MapSpec().as_dict()
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise QEPError(f"unknown map setting; allowed: {sorted(fields)}", where=unknown[0])
    fields |= overrides
    try:
        spec = MapSpec(**fields)
    except QEPError:
        raise
    except (TypeError, ValueError) as e:
        raise QEPError(f"bad map setting: {e}") from None
    if args.plot:
        _check_image_path(args.plot, "--plot")
    data, path = _get_map(spec, args.cache, not args.no_progress)
    out.write(f"{path}\n")
    if args.plot:
        from .plotting import plot_map

        out.write(f"{plot_map(data, args.plot)}\n")
    return 0


def _sweep(args: argparse.Namespace, argv: Sequence[str] | None, out: TextIO) -> int:
    from .sweeps import SweepInterrupted, describe_points, format_outcome, load_sweep, run_sweep

    sweep = load_sweep(args.file)
    if args.dry_run:
        out.write(describe_points(sweep))
        return 0
    if args.out is None:
        raise QEPError("give the sweep directory with --out DIR", where="--out")
    command_line = sys.argv if argv is None else ["qeprop", *argv]
    try:
        outcome = run_sweep(
            sweep,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=not args.no_progress,
            command_line=command_line,
        )
    except SweepInterrupted as e:
        sys.stderr.write(f"qeprop: {e}\n")
        return EXIT_INTERRUPTED
    out.write(format_outcome(outcome, sweep))
    return EXIT_FAILED if outcome.failed else 0


def _plot(args: argparse.Namespace, out: TextIO) -> int:
    from .plotting import UNSUPERVISED, plot_runs
    from .runs import CONFIG, load_config

    dirs = [Path(d) for d in args.dirs]
    for d in dirs:
        if not d.is_dir():
            raise QEPError(
                "not a directory" if d.exists() else "no such run directory", where=str(d)
            )
    if any((d / "sweep.json").is_file() for d in dirs):
        return _plot_sweep(args, dirs, out)
    if args.out is not None:
        plot_dir = Path(args.out)
        _check_dir_path(plot_dir, "--out")
    else:
        plot_dir = dirs[0] / "plots" if len(dirs) == 1 else Path("plots")
        _check_dir_path(plot_dir, "plot directory")
    backgrounds: dict[str, dict] = {}
    if not args.no_background:
        for d in dirs:
            if not (d / CONFIG).is_file():
                continue
            name = load_config(d / CONFIG).get("experiment")
            if name in UNSUPERVISED and name not in backgrounds:
                backgrounds[str(name)] = _get_map(_run_map_spec(d), args.cache, True)[0]
    for path in plot_runs(dirs, plot_dir, backgrounds):
        out.write(f"{path}\n")
    return 0


def _plot_sweep(args: argparse.Namespace, dirs: list[Path], out: TextIO) -> int:
    """``qeprop plot DIR`` of a sweep directory: the sweep's statistics (see sweep_plots)."""
    from .sweep_plots import plot_sweep

    if len(dirs) != 1:
        raise QEPError("plot one sweep directory at a time", where=str(dirs[1]))
    plot_dir = Path(args.out) if args.out is not None else dirs[0] / "plots"
    _check_dir_path(plot_dir, "--out" if args.out is not None else "plot directory")
    for path in plot_sweep(dirs[0], plot_dir):
        out.write(f"{path}\n")
    return 0


def _check_dir_path(path: Path, flag: str) -> None:
    """Refuse a directory path that exists as a file, or below a file."""
    if path.exists() and not path.is_dir():
        raise QEPError(f"{path} exists and is not a directory", where=flag)
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise QEPError(f"cannot create {path}: {parent} is not a directory", where=flag)
            break


def _check_image_path(name: str, flag: str) -> None:
    """Refuse an image file name of an unknown format, or one that cannot be created."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(name)
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if path.suffix.lower().lstrip(".") not in formats:
        raise QEPError(
            f"unknown image format {path.suffix or '(no suffix)'!r} in {name!r}; end the file "
            f"name with one of {', '.join('.' + f for f in formats)}",
            where=flag,
        )
    if path.is_dir():
        raise QEPError(f"{path} is a directory", where=flag)
    _check_dir_path(path.parent, flag)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qeprop`` command."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C outside a run (parsing, imports, a resume's checks)
        sys.stderr.write("qeprop: interrupted\n")
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    from .runs import RunInterrupted

    args = _parser().parse_args(argv)

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        sys.stderr.write(f"qeprop: warning: {message}\n")

    with warnings.catch_warnings():
        # every warning of a single gradient; the first of each kind during a long run
        warnings.simplefilter("always" if args.command == "gradient" else "default", QEPWarning)
        warnings.showwarning = show
        try:
            if args.command == "gradient":
                return _gradient(args, sys.stdout)
            if args.command == "run":
                return _run(args, argv, sys.stdout)
            if args.command == "plot":
                return _plot(args, sys.stdout)
            if args.command == "map":
                return _map(args, sys.stdout)
            if args.command == "sweep":
                return _sweep(args, argv, sys.stdout)
        except QEPError as e:
            sys.stderr.write(f"qeprop: error: {_one_line(str(e))}\n")
            return EXIT_USAGE
        except RunInterrupted as e:
            sys.stderr.write(f"qeprop: {e}\n")
            return EXIT_INTERRUPTED
        except OSError as e:  # a full disk, a missing permission
            where = f"{e.filename}: " if e.filename else ""
            sys.stderr.write(f"qeprop: error: {where}{_one_line(e.strerror or str(e))}\n")
            return EXIT_USAGE
        except MemoryError:
            sys.stderr.write("qeprop: error: out of memory (try a smaller problem)\n")
            return EXIT_USAGE
    return EXIT_USAGE


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
