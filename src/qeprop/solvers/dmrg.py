"""Ground states of chain-like problems as matrix product states: the ``dmrg`` backend.

The Hamiltonian's Pauli terms (the same term list as every other rendering) become a matrix
product operator on an ordering of the qubits chosen so that every term stays short-ranged
(:func:`site_order`). The MPO's structure is built once per Hamiltonian, site order and set of
nonzero strings (:func:`mpo_template`); a new parameter vector (a nudge, a training step) only
refills the coefficients. DMRG sweeps (:mod:`qeprop.solvers._dmrg_sweeps`, plain numpy) find the
ground state:

* a **cold solve** starts from a seeded random MPS and runs state-averaged two-site sweeps for
  the two lowest states in one basis at bond dimension ``min(bond_dim, 16)``: their Ritz values
  give the gap (see below). It then drops the second state and runs two-site sweeps at
  ``bond_dim`` (singular values below the relative ``StateSpec.cutoff`` discarded) while the
  bond dimensions grow, then one-site sweeps within the bond dimensions reached until the energy
  changes by less than ``max(tol, 10 cutoff) · max(1, ||H||)`` between half-sweeps. The gap
  sweeps and the growing two-site sweeps run in **single precision** (their products cost
  about half): they stop at energy changes of ``1e-5 ||H||`` between half-sweeps of the same
  direction (at most 8), above the rounding of single precision (about ``n eps32 |E|``), a
  gap estimate below ``1e-5 ||H||`` is refined in double precision from the same two states,
  and the state is canonicalised again in double precision before the one-site sweeps (so
  the result is a double-precision solve within the bond bases chosen in single precision: at
  64 sites the centred gradient agrees with an all-double schedule to 1e-5, within its
  truncation error at bond dimension 64);
* a **warm solve** (``warm`` = a nearby state of the same order: the free state of a nudged
  solve, or the previous step's free state) runs one-site sweeps from that MPS within its bond
  dimensions, starting at the site where the Hamiltonian's coefficients changed most from those
  the start was solved at (:func:`changed_site`; for a nudged solve: the nudged outputs; a
  start without them: the site whose local tensor is furthest from a local ground state), to
  the same energy tolerance and to local residuals at most ``1e-5`` times the start's residual
  at that site (a small nudge is resolved relative to itself); two-site sweeps only if that does
  not converge. Free and nudged states then share
  their truncation: their difference is what QEP measures.

**Gap and degeneracy.** The state-averaged sweeps keep the two lowest states in one shared basis;
the difference of the two lowest Ritz values of the last local problem is the gap estimate
``δ`` (:attr:`~qeprop.states.MPSEquilibrium.gap`). Both Ritz values are upper bounds of their
levels; truncation errors largely cancel in the difference for states that differ only locally
(edge modes, symmetry-broken partners), and ``δ`` is an upper bound of the true gap up to the
ground state's truncation error at that bond dimension (tested against free fermions: within
1 % when the first excitation is a bulk one, about 10 % above for the edge modes of the cluster
phase). A gap at or below the degeneracy threshold (``StateSpec.degeneracy_threshold``) is
confirmed by state-averaged sweeps at ``bond_dim`` and then raises
:class:`~qeprop.errors.DegeneracyError` whatever ``degeneracy`` says: the equal-weight mixture
over the manifold that the exact backends offer is not available on this backend. Starting the
two states together from the random MPS (rather than adding a partner to a converged ground
state) keeps both sectors of a symmetry-broken pair in the basis when it can; it does not on long
chains, where the sweeps commit to one magnetisation near the chain's ends. Hence the **flip
check**: for each global product ``S = Π_q a_q`` of one letter that commutes with all but at most
40 % of the strings (:func:`flip_candidates`: ``∏X`` of an Ising or cluster-Ising chain, exact or
broken by a sensor's couplings), the state and its image ``Sψ`` are swept once more; an image
that relaxes to another state (overlap below 1/2) is the ground state of the other sector: the
lower of the two is kept, and their energy difference bounds the gap (in double precision when
single precision cannot resolve it). Without it, a field on one site of an 80-site ferromagnet
(tests/test_dmrg.py), and the sensor on a 128-site chain in its ferromagnetic phase, returned the
excited sector (0.6 above) with the bulk gap as its gap. Warm-started records carry the gap of
their start.

Expectation values of all Pauli strings come from the right-canonical MPS with shared left
environments (:func:`mps_string_expectations`); the record's accuracy is the energy variance
``⟨H²⟩ - ⟨H⟩²`` (:attr:`~qeprop.states.MPSEquilibrium.variance`). Local products, environments
and measurements run with single-threaded BLAS (``StateSpec.blas_threads``): they are many small
matrix products. Independent solves (the two nudged states of a centred gradient) can run in
Python threads instead (:func:`solve_many`, ``StateSpec.threads >= 2``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConvergenceError, DegeneracyError, ProblemError
from ..hamiltonian import ParametrisedHamiltonian
from ..pauli import PauliString
from ..states import MPSEquilibrium, State
from . import StateSpec, _progress
from ._dmrg_sweeps import SINGLE, MPOTemplate, Sweeper, left_env

__all__ = [
    "MAX_TERM_DISTANCE",
    "dmrg_memory",
    "format_order",
    "mps_string_expectations",
    "site_order",
    "solve_ground",
    "solve_many",
    "term_distance",
]

#: largest distance (in MPS sites) between the first and last qubit of a term in the chosen order
MAX_TERM_DISTANCE = 8
#: sweep budget (half-sweeps, each one direction) of a cold solve and of a warm one-site solve
_COLD_SWEEPS = 60
_WARM_SWEEPS = 12
#: largest bond dimension of the state-averaged sweeps (two lowest states, for the gap), their
#: budget of half-sweeps, the relative change of the gap estimate per pair of half-sweeps that
#: ends them, and the products per local (block Krylov) update; 8 products instead of 12 put
#: the gap estimate of a 40-site paramagnet several percent off the free-fermion gap
_GAP_CHI = 16
_GAP_SWEEPS = 6
_GAP_RTOL = 0.1
_GAP_ITER = 12
#: single-precision stages of a cold solve (relative to ||H||): gaps below _SINGLE_GAP are
#: estimated again in double precision; the two-site sweeps switch to double precision once the
#: energy changes by less than _SINGLE_STAGE per half-sweep
_SINGLE_GAP = 1e-5
_SINGLE_STAGE = 1e-5
_SINGLE_SWEEPS = 8
#: approximate Pauli symmetries (see :func:`flip_candidates`): a product of one letter on every
#: qubit that anticommutes with at most this fraction of the strings is tried on the cold state
#: (the sensor on a cluster-Ising chain: ∏X anticommutes with 32 % of the strings at 8 sites,
#: 25 % at 16 and 10 % at 64; ∏Y and ∏Z with 54-65 %)
_FLIP_FRACTION = 0.4
#: real 2x2 matrices of the flips (Y as the real Ỹ = -iY: the same state up to a global phase)
_FLIP_MATRICES = {
    "X": np.array([[0.0, 1.0], [1.0, 0.0]]),
    "Y": np.array([[0.0, 1.0], [-1.0, 0.0]]),
    "Z": np.array([[1.0, 0.0], [0.0, -1.0]]),
}
#: overlap above which a relaxed flipped state counts as the state it came from
_SAME_STATE = 0.5
#: energy change per half-sweep (times ``max(1, ||H||)``) and relative growth of the summed bond
#: dimensions below which the two-site sweeps at ``bond_dim`` hand over to one-site sweeps
_STAGE_TOL = 1e-7
_GROWTH = 0.01
#: Lanczos products per local update of the two-site sweeps, and the residual (times
#: ``sqrt(energy tolerance)``) that stops them earlier
_LOCAL_ITER = 12
_LOCAL_TOL = 1e-2
#: the same for one-site sweeps of warm solves and at the end of a cold solve (the precision of
#: the states whose differences QEP measures), and the residual relative to the largest local
#: residual of a warm start. The end of a cold solve gets more products per update: a nearly
#: degenerate pair of edge modes (the cluster phase with a sensor at 128 sites, gap 3e-4) is
#: resolved by long local Krylov runs, not by more sweeps (40 products: 16 half-sweeps instead
#: of 28, 15 s instead of 26 s per gradient)
_WARM_ITER = 20
_POLISH_ITER = 40
#: products per update of the first one-site half-sweep after the single-precision stage (its
#: state is accurate to single precision only; the next half-sweep does the precise work: 12
#: instead of 40 spends 10 % fewer one-site products at 32, 64 and 256 sites, 3 % more at 128)
_POLISH_FIRST = 12
_WARM_TOL = 1e-3
_WARM_REL = 1e-5
#: the local residual (times ``sqrt(energy tolerance)``) of the one-site sweeps that end a cold
#: solve: the free state's own precision matters only through its outputs (the nudged solves
#: that start from it converge to _WARM_TOL themselves); 1e-2 instead of _WARM_TOL spends 19 %
#: fewer one-site products at 64 sites and 27 % fewer at 128, with the centred gradient
#: unchanged against the exact one at 16 sites (2.3e-6) and against bond dimension 96 at 64
#: and 128 sites (4.3e-5, 1.2e-3: truncation)
_POLISH_TOL = 1e-2
#: seed of the random initial MPS of cold solves (solves are deterministic)
_INIT_SEED = 20240607

_ORDERS: weakref.WeakKeyDictionary[ParametrisedHamiltonian, tuple[int, ...]] = (
    weakref.WeakKeyDictionary()
)
_TEMPLATES: weakref.WeakKeyDictionary[
    ParametrisedHamiltonian, dict[tuple[tuple[int, ...], bytes], MPOTemplate]
] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------- site order
def _positions(order: Sequence[int]) -> np.ndarray:
    pos = np.empty(len(order), dtype=np.int64)
    pos[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    return pos


def term_distance(p: PauliString, pos: np.ndarray) -> int:
    """Distance between the first and last MPS site of ``p`` (``pos[q]`` = site of qubit ``q``)."""
    sites = [int(pos[q]) for q in p.letters()]
    return max(sites) - min(sites) if sites else 0


def _cost(strings: Sequence[PauliString], pos: np.ndarray) -> tuple[int, int]:
    d = [term_distance(p, pos) for p in strings]
    return (max(d, default=0), sum(d))


def site_order(ham: ParametrisedHamiltonian) -> tuple[int, ...]:
    """The MPS order of the qubits: ``order[k]`` is the qubit at site ``k``.

    The qubit order itself unless a reverse Cuthill-McKee ordering of the interaction graph (two
    qubits are joined when a term acts on both) makes the largest term span shorter; for a chain
    with a sensor this puts the sensor qubits next to the chain sites they couple to. Computed
    once per Hamiltonian (it depends only on which qubits the terms act on).
    """
    cached = _ORDERS.get(ham)
    if cached is not None:
        return cached
    n = ham.n_qubits
    strings = [p for p in ham.strings if p.weight > 1]
    identity = tuple(range(n))
    best = identity
    if strings:
        import scipy.sparse as sp
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        rows: list[int] = []
        cols: list[int] = []
        for p in strings:
            qs = list(p.letters())
            for a, b in itertools.pairwise(qs):
                rows += [a, b]
                cols += [b, a]
        graph = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        rcm = tuple(int(q) for q in reverse_cuthill_mckee(graph, symmetric_mode=True))
        cost_id = _cost(strings, _positions(identity))
        for cand in (rcm, rcm[::-1]):
            if _cost(strings, _positions(cand)) < min(cost_id, _cost(strings, _positions(best))):
                best = cand
    _ORDERS[ham] = best
    return best


def format_order(order: Sequence[int]) -> str:
    """``"0-31, 64, 65, 32-63"``: runs of consecutive qubits shown as ranges."""
    parts: list[str] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and order[j + 1] == order[j] + 1:
            j += 1
        parts.append(f"{order[i]}" if j == i else f"{order[i]}-{order[j]}")
        if j == i + 1:
            parts[-1] = f"{order[i]}, {order[j]}"
        i = j + 1
    return ", ".join(parts)


def check_short_ranged(ham: ParametrisedHamiltonian, order: Sequence[int]) -> None:
    """Raise :class:`ProblemError` naming the strings that span more than
    :data:`MAX_TERM_DISTANCE` sites in ``order`` (their MPO would be long-ranged)."""
    pos = _positions(order)
    bad = [(p, term_distance(p, pos)) for p in ham.strings]
    bad = [(p, d) for p, d in bad if d > MAX_TERM_DISTANCE]
    if not bad:
        return
    shown = ", ".join(f"{str(p)!r} ({d} sites apart)" for p, d in bad[:4])
    more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
    raise ProblemError(
        f"the dmrg backend needs every term within {MAX_TERM_DISTANCE} sites of the MPS order "
        f"[{format_order(order)}], but {shown}{more} reach further (a long-ranged MPO); use an "
        "exact backend (dense, sparse, matrix-free) or a chain-like layout",
        where="state.method",
    )


def _max_crossing(ham: ParametrisedHamiltonian, order: Sequence[int]) -> int:
    """Most terms crossing one bond of the MPS: an upper bound on the MPO bond dimension - 2."""
    n = ham.n_qubits
    pos = _positions(order)
    cross = np.zeros(n + 1, dtype=np.int64)
    for p in ham.strings:
        sites = [int(pos[q]) for q in p.letters()]
        if len(sites) > 1:
            cross[min(sites) + 1] += 1
            cross[max(sites) + 1] -= 1
    return int(np.max(np.cumsum(cross)))


def dmrg_memory(ham: ParametrisedHamiltonian, spec: StateSpec) -> float:
    """Peak bytes of a DMRG solve: the MPS of the sweeps, of the record and of its warm start,
    left and right MPO environments, the Krylov vectors of a two-site update (two states at
    once) and the environment of the squared MPO (the energy variance)."""
    n, chi = ham.n_qubits, spec.bond_dim
    order = site_order(ham)
    d_mpo = 2 + _max_crossing(ham, order)
    site = chi * chi * 2 * 16.0
    mps = 6 * n * site
    envs = 2 * n * chi * chi * d_mpo * 16.0
    local = 2 * (_WARM_ITER + 4) * 2 * site + 3 * (2 * chi) ** 2 * 16.0
    squared = 3 * chi * chi * d_mpo * d_mpo * 16.0
    return mps + envs + local + squared


# ---------------------------------------------------------------------------- MPS algebra
def _apply_letter(letter: str, b: np.ndarray) -> np.ndarray:
    """``Σ_t σ[s, t] B[l, t, r]`` for the Pauli ``σ`` named ``letter`` (site tensor ``(l,2,r)``)."""
    if letter == "Z":
        out = b.copy()
        out[:, 1] *= -1
        return out
    if letter == "X":
        return b[:, ::-1]
    # Y = [[0, -i], [i, 0]]
    out = np.empty(b.shape, dtype=complex)
    out[:, 0] = -1j * b[:, 1]
    out[:, 1] = 1j * b[:, 0]
    return out


def _transfer(env: np.ndarray, ket: np.ndarray, bra: np.ndarray) -> np.ndarray:
    """``E'[r, r'] = Σ E[l, l'] ket[l, s, r] conj(bra[l', s, r'])``."""
    x = np.tensordot(env, ket, axes=([0], [0]))  # (l', s, r)
    return np.tensordot(x, bra.conj(), axes=([0, 1], [0, 1]))


def right_canonical(tensors: Sequence[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Right-canonical copies ``(χ, 2, χ')`` of an MPS and the natural logarithm of its norm (the
    copies are normalised).

    The norm of an unnormalised MPS grows or shrinks geometrically with its length (a random
    one of 512 sites overflows float64), so the carried factor is rescaled at every site by a
    power of two (exact in floating point: the copies do not depend on it) and the scales are
    summed as logarithms.
    """
    ts = [np.asarray(t) for t in tensors]
    out: list[np.ndarray] = [ts[0]] * len(ts)
    carry = np.ones((1, 1), dtype=ts[-1].dtype)
    log_norm = 0.0
    for k in range(len(ts) - 1, -1, -1):
        t = np.tensordot(ts[k], carry, axes=([2], [0]))  # (l, 2, r)
        l, s, r = t.shape
        if k == 0:
            norm = float(np.linalg.norm(t))
            out[0] = t / norm
            return out, log_norm + float(np.log(norm))
        # t = R^T Q^T with Q^T right-orthonormal rows: QR of the transpose
        q, rr = np.linalg.qr(t.reshape(l, s * r).T)
        out[k] = q.T.reshape(-1, s, r)
        _, exponent = np.frexp(np.max(np.abs(rr)))
        carry = rr.T * 2.0 ** -int(exponent)
        log_norm += float(exponent) * np.log(2.0)
    raise AssertionError("unreachable")


def left_environments(tensors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``L_0 = [[1]]``, ``L_{k+1} = Σ_s B_k[s]ᵀ L_k conj(B_k[s])`` (ket index first)."""
    envs = [np.ones((1, 1), dtype=tensors[0].dtype)]
    for b in tensors[:-1]:
        envs.append(_transfer(envs[-1], b, b))
    return envs


def mps_string_expectations(state: MPSEquilibrium, strings: Sequence[PauliString]) -> np.ndarray:
    """``⟨ψ|P_s|ψ⟩`` for every string (real, ``(S,)``) of a right-canonical MPS.

    With right-canonical tensors everything right of a string's last site contracts to the
    identity, and everything left of its first site ``k`` is the shared environment ``L_k``; a
    string costs one transfer ``O(χ³)`` per site of its span. Strings that start at the same
    site share the transfers of their common prefix.
    """
    with _blas(1):
        return _string_expectations(state, strings)


def _string_expectations(state: MPSEquilibrium, strings: Sequence[PauliString]) -> np.ndarray:
    pos = _positions(state.order)
    tensors, envs = state.tensors, state.envs
    out = np.empty(len(strings))
    by_start: dict[int, list[tuple[int, tuple[tuple[int, str], ...]]]] = {}
    for i, p in enumerate(strings):
        letters = tuple(sorted((int(pos[q]), c) for q, c in p.letters().items()))
        if not letters:
            out[i] = 1.0
            continue
        by_start.setdefault(letters[0][0], []).append((i, letters))
    for start, items in by_start.items():
        # environment after the last letter of every prefix seen (letters up to that site)
        cache: dict[tuple[tuple[int, str], ...], np.ndarray] = {}
        for i, letters in sorted(items, key=lambda it: it[1]):
            env, m = envs[start], 0
            for j in range(len(letters) - 1, 0, -1):
                hit = cache.get(letters[:j])
                if hit is not None:
                    env, m = hit, j
                    break
            site = letters[m - 1][0] + 1 if m else start
            todo = dict(letters[m:])
            for k in range(site, letters[-1][0] + 1):
                b = tensors[k]
                if k in todo:
                    env = _transfer(env, _apply_letter(todo[k], b), b)
                    m += 1
                    cache[letters[:m]] = env
                else:
                    env = _transfer(env, b, b)
            out[i] = float(np.trace(env).real)
    return out


def _h2(tensors: Sequence[np.ndarray], w: Sequence[np.ndarray]) -> float:
    """``⟨ψ|H²|ψ⟩`` for a normalised MPS and an MPO ``W_k[w, w', out, in]`` of ``H``: the
    environment sweep of :func:`~qeprop.solvers._dmrg_sweeps.left_env` with the squared MPO
    (bond dimension ``D²``)."""
    env = np.ones((1, 1, 1), dtype=np.result_type(tensors[0], w[0], np.complex128))
    for a, m in zip(tensors, w, strict=True):
        dl, dr = m.shape[:2]
        m2 = np.einsum("abut,cdts->acbdus", m, m).reshape(dl * dl, dr * dr, 2, 2)
        env = left_env(env, a, m2)
    return float(env.reshape(-1)[0].real)


# ---------------------------------------------------------------------------- the backend
@contextlib.contextmanager
def _blas(n: int | None) -> Iterator[None]:
    """DMRG's many small matrix products are much slower with several BLAS threads."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def mpo_template(
    ham: ParametrisedHamiltonian, order: tuple[int, ...], coef: np.ndarray
) -> MPOTemplate:
    """The MPO structure of ``ham`` on the MPS sites ``order`` for the strings with nonzero
    coefficients in ``coef``: built once per Hamiltonian, order and set of active strings (a
    free Hamiltonian and its nudged ones have two), then refilled with new coefficients."""
    active = coef != 0
    key = (order, active.tobytes())
    cache = _TEMPLATES.get(ham)
    if cache is None:
        cache = _TEMPLATES[ham] = {}
    tpl = cache.get(key)
    if tpl is None:
        tpl = cache[key] = MPOTemplate(ham.strings, _positions(order), active)
    return tpl


def _random_tensors(n: int, chi: int, complex_: bool) -> list[np.ndarray]:
    """A seeded random right-canonical MPS of bond dimension ``chi`` (cold solves start here)."""
    rng = np.random.default_rng(_INIT_SEED)
    dims = [min(chi, 2 ** min(k, n - k)) for k in range(n + 1)]
    tensors = []
    for k in range(n):
        a = rng.standard_normal((dims[k], 2, dims[k + 1]))
        if complex_:
            a = a + 1j * rng.standard_normal(a.shape)
        tensors.append(a)
    ts, _ = right_canonical(tensors)
    return ts


@dataclass
class _Run:
    """A finished sweep schedule: the sweeper (centre at site 0), the energy after each half-sweep
    (identity part excluded), whether the schedule converged, and the half-sweeps spent."""

    sweeper: Sweeper
    energies: list[float]
    converged: bool
    sweeps: int
    gap: float = np.inf


def flip_candidates(ham: ParametrisedHamiltonian, coef: np.ndarray) -> list[str]:
    """Letters ``a`` whose global product ``S_a = Π_q a_q`` is a symmetry of ``H = Σ_s c_s P_s``
    or of its bulk: ``S_a`` anticommutes with at most ``_FLIP_FRACTION`` of the strings with
    nonzero coefficients (``∏X`` of an Ising or cluster-Ising chain, exact, or broken by a
    sensor's couplings). Such an ``S_a`` maps a state of one symmetry-broken sector to the other
    (a degenerate partner, or a lower sector), which local sweeps cannot reach from a
    macroscopically different state; a symmetric state it maps to itself."""
    active = [p for p, c in zip(ham.strings, np.asarray(coef), strict=True) if c != 0]
    out: list[str] = []
    for letter in "XYZ":
        flip = PauliString.from_letters(dict.fromkeys(range(ham.n_qubits), letter))
        anti = sum(not flip.commutes(p) for p in active)
        if anti <= _FLIP_FRACTION * len(active):
            out.append(letter)
    return out


def _flipped(tensors: Sequence[np.ndarray], letter: str) -> list[np.ndarray]:
    """The MPS with the letter's matrix on every site (unitary: canonical form is kept)."""
    m = _FLIP_MATRICES[letter]
    return [np.einsum("st,ltr->lsr", m, t).astype(t.dtype) for t in tensors]


def _overlap(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """``|⟨b|a⟩|`` of two normalised MPS on the same sites."""
    env = np.ones((1, 1), dtype=np.result_type(a[0].dtype, b[0].dtype))
    for ka, kb in zip(a, b, strict=True):
        env = _transfer(env, ka, kb)
    return float(abs(env[0, 0]))


def _converted(sw: Sweeper, mpo: list[np.ndarray], dtype: np.dtype | type) -> Sweeper:
    """The sweeper's states in the precision ``dtype`` with the MPO ``mpo``: centre at site 0 and
    right-canonical again in that precision; the extra states' centre tensors take the same gauge
    (the canonicalisation of sites ``1..n-1`` does not depend on site 0)."""
    sw.move(0)
    main = [t.astype(dtype) for t in sw.a]
    tensors, _ = right_canonical(main)
    extra = [right_canonical([e.astype(dtype), *main[1:]])[0][0] for e in sw.extra]
    out = Sweeper(mpo, tensors, extra)
    out.matvecs = sw.matvecs  # the record counts every local product of the solve
    return out


def _flip_check(
    sw: Sweeper,
    flips: Sequence[str],
    mpo: list[np.ndarray],
    chi: int,
    cutoff: float,
    ltol: float,
    resolution: float,
) -> tuple[Sweeper, float, int]:
    """The flip check of a cold solve (see the module docstring): ``sw`` (one state, centre at
    site 0) and its image under each flip get one single-state two-site half-sweep (left to
    right, bond dimension ``chi``: both end at the last site, where their energies are compared);
    an image that relaxes to another state is another sector's ground state, and the lower one
    is kept. Energy differences below ``resolution`` (the precision of the sweeper's arithmetic)
    are measured again after one pair of half-sweeps of both states in double precision
    (``mpo``). Returns the state kept (in ``sw``'s precision), the smallest energy difference
    to another sector's state found (``inf`` if none) and the half-sweeps spent."""
    dtype, mpo_sw = sw.dtype, sw.w
    double = np.result_type(dtype, np.float64)
    images = [Sweeper(mpo_sw, _flipped(sw.a, letter)) for letter in flips]
    sw.sweep2("R", chi, cutoff, ltol, _GAP_ITER)
    spent, gap = 1, np.inf
    for other in images:
        other.sweep2("R", chi, cutoff, ltol, _GAP_ITER)
        spent += 1
        products = sw.matvecs + other.matvecs
        if _overlap(sw.a, other.a) < _SAME_STATE:  # another sector's ground state
            de = other.energy - sw.energy
            if abs(de) <= resolution and dtype != double:
                both = [_converted(x, mpo, double) for x in (sw, other)]
                for x in both:
                    x.matvecs = 0
                    for d in "RL":
                        x.sweep2(d, chi, cutoff, ltol, _GAP_ITER)
                        spent += 1
                    products += x.matvecs
                de = both[1].energy - both[0].energy
                sw, other = (_converted(x, mpo_sw, dtype) for x in both)
            gap = min(gap, abs(de))
            if de < 0:
                sw = other
        sw.matvecs = products
    return sw, gap, spent


def _sweep_cold(
    mpo: list[np.ndarray],
    n: int,
    spec: StateSpec,
    etol: float,
    threshold: float,
    scale: float,
    flips: Sequence[str] = (),
) -> _Run:
    """A cold solve with its gap estimate (see the module docstring); returns early, with the
    gap, when the gap is at or below ``threshold``.

    The gap estimate and the two-site sweeps that grow the bond dimension run in single
    precision (products about twice as fast) while what they resolve is far above its
    rounding: a gap below ``_SINGLE_GAP * scale`` is refined in double precision (the same two
    states, converted, until the gap settles or clears the threshold); after the growing
    sweeps, the state is canonicalised again in double precision and one-site sweeps in double
    precision finish it.

    ``flips`` (:func:`flip_candidates`): after the gap sweeps, :func:`_flip_check`; the energy
    difference to another sector's ground state bounds the gap.
    """
    chi, cutoff = spec.bond_dim, spec.cutoff
    cplx = any(np.iscomplexobj(w) for w in mpo)
    single = np.complex64 if cplx else np.float32
    double = np.complex128 if cplx else np.float64
    mpo1 = [w.astype(single) for w in mpo]
    sw = Sweeper(mpo1, [t.astype(single) for t in _random_tensors(n, 2, cplx)])
    budget = spec.maxiter or _COLD_SWEEPS
    ltol = _LOCAL_TOL * np.sqrt(etol)
    stage_tol = max(etol, _STAGE_TOL * scale)
    energies: list[float] = []
    sweeps = 0

    def two_states(c: int, fresh: bool = True) -> float:
        """State-averaged two-site sweeps for the two lowest states at bond dimension ``c``
        (``fresh``: the second one starts as a random centre tensor, else as it is); returns
        the gap estimate."""
        nonlocal sweeps
        if fresh:
            rng = np.random.default_rng(_INIT_SEED + 1)
            second = rng.standard_normal(sw.a[0].shape)
            if cplx:
                second = second + 1j * rng.standard_normal(second.shape)
            sw.extra = [(second / np.linalg.norm(second)).astype(sw.dtype)]
        gaps: list[float] = []
        spent = 0
        while sweeps < budget and spent < _GAP_SWEEPS:
            for d in "RL":
                sw.sweep2(d, c, cutoff, ltol, _GAP_ITER)
                sweeps += 1
                spent += 1
            e0, e1 = (float(x) for x in sw.energies)
            energies.append(e0)
            gaps.append(e1 - e0)
            if len(gaps) > 1 and abs(gaps[-1] - gaps[-2]) <= _GAP_RTOL * gaps[-1]:
                break
            if not fresh and gaps[-1] > _SINGLE_GAP * scale:
                break  # a refinement that shows the gap was resolved after all
        return gaps[-1] if gaps else np.inf

    chi_e = min(chi, _GAP_CHI)
    gap = two_states(chi_e)
    if gap <= _SINGLE_GAP * scale:
        # not resolved in single precision: the same states refined in double precision
        sw = _converted(sw, mpo, double)
        gap = two_states(chi_e, fresh=False)
        if gap <= threshold and chi_e < chi:
            gap = two_states(chi)  # confirm a refusal at the full bond dimension
        if gap > threshold:
            sw.drop_extra()
            sw = _converted(sw, mpo1, single)
    sw.drop_extra()
    if gap > threshold and flips:
        sw, sector_gap, spent = _flip_check(
            sw, flips, mpo, chi_e, cutoff, ltol, _SINGLE_GAP * scale
        )
        gap = min(gap, sector_gap)
        sweeps += spent
        energies.append(sw.energy)
    d = "R" if sw.centre == 0 else "L"
    if gap <= threshold:
        return _Run(sw, energies, True, sweeps, gap)
    # two-site half-sweeps at bond_dim while the bond dimensions grow and the energy moves. In
    # single precision the energy of a half-sweep's last local problem carries a rounding
    # offset that depends on the chain end it is at (about n eps32 |E|: 1e-2 at 130 sites), so
    # half-sweeps of the same direction are compared, against _SINGLE_STAGE * scale; after
    # _SINGLE_SWEEPS without settling, the growing sweeps go on in double precision
    grow: list[float] = []
    while sweeps < budget:
        before = sw.bond_dims()
        grow.append(sw.sweep2(d, chi, cutoff, ltol, _LOCAL_ITER))
        energies.append(grow[-1])
        sweeps += 1
        d = "L" if d == "R" else "R"
        grown = sw.bond_dims()
        settled = max(grown) == chi or sum(grown) <= (1 + _GROWTH) * sum(before)
        if sw.dtype in SINGLE:
            change = abs(grow[-1] - grow[-3]) if len(grow) >= 3 else np.inf
            if settled and change <= max(stage_tol, _SINGLE_STAGE * scale):
                break
            if len(grow) >= _SINGLE_SWEEPS:
                sw, d = _converted(sw, mpo, double), "R"
        elif settled and abs(energies[-1] - energies[-2]) <= stage_tol:
            break
    # one-site half-sweeps until the energy settles (local residuals _POLISH_TOL), ending at
    # site 0; a state from the single-precision stage is canonicalised again in double
    # precision first (its bond bases are kept: a two-site half-sweep in double precision to
    # refine them changed the centred gradient at 64 and 128 sites by less than its truncation
    # error at bond dimension 64 and cost about 15 % of the gradient)
    if sw.dtype in SINGLE:
        sw, d = _converted(sw, mpo, double), "R"
    ltol = _POLISH_TOL * np.sqrt(etol)
    first = True
    while sweeps < budget:
        energies.append(sw.sweep1(d, ltol, _POLISH_FIRST if first else _POLISH_ITER))
        first = False
        sweeps += 1
        if d == "L" and abs(energies[-1] - energies[-2]) <= etol:
            return _Run(sw, energies, True, sweeps, gap)
        d = "L" if d == "R" else "R"
    return _Run(sw, energies, False, sweeps, gap)


def changed_site(
    ham: ParametrisedHamiltonian, order: Sequence[int], coef: np.ndarray, before: np.ndarray | None
) -> int | None:
    """The MPS site where ``H = Σ_s c_s P_s`` changed most from the coefficients ``before`` (a
    warm start's) to ``coef``: the site with the largest ``Σ |Δc_s|`` over the strings acting on
    it (for a nudged solve: the sensor's output qubits). ``None`` if nothing changed or
    ``before`` is missing or of another basis."""
    if before is None or before.shape != coef.shape:
        return None
    delta = np.abs(np.asarray(coef) - before)
    if not np.any(delta):
        return None
    pos = _positions(order)
    weight = np.zeros(len(order))
    for i in np.flatnonzero(delta):
        for q in ham.strings[i].letters():
            weight[pos[q]] += delta[i]
    return int(np.argmax(weight))


def _sweep_warm(
    mpo: list[np.ndarray], start: MPSEquilibrium, spec: StateSpec, etol: float, site: int | None
) -> _Run:
    """One-site sweeps from a nearby MPS within its bond dimensions, starting at ``site`` (where
    the Hamiltonian changed most, :func:`changed_site`) or, if ``None``, at the site of largest
    local residual (found by a pass over the chain); two-site sweeps (bond dimensions free up
    to ``spec.bond_dim``) only if they do not converge."""
    sw = Sweeper(mpo, start.tensors)
    energies = [sw.centre_energy()]
    if site is None:
        res = sw.probe()
        site, top = int(np.argmax(res)), float(np.max(res))
        sw.move(site)
    else:
        sw.move(site)
        top = sw.residual()
    budget = spec.maxiter or _WARM_SWEEPS
    # the local residual of the start state where it changed measures how far the solve has to
    # go: a small nudge is resolved relative to itself (its response is what a gradient divides
    # by the nudge)
    ltol = min(_WARM_TOL * np.sqrt(etol), _WARM_REL * top)
    sweeps = 0
    while sweeps < budget:
        for d in "RL":
            energies.append(sw.sweep1(d, ltol, _WARM_ITER))
            sweeps += 1
        if abs(energies[-1] - energies[-2]) <= etol:
            return _Run(sw, energies, True, sweeps, start.gap)
    more = spec.maxiter or _COLD_SWEEPS
    spent = 0
    while spent < more:
        for d in "RL":
            energies.append(sw.sweep2(d, spec.bond_dim, spec.cutoff, ltol, _LOCAL_ITER))
            spent += 1
        if abs(energies[-1] - energies[-2]) <= etol:
            return _Run(sw, energies, True, sweeps + spent, start.gap)
    return _Run(sw, energies, False, sweeps + spent, start.gap)


def _finish(
    run: _Run, mpo: list[np.ndarray], offset: float, blas_threads: int | None
) -> tuple[list[np.ndarray], list[np.ndarray], float, functools.partial[float]]:
    """Right-canonical tensors, left environments, energy and (a function that computes) the
    energy variance of a run; the variance is left to the record, which computes it when it is
    first read (:attr:`~qeprop.states.MPSEquilibrium.variance`)."""
    sw = run.sweeper
    sw.move(0)
    e_mpo = sw.centre_energy()
    tensors = list(sw.a)
    tensors[0] = tensors[0] / np.linalg.norm(tensors[0])
    if all(np.isrealobj(t) or not np.any(t.imag) for t in tensors):
        tensors = [np.ascontiguousarray(t.real) for t in tensors]
    envs = left_environments(tensors)
    return (
        tensors,
        envs,
        e_mpo + offset,
        functools.partial(_variance, tensors, mpo, e_mpo, blas_threads),
    )


def _variance(
    tensors: Sequence[np.ndarray], mpo: Sequence[np.ndarray], e_mpo: float, blas: int | None
) -> float:
    """``⟨H²⟩ - ⟨H⟩²`` of a normalised MPS (``e_mpo``: ``⟨H⟩`` without the identity part, which
    does not change the variance), with the BLAS threads of the sweeps (``blas``)."""
    with _blas(blas):
        return max(_h2(tensors, mpo) - e_mpo**2, 0.0)


def _energy_tol(spec: StateSpec, norm: float) -> float:
    """Sweep-to-sweep energy change that counts as converged: ``tol ||H||``, but not below the
    energy noise of truncation (``10 cutoff ||H||``: each two-site update discards a weight up to
    ``cutoff``)."""
    return max(spec.tol, 10.0 * spec.cutoff) * max(1.0, norm)


def solve_ground(
    ham: ParametrisedHamiltonian, values: np.ndarray, spec: StateSpec, warm: State | None
) -> MPSEquilibrium:
    """The ground state of ``H(values)`` as an MPS (see the module docstring).

    Raises :class:`~qeprop.errors.ConvergenceError` when the sweeps do not converge (with the
    energy change reached and the variance), :class:`~qeprop.errors.DegeneracyError` for a
    degenerate ground state and :class:`~qeprop.errors.ProblemError` for long-ranged terms.
    """
    with _blas(spec.blas_threads):
        return _solve_ground(ham, values, spec, warm, spec.blas_threads)


def solve_many(
    ham: ParametrisedHamiltonian,
    values: Sequence[np.ndarray],
    spec: StateSpec,
    warm: Sequence[State | None],
) -> list[MPSEquilibrium]:
    """:func:`solve_ground` for several parameter vectors (``warm[i]`` the warm start of
    ``values[i]``; e.g. the ``+β`` and ``-β`` nudged states of a centred gradient).

    With ``spec.threads >= 2`` up to ``spec.threads`` solves run at once in Python threads, each
    with single-threaded BLAS (numpy's matrix products release the GIL, and the sweeps' products
    are too small to gain from threaded BLAS); otherwise one after the other. The results do not
    depend on the number of threads. The first error raised (in the order of ``values``) is
    re-raised.
    """
    if len(values) != len(warm):
        raise ValueError(f"{len(values)} parameter vectors but {len(warm)} warm starts")
    workers = min(spec.threads, len(values))
    if workers < 2:
        states = []
        for v, w in zip(values, warm, strict=True):
            _progress.solve_started("dmrg", "ground")
            states.append(solve_ground(ham, v, spec, w))
        return states
    _progress.solve_started("dmrg", "ground", len(values))
    from concurrent.futures import ThreadPoolExecutor

    # the MPO structure and site order are cached per Hamiltonian: build them before the threads
    order = site_order(ham)
    check_short_ranged(ham, order)
    for v in values:
        mpo_template(ham, order, ham.string_coefficients(v))
    # one BLAS limit for the whole batch: threadpoolctl's limits are process-wide, so the
    # threads must not set and restore them one by one
    with _blas(1), ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_solve_ground, ham, v, spec, w, 1)
            for v, w in zip(values, warm, strict=True)
        ]
        return [f.result() for f in futures]


def _solve_ground(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    warm: State | None,
    blas_threads: int | None,
) -> MPSEquilibrium:
    """:func:`solve_ground` inside the caller's BLAS limit (``blas_threads``: the limit the
    record's variance is computed with)."""
    n = ham.n_qubits
    if n < 2:
        raise ProblemError(
            "the dmrg backend needs at least 2 qubits; use an exact backend", where="state.method"
        )
    order = site_order(ham)
    check_short_ranged(ham, order)
    coef = ham.string_coefficients(values)
    norm = float(np.abs(coef).sum())
    etol = _energy_tol(spec, norm)
    tpl = mpo_template(ham, order, coef)
    mpo = tpl.arrays(coef)
    offset = tpl.offset(coef)
    start = warm if isinstance(warm, MPSEquilibrium) and warm.order == order else None
    threshold = spec.degeneracy_threshold(norm)
    if start is not None:
        site = changed_site(ham, order, coef, start.coefficients)
        run = _sweep_warm(mpo, start, spec, etol, site)
    else:
        flips = flip_candidates(ham, coef)
        run = _sweep_cold(mpo, n, spec, etol, threshold, max(1.0, norm), flips)
        if run.gap <= threshold:
            raise DegeneracyError(
                f"the ground state is degenerate: the two lowest states found by DMRG lie "
                f"{run.gap:.3e} apart, below the degeneracy threshold {threshold:.3g} "
                "(degeneracy_tol, at least 1e3 eps ||H||); the dmrg backend cannot form the "
                "equal-weight mixture over a degenerate manifold (degeneracy='mixture' needs "
                "an exact backend: dense, sparse or matrix-free); break the degeneracy (e.g. "
                "a small symmetry-breaking field) to use dmrg"
            )
    tensors, envs, energy, variance = _finish(run, mpo, offset, blas_threads)
    if not run.converged:
        es = run.energies
        change = abs(es[-1] - es[-2]) if len(es) > 1 else float("nan")
        raise ConvergenceError(
            f"DMRG did not converge in {run.sweeps} sweeps: the energy still changed by "
            f"{change:.3g} (tolerance {etol:.3g}), energy variance {variance():.3g}; raise "
            "state.maxiter or state.bond_dim, or loosen state.tol"
        )
    gap = float(min(run.gap, norm)) if np.isfinite(run.gap) else np.inf
    bond = max(max(t.shape[0], t.shape[2]) for t in tensors)
    return MPSEquilibrium(
        tensors=tuple(tensors),
        order=order,
        envs=tuple(envs),
        energy=energy,
        gap=gap,
        variance_of=variance,
        sweeps=run.sweeps,
        bond_dim=bond,
        warm_started=start is not None,
        matvecs=run.sweeper.matvecs,
        coefficients=np.array(coef, dtype=float),
    )


def response(*_: Any) -> np.ndarray:
    """Linear response is not implemented on MPS states."""
    raise ProblemError(
        "linear_response is not available on the dmrg backend; use a nudged estimator "
        "(centered, positive or negative)",
        where="estimator",
    )
