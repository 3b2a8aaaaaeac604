"""Ground states of chain-like problems as matrix product states: the ``dmrg`` backend.

The Hamiltonian's Pauli terms (the same term list as every other rendering) become a matrix
product operator (quimb's ``SparseOperatorBuilder``) on an ordering of the qubits chosen so that
every term stays short-ranged (:func:`site_order`); quimb's DMRG finds the ground state:

* a cold solve runs two-site DMRG (bond dimension ramped up to ``StateSpec.bond_dim``, singular
  values below the relative ``StateSpec.cutoff`` discarded) until the energy changes by less than
  ``tol · max(1, ||H||)`` between sweeps, then one-site sweeps at the bond dimensions reached;
* a nudged solve (``warm`` = the free state) runs one-site sweeps from the free MPS, keeping its
  bond dimensions: a few cheap sweeps instead of a cold solve, and the same truncation in both
  states (their difference is what QEP measures);
* a free solve also looks for a second state orthogonal to the first (two-site DMRG on
  ``H + w |ψ0⟩⟨ψ0|`` with ``w = max(1, Σ|c_s|)`` above any local excitation); its energy gives
  the gap ``δ = min(E_1 - E_0, w)``, and a gap below the
  degeneracy threshold (``StateSpec.degeneracy_threshold``) raises
  :class:`~qeprop.errors.DegeneracyError` whatever ``degeneracy`` says: the equal-weight mixture
  over the manifold that the exact backends offer is not available on this backend.

Expectation values of all Pauli strings come from the right-canonical MPS with shared left
environments (:func:`mps_string_expectations`); the record's accuracy is the energy variance
``⟨H²⟩ - ⟨H⟩²`` (:attr:`~qeprop.states.MPSEquilibrium.variance`).

quimb's DMRG returns the complex conjugate of the ground state of the MPO it is given (it solves
with ``Hᵀ``); the MPO is therefore built from ``H* = Σ_s (-1)^{n_Y(s)} c_s P_s``, so that the MPS is
the ground state of ``H`` itself and strings with an odd number of ``Y`` come out with the right
sign.

quimb is imported only inside the solver: ``import qeprop`` does not load it.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import ConvergenceError, DegeneracyError, ProblemError
from ..hamiltonian import ParametrisedHamiltonian
from ..pauli import PauliString
from ..states import MPSEquilibrium, State
from . import StateSpec

__all__ = [
    "MAX_TERM_DISTANCE",
    "dmrg_memory",
    "format_order",
    "mps_string_expectations",
    "site_order",
    "solve_ground",
    "term_distance",
]

#: largest distance (in MPS sites) between the first and last qubit of a term in the chosen order
MAX_TERM_DISTANCE = 8
#: sweep budget of a cold two-site solve (each sweep is one direction), one-site polish, warm solve
_COLD_SWEEPS = 40
_POLISH_SWEEPS = 4
_WARM_SWEEPS = 12
#: seed of the random initial MPS of cold solves (solves are deterministic)
_INIT_SEED = 20240607

_ORDERS: weakref.WeakKeyDictionary[ParametrisedHamiltonian, tuple[int, ...]] = (
    weakref.WeakKeyDictionary()
)


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
    """Peak bytes of a DMRG solve: MPS copies, MPO environments, local eigensolver vectors."""
    n, chi = ham.n_qubits, spec.bond_dim
    order = site_order(ham)
    d_mpo = 2 + _max_crossing(ham, order)
    site = chi * chi * 2 * 16.0
    mps = 8 * n * site  # ket, bra, free state kept, second state, copies
    envs = 3 * n * chi * chi * d_mpo * 16.0 + n * chi * chi * d_mpo * d_mpo * 16.0
    local = 40 * 2 * site + (4 * chi * chi) ** 2 * 16.0 * (chi <= 14)
    return mps + envs + local


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
    """Right-canonical copies ``(χ, 2, χ')`` of an MPS and its norm (the state is normalised)."""
    ts = [np.asarray(t) for t in tensors]
    out: list[np.ndarray] = [ts[0]] * len(ts)
    carry = np.ones((1, 1), dtype=ts[-1].dtype)
    for k in range(len(ts) - 1, -1, -1):
        t = np.tensordot(ts[k], carry, axes=([2], [0]))  # (l, 2, r)
        l, s, r = t.shape
        if k == 0:
            norm = float(np.linalg.norm(t))
            out[0] = t / norm
            return out, norm
        # t = R^T Q^T with Q^T right-orthonormal rows: QR of the transpose
        q, rr = np.linalg.qr(t.reshape(l, s * r).T)
        out[k] = q.T.reshape(-1, s, r)
        carry = rr.T
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


def _mpo_arrays(mpo: Any) -> list[np.ndarray]:
    """quimb MPO tensors as ``(w, w', out, in)`` arrays (bond dimension 1 at both ends)."""
    arrays = []
    n = mpo.L
    for k in range(n):
        t = mpo[k]
        inds = []
        if k > 0:
            inds.append(mpo.bond(k - 1, k))
        if k < n - 1:
            inds.append(mpo.bond(k, k + 1))
        a = t.transpose(*inds, mpo.lower_ind(k), mpo.upper_ind(k)).data
        if k == 0:
            a = a[None]
        if k == n - 1:
            a = a[:, None] if n > 1 else a[None]
        arrays.append(np.asarray(a))
    return arrays


def _h2(tensors: Sequence[np.ndarray], w: Sequence[np.ndarray]) -> float:
    """``⟨ψ| M M† |ψ⟩`` for an MPO ``M`` given as ``(w, w', out, in)`` arrays."""
    env = np.ones((1, 1, 1, 1), dtype=complex)  # (ket, w_a, w_b, bra)
    for b, m in zip(tensors, w, strict=True):
        x = np.tensordot(env, b, axes=([0], [0]))  # (wa, wb, bra, s, r)
        x = np.tensordot(x, m, axes=([0, 3], [0, 3]))  # (wb, bra, r, wa', o)
        x = np.tensordot(x, m.conj(), axes=([0, 4], [0, 2]))  # (bra, r, wa', wb', i)
        env = np.tensordot(x, b.conj(), axes=([0, 4], [0, 1]))  # (r, wa', wb', bra')
    return float(env.reshape(-1)[0].real)


# ---------------------------------------------------------------------------- quimb glue
def _build_mpo(ham: ParametrisedHamiltonian, values: np.ndarray, order: Sequence[int]) -> Any:
    """The MPO of ``H*`` (see the module notes) on the MPS sites, and the identity part of ``H``."""
    from quimb.operator import HilbertSpace, SparseOperatorBuilder

    pos = _positions(order)
    coef = ham.string_coefficients(values)
    builder = SparseOperatorBuilder(hilbert_space=HilbertSpace(ham.n_qubits), atol=0.0)
    offset = 0.0
    for p, c in zip(ham.strings, coef, strict=True):
        if c == 0:
            continue
        if p.is_identity():
            offset += float(c)
            continue
        sign = -1.0 if p.n_y % 2 else 1.0
        builder.add_term(
            sign * float(c), *[(a.lower(), int(pos[q])) for q, a in p.letters().items()]
        )
    if not builder.terms_raw:
        builder.add_term(0.0, ("z", 0))  # an all-identity H: a zero MPO
    return builder.build_mpo(), offset


def _site_arrays(mps: Any) -> list[np.ndarray]:
    """quimb MPS tensors as ``(l, s, r)`` arrays (bond dimension 1 at both ends)."""
    n = mps.L
    out = []
    for k in range(n):
        inds = []
        if k > 0:
            inds.append(mps.bond(k - 1, k))
        inds.append(mps.site_ind(k))
        if k < n - 1:
            inds.append(mps.bond(k, k + 1))
        a = np.asarray(mps[k].transpose(*inds).data)
        if k == 0:
            a = a[None]
        if k == n - 1:
            a = a[..., None]
        out.append(a)
    return out


def _to_quimb(tensors: Sequence[np.ndarray], dtype: Any) -> Any:
    import quimb.tensor as qtn

    n = len(tensors)
    arrays = []
    for k, t in enumerate(tensors):
        a = np.asarray(t, dtype=dtype)
        if k == 0:
            a = a[0]
        if k == n - 1:
            a = a[..., 0]
        arrays.append(a)
    return qtn.MatrixProductState(arrays, shape="lpr")


def _random_mps(n: int, chi: int, dtype: Any) -> Any:
    rng = np.random.default_rng(_INIT_SEED)
    dims = [min(chi, 2 ** min(k, n - k)) for k in range(n + 1)]
    tensors = []
    for k in range(n):
        a = rng.standard_normal((dims[k], 2, dims[k + 1]))
        if np.dtype(dtype).kind == "c":
            a = a + 1j * rng.standard_normal(a.shape)
        tensors.append(a)
    ts, _ = right_canonical(tensors)
    return _to_quimb(ts, dtype)


@contextlib.contextmanager
def _blas(n: int | None) -> Iterator[None]:
    """DMRG's many small matrix products are much slower with several BLAS threads."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _penalised_class() -> Any:
    """Two-site DMRG on ``H + w |φ⟩⟨φ|``: the lowest state orthogonal to ``φ`` when ``w`` exceeds
    the gap. The overlap environments of ``⟨φ|ψ⟩`` move with the sweep like those of ``H``."""
    import quimb.tensor as qtn
    from quimb.tensor.tn1d.dmrg import MovingEnvironment
    from scipy.sparse.linalg import LinearOperator

    class Penalised(qtn.DMRG2):
        def __init__(self, ham: Any, avoid: Any, weight: float, **kw: Any) -> None:
            super().__init__(ham, **kw)
            bra = avoid.conj()
            bra.mangle_inner_()
            bra.add_tag("_AVOID")
            self._avoid = bra
            self._weight = weight
            self.TN_overlap = self._k | bra
            self._ov: Any = None

        def sweep(self, direction: str, canonize: bool = True, **opts: Any) -> Any:
            self._ov = None
            self._ov_begin = "left" if direction == "R" else "right"
            return super().sweep(direction, canonize=canonize, **opts)

        def _update_local_state(self, i: int, **opts: Any) -> Any:
            if self._ov is None:
                self._ov = MovingEnvironment(self.TN_overlap, begin=self._ov_begin, bsz=2)
            self._ov.move_to(i)
            return super()._update_local_state(i, **opts)

        def form_local_ops(self, i: int, dims: Any, lix: Any, uix: Any) -> Any:
            heff, neff = super().form_local_ops(i, dims, lix, uix)
            # everything but the ket's two window tensors (contracted environments carry the
            # tags of all they contain, so select by the window's site tags)
            window = {self._k.site_tag(i), self._k.site_tag(i + 1)}
            keep = [
                t for t in self._ov() if not ("_KET" in t.tags and any(w in t.tags for w in window))
            ]
            rest = qtn.TensorNetwork(keep) ^ all
            v = np.asarray(rest.transpose(*uix).data).reshape(-1)  # ⟨φ|ψ⟩ = v · ψ_local
            u, w = v.conj(), self._weight
            if isinstance(heff, np.ndarray):
                return heff + w * np.outer(u, v), neff
            shape = heff.shape
            dtype = np.result_type(heff.dtype, v.dtype)
            pen = LinearOperator(shape, matvec=lambda x: w * u * (v @ x), dtype=dtype)
            return heff + pen, neff

    return Penalised


# ---------------------------------------------------------------------------- the backend
def _finish(
    mps: Any,
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    mpo: Any,
    order: tuple[int, ...],
) -> tuple[list[np.ndarray], list[np.ndarray], float, float]:
    """Right-canonical tensors, environments, energy and variance of a quimb MPS."""
    tensors, _ = right_canonical(_site_arrays(mps))
    if all(np.isrealobj(t) or not np.any(t.imag) for t in tensors):
        tensors = [np.ascontiguousarray(t.real) for t in tensors]
    envs = left_environments(tensors)
    probe = MPSEquilibrium(tuple(tensors), order, tuple(envs), 0.0, np.inf, 0.0)
    coef = ham.string_coefficients(values)
    ps = mps_string_expectations(probe, ham.strings)
    energy = float(coef @ ps)
    ident = sum(float(c) for p, c in zip(ham.strings, coef, strict=True) if p.is_identity())
    h2 = _h2(tensors, _mpo_arrays(mpo))
    e_mpo = energy - ident
    variance = max(h2 - e_mpo**2, 0.0)
    return tensors, envs, energy, variance


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
    import quimb.tensor as qtn

    n = ham.n_qubits
    if n < 2:
        raise ProblemError(
            "the dmrg backend needs at least 2 qubits; use an exact backend", where="state.method"
        )
    order = site_order(ham)
    check_short_ranged(ham, order)
    norm = ham.norm_bound(values)
    etol = _energy_tol(spec, norm)
    chi, cutoff = spec.bond_dim, spec.cutoff
    dtype = complex if any(p.n_y for p in ham.strings) else float
    start = warm if isinstance(warm, MPSEquilibrium) and warm.order == order else None
    with _blas(spec.blas_threads):
        mpo, _ = _build_mpo(ham, values, order)
        if start is not None:
            # one-site sweeps from the free MPS, within its bond dimensions (bond_dims=1: no
            # expansion); a two-site solve only if they do not converge
            solver = qtn.DMRG1(mpo, bond_dims=1, cutoffs=cutoff, p0=_to_quimb(start.tensors, dtype))
            converged = solver.solve(tol=etol, max_sweeps=spec.maxiter or _WARM_SWEEPS,
                                     sweep_sequence="RL")  # fmt: skip
            sweeps = len(solver.energies)
            if not converged:
                solver = qtn.DMRG2(mpo, bond_dims=chi, cutoffs=cutoff, p0=solver.state)
                converged = solver.solve(tol=etol, max_sweeps=spec.maxiter or _COLD_SWEEPS,
                                         sweep_sequence="RL")  # fmt: skip
                sweeps += len(solver.energies)
        else:
            ramp = [b for b in (8, 16, 32) if b < chi] + [chi]
            solver = qtn.DMRG2(mpo, bond_dims=ramp, cutoffs=cutoff, p0=_random_mps(n, 2, dtype))
            converged = solver.solve(tol=etol, max_sweeps=spec.maxiter or _COLD_SWEEPS,
                                     sweep_sequence="RL")  # fmt: skip
            sweeps = len(solver.energies)
            if converged:
                polish = qtn.DMRG1(mpo, bond_dims=1, cutoffs=cutoff, p0=solver.state)
                polish.solve(tol=etol, max_sweeps=_POLISH_SWEEPS, sweep_sequence="RL")
                sweeps += len(polish.energies)
                if polish.energy.real <= solver.energy.real:
                    solver = polish
        es = [float(np.real(e)) for e in solver.energies]
        mps = solver.state
        tensors, envs, energy, variance = _finish(mps, ham, values, mpo, order)
        if not converged:
            change = abs(es[-1] - es[-2]) if len(es) > 1 else float("nan")
            raise ConvergenceError(
                f"DMRG did not converge in {sweeps} sweeps: the energy still changed by "
                f"{change:.3g} (tolerance {etol:.3g}), energy variance {variance:.3g}; raise "
                "state.maxiter or state.bond_dim, or loosen state.tol"
            )
        if start is not None:
            gap = start.gap
        else:
            gap = _gap(ham, values, spec, mpo, mps, energy, norm, dtype)
    bond = max(max(t.shape[0], t.shape[2]) for t in tensors)
    return MPSEquilibrium(
        tensors=tuple(tensors),
        order=order,
        envs=tuple(envs),
        energy=energy,
        gap=gap,
        variance=variance,
        sweeps=sweeps,
        bond_dim=bond,
        warm_started=start is not None,
    )


def _gap(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    spec: StateSpec,
    mpo: Any,
    ground: Any,
    energy: float,
    norm: float,
    dtype: Any,
) -> float:
    """``min(E_1 - E_0, w)`` from the lowest state of ``H + w|ψ0⟩⟨ψ0|``; raises
    :class:`DegeneracyError` when it is below the degeneracy threshold."""
    n = ham.n_qubits
    weight = max(1.0, norm)  # above any local excitation (a domain wall must not be cheaper)
    chi = spec.bond_dim
    etol = _energy_tol(spec, norm)
    ramp = [b for b in (8, 16, 32) if b < chi] + [chi]
    cls = _penalised_class()
    solver = cls(mpo, ground, weight, bond_dims=ramp, cutoffs=spec.cutoff,
                 p0=_random_mps(n, 2, dtype))  # fmt: skip
    solver.solve(tol=etol, max_sweeps=spec.maxiter or _COLD_SWEEPS, sweep_sequence="RL")
    second = solver.state
    overlap = complex(ground.H @ second)
    # quimb's energy is that of H without its identity part; so is E0 - ident below
    coef = ham.string_coefficients(values)
    ident = sum(float(c) for p, c in zip(ham.strings, coef, strict=True) if p.is_identity())
    e1 = float(np.real(solver.energy)) + ident + weight * abs(overlap) ** 2
    gap = max(min(e1 - energy, weight), 0.0)
    threshold = spec.degeneracy_threshold(norm)
    if gap <= threshold:
        raise DegeneracyError(
            f"the ground state is degenerate: a second state orthogonal to the DMRG ground state "
            f"lies {gap:.3e} above it, below the degeneracy threshold {threshold:.3g} "
            "(degeneracy_tol, at least 1e3 eps ||H||); the dmrg backend cannot form the "
            "equal-weight mixture over a degenerate manifold (degeneracy='mixture' needs an exact "
            "backend: dense, sparse or matrix-free); break the degeneracy (e.g. a small "
            "symmetry-breaking field) to use dmrg"
        )
    return gap


def response(*_: Any) -> np.ndarray:
    """Linear response is not implemented on MPS states."""
    raise ProblemError(
        "linear_response is not available on the dmrg backend; use a nudged estimator "
        "(centered, positive or negative)",
        where="estimator",
    )
