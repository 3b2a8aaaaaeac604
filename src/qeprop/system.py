"""A QEP system: a parametrised Hamiltonian, its trainable couplings and its output observables.

.. math::  H(x, θ, ν) = H_{fixed} + Σ_k x_k B_k + Σ_j θ_j A_j + Σ_l ν_l O_l \\; (+ ν_C C)

Nudging is adding terms: the outputs ``O_l`` (and an optional cost observable ``C``) enter the
Hamiltonian as terms with the nudge parameters ``ν_l = nu[<output name>]`` (``nu[cost]``), which
are zero in the free phase. Free and nudged equilibria are therefore the same Hamiltonian object,
rendered from one precomputed structure, with different parameter vectors.

The Hamiltonian is either a qubit one (:class:`~qeprop.hamiltonian.ParametrisedHamiltonian`,
Pauli-sum observables) or an oscillator network (:class:`~qeprop.modes.ModeHamiltonian`,
quadrature observables :class:`~qeprop.quadratures.QuadSum`); the two kinds of observables are
never mixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar, cast

import numpy as np

from .checks import finite_real, readonly
from .errors import ProblemError
from .hamiltonian import ParametrisedHamiltonian, Term
from .modes import Hamiltonian, ModeHamiltonian, ModeTerm
from .pauli import PauliString, PauliSum, as_pauli_sum
from .quadratures import QuadString, QuadSum, as_quad_sum

__all__ = ["COST_NUDGE", "QEPSystem", "nudge_param"]

COST_NUDGE = "nu[cost]"


def nudge_param(output: str) -> str:
    """Name of the nudge parameter ``ν_l`` coupling to output ``output``."""
    return f"nu[{output}]"


#: the kind of Hamiltonian of a system: qubits or oscillator modes
H = TypeVar("H", bound=ParametrisedHamiltonian | ModeHamiltonian)

#: an observable of a qubit system (Pauli sum) or of an oscillator network (quadrature sum)
Observable = PauliSum | QuadSum


def _as_observable(ham: Hamiltonian, op: Any, what: str) -> Observable:
    """``op`` as an observable of ``ham``'s kind; a one-line error for the other kind."""
    if isinstance(ham, ModeHamiltonian):
        if isinstance(op, PauliSum | PauliString):
            raise ProblemError(
                f"{what} is a Pauli operator, but the Hamiltonian is an oscillator network "
                "(modes): use a quadrature observable (QuadSum, e.g. 'r0 r1')"
            )
        return as_quad_sum(op)
    if isinstance(op, QuadSum | QuadString):
        raise ProblemError(
            f"{what} is a quadrature observable (QuadSum), but the Hamiltonian acts on qubits: "
            "use a Pauli sum"
        )
    return as_pauli_sum(op)


def _beyond(ham: Hamiltonian, op: Observable) -> str | None:
    """``"qubit 5, beyond 4 qubits"`` when ``op`` acts outside ``ham``'s register, else None."""
    if isinstance(ham, ModeHamiltonian):
        assert isinstance(op, QuadSum)
        n, top = ham.n_modes, op.max_mode
        return f"mode {top}, beyond {n} modes" if top >= n else None
    assert isinstance(op, PauliSum)
    n, top = ham.n_qubits, op.max_qubit
    return f"qubit {top}, beyond {n} qubits" if top >= n else None


def _coefficients_of(ham: Hamiltonian, op: Observable, what: str) -> tuple[float, np.ndarray]:
    """``ham.coefficients_of(op, what)`` for an observable of ``ham``'s kind."""
    if isinstance(ham, ModeHamiltonian):
        return ham.coefficients_of(op, what=what)
    assert isinstance(op, PauliSum)
    return ham.coefficients_of(op, what=what)


def _term(coeff: float, op: PauliString | QuadString, param: str) -> Term | ModeTerm:
    """A Hamiltonian term of the kind of its operator (Pauli or quadrature string)."""
    if isinstance(op, QuadString):
        return ModeTerm(coeff, op, param)
    return Term(coeff, op, param)


