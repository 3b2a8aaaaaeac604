"""Supervised recognition of quantum phases (Wanjura & Marquardt, Sec. III.A and Fig. 2).

A trainable sensor (default: 2 qubits, 51 couplings) is coupled to sites of a cluster-Ising chain
``H0(g_zxz, g_zz, g_x)``; the probabilities of three sensor readouts (projectors on Z-basis states)
are trained to announce the chain's phase (one-hot MSE target), with QEP gradients (default:
centred nudging β = 0.4, M = 10 shots per expectation value, Gaussian shot model), mini-batches of
10 points of the triangle ``g_zxz + g_zz + g_x = 4`` and Adam (learning rate 0.01).

Metrics on a fixed test set: **max-choice** accuracy (the most probable of the three readouts is
the right phase: "many queries") and **single-shot** accuracy (probability that one measurement of
the sensor shows the right phase), both from exact expectation values of the trained sensor.

Long open chains (``method = "dmrg"``, docs/phase-recognition-scale.md): every point of the
triangle (a batch sample, a test point, a phase-map point) is a matrix product state of the
``dmrg`` backend, solved cold; the gradient goes through the same estimator pipeline, one sample
at a time (:func:`~qeprop.gradients.batch_mean_gradient`). An open chain's edge modes (two-fold
per edge in the cluster phase) leave an exponentially degenerate ground state that the ``dmrg``
backend refuses; the *edge terms* ``h (Y_0 Z_1 + Z_{L-2} Y_{L-1})`` (``edge_field``, default 1 with
``dmrg``) lift exactly that manifold (see :func:`edge_terms`). ``init_from`` starts from the
final couplings of an earlier run, mapped onto this chain by their role
(:func:`map_couplings`); ``steps = 0`` only evaluates them.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, option
from ..errors import DegeneracyError, ProblemError
from ..gradients import GradientOptions, batch_mean_gradient
from ..hamiltonian import ParametrisedHamiltonian, Term
from ..losses import MeanSquaredError
from ..measurement import SHOT_MODELS, expectations
from ..models import cluster_ising
from ..models.sensor import COUPLING_SETS, SensorLayout, sensor_layout
from ..optim import Optimiser, adam
from ..pauli import PauliString
from ..solvers import StateSpec, solve
from ..solvers.batch import solve_ground_batch
from ..system import QEPSystem
from ..training import TrainState, descent_init, descent_step, deterministic
from . import ExperimentBase
from .classification import classification_metrics

__all__ = [
    "DMRG_MAX_SITES",
    "ESTIMATORS",
    "EXACT_MAX_SITES",
    "EXPERIMENT",
    "MAX_NUDGE",
    "METHODS",
    "PhaseRecognition",
    "PhaseRecognitionConfig",
    "PhaseSensorModel",
    "build_model",
    "coupling_roles",
    "default_sensor_sites",
    "edge_terms",
    "load_couplings",
    "map_couplings",
]

#: gradient estimators a training step can use (``linear_response`` is exact: no shots)
ESTIMATORS = ("positive", "negative", "centered", "linear_response", "finite_difference")
#: largest nudge β: a nudge is a small perturbation, and β·|ε| must stay a finite number
MAX_NUDGE = 100.0
#: amplitudes (points × Hilbert-space dimension) solved at once in an evaluation
_EVAL_BLOCK = 2**22
#: ground-state methods: exact state vectors, batched (``auto``), or matrix product states
METHODS = ("auto", "dmrg")
#: longest chain of the exact method (``L + 2`` qubits as state vectors, solved in batches)
EXACT_MAX_SITES = 14
#: longest chain of the ``dmrg`` method (the backend takes up to 1024 qubits)
DMRG_MAX_SITES = 1022
#: edge-term strength ``edge_field`` takes by default with ``method = "dmrg"``
DMRG_EDGE_FIELD = 1.0


@dataclass(frozen=True)
class PhaseRecognitionConfig(Config):
    """Configuration of ``phase-recognition`` (defaults: the paper's Fig. 2 settings)."""

    steps: int = option(
        5000, "training steps (Adam updates; 0: only evaluate the initial couplings)", ge=0,
        le=10**7,
    )  # fmt: skip
    batch_size: int = option(10, "points of the triangle per mini-batch", ge=1, le=1000)
    shots: int | None = option(
        10, "measurement shots per expectation value (none: exact values)", ge=1, le=10**9
    )
    nudge: float = option(0.4, "nudge strength β of the QEP gradient", gt=0, le=MAX_NUDGE)
    learning_rate: float = option(0.01, "Adam learning rate", gt=0, le=1000)
    seed: int = option(0, "seed of the initial couplings, the batches and the shot noise", ge=0)
    couplings: str = option("xyz", "sensor-system coupling set", choices=tuple(COUPLING_SETS))
    training_region: str = option(
        "full", "training points: the whole triangle, or patches inside the three phases",
        choices=("full", "patches"),
    )  # fmt: skip
    patch_width: float = option(0.4, "width of the training patches", gt=0, le=4)
    chain_length: int = option(
        8,
        f"sites of the cluster-Ising chain (the sensor adds 2 qubits; at most "
        f"{EXACT_MAX_SITES} with method auto, {DMRG_MAX_SITES} with dmrg)",
        ge=3,
        le=DMRG_MAX_SITES,
    )
    boundary: str = option("periodic", "boundary of the chain", choices=("open", "periodic"))
    sensor_sites: tuple[int, ...] | None = option(
        None,
        "chain sites the sensor couples to (distinct; none: 0, 1, or the middle sites "
        "L//2-1, L//2 with method dmrg)",
        ge=0,
        min_len=1,
        max_len=14,
    )
    method: str = option(
        "auto",
        "ground states: exact state vectors (auto) or matrix product states (dmrg, open chains)",
        choices=METHODS,
    )
    bond_dim: int = option(64, "largest MPS bond dimension (method dmrg)", ge=1, le=4096)
    cutoff: float = option(
        1e-10, "relative truncation of the MPS singular values (method dmrg)", ge=0, lt=1
    )
    edge_field: float | None = option(
        None,
        "strength h of the edge terms h (Y0 Z1 + Z[L-2] Y[L-1]) that lift an open chain's edge "
        f"modes (none: {DMRG_EDGE_FIELD:g} with method dmrg, else 0)",
        ge=0,
        le=100,
    )
    init_from: str = option(
        "", "phase-recognition run directory whose final sensor couplings start this run"
    )
    eval_every: int = option(50, "steps between evaluations on the test set", ge=1, le=10**7)
    test_size: int = option(200, "test points, uniform on the triangle", ge=1, le=10**5)
    test_seed: int = option(20240, "seed of the test points", ge=0)
    checkpoint_every: int = option(100, "steps between checkpoints", ge=1, le=10**7)
    estimator: str = option(
        "centered", "gradient estimator of the training step", choices=ESTIMATORS
    )
    shot_model: str = option("gaussian", "how shots are simulated", choices=SHOT_MODELS)
    noisy_outputs: bool = option(False, "measure the outputs y (hence ε) with shots too")
    soft_bound: bool = option(False, "penalise system-sensor couplings beyond ±bound")
    bound: float = option(0.1, "soft bound on |system-sensor coupling|", gt=0, le=1000)
    bound_slope: float = option(0.02, "slope of the soft-bound penalty", ge=0, le=1000)
    solver_tol: float = option(
        1e-6, "relative residual of the ground-state solves", ge=1e-15, le=0.1
    )
    map_resolution: int = option(
        24, "points per side of the triangle grid of the final phase map", ge=2, le=200
    )
    label: str = option("", "name of the variant in plots (default: couplings/training_region)")

    def check(self) -> None:
        self._check_method()
        if self.estimator == "linear_response" and self.shots is not None:
            raise ProblemError(
                "the linear_response estimator is exact and takes no shots; set shots = none "
                "(--set shots=none)",
                where="shots",
            )
        if self.sensor_sites is None:
            self._set("sensor_sites", default_sensor_sites(self.chain_length, self.method))
        assert self.sensor_sites is not None
        if len(set(self.sensor_sites)) != len(self.sensor_sites):
            raise ProblemError(
                f"must be distinct chain sites, got {list(self.sensor_sites)}", where="sensor_sites"
            )
        bad = [s for s in self.sensor_sites if s >= self.chain_length]
        if bad:
            raise ProblemError(
                f"site {bad[0]} is not a site of the {self.chain_length}-site chain "
                f"(sites 0..{self.chain_length - 1})",
                where="sensor_sites",
            )
        if self.edge_field is None:
            dmrg = self.method == "dmrg" and self.boundary == "open"
            self._set("edge_field", DMRG_EDGE_FIELD if dmrg else 0.0)
        if self.edge_field and self.boundary != "open":
            raise ProblemError(
                "edge terms lift the edge modes of an open chain; a periodic chain has none "
                "(set edge_field = 0, or boundary = 'open')",
                where="edge_field",
            )
        if self.init_from:
            self._set("init_from", _check_source(self))
        if not self.label:
            self._set("label", f"{self.couplings}/{self.training_region}")

    def _check_method(self) -> None:
        """The chain length and boundary the method can hold, and what it cannot estimate."""
        if self.method == "auto" and self.chain_length > EXACT_MAX_SITES:
            raise ProblemError(
                f"{self.chain_length} sites are beyond the exact method (at most "
                f"{EXACT_MAX_SITES} sites as state vectors); set method = 'dmrg' (with boundary "
                "= 'open') for a longer chain",
                where="chain_length",
            )
        if self.method != "dmrg":
            return
        if self.boundary != "open":
            raise ProblemError(
                "method 'dmrg' needs boundary = 'open': a periodic chain's closing terms join "
                "its first and last sites, a long-ranged MPO (--set boundary=open)",
                where="boundary",
            )
        if self.estimator == "linear_response":
            raise ProblemError(
                "the dmrg method has no linear response; use a nudged estimator (centered, "
                "positive, negative) or finite_difference",
                where="estimator",
            )
        if self.shot_model != "gaussian" and self.shots is not None:
            raise ProblemError(
                "the dmrg method simulates shots with the gaussian model only (the sampled "
                "model needs full outcome distributions)",
                where="shot_model",
            )


@dataclass(frozen=True)
class PhaseSensorModel:
    """The chain plus sensor as a QEP system.

    ``system.hamiltonian.params`` starts with the inputs ``(g_zxz, g_zz, g_x)``, followed by the
    sensor couplings in the order of ``layout.names`` (= ``system.trainable``).
    """

    system: QEPSystem
    layout: SensorLayout
    chain_length: int

    def values(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Parameter vector of ``H(x, θ)`` for inputs ``x = (g_zxz, g_zz, g_x)``."""
        return np.concatenate([np.asarray(x, dtype=float), theta])


def default_sensor_sites(chain_length: int, method: str) -> tuple[int, ...]:
    """Chain sites of the sensor when the configuration names none.

    ``(0, 1)`` for the exact method (every site of a periodic chain is alike; the historical
    default). With ``method = "dmrg"`` (open chains) the two middle sites ``L//2 - 1, L//2``:
    ``L//2`` sites from either edge (at least ``L//2 - 1``), as far as possible from the open
    chain's edge modes, whose influence on the sensor decays like ``exp(-L / (2 ξ))``.
    """
    if method == "dmrg":
        return (chain_length // 2 - 1, chain_length // 2)
    return (0, 1)


def edge_terms(chain_length: int, field: float) -> list[Term]:
    r"""The constant edge terms ``h (Y_0 Z_1 + Z_{L-2} Y_{L-1})`` of an open chain (none if h = 0).

    With the Majoranas of :mod:`qeprop.models.cluster_ising`, ``Y_0 Z_1 = -i a_0 a_1`` and
    ``Z_{L-2} Y_{L-1} = i b_{L-2} b_{L-1}``: each term pairs the two Majoranas that the cluster
    phase leaves unpaired at one edge, so the four-fold edge manifold of the open cluster chain
    becomes a unique ground state with a gap of about ``2h`` (exactly ``2h`` at
    ``g_zxz = 4``). Both terms commute with the cluster terms and with the parity
    ``P = Π_j X_j``, so they do not touch the two-fold (``P``-odd) ferromagnetic pair, which the
    sensor's local couplings split; they change the state only within a correlation length of
    the edges, far from a sensor in the middle.
    """
    if not field:
        return []
    last = chain_length - 1
    return [
        Term(field, PauliString.parse("Y0 Z1")),
        Term(field, PauliString.parse(f"Z{last - 1} Y{last}")),
    ]


@lru_cache(maxsize=8)
def build_model(
    chain_length: int,
    boundary: str,
    couplings: str,
    sensor_sites: tuple[int, ...],
    edge_field: float = 0.0,
) -> PhaseSensorModel:
    """Cluster-Ising chain on qubits ``0..L-1`` with a 2-qubit sensor on qubits ``L, L+1``.

    ``edge_field`` adds the constant :func:`edge_terms` (open chains only); they have no
    parameter, so the parameter vector is ``(g_zxz, g_zz, g_x, θ...)`` either way.
    """
    chain = cluster_ising.hamiltonian_terms(chain_length, boundary=boundary)
    for s in sensor_sites:
        if not 0 <= s < chain_length:
            raise ProblemError(f"sensor site {s} is not a site of the {chain_length}-site chain")
    if edge_field and boundary != "open":
        raise ProblemError("edge terms need an open chain", where="edge_field")
    layout = sensor_layout((chain_length, chain_length + 1), sensor_sites, couplings)
    ham = ParametrisedHamiltonian(
        chain_length + 2,
        [*chain, *edge_terms(chain_length, edge_field), *layout.terms],
        params=[*cluster_ising.PARAMS, *layout.names],
    )
    readout = {k: layout.outputs[k] for k in cluster_ising.PHASES}
    system = QEPSystem(ham, readout, trainable=layout.names)
    return PhaseSensorModel(system, layout, chain_length)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(3)[labels]


class PhaseRecognition(ExperimentBase):
    """The phase-recognition training task (see the module docstring).

    Evaluation solves every test point cold (from the solver's fixed start vector), so a
    metric depends only on the couplings: a resumed run evaluates exactly as an uninterrupted one
    (warm starts from the previous evaluation would save about a quarter of an evaluation's time,
    but make its last digits depend on the run's history). With ``method = "dmrg"`` free states
    are never warm-started from another point either: a one-site warm solve keeps the start's
    bond dimensions and skips the degeneracy check, and could stay in the wrong magnetisation
    sector of the ferromagnet or on the wrong side of a transition; only the nudged solves of a
    gradient start from their free state.
    """

    name = "phase-recognition"
    Config = PhaseRecognitionConfig

    # ------------------------------------------------------------------ configuration
    def model(self, config: PhaseRecognitionConfig) -> PhaseSensorModel:
        assert config.sensor_sites is not None  # resolved by the configuration's check
        return build_model(
            config.chain_length,
            config.boundary,
            config.couplings,
            tuple(config.sensor_sites),
            float(config.edge_field or 0.0),
        )

    def spec(self, config: PhaseRecognitionConfig) -> StateSpec:
        """The ground states: exact (``auto``), or MPS with the configured bond dimension.

        ``dmrg`` sweeps until the energy changes by less than ``solver_tol · ||H||`` and refuses a
        degenerate ground state (``degeneracy = "error"``: the backend has no mixtures).
        """
        if config.method == "dmrg":
            return StateSpec(
                method="dmrg",
                tol=config.solver_tol,
                bond_dim=config.bond_dim,
                cutoff=config.cutoff,
                degeneracy="error",
            )
        # the gradient needs the precision M shots resolve; the gap only roughly
        return StateSpec(tol=config.solver_tol, gap_tol=max(config.solver_tol, 1e-4))

    def optimiser(self, config: PhaseRecognitionConfig) -> Optimiser:
        return adam(config.learning_rate)

    # ------------------------------------------------------------------ data
    def sample_inputs(
        self, config: PhaseRecognitionConfig, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        if config.training_region == "patches":
            return np.asarray(cluster_ising.sample_patches(n, rng, width=config.patch_width))
        return np.asarray(cluster_ising.sample_triangle(n, rng))

    def test_set(self, config: PhaseRecognitionConfig) -> tuple[np.ndarray, np.ndarray]:
        """Fixed test points (uniform on the whole triangle) and their exact labels."""
        rng = np.random.default_rng(config.test_seed)
        pts = cluster_ising.sample_triangle(config.test_size, rng)
        return pts, cluster_ising.phase_indices(pts)

    # ------------------------------------------------------------------ training
    def init(self, config: PhaseRecognitionConfig) -> TrainState:
        model = self.model(config)
        rng = np.random.default_rng(config.seed)
        theta = model.layout.init_params(rng)  # drawn either way: the batches stay the same
        if config.init_from:
            assert config.sensor_sites is not None
            names, values, sites, length = load_couplings(config.init_from)
            theta = map_couplings(
                names,
                values,
                sites,
                (length, length + 1),
                model.layout.names,
                tuple(config.sensor_sites),
                (config.chain_length, config.chain_length + 1),
            )
        return descent_init(theta, self.optimiser(config), rng, {"train_loss": []})

    def batch_gradient(
        self, config: PhaseRecognitionConfig, theta: np.ndarray, x: np.ndarray,
        labels: np.ndarray, rng: np.random.Generator | None,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        """Batch-averaged gradient estimate and mean loss at couplings ``theta``."""
        model = self.model(config)
        opts = GradientOptions(
            nudge=config.nudge,
            state=self.spec(config),
            shots=config.shots,
            shot_model=config.shot_model,
            noisy_outputs=config.noisy_outputs,
            warn_window=False,
        )
        onehot = _one_hot(labels)
        losses = [MeanSquaredError(t) for t in onehot]
        values = np.array([model.values(xi, theta) for xi in x])
        with _point_context(x):
            return batch_mean_gradient(
                model.system, values, losses, estimator=config.estimator, options=opts, rng=rng
            )

    def penalty_gradient(self, config: PhaseRecognitionConfig, theta: np.ndarray) -> np.ndarray:
        """Soft bound: ``slope * Σ max(0, |v| - bound)`` over the system-sensor couplings."""
        g = np.zeros_like(theta)
        if config.soft_bound:
            mask = self.model(config).layout.system_sensor & (np.abs(theta) > config.bound)
            g[mask] = config.bound_slope * np.sign(theta[mask])
        return g

    def step(self, config: PhaseRecognitionConfig, state: TrainState) -> TrainState:
        """One Adam step on the batch-averaged QEP gradient (plus the soft-bound penalty)."""

        def gradient(theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
            x = self.sample_inputs(config, config.batch_size, rng)
            labels = cluster_ising.phase_indices(x)
            grad, loss = self.batch_gradient(config, theta, x, labels, rng)
            return grad + self.penalty_gradient(config, theta), {"loss": loss}

        new, info = descent_step(state, self.optimiser(config), gradient)
        losses = [*state.meta.get("train_loss", []), info["loss"]][-config.eval_every :]
        new.meta["train_loss"] = losses
        return new

    # ------------------------------------------------------------------ evaluation
    def probabilities(
        self, config: PhaseRecognitionConfig, theta: np.ndarray, points: np.ndarray
    ) -> np.ndarray:
        """Exact readout probabilities ``(N, 3)`` (cluster, ferromagnet, paramagnet).

        Every point is solved cold (no warm start), in blocks that bound the memory (one point
        at a time with ``dmrg``), so the result depends only on ``theta`` and ``points``; the
        last few results are memoised on ``(config, theta, points)`` (the final evaluation and
        ``finish`` ask for the same test set).
        """
        key = (config, np.asarray(theta).tobytes(), np.asarray(points).tobytes())
        hit = _PROBS.get(key)
        if hit is not None:
            return hit.copy()
        out = self._probabilities(config, theta, points)
        _PROBS[key] = out.copy()
        while len(_PROBS) > _PROBS_KEEP:
            _PROBS.pop(next(iter(_PROBS)))
        return out

    def _probabilities(
        self, config: PhaseRecognitionConfig, theta: np.ndarray, points: np.ndarray
    ) -> np.ndarray:
        model = self.model(config)
        h = model.system.full
        ident, coef = model.system.output_coefficients
        values = np.array([model.system.full_values(model.values(xi, theta)) for xi in points])
        out = []
        if config.method == "dmrg":
            spec = self.spec(config)
            for xi, v in zip(points, values, strict=True):
                with _point_context([xi]):
                    out.append(expectations(h, solve(h, v, spec), ident, coef))
            return np.array(out).reshape(len(values), len(cluster_ising.PHASES))
        block = max(1, _EVAL_BLOCK // h.dim)
        with deterministic():
            for i in range(0, len(values), block):
                states = solve_ground_batch(h, values[i : i + block], self.spec(config))
                out += [expectations(h, st, ident, coef) for st in states]
        return np.array(out).reshape(len(values), len(cluster_ising.PHASES))

    def evaluate(self, config: PhaseRecognitionConfig, state: TrainState) -> dict[str, Any]:
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, state.arrays["params"], pts)
        return _metrics(probs, labels) | {
            "train_loss": float(np.mean(state.meta["train_loss"]))
            if state.meta.get("train_loss")
            else None
        }

    def finish(
        self, config: PhaseRecognitionConfig, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        theta = state.arrays["params"]
        pts, labels = self.test_set(config)
        probs = self.probabilities(config, theta, pts)
        grid = triangle_grid(config.map_resolution)
        grid_probs = self.probabilities(config, theta, grid)
        summary = _metrics(probs, labels) | {
            "couplings": config.couplings,
            "training_region": config.training_region,
            "label": config.label,
        }
        arrays = {
            "params": theta,
            "param_names": np.array(self.model(config).layout.names),
            "test_points": pts,
            "test_labels": labels,
            "test_probs": probs,
            "grid_points": grid,
            "grid_probs": grid_probs,
        }
        return summary, arrays


#: memoised readout probabilities (see :meth:`PhaseRecognition.probabilities`)
_PROBS: dict[tuple[Any, ...], np.ndarray] = {}
_PROBS_KEEP = 4


@contextlib.contextmanager
def _point_context(points: Sequence[Sequence[float]] | np.ndarray) -> Iterator[None]:
    """Name the triangle point(s) ``(N, 3)`` being solved in a :class:`DegeneracyError`."""
    try:
        yield
    except DegeneracyError as err:
        pts = np.asarray(points, dtype=float)
        shown = "; ".join("(" + ", ".join(f"{v:.4g}" for v in p) + ")" for p in pts[:4])
        which = "" if len(pts) == 1 else "one of "
        raise DegeneracyError(
            f"at {which}(g_zxz, g_zz, g_x) = {shown}: {err} (raise edge_field to lift the edge "
            "modes of an open chain)"
        ) from None


# --------------------------------------------------------------------------- init_from
#: a coupling name of :func:`~qeprop.models.sensor.sensor_layout`: ``v[Z3,X10]``, ``h[X10]``,
#: ``j[X10,Z11]``
_NAME = re.compile(r"^([vhj])\[([XYZ])(\d+)(?:,([XYZ])(\d+))?\]$")


def coupling_roles(
    names: Sequence[str], sensor_sites: Sequence[int], sensor_qubits: Sequence[int]
) -> list[tuple[str, ...]]:
    """The role of every sensor coupling, independent of the chain it sits on.

    ``v[Pa,Qq]`` (system Pauli ``P`` on chain site ``a`` times sensor Pauli ``Q`` on sensor
    qubit ``q``) has role ``("v", P, "site k", Q, "sensor i")`` with ``k`` the position of ``a``
    in ``sensor_sites`` and ``i`` that of ``q`` in ``sensor_qubits``; ``h[Qq]`` has
    ``("h", Q, "sensor i")`` and ``j[Pq,Qr]`` ``("j", P, "sensor i", Q, "sensor i'")``. Two
    layouts with the same coupling set and the same numbers of sites and sensor qubits have the
    same roles, in the same order.
    """
    site_of = {int(s): f"site {k}" for k, s in enumerate(sensor_sites)}
    qubit_of = {int(q): f"sensor {k}" for k, q in enumerate(sensor_qubits)}
    roles: list[tuple[str, ...]] = []
    for name in names:
        m = _NAME.match(str(name))
        if m is None:
            raise ProblemError(f"{name!r} is not a sensor coupling name", where="init_from")
        kind, a, i, b, j = m.groups()
        if kind == "v":
            roles.append(("v", a, site_of.get(int(i), f"chain {i}"), b, qubit_of.get(int(j), j)))
        elif kind == "h":
            roles.append(("h", a, qubit_of.get(int(i), i)))
        else:
            roles.append(("j", a, qubit_of.get(int(i), i), b, qubit_of.get(int(j), j)))
    return roles


def map_couplings(
    names: Sequence[str],
    values: np.ndarray,
    sites: Sequence[int],
    qubits: Sequence[int],
    new_names: Sequence[str],
    new_sites: Sequence[int],
    new_qubits: Sequence[int],
) -> np.ndarray:
    """The couplings ``values`` (named ``names`` on a chain whose sensor touches ``sites`` and
    sits on ``qubits``) in the order of ``new_names`` on another chain, matched by role.

    The ``k``-th sensor site of one chain plays the role of the ``k``-th of the other (e.g.
    ``(0, 1)`` of an 8-site ring onto ``(31, 32)`` of a 64-site open chain: ``v[Z0,X8]`` becomes
    ``v[Z31,X64]``), sensor qubits likewise (:func:`coupling_roles`). Raises
    :class:`ProblemError` (``where = "init_from"``) when the two sets of roles differ (another
    coupling set, another number of sensor sites).
    """
    old = coupling_roles(names, sites, qubits)
    new = coupling_roles(new_names, new_sites, new_qubits)
    by_role = dict(zip(old, np.asarray(values, dtype=float), strict=True))
    missing = [n for n, r in zip(new_names, new, strict=True) if r not in by_role]
    if missing or len(old) != len(new):
        extra = len(old) - (len(new) - len(missing))
        raise ProblemError(
            f"the run's {len(old)} sensor couplings do not match this sensor's {len(new)} by "
            f"role ({len(missing)} of this sensor's, e.g. {missing[:2]}, have no counterpart, "
            f"{extra} of the run's are left over): use the same couplings set and as many "
            "sensor sites",
            where="init_from",
        )
    return np.array([by_role[r] for r in new])


def _source_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.toml"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ProblemError(
            f"{run_dir} is not a run directory (no config.toml)", where="init_from"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProblemError(f"cannot read {path}: {e}", where="init_from") from None
    if data.get("experiment") != PhaseRecognition.name:
        raise ProblemError(
            f"{run_dir} is a {data.get('experiment')!r} run, not a phase-recognition run",
            where="init_from",
        )
    return data


def _check_source(config: PhaseRecognitionConfig) -> str:
    """The absolute path of ``config.init_from``, checked: a phase-recognition run with this
    coupling set and as many sensor sites (its couplings are read by :func:`load_couplings`)."""
    run_dir = Path(config.init_from).expanduser().resolve()
    data = _source_config(run_dir)
    couplings = data.get("couplings", "xyz")
    if couplings != config.couplings:
        raise ProblemError(
            f"{run_dir} trained the {couplings!r} coupling set, this run has {config.couplings!r} "
            f"(set couplings = {couplings!r})",
            where="init_from",
        )
    sites = data.get("sensor_sites", [0, 1])
    assert config.sensor_sites is not None
    if len(sites) != len(config.sensor_sites):
        raise ProblemError(
            f"{run_dir}'s sensor touches {len(sites)} chain sites {list(sites)}, this one "
            f"{len(config.sensor_sites)} {list(config.sensor_sites)}",
            where="init_from",
        )
    return str(run_dir)


def load_couplings(run_dir: str | Path) -> tuple[tuple[str, ...], np.ndarray, tuple[int, ...], int]:
    """The sensor couplings of a phase-recognition run: ``(names, values, sensor_sites, L)``.

    The final couplings (``results.npz``) of a finished run, else those of its last checkpoint
    (``checkpoint.npz``); the names follow from its ``config.toml`` (and must equal the names
    saved with the results).
    """
    d = Path(run_dir)
    data = _source_config(d)
    length = int(data.get("chain_length", 8))
    sites = tuple(int(s) for s in data.get("sensor_sites", (0, 1)))
    layout = sensor_layout((length, length + 1), sites, data.get("couplings", "xyz"))
    for name in ("results.npz", "checkpoint.npz"):
        if not (d / name).is_file():
            continue
        try:
            with np.load(d / name, allow_pickle=False) as z:
                values = np.asarray(z["params"], dtype=float)
                saved = tuple(str(n) for n in z["param_names"]) if "param_names" in z else None
        except (OSError, KeyError, ValueError) as e:
            raise ProblemError(
                f"cannot read the couplings of {d / name}: {e}", where="init_from"
            ) from None
        if values.shape != (len(layout.names),) or saved not in (None, layout.names):
            raise ProblemError(
                f"{d / name} holds {values.shape} couplings that do not match its config.toml "
                f"({len(layout.names)} {data.get('couplings')!r} couplings)",
                where="init_from",
            )
        return layout.names, values, sites, length
    raise ProblemError(
        f"{d} holds no couplings (neither results.npz nor checkpoint.npz: a run summary only); "
        "rerun its config.toml with qeprop run to get them",
        where="init_from",
    )


def _metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Max-choice and single-shot accuracy, and mean one-hot MSE loss, of readout probabilities.

    The three metrics of :func:`~qeprop.experiments.classification.classification_metrics`
    (``probs (N, 3)``, ``labels (N,)``), without its ``n_correct``: a phase-recognition record
    keeps the keys it has always had.
    """
    metrics = classification_metrics(probs, labels)
    return {k: metrics[k] for k in ("max_choice_accuracy", "single_shot_accuracy", "loss")}


def triangle_grid(resolution: int, total: float = 4.0) -> np.ndarray:
    """Points ``(g_zxz, g_zz, g_x)`` of a regular grid on the triangle, ``resolution`` per side."""
    pts = []
    for i in range(resolution + 1):
        for j in range(resolution + 1 - i):
            gx, gzz = total * i / resolution, total * j / resolution
            pts.append((total - gx - gzz, gzz, gx))
    return np.clip(np.array(pts), 0.0, None)


EXPERIMENT = PhaseRecognition()
