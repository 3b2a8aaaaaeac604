"""Transverse-field Ising networks trained end to end on a real data set with QEP.

Scellier's setting (Sec. 4.1): a network ``H = -Σ J_jk Z_j Z_k - Σ h_k X_k`` (eq. 33) whose input
spins feel the data as longitudinal fields ``-x_i Z_i`` (:mod:`qeprop.models.tfim_network` says
why ``Z`` and not ``X``), trained so that the ground-state ``⟨Z_o⟩`` of one output spin per class
announces the class. The cost is Scellier's cost observable ``C(t) = Σ_o (Z_o - t_o)²`` with the
class code ``t_o = +1`` for the true class and ``-1`` for the others; since ``Z_o² = 1`` it is
linear in the outputs (:class:`~qeprop.losses.SpinCost`), so output nudging with ``ν = β ε``,
``ε = -2t``, is exactly ``H + βC`` (eq. 25) and the training step is the shared batched QEP
estimator (``positive``: ``β > 0``; ``negative``: ``β < 0``, i.e. Scellier's one-sided rule with
a negative nudge; ``centered``: both), with ``shots`` measurements per setting (the couplings in
two settings, all-``Z`` and all-``X``) and the outputs measured with shots too.

Data: Fisher's iris (scikit-learn's bundled copy, 150 flowers, 4 features, 3 classes). A
stratified split (``test_fraction``, ``split_seed``; the indices are saved) is fixed for the run;
features are standardised with the training set's mean and standard deviation. Each feature
``f`` drives one input spin per threshold ``c`` in ``thresholds`` with the field
``x = input_scale · (f - c)``: with the defaults (``c = ±0.5``, ``input_scale = 3``) the two spins
of a feature say, softly, whether it lies below, between or above the thresholds, so "middle"
classes such as versicolor become linearly separable from the rest, and the shifted fields break
the spin-flip symmetry without a bias spin. 8 input spins and 3 output spins, coupled all-to-all
(``graph = "layered"``, no hidden layer), are 11 qubits: every ground state is exact. (``wine``,
13 features, needs ``components`` to fit.)

Training: Adam on both twins with the rate ``learning_rate / (1 + lr_decay t)``; after every
step the transverse fields are raised to ``min_field`` (:meth:`TFIMNetworkExperiment.constrain`
says why: under the linear cost the output fields otherwise collapse to zero and learning stops).
Hidden layers are supported but, with this cost, stall at 2/3 accuracy on iris
(``docs/tfim-network.md``).

In the same run, an **exact twin** is trained alongside: the same initial couplings, the same
mini-batches in the same order, the same optimiser (Adam), but exact gradients (linear response,
the ``β → 0`` limit, no shots). Both are evaluated with exact expectation values: accuracy =
fraction of points whose largest ``⟨Z_o⟩`` is the true class, loss = mean ``⟨C⟩``. The gap between
the two twins is what finite nudging and shot noise cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..config import Config, option
from ..errors import ProblemError
from ..gradients import NUDGED_VARIANTS, GradientOptions, batch_mean_gradient, response
from ..losses import SpinCost
from ..measurement import SHOT_MODELS, expectations
from ..models.tfim_network import BIASES, GRAPHS, TFIMNetwork, build_network
from ..optim import Optimiser, adam, inverse_time_decay
from ..solvers import StateSpec
from ..solvers.batch import solve_ground_batch
from ..training import TrainState, descent_init, descent_step, deterministic
from . import ExperimentBase

__all__ = [
    "DATASETS",
    "EXPERIMENT",
    "MAX_QUBITS",
    "Dataset",
    "TFIMNetworkConfig",
    "TFIMNetworkExperiment",
    "load_dataset",
    "targets",
]

#: data sets (scikit-learn's bundled copies; nothing is downloaded): features, classes
DATASETS = {"iris": (4, 3), "wine": (13, 3)}
#: most qubits a training loop diagonalises (2^16 amplitudes per ground state)
MAX_QUBITS = 16
#: largest nudge β
MAX_NUDGE = 100.0
#: amplitudes (points × Hilbert-space dimension) solved at once in an evaluation
_EVAL_BLOCK = 2**21


@dataclass(frozen=True)
class TFIMNetworkConfig(Config):
    """Configuration of ``tfim-network`` (see the module docstring and ``docs/tfim-network.md``)."""

    steps: int = option(150, "training steps (Adam updates of both twins)", ge=1, le=10**7)
    batch_size: int = option(
        12, "training points per mini-batch (drawn without replacement)", ge=1, le=10000
    )
    shots: int | None = option(
        1000, "measurement shots per setting and expectation value (none: exact values)",
        ge=1, le=10**12,
    )  # fmt: skip
    noisy_outputs: bool = option(True, "measure the outputs ⟨Z_o⟩ with shots too")
    shot_model: str = option("gaussian", "how shots are simulated", choices=SHOT_MODELS)
    nudge: float = option(0.1, "nudge size |β|; the variant sets its sign(s)", gt=0, le=MAX_NUDGE)
    variant: str = option(
        "centered",
        "QEP nudging: positive (β > 0), negative (β < 0) or centered (±β)",
        choices=NUDGED_VARIANTS,
    )
    learning_rate: float = option(0.05, "Adam learning rate (both twins)", gt=0, le=100)
    lr_decay: float = option(
        0.05, "learning-rate decay: the rate at step t is learning_rate / (1 + lr_decay t)",
        ge=0, le=100,
    )  # fmt: skip
    seed: int = option(
        0, "seed of the initial couplings, the mini-batches and the shot noise", ge=0
    )
    init_scale: float = option(
        0.5, "standard deviation of the initial couplings J ~ N(0, init_scale²)", gt=0, le=100
    )
    init_field: float = option(
        1.0, "initial transverse fields h = max(init_field (1 + 0.1 N(0, 1)), min_field)",
        gt=0, le=100,
    )  # fmt: skip
    min_field: float = option(
        1.0,
        "lower bound on the transverse fields h (0: unbounded), kept after every step",
        ge=0,
        le=100,
    )
    dataset: str = option("iris", "data set (scikit-learn's bundled copy)", choices=tuple(DATASETS))
    components: int | None = option(
        None, "leading principal components of the standardised features used as inputs "
        "(none: every feature)", ge=1, le=64,
    )  # fmt: skip
    test_fraction: float = option(
        0.4, "fraction of the data held out as the test set (stratified)", gt=0, lt=1
    )
    split_seed: int = option(0, "seed of the stratified train/test split", ge=0)
    input_scale: float = option(
        3.0, "input field per standard deviation of a feature: x = input_scale (f - c)",
        gt=0, le=100,
    )  # fmt: skip
    thresholds: tuple[float, ...] = option(
        (-0.5, 0.5), "input spins per feature: spin c feels input_scale (f - c) (f standardised)",
        ge=-10, le=10, min_len=1, max_len=8,
    )  # fmt: skip
    graph: str = option("layered", "coupling graph of the network", choices=GRAPHS)
    hidden: tuple[int, ...] = option(
        (), "hidden layer widths (layered; otherwise their sum is the number of hidden spins)",
        ge=1, le=MAX_QUBITS, max_len=MAX_QUBITS,
    )  # fmt: skip
    edges: tuple[str, ...] = option(
        (), "coupled spin pairs 'j-k' for graph = edges (inputs, bias spin, hidden, outputs)",
        max_len=1000,
    )  # fmt: skip
    bias: str = option(
        "none", "what else breaks the spin-flip symmetry: a bias input spin, trainable "
        "longitudinal fields g on hidden and output spins, or nothing", choices=BIASES,
    )  # fmt: skip
    bias_field: float = option(
        1.0, "constant input field of the bias spin (bias = spin)", ge=-100, le=100
    )
    eval_every: int = option(15, "steps between evaluations (train and test sets)", ge=1, le=10**7)
    checkpoint_every: int = option(50, "steps between checkpoints", ge=1, le=10**7)
    solver_tol: float = option(
        1e-8, "relative residual of the ground-state solves", ge=1e-14, le=1e-3
    )
    label: str = option("", "name of the run in plots (default: variant, nudge and shots)")

    def check(self) -> None:
        n_features, n_classes = DATASETS[self.dataset]
        if self.components is not None and self.components > n_features:
            raise ProblemError(
                f"{self.dataset} has {n_features} features; at most {n_features} components",
                where="components",
            )
        n_in = (self.components or n_features) * len(self.thresholds)
        n_bias = 1 if self.bias == "spin" else 0
        n = n_in + n_bias + sum(self.hidden) + n_classes
        if n > MAX_QUBITS:
            raise ProblemError(
                f"{n} qubits ({n_in} inputs, {n_bias} bias, {sum(self.hidden)} hidden, "
                f"{n_classes} outputs) are beyond exact ground states in a training loop (at "
                f"most {MAX_QUBITS}); narrow the hidden layers"
                + (" or set components" if self.components is None and n_in > 4 else ""),
                where="hidden",
            )
        if self.graph == "edges" and not self.edges:
            raise ProblemError("graph = 'edges' needs a list of 'j-k' spin pairs", where="edges")
        # the network itself: edges inside it, every output connected to an input
        build_network(
            n_in, n_classes, tuple(self.hidden), self.graph, tuple(self.edges), self.bias,
            self.bias_field,
        )  # fmt: skip
        n_train = _n_train(self.dataset, self.test_fraction)
        if self.batch_size > n_train:
            raise ProblemError(
                f"larger than the {n_train} training points of {self.dataset} with test_fraction "
                f"{self.test_fraction:g}",
                where="batch_size",
            )
        if not self.label:
            shots = "exact" if self.shots is None else f"M={self.shots}"
            self._set("label", f"{self.variant} β={self.nudge:g} {shots}")


def _n_train(dataset: str, test_fraction: float) -> int:
    """Training points of a stratified split (scikit-learn rounds the test size up)."""
    n = {"iris": 150, "wine": 178}[dataset]
    return n - int(np.ceil(test_fraction * n))


@dataclass(frozen=True)
class Dataset:
    """A fixed split: network inputs (fields), labels and where each point came from.

    ``x_train (N_train, n_inputs)`` and ``x_test`` are the input fields (standardised features,
    or principal components, times ``input_scale``); ``train_index`` and ``test_index`` are the
    rows of the original data set; ``mean``/``std`` are the training-set statistics used.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]