class QEPSystem(Generic[H]):
    """Hamiltonian ``H(x, θ)`` plus the observables QEP reads out and nudges (immutable).

    Parameters
    ----------
    hamiltonian:
        ``H(x, θ)``; its parameters are inputs ``x`` and couplings ``θ``. Qubits
        (:class:`~qeprop.hamiltonian.ParametrisedHamiltonian`) or oscillator modes
        (:class:`~qeprop.modes.ModeHamiltonian`).
    outputs:
        Output observables ``O_l`` by name (Hermitian Pauli sums, e.g. projectors; quadrature
        sums for modes).
    trainable:
        Names of the trainable couplings ``θ`` (default: every parameter of ``hamiltonian``).
        The others are inputs, held fixed when differentiating.
    cost:
        Optional cost observable ``C`` whose expectation is the loss (Scellier's setting).
    """

    def __init__(
        self,
        hamiltonian: H,
        outputs: Mapping[str, Observable | str] | None = None,
        trainable: Sequence[str] | None = None,
        cost: Observable | str | None = None,
    ) -> None:
        if not isinstance(hamiltonian, ParametrisedHamiltonian | ModeHamiltonian):
            raise ProblemError(
                "expected a ParametrisedHamiltonian (qubits) or a ModeHamiltonian (oscillator "
                f"modes), got {type(hamiltonian).__name__}"
            )
        self.hamiltonian: H = hamiltonian
        if outputs is not None and not isinstance(outputs, Mapping):
            raise ProblemError(
                f"outputs must be a name->observable mapping, got {type(outputs).__name__}"
            )
        self.outputs: dict[str, Observable] = {}
        for k, v in dict(outputs or {}).items():
            if not isinstance(k, str) or not k:
                raise ProblemError(f"output names must be non-empty text, got {k!r}")
            self.outputs[k] = _as_observable(hamiltonian, v, f"output {k!r}")
        self.cost: Observable | None = (
            None if cost is None else _as_observable(hamiltonian, cost, "the cost observable")
        )
        params = hamiltonian.params
        if trainable is not None and isinstance(trainable, str):
            raise ProblemError(f"trainable must be a list of parameter names, got {trainable!r}")
        self.trainable: tuple[str, ...] = tuple(params) if trainable is None else tuple(trainable)
        unknown = [p for p in self.trainable if p not in params]
        if unknown:
            raise ProblemError(
                f"trainable parameters {unknown[:6]} are not parameters of the Hamiltonian"
            )
        twice = sorted({p for p in self.trainable if self.trainable.count(p) > 1})
        if twice:
            raise ProblemError(f"trainable parameters {twice} are listed more than once")
        nudges = [nudge_param(k) for k in self.outputs]
        if self.cost is not None:
            if COST_NUDGE in nudges:
                raise ProblemError(
                    "an output named 'cost' cannot be used together with a cost observable "
                    f"(both would be nudged by {COST_NUDGE!r})"
                )
            nudges.append(COST_NUDGE)
        taken = [p for p in nudges if p in hamiltonian.param_index]
        if taken:
            raise ProblemError(
                f"parameter name {taken[0]!r} is reserved for the nudge of an output; "
                "rename the parameter"
            )
        named = [*self.outputs.items(), *([("cost", self.cost)] if self.cost is not None else [])]
        for name, op in named:
            beyond = _beyond(hamiltonian, op)
            if beyond is not None:
                raise ProblemError(f"output {name!r} acts on {beyond}")
            op.real(what=f"output {name!r}")

    def __repr__(self) -> str:
        return (
            f"QEPSystem({self.hamiltonian!r}, outputs={list(self.outputs)}, "
            f"trainable={len(self.trainable)}, cost={'yes' if self.cost is not None else 'no'})"
        )

    # ------------------------------------------------------------------ the full Hamiltonian
    @cached_property
    def full(self) -> H:
        """``H(x, θ, ν)`` with one nudge parameter per output (and ``nu[cost]``)."""
        h = self.hamiltonian
        extra: list = []
        names: list[str] = []
        ops = list(self.outputs.items())
        for name, op in ops:
            names.append(nudge_param(name))
            extra += [_term(c, p, nudge_param(name)) for p, c in op.real().items()]
        if self.cost is not None:
            names.append(COST_NUDGE)
            extra += [_term(c, p, COST_NUDGE) for p, c in self.cost.real().items()]
        return cast(H, h.with_terms(extra, params=names))

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.outputs)

    @cached_property
    def trainable_index(self) -> np.ndarray:
        """Positions of the trainable parameters in :attr:`full`'s parameter vector (read-only)."""
        return readonly(np.array([self.full.param_index[p] for p in self.trainable], dtype=int))

    @cached_property
    def output_index(self) -> np.ndarray:
        """Positions of the output nudges ``ν_l`` in :attr:`full`'s parameter vector (read-only)."""
        return readonly(
            np.array([self.full.param_index[nudge_param(n)] for n in self.outputs], dtype=int)
        )

    @cached_property
    def output_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """``(identity parts (L,), string coefficients (L, n_strings))`` of the outputs.

        Both arrays are read-only: they are cached and shared by every later gradient.
        """
        h = self.full
        rows = [_coefficients_of(h, op, f"output {n!r}") for n, op in self.outputs.items()]
        ident = np.array([r[0] for r in rows])
        coef = np.array([r[1] for r in rows]).reshape(len(rows), len(h.strings))
        return readonly(ident), readonly(coef)

    @cached_property
    def cost_coefficients(self) -> tuple[float, np.ndarray]:
        """``(identity part, string coefficients (n_strings,))`` of the cost (read-only)."""
        if self.cost is None:
            raise ProblemError("this system has no cost observable")
        ident, coef = _coefficients_of(self.full, self.cost, "cost observable")
        return ident, readonly(coef)

    def full_values(
        self, values: Mapping[str, float] | np.ndarray, nudges: Mapping[str, float] | None = None
    ) -> np.ndarray:
        """Parameter vector of :attr:`full`: ``values`` for ``H(x, θ)`` and zero nudges.

        ``values`` is a name->value mapping or a vector aligned with ``hamiltonian.params``.
        """
        h = self.hamiltonian
        if isinstance(values, Mapping):
            base = h.values(values)
        else:
            base = h.check_values(values)
        out = np.zeros(len(self.full.params))
        out[: len(base)] = base
        for k, v in (nudges or {}).items():
            if k not in self.full.param_index or k in h.param_index:
                raise ProblemError(
                    f"unknown nudge {k!r}; the nudges are {list(self.full.params[len(base) :])}"
                )
            out[self.full.param_index[k]] = finite_real(v, k)
        return self.full.check_values(out)
