"""Pauli symmetries of a Hamiltonian and its block-diagonal form (qubit tapering).

A Pauli string ``g`` that commutes with every term of ``H(p)`` (for all parameter values) is a
conserved ±1 quantity. For ``r`` independent, mutually commuting such strings ``g_1..g_r`` the
Hilbert space splits into ``2^r`` sectors (joint eigenspaces, ``g_i = s_i = ±1``) of dimension
``2^(n-r)`` each, and ``H`` is block diagonal. The Clifford unitary (Bravyi, Gambetta, Mezzacapo
and Temme, arXiv:1701.08213)

.. math::  U = U_1 U_2 \\cdots U_r, \\qquad U_i = (σ_i + g_i)/\\sqrt{2},

with ``σ_i`` a single-qubit Pauli on a pivot qubit ``q_i`` that anticommutes with ``g_i`` and
commutes with every other ``g_j``, maps ``U^† g_i U = σ_i``. In the rotated frame every term of
``U^† H U`` has the identity or ``σ_i`` on ``q_i``; replacing ``σ_i`` by its eigenvalue ``s_i``
leaves a Hamiltonian ``H_s`` on the ``n - r`` other qubits, one per sector. An eigenvector ``φ``
of ``H_s`` is the eigenvector ``ψ = U (⊗_i |σ_i = s_i⟩ ⊗ φ)`` of ``H`` with the same energy.

Conventions: sector ``s`` is an integer whose bit ``i`` is set when ``g_i = -1`` (``s_i =
(-1)^{bit i}``); the generators are phase-free strings (:class:`~qeprop.pauli.PauliString`), so
``s_i`` is the eigenvalue of exactly the string reported in :attr:`Tapering.generators`. Qubit 0 is
the leftmost Kronecker factor, as everywhere in qeprop; the kept qubits keep their order.

Everything here is exact integer algebra over GF(2) plus phases in ``{±1, ±i}``; nothing is
approximated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ProblemError
from .pauli import PauliString

__all__ = ["TaperedString", "Tapering", "commuting_symmetries", "tapering"]


def _bits(v: int) -> int:
    return bin(v).count("1")


def _symplectic(a: tuple[int, int], b: tuple[int, int]) -> int:
    """1 when the strings with masks ``a = (x, z)`` and ``b`` anticommute, else 0."""
    return _bits((a[0] & b[1]) ^ (a[1] & b[0])) & 1


def _null_space(rows: Sequence[int], width: int) -> list[int]:
    """A basis of ``{v : popcount(row & v) even for every row}`` over GF(2), ``width`` bits."""
    pivots: dict[int, int] = {}  # pivot bit -> reduced row
    for r in rows:
        for bit, pr in pivots.items():
            if (r >> bit) & 1:
                r ^= pr
        if r == 0:
            continue
        bit = r.bit_length() - 1
        for b2 in list(pivots):  # keep the rows fully reduced
            if (pivots[b2] >> bit) & 1:
                pivots[b2] ^= r
        pivots[bit] = r
    basis = []
    for free in range(width):
        if free in pivots:
            continue
        v = 1 << free
        for bit, pr in pivots.items():
            if (pr >> free) & 1:
                v |= 1 << bit
        basis.append(v)
    return basis


def commuting_symmetries(strings: Iterable[PauliString], n_qubits: int) -> list[PauliString]:
    """Independent, mutually commuting Pauli strings that commute with every string given.

    The strings commuting with all of ``strings`` form a group whose (x|z) masks are the null
    space of the symplectic form against them; a symplectic Gram-Schmidt pass keeps one member of
    every anticommuting pair and all central elements, a maximal commuting set. The identity is
    never returned; an empty list means no symmetry.
    """
    n = int(n_qubits)
    full = (1 << n) - 1
    # s = (sx | sz << n) commutes with p iff popcount(sx & p.z) + popcount(sz & p.x) is even
    rows = [(p.z & full) | ((p.x & full) << n) for p in strings]
    vecs = [(v & full, v >> n) for v in _null_space(rows, 2 * n)]
    chosen: list[tuple[int, int]] = []
    while vecs:
        v = vecs.pop(0)
        partner = next((w for w in vecs if _symplectic(v, w)), None)
        if partner is None:
            chosen.append(v)
            continue
        vecs.remove(partner)
        # project the rest onto the symplectic complement of span{v, partner}
        out = []
        for u in vecs:
            x, z = u
            if _symplectic(u, partner):
                x, z = x ^ v[0], z ^ v[1]
            if _symplectic((x, z), v):
                x, z = x ^ partner[0], z ^ partner[1]
            if x or z:
                out.append((x, z))
        vecs = out
        chosen.append(v)
    return [PauliString(x, z) for x, z in chosen]


@dataclass(frozen=True)
class TaperedString:
    """The image of one Pauli string ``P`` (commuting with every generator) in the sectors.

    In sector ``s``: ``P ↦ sign · (-1)^{popcount(s & chars)} · string`` on the kept qubits.
    """

    string: PauliString
    sign: int
    chars: int


_SINGLE = {"X": (1, 0), "Y": (1, 1), "Z": (0, 1)}


@dataclass(frozen=True)
class Tapering:
    """The block-diagonal form of the strings it was built for (see the module docstring).

    Attributes
    ----------
    n_qubits : int
        Qubits of the full space.
    generators : tuple of PauliString
        ``g_1..g_r``: independent, mutually commuting symmetries.
    pivots : tuple of (int, str)
        ``(q_i, letter of σ_i)``: ``U^† g_i U = σ_i`` on qubit ``q_i``.
    kept : tuple of int
        The other qubits, in order; qubit ``kept[j]`` of the full space is qubit ``j`` of a
        sector.
    """

    n_qubits: int
    generators: tuple[PauliString, ...]
    pivots: tuple[tuple[int, str], ...]
    kept: tuple[int, ...]
    _cache: dict[PauliString, TaperedString] = field(
        default_factory=dict, repr=False, compare=False
    )
    _steps: list[object] = field(default_factory=list, repr=False, compare=False)

    @property
    def n_sectors(self) -> int:
        return 1 << len(self.generators)

    @property
    def sector_qubits(self) -> int:
        return len(self.kept)

    def _sigma(self, i: int) -> PauliString:
        q, c = self.pivots[i]
        return PauliString.from_letters({q: c})

    def rotate(self, p: PauliString) -> tuple[complex, PauliString]:
        """``U^† P U = phase · string`` (``phase = ±1`` for strings commuting with the ``g_i``).

        Each ``U_i`` acts as ``U_i P U_i = (-1)^a P`` when ``P`` anticommutes with both or
        neither of ``σ_i, g_i`` (``a`` = anticommutes with ``σ_i``), and ``σ_i P g_i`` otherwise.
        """
        phase: complex = 1
        for i, g in enumerate(self.generators):
            s = self._sigma(i)
            a, b = not p.commutes(s), not p.commutes(g)
            if a == b:
                if a:
                    phase = -phase
                continue
            ph1, sp = s.multiply(p)
            ph2, p = sp.multiply(g)
            phase *= ph1 * ph2
        return phase, p

    def taper(self, p: PauliString) -> TaperedString:
        """The sector form of ``P``; :class:`ProblemError` if ``P`` breaks a symmetry."""
        hit = self._cache.get(p)
        if hit is not None:
            return hit
        for g in self.generators:
            if not p.commutes(g):
                raise ProblemError(f"{str(p)!r} does not commute with the symmetry {str(g)!r}")
        phase, r = self.rotate(p)
        if abs(phase.imag) > 0.5:  # cannot happen for commuting Hermitian strings
            raise ProblemError(f"internal error: the rotated {str(p)!r} is not Hermitian")
        letters = r.letters()
        chars = 0
        for i, (q, c) in enumerate(self.pivots):
            got = letters.pop(q, None)
            if got is None:
                continue
            if got != c:
                raise ProblemError(f"internal error: {str(p)!r} does not commute with σ on {q}")
            chars |= 1 << i
        index = {q: j for j, q in enumerate(self.kept)}
        out = TaperedString(
            PauliString.from_letters({index[q]: c for q, c in letters.items()}),
            1 if phase.real > 0 else -1,
            chars,
        )
        self._cache[p] = out
        return out

    def sector_signs(self, tapered: Sequence[TaperedString], sectors: np.ndarray) -> np.ndarray:
        """``(len(sectors), len(tapered))``: ``sign · (-1)^{popcount(s & chars)}``."""
        s = np.asarray(sectors, dtype=np.int64)[:, None]
        chars = np.array([t.chars for t in tapered], dtype=np.int64)[None, :]
        sign = np.array([t.sign for t in tapered], dtype=float)[None, :]
        par = np.zeros(np.broadcast_shapes(s.shape, chars.shape), dtype=np.int64)
        both = s & chars
        for b in range(len(self.generators)):
            par ^= (both >> b) & 1
        return sign * (1.0 - 2.0 * par)

    def embed(self, sector: int, phi: np.ndarray) -> np.ndarray:
        """Full-space vectors ``ψ = U (⊗_i |σ_i = s_i⟩ ⊗ φ)`` for sector vectors ``φ (d_s, K)``.

        Returns ``(2^n, K)`` complex (or real when every step is real) columns, orthonormal when
        the columns of ``phi`` are.
        """
        from .solvers.matrix_free import PauliKernel

        n, r = self.n_qubits, len(self.generators)
        phi = np.asarray(phi)
        k = phi.shape[1]
        if phi.shape[0] != 1 << (n - r):
            raise ProblemError(f"sector vectors must have {1 << (n - r)} rows, got {phi.shape}")
        t = phi.astype(complex).reshape((2,) * (n - r) + (k,))
        # insert the pivot qubits (in increasing qubit order) as product factors
        for i, (q, c) in sorted(enumerate(self.pivots), key=lambda e: e[1][0]):
            s = -1.0 if (sector >> i) & 1 else 1.0
            t = np.multiply.outer(_eigvec(c, s), t)  # new axis first
            t = np.moveaxis(t, 0, q)
        psi = np.ascontiguousarray(t.reshape(1 << n, k))
        # apply U_r first, U_1 last: U_i v = (σ_i v + g_i v) / sqrt(2)
        if not self._steps:
            self._steps.extend(
                PauliKernel([self._sigma(i), self.generators[i]], n) for i in range(r)
            )
        half = np.array([1.0, 1.0]) / np.sqrt(2.0)
        for i in reversed(range(r)):
            psi = self._steps[i].apply(half, psi)  # type: ignore[attr-defined]
        return psi


def _eigvec(letter: str, s: float) -> np.ndarray:
    """Eigenvector of the single-qubit Pauli ``letter`` with eigenvalue ``s = ±1``."""
    if letter == "Z":
        return np.array([1.0, 0.0], dtype=complex) if s > 0 else np.array([0.0, 1.0], dtype=complex)
    if letter == "X":
        return np.array([1.0, s], dtype=complex) / np.sqrt(2.0)
    return np.array([1.0, 1j * s], dtype=complex) / np.sqrt(2.0)


def tapering(
    strings: Iterable[PauliString],
    n_qubits: int,
    generators: Sequence[PauliString] | None = None,
    max_generators: int | None = None,
) -> Tapering:
    """The tapering of ``n_qubits`` qubits by the symmetries of ``strings``.

    ``generators`` (optional) are the symmetries to use, which must commute with each other and
    with every string; by default :func:`commuting_symmetries`. Pivots are chosen greedily (one
    single-qubit Pauli per qubit, highest qubit first); a generator that cannot get a pivot of its
    own is dropped (the sectors are then coarser, still exact), and so are those beyond
    ``max_generators`` (default: all, but at least one qubit is always kept).
    """
    strings = list(strings)
    n = int(n_qubits)
    gens = list(commuting_symmetries(strings, n) if generators is None else generators)
    for g in gens:
        for p in strings:
            if not g.commutes(p):
                raise ProblemError(f"{str(g)!r} is not a symmetry: it anticommutes with {str(p)!r}")
    r = len(gens)
    limit = min(r, n - 1 if max_generators is None else max(0, min(int(max_generators), n - 1)))
    # comm[q][c] = bit i set when the single-qubit letter c on q anticommutes with g_i
    picks: list[tuple[int, str, int]] = []
    rows: dict[int, int] = {}  # reduced-echelon rows of the chosen comm vectors (for rank tests)

    def reduce(v: int) -> int:
        for bit, row in rows.items():
            if (v >> bit) & 1:
                v ^= row
        return v

    for q in reversed(range(n)):
        if len(picks) == limit:
            break
        for c in "XZY":
            x, z = _SINGLE[c]
            s = PauliString(x << q, z << q)
            vec = sum(1 << i for i, g in enumerate(gens) if not s.commutes(g))
            red = reduce(vec)
            if red:
                bit = red.bit_length() - 1
                for b2 in list(rows):
                    if (rows[b2] >> bit) & 1:
                        rows[b2] ^= red
                rows[bit] = red
                picks.append((q, c, vec))
                break
    m = len(picks)
    # new generators g'_j = Π_i g_i^{a_ji} with comm(σ_k, g'_j) = δ_kj: solve C a_j = e_j over
    # GF(2), C[k, i] = comm(σ_k, g_i) (rank m)
    new: list[PauliString] = []
    for j in range(m):
        a = _solve_gf2([v for _, _, v in picks], j, r)
        x = z = 0
        for i in range(r):
            if (a >> i) & 1:
                x ^= gens[i].x
                z ^= gens[i].z
        new.append(PauliString(x, z))
    pivots = tuple((q, c) for q, c, _ in picks)
    used = {q for q, _ in pivots}
    return Tapering(n, tuple(new), pivots, tuple(q for q in range(n) if q not in used))


def _solve_gf2(rows: Sequence[int], j: int, width: int) -> int:
    """``a`` (``width`` bits) with ``popcount(rows[k] & a) % 2 == (k == j)`` for every ``k``."""
    m = len(rows)
    # augmented system: unknown bits 0..width-1, right-hand side bit `width`
    eqs = [rows[k] | ((1 if k == j else 0) << width) for k in range(m)]
    piv: list[tuple[int, int]] = []
    for col in range(width):
        sel = next((e for e in range(len(piv), m) if (eqs[e] >> col) & 1), None)
        if sel is None:
            continue
        top = len(piv)
        eqs[top], eqs[sel] = eqs[sel], eqs[top]
        for e in range(m):
            if e != top and (eqs[e] >> col) & 1:
                eqs[e] ^= eqs[top]
        piv.append((top, col))
    a = 0
    for e, col in piv:
        if (eqs[e] >> width) & 1:
            a |= 1 << col
    for e in range(len(piv), m):
        if eqs[e] >> width & 1:
            raise ProblemError("internal error: pivot comm vectors are dependent")
    return a
