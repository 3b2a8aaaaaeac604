"""Ground states through the Pauli-symmetry sectors of ``H`` (``state.symmetry = "auto"``).

When independent Pauli strings ``g_1..g_r`` commute with every term of ``H(p)`` (plaquette and
loop operators of the Kitaev honeycomb, parities, ...), ``H`` is block diagonal in ``2^r`` sectors
of dimension ``2^(n-r)`` (:mod:`qeprop.symmetry`). The ground state is

.. math::  E_0 = \\min_s E_0(H_s),

the lowest level over all sectors: every sector's lowest energy is computed (one batched Lanczos
run over all sectors, :func:`qeprop.solvers.batch.solve_ground_batch` on the reduced
Hamiltonian), the lowest sector is solved again with its gap, and its state is mapped back to the
full space. Levels of different sectors cannot mix, so a Krylov solver in the full space converges
slowly (or stalls) when the lowest levels of two sectors are close (1e-4 apart on the Kitaev torus);
in the sectors each run sees only its own, well separated, spectrum.

* **Degeneracy across sectors.** The gap is ``min(in-sector gap, E_0(next sector) - E_0)``. Lowest
  levels of several sectors within the degeneracy threshold form a degenerate manifold, handled by
  ``state.degeneracy`` as in every backend (``"error"`` raises, ``"mixture"`` mixes them equally).
* **Nudged states** (solved with the free state as ``guess``) stay in the free state's sector(s):
  the nudge commutes with the symmetries, so the free state's branch is the nudged state of the
  same sector, the state QEP differentiates (Scellier, Sec. 3: any eigenstate followed by
  continuity). Their gap is not computed (``nan``), as for the other warm-started solves.
* **Records** hold full-space vectors, so every estimator, shot model and linear response works
  unchanged; ``record.sector`` says which sectors (see :class:`SectorState`).

Only ground states use sectors (``StateSpec`` refuses ``symmetry = "auto"`` for other kinds). A
Hamiltonian without symmetries is solved as with ``symmetry = "none"``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DegeneracyError, ProblemError
from ..hamiltonian import ParametrisedHamiltonian, Term
from ..memory import check_memory
from ..states import Equilibrium
from ..symmetry import TaperedString, Tapering, tapering
from . import StateSpec
from .exact import _degeneracy_message

__all__ = ["SectorForm", "SectorState", "sector_form", "solve_ground", "solve_ground_batch"]

#: reduced dimension up to which all sectors are solved together by the batched Lanczos kernel;
#: larger sectors are solved one by one with the plain backends
_BATCH_MAX_DIM = 1 << 14
#: most symmetries used (2^14 sectors): more only multiply the sectors every cold solve scans
#: (a Hamiltonian of commuting Z terms would otherwise have one sector per basis state)
MAX_GENERATORS = 14


@dataclass(frozen=True)
class SectorState:
    """Where a ground state lives: ``indices[j]`` is a sector (bit ``i`` set: ``g_i = -1``) and
    ``states[j]`` the state in that sector's reduced space (a warm start for nudged solves)."""

    indices: tuple[int, ...]
    states: tuple[Equilibrium, ...]


@dataclass(frozen=True)
class SectorForm:
    """The block-diagonal form of one parametrised Hamiltonian.

    Attributes
    ----------
    tapering : :class:`~qeprop.symmetry.Tapering`
    reduced : ParametrisedHamiltonian
        ``H_s`` on the ``n - r`` kept qubits, with one parameter ``c<t>`` (coefficient 1) per
        distinct reduced string; its parameter vector for sector ``s`` is :meth:`rows`.
    strings : (S,) int array
        For each string of the full Hamiltonian's basis, its reduced string (parameter index of
        ``reduced``), or ``-1`` for strings no term uses (observables only).
    tapered : tuple of TaperedString
        The sector form of each term string (aligned with ``strings >= 0``).
    """

    tapering: Tapering
    reduced: ParametrisedHamiltonian
    strings: np.ndarray
    tapered: tuple[TaperedString, ...]

    @property
    def n_sectors(self) -> int:
        return self.tapering.n_sectors

    def rows(self, coef: np.ndarray, sectors: np.ndarray) -> np.ndarray:
        """Parameter vectors ``(len(sectors), T)`` of ``reduced`` for the full string
        coefficients ``coef (S,)``:
        ``c_t(s) = Σ_{P ↦ t} c_P sign_P (-1)^{popcount(s & chars_P)}``."""
        used = self.strings >= 0
        signs = self.tapering.sector_signs(self.tapered, np.asarray(sectors))
        out = np.zeros((len(signs), len(self.reduced.params)))
        contrib = signs * np.asarray(coef, dtype=float)[used][None, :]
        for j, t in enumerate(self.strings[used]):
            out[:, t] += contrib[:, j]
        return out