@lru_cache(maxsize=8)
def load_dataset(
    name: str = "iris",
    test_fraction: float = 0.4,
    split_seed: int = 0,
    input_scale: float = 1.0,
    components: int | None = None,
    thresholds: tuple[float, ...] = (0.0,),
) -> Dataset:
    """The data set, split (stratified, seeded) and mapped to input fields.

    Features are standardised with the training set's mean and standard deviation; with
    ``components``, projected onto the leading principal axes of the standardised training
    features (each axis's sign fixed so that its largest loading is positive) and standardised
    again; then multiplied by ``input_scale``. Deterministic (a pure function of its
    arguments): the cache only saves reloading.
    """
    from sklearn.datasets import load_iris, load_wine
    from sklearn.model_selection import train_test_split

    loaders = {"iris": load_iris, "wine": load_wine}
    if name not in loaders:
        raise ProblemError(f"unknown data set {name!r}; choose one of {list(loaders)}")
    data = loaders[name]()
    features = np.asarray(data.data, dtype=float)
    labels = np.asarray(data.target, dtype=int)
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, random_state=split_seed, stratify=labels
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    z = (features - mean) / std
    names = tuple(str(f) for f in data.feature_names)
    if components is not None:
        _, _, vt = np.linalg.svd(z[train_idx], full_matrices=False)
        axes = vt[:components]
        axes *= np.sign(axes[np.arange(components), np.argmax(np.abs(axes), axis=1)])[:, None]
        z = z @ axes.T
        z /= z[train_idx].std(axis=0)
        names = tuple(f"PC{k + 1}" for k in range(components))
    x = input_scale * np.concatenate([z - c for c in thresholds], axis=1)
    if len(thresholds) > 1:
        names = tuple(f"{f} - {c:g}" for c in thresholds for f in names)
    return Dataset(
        x_train=x[train_idx],
        y_train=labels[train_idx],
        x_test=x[test_idx],
        y_test=labels[test_idx],
        train_index=train_idx,
        test_index=test_idx,
        mean=mean,
        std=std,
        class_names=tuple(str(c) for c in data.target_names),
        feature_names=names,
    )


def targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The class code ``(N, n_classes)``: ``+1`` for the true class, ``-1`` for the others."""
    return 2.0 * np.eye(n_classes)[np.asarray(labels, dtype=int)] - 1.0


def spin_cost(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``⟨C⟩ = Σ_o (1 + t_o² - 2 t_o ⟨Z_o⟩)`` per point, for outputs ``(N, n_classes)``."""
    t = targets(labels, outputs.shape[1])
    return np.sum(1.0 + t * t - 2.0 * t * outputs, axis=1)


class TFIMNetworkExperiment(ExperimentBase):
    """The ``tfim-network`` training task (see the module docstring).

    State: ``params``/``optimiser`` (the QEP-trained network), ``twin_params``/``twin_optimiser``
    (its exact twin), ``meta["rng"]`` (mini-batches, then shot noise, in that order per step).
    """

    name = "tfim-network"
    Config = TFIMNetworkConfig

    # ------------------------------------------------------------------ configuration
    def data(self, config: TFIMNetworkConfig) -> Dataset:
        return load_dataset(
            config.dataset, config.test_fraction, config.split_seed, config.input_scale,
            config.components, tuple(config.thresholds),
        )  # fmt: skip

    def model(self, config: TFIMNetworkConfig) -> TFIMNetwork:
        n_features, n_classes = DATASETS[config.dataset]
        n_inputs = (config.components or n_features) * len(config.thresholds)
        return build_network(
            n_inputs, n_classes, tuple(config.hidden), config.graph, tuple(config.edges),
            config.bias, config.bias_field,
        )  # fmt: skip

    def spec(self, config: TFIMNetworkConfig) -> StateSpec:
        # the gap (the next level) is needed only roughly: for degeneracy and shot tolerances
        return StateSpec(tol=config.solver_tol, gap_tol=max(config.solver_tol, 1e-4))

    def optimiser(self, config: TFIMNetworkConfig) -> Optimiser:
        def make(rate: float) -> Optimiser:
            return adam(rate)

        if config.lr_decay == 0:
            return make(config.learning_rate)
        return inverse_time_decay(make, config.learning_rate, config.lr_decay)

    def options(self, config: TFIMNetworkConfig) -> GradientOptions:
        return GradientOptions(
            nudge=config.nudge,
            state=self.spec(config),
            shots=config.shots,
            shot_model=config.shot_model,
            noisy_outputs=config.noisy_outputs,
            warn_window=False,
        )

    # ------------------------------------------------------------------ gradients
    def qep_gradient(
        self, config: TFIMNetworkConfig, theta: np.ndarray, x: np.ndarray, labels: np.ndarray,
        rng: np.random.Generator | None,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        """Batch-averaged QEP gradient of ``⟨C⟩`` (the configured variant, nudge and shots)."""
        model = self.model(config)
        losses = [SpinCost(t) for t in targets(labels, len(model.output_spins))]
        return batch_mean_gradient(
            model.system, model.values(x, theta), losses, estimator=config.variant,
            options=self.options(config), rng=rng,
        )  # fmt: skip

    def exact_gradient(
        self, config: TFIMNetworkConfig, theta: np.ndarray, x: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Batch-averaged exact gradient ``∂⟨C⟩/∂θ`` (linear response) and the mean exact loss.

        The free states are solved together (:func:`~qeprop.solvers.batch.solve_ground_batch`),
        then ``d⟨A_j⟩/dλ`` for ``H + λ Σ_o ε_o Z_o`` by the backend's linear response, point by
        point: the same numbers as ``batch_mean_gradient(..., estimator="linear_response")``
        (which solves each free state on its own), faster.
        """
        model = self.model(config)
        system = model.system
        h = system.full
        spec = self.spec(config)
        values = np.array([system.full_values(v) for v in model.values(x, theta)])
        frees = solve_ground_batch(h, values, spec)
        a_coef = h.derivative_coefficients[system.trainable_index]
        ident, out_coef = system.output_coefficients
        t = targets(labels, len(model.output_spins))
        grads, losses = [], []
        for v, free, ti in zip(values, frees, t, strict=True):
            loss, eps = SpinCost(ti)(expectations(h, free, ident, out_coef))
            grads.append(response(h, v, free, a_coef, eps @ out_coef, spec))
            losses.append(loss)
        return np.mean(grads, axis=0), float(np.mean(losses))

    # ------------------------------------------------------------------ training
    def constrain(self, config: TFIMNetworkConfig, theta: np.ndarray) -> np.ndarray:
        """``θ`` with every transverse field raised to at least ``min_field``.

        Under the linear cost the fields of well-classified outputs shrink: a smaller ``h``
        polarises ``⟨Z_o⟩`` further. At ``h → 0`` the ground state is classical, the outputs are
        step functions of the inputs and every gradient vanishes, so training stops wherever it
        is (on iris typically at 2/3 accuracy). The bound keeps the network quantum; the sign of
        ``h_k`` is physically irrelevant (conjugation by ``Z_k``), so ``h_k >= min_field`` loses
        nothing.
        """
        if config.min_field <= 0:
            return theta
        mask = self._field_mask(config)
        out = np.array(theta, dtype=float)
        out[mask] = np.maximum(out[mask], config.min_field)
        return out

    def _field_mask(self, config: TFIMNetworkConfig) -> np.ndarray:
        names = set(self.model(config).field_names)
        return np.array([n in names for n in self.model(config).trainable])

    def init(self, config: TFIMNetworkConfig) -> TrainState:
        """Couplings ``J ~ N(0, init_scale²)``, fields ``h ~ init_field (1 + 0.1 N(0, 1))``
        raised to ``min_field``, ``g = 0``; the exact twin starts from the same couplings."""
        model = self.model(config)
        self.data(config)  # load (and check) the data before the run starts
        rng = np.random.default_rng(config.seed)
        theta = model.init_params(rng, config.init_scale, config.init_field)
        theta = self.constrain(config, theta)
        opt = self.optimiser(config)
        state = descent_init(theta, opt, rng, {"train_loss": [], "twin_train_loss": []})
        state.arrays["twin_params"] = theta.copy()
        state.arrays["twin_optimiser"] = dict(opt.init(theta))
        return state

    def step(self, config: TFIMNetworkConfig, state: TrainState) -> TrainState:
        """One Adam step of each twin on the same mini-batch (then :meth:`constrain`).

        The batch is drawn first (``batch_size`` training points without replacement), then the
        QEP gradient draws its shot noise; the exact twin uses no random numbers.
        """
        data = self.data(config)
        opt = self.optimiser(config)
        drawn: dict[str, np.ndarray] = {}

        def gradient(theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
            idx = np.sort(rng.choice(len(data.y_train), size=config.batch_size, replace=False))
            drawn["idx"] = idx
            grad, loss = self.qep_gradient(config, theta, data.x_train[idx], data.y_train[idx], rng)
            return grad, {"loss": loss}

        def constrain(old: np.ndarray, theta: np.ndarray) -> np.ndarray:
            return self.constrain(config, theta)

        new, info = descent_step(state, opt, gradient, constrain=constrain)
        idx = drawn["idx"]
        with deterministic():
            twin = np.asarray(state.arrays["twin_params"], dtype=float)
            grad, twin_loss = self.exact_gradient(
                config, twin, data.x_train[idx], data.y_train[idx]
            )
            twin_new, twin_opt = opt.update(twin, grad, dict(state.arrays["twin_optimiser"]))
        new.arrays["twin_params"] = self.constrain(config, np.asarray(twin_new, dtype=float))
        new.arrays["twin_optimiser"] = dict(twin_opt)
        keep = config.eval_every
        new.meta["train_loss"] = [*state.meta.get("train_loss", []), info["loss"]][-keep:]
        new.meta["twin_train_loss"] = [*state.meta.get("twin_train_loss", []), twin_loss][-keep:]
        return new

    # ------------------------------------------------------------------ evaluation
    def outputs(self, config: TFIMNetworkConfig, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Exact ``⟨Z_o⟩ (N, n_classes)`` of the ground states for inputs ``x (N, n_inputs)``.

        Every point is solved cold (from the solver's fixed start vector), in blocks, so the
        result depends only on ``theta`` and ``x``.
        """
        model = self.model(config)
        system = model.system
        h = system.full
        ident, coef = system.output_coefficients
        values = np.array([system.full_values(v) for v in model.values(x, theta)])
        block = max(1, _EVAL_BLOCK // h.dim)
        out = []
        with deterministic():
            for i in range(0, len(values), block):
                states = solve_ground_batch(h, values[i : i + block], self.spec(config))
                out += [expectations(h, st, ident, coef) for st in states]
        return np.array(out).reshape(len(values), len(model.output_spins))

    def _metrics(self, config: TFIMNetworkConfig, theta: np.ndarray) -> dict[str, Any]:
        data = self.data(config)
        out: dict[str, Any] = {}
        for part, x, y in (
            ("train", data.x_train, data.y_train),
            ("test", data.x_test, data.y_test),
        ):
            z = self.outputs(config, theta, x)
            out[f"{part}_accuracy"] = float(np.mean(np.argmax(z, axis=1) == y))
            out[f"{part}_loss"] = float(np.mean(spin_cost(z, y)))
        return out

    def evaluate(self, config: TFIMNetworkConfig, state: TrainState) -> dict[str, Any]:
        theta = np.asarray(state.arrays["params"], dtype=float)
        twin = np.asarray(state.arrays["twin_params"], dtype=float)
        own = self._metrics(config, theta)
        exact = {f"exact_twin_{k}": v for k, v in self._metrics(config, twin).items()}
        recent = state.meta.get("train_loss") or []
        twin_recent = state.meta.get("twin_train_loss") or []
        return {
            **own,
            **exact,
            "batch_loss": float(np.mean(recent)) if recent else None,
            "exact_twin_batch_loss": float(np.mean(twin_recent)) if twin_recent else None,
            "twin_distance": float(np.linalg.norm(theta - twin)),
        }

    def finish(
        self, config: TFIMNetworkConfig, state: TrainState
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        data = self.data(config)
        model = self.model(config)
        theta = np.asarray(state.arrays["params"], dtype=float)
        twin = np.asarray(state.arrays["twin_params"], dtype=float)
        metrics = self.evaluate(config, state)
        summary = {
            **{
                k: metrics[k]
                for k in (
                    "test_accuracy",
                    "train_accuracy",
                    "test_loss",
                    "train_loss",
                    "exact_twin_test_accuracy",
                    "exact_twin_train_accuracy",
                    "exact_twin_test_loss",
                    "exact_twin_train_loss",
                    "twin_distance",
                )
            },
            "shots": config.shots,
            "nudge": config.nudge,
            "variant": config.variant,
            "dataset": config.dataset,
            "n_train": len(data.y_train),
            "n_test": len(data.y_test),
            "n_qubits": model.n_spins,
            "n_params": len(model.trainable),
            "split_seed": config.split_seed,
            "seed": config.seed,
            "label": config.label,
        }
        arrays = {
            "params": theta,
            "twin_params": twin,
            "param_names": np.array(model.trainable),
            "train_index": data.train_index,
            "test_index": data.test_index,
            "test_labels": data.y_test,
            "test_outputs": self.outputs(config, theta, data.x_test),
            "twin_test_outputs": self.outputs(config, twin, data.x_test),
            "feature_mean": data.mean,
            "feature_std": data.std,
        }
        return summary, arrays


EXPERIMENT = TFIMNetworkExperiment()