_FORMS: weakref.WeakKeyDictionary[ParametrisedHamiltonian, SectorForm | None] = (
    weakref.WeakKeyDictionary()
)


def sector_form(ham: ParametrisedHamiltonian) -> SectorForm | None:
    """The sector form of ``ham`` (built once per Hamiltonian), or ``None`` without symmetries."""
    if ham in _FORMS:
        return _FORMS[ham]
    term_strings = list(dict.fromkeys(t.pauli for t in ham.terms))
    tap = tapering(term_strings, ham.n_qubits, max_generators=MAX_GENERATORS)
    form: SectorForm | None = None
    if tap.generators:
        used = set(term_strings)
        index: dict[object, int] = {}
        tapered: list[TaperedString] = []
        strings = np.full(len(ham.strings), -1, dtype=np.int64)
        for i, p in enumerate(ham.strings):
            if p not in used:
                continue
            t = tap.taper(p)
            tapered.append(t)
            strings[i] = index.setdefault(t.string, len(index))
        reduced = ParametrisedHamiltonian(
            tap.sector_qubits,
            [Term(1.0, s, f"c{j}") for s, j in index.items()],  # type: ignore[arg-type]
        )
        form = SectorForm(tap, reduced, strings, tuple(tapered))
    _FORMS[ham] = form
    return form


def _plain(spec: StateSpec) -> StateSpec:
    return spec.with_(symmetry="none")


def _check_memory(ham: ParametrisedHamiltonian, form: SectorForm, batch: int, k: int) -> None:
    """Full-space vectors of ``batch`` records (``k`` vectors each, plus two for the mapping
    back) and the reduced solves of all sectors, before anything is allocated."""
    d, dr = ham.dim, form.reduced.dim
    full = (batch * k + 2) * d * 16
    reduced = 3 * batch * form.n_sectors * dr * 16 if dr <= _BATCH_MAX_DIM else 0
    check_memory(
        full + reduced,
        f"the ground state of {ham.n_qubits} qubits through {form.n_sectors} symmetry sectors",
        hint="use fewer qubits (or more memory)",
    )


def _lowest_per_sector(form: SectorForm, rows: np.ndarray, spec: StateSpec) -> np.ndarray:
    """Lowest energy of each reduced Hamiltonian (rows ``(N, T)``), without gaps."""
    from .batch import solve_ground_batch as batch

    if form.reduced.dim <= _BATCH_MAX_DIM:
        states = batch(form.reduced, rows, _plain(spec), guesses=[None] * len(rows))
    else:
        from . import solve_vectors as solve

        states = [solve(form.reduced, r, _plain(spec)) for r in rows]
    return np.array([s.energies[0] for s in states])


def _solve_reduced(
    form: SectorForm, rows: np.ndarray, spec: StateSpec, guesses: Sequence[Equilibrium | None]
) -> list[Equilibrium]:
    """States of the reduced Hamiltonians ``rows (N, T)``: cold rows with their gap, warm rows
    (a guess given) following it."""
    from . import solve_vectors as solve
    from .batch import solve_ground_batch as batch

    plain = _plain(spec)
    out: list[Equilibrium | None] = [None] * len(rows)
    small = form.reduced.dim <= _BATCH_MAX_DIM
    cold = [i for i, g in enumerate(guesses) if g is None]
    warm = [i for i, g in enumerate(guesses) if g is not None and g.degeneracy == 1]
    if small and cold:
        for i, st in zip(cold, batch(form.reduced, rows[cold], plain), strict=True):
            out[i] = st
    if small and warm:
        got = batch(form.reduced, rows[warm], plain, guesses=[guesses[i] for i in warm])
        for i, st in zip(warm, got, strict=True):
            out[i] = st
    for i in range(len(rows)):
        if out[i] is None:
            out[i] = solve(form.reduced, rows[i], plain, guesses[i])
    return [s for s in out if s is not None]


def _record(
    ham: ParametrisedHamiltonian,
    form: SectorForm,
    indices: Sequence[int],
    parts: Sequence[Equilibrium],
    gap: float,
) -> Equilibrium:
    """The full-space record of the manifold made of ``parts`` (one reduced state per sector)."""
    from .exact import kernel_for

    vecs = [form.tapering.embed(s, p.vectors) for s, p in zip(indices, parts, strict=True)]
    energies = np.concatenate([p.energies for p in parts])
    order = np.argsort(energies, kind="stable")
    vectors = np.concatenate(vecs, axis=1)[:, order]
    energies = energies[order]
    if ham.is_real and np.allclose(vectors.imag, 0.0):
        vectors = np.ascontiguousarray(vectors.real)
    g = len(energies)
    return Equilibrium(
        vectors=vectors,
        weights=np.full(g, 1.0 / g),
        energies=energies,
        gap=gap,
        splitting=float(energies[-1] - energies[0]),
        kind="ground",
        method="sectors/" + parts[0].method,
        level=0,
        residual=max(p.residual for p in parts),
        matvecs=sum(p.matvecs for p in parts),
        spectrum=energies.copy(),
        backend="matrix-free",
        engine=kernel_for(ham),
        sector=SectorState(tuple(int(s) for s in indices), tuple(parts)),
    )


def solve_ground_batch(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    guesses: Sequence[Equilibrium | None] | None = None,
) -> list[Equilibrium]:
    """Ground states of ``H(values[b])`` (``values (B, P)``) through the symmetry sectors.

    Cold elements (no guess, or a guess without sectors) scan every sector for its lowest energy
    and solve the lowest sector(s) with their gap; warm elements stay in their guess's sectors.
    """
    from . import solve_vectors as solve

    values = np.atleast_2d(np.asarray(values, dtype=float))
    guesses = list(guesses) if guesses is not None else [None] * len(values)
    if len(guesses) != len(values):
        raise ProblemError(f"{len(guesses)} guesses for {len(values)} parameter vectors")
    form = sector_form(ham)
    if form is None:
        from .batch import solve_ground_batch as batch

        if all(g is None for g in guesses):
            return batch(ham, values, _plain(spec))
        return [solve(ham, v, _plain(spec), g) for v, g in zip(values, guesses, strict=True)]
    coef = np.array([ham.string_coefficients(ham.check_values(v)) for v in values])
    _check_memory(ham, form, len(values), 2)
    out: list[Equilibrium | None] = [None] * len(values)
    # ---- warm: the guess's sectors, each warm-started from its reduced state
    warm = [i for i, g in enumerate(guesses) if g is not None and g.sector is not None]
    if warm:
        jobs = [(i, s, st) for i in warm for s, st in zip(*_sectors_of(guesses[i]), strict=True)]
        rows = np.concatenate([form.rows(coef[i], np.array([s])) for i, s, _ in jobs])
        got = _solve_reduced(form, rows, spec, [st for _, _, st in jobs])
        for i in warm:
            mine = [(s, st) for (j, s, _), st in zip(jobs, got, strict=True) if j == i]
            out[i] = _record(ham, form, [s for s, _ in mine], [st for _, st in mine], np.nan)
    # ---- cold: scan all sectors, then solve the lowest with its gap
    cold = [i for i in range(len(values)) if out[i] is None]
    if cold:
        every = np.arange(form.n_sectors)
        rows = np.concatenate([form.rows(coef[i], every) for i in cold])
        lowest = _lowest_per_sector(form, rows, spec).reshape(len(cold), form.n_sectors)
        picks: list[tuple[int, list[int], float]] = []
        for row, i in enumerate(cold):
            e = lowest[row]
            tol_deg = spec.degeneracy_threshold(ham.norm_bound(values[i]))
            within = [int(s) for s in np.argsort(e, kind="stable") if e[s] - e.min() < tol_deg]
            picks.append((i, within, tol_deg))
        jobs2 = [(i, s) for i, within, _ in picks for s in within]
        rows2 = np.concatenate([form.rows(coef[i], np.array([s])) for i, s in jobs2])
        got2 = _solve_reduced(form, rows2, spec, [None] * len(jobs2))
        for row, (i, within, tol_deg) in enumerate(picks):
            parts = [st for (j, _), st in zip(jobs2, got2, strict=True) if j == i]
            e = lowest[row]
            top = max(p.energies[-1] for p in parts)
            outside = [p.energies[-1] + p.gap for p in parts]
            others = np.delete(e, within)
            if others.size:
                outside.append(float(others.min()))
            gap = float(min(outside) - top)
            if len(within) > 1 and spec.degeneracy == "error":
                raise DegeneracyError(
                    f"the ground state is degenerate: the lowest levels of the symmetry sectors "
                    f"{within} lie within the degeneracy threshold {tol_deg:.3g} of each other; "
                    "set degeneracy='mixture' to use the equal-weight mixture over them"
                )
            if spec.degeneracy == "error" and gap < tol_deg:
                raise DegeneracyError(_degeneracy_message("ground", 0, gap, tol_deg))
            out[i] = _record(ham, form, within, parts, gap)
    return [r for r in out if r is not None]


def _sectors_of(guess: Equilibrium | None) -> tuple[tuple[int, ...], tuple[Equilibrium, ...]]:
    sec = guess.sector if guess is not None else None
    if not isinstance(sec, SectorState):
        return (), ()
    return sec.indices, sec.states


def solve_ground(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    guess: Equilibrium | None = None,
) -> Equilibrium:
    """The ground state of ``H(values)`` through the symmetry sectors (one element of
    :func:`solve_ground_batch`)."""
    return solve_ground_batch(ham, np.asarray(values)[None, :], spec, [guess])[0]
