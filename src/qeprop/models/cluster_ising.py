r"""The cluster-Ising chain: terms, exact phase diagram, free-fermion energies and samplers.

The model (Wanjura & Marquardt, eq. 6, with the sign convention of their code and of
Liu, Smith, Knap & Pollmann 2023) is

.. math::

    H_0 = g_{ZXZ} \sum_j Z_{j-1} X_j Z_{j+1} \;-\; g_{ZZ} \sum_j Z_j Z_{j+1} \;-\; g_X \sum_j X_j ,

note the **plus** sign of the cluster term. On a periodic chain of ``L`` sites every index is taken
mod ``L`` (``L`` terms of each kind); on an open chain the cluster terms run over
``j = 1 .. L-2``, the bonds over ``j = 0 .. L-2`` and the field over all sites.

Jordan-Wigner fermions
----------------------
With the Majorana operators ``a_j = (Π_{m<j} X_m) Z_j`` and ``b_j = (Π_{m<j} X_m) Y_j`` one has
``X_j = i a_j b_j = -i b_j a_j``, ``Z_j Z_{j+1} = i b_j a_{j+1}`` and
``Z_{j-1} X_j Z_{j+1} = i b_{j-1} a_{j+1}``, so that

.. math::

    H_0 = \sum_j \sum_{\alpha=0}^{2} t_\alpha \, i b_j a_{j+\alpha}, \qquad
    f(z) = \sum_\alpha t_\alpha z^\alpha = g_{ZXZ} z^2 - g_{ZZ} z + g_X .

The single-particle (Bogoliubov) energies of the periodic chain are
``ε(k) = 2 |f(e^{ik})|`` (see :func:`dispersion`), and the gapped phases are classified by the
winding number of ``f`` around the origin on the unit circle, i.e. the number of zeros of ``f``
strictly inside the unit circle (``f`` has no poles):

======= =============== =============================================
zeros   label           order
======= =============== =============================================
0       ``paramagnet``  trivial, unique ground state
1       ``ferromagnet`` Z2 symmetry breaking (2 open-chain ground states)
2       ``cluster``     Z2 x Z2 SPT (4 open-chain ground states)
======= =============== =============================================

A zero on the unit circle closes the gap (``critical``). The labels name the winding class, not
the sign of the order: ``g_ZZ < 0`` with large ``|g_ZZ|`` is the *antiferromagnet*, which has
one zero inside (the zero count is invariant under ``z -> -z``, i.e. ``g_ZZ -> -g_ZZ``, which is
the unitary ``Π_{j odd} X_j`` for even ``L``) and is labelled ``"ferromagnet"``; likewise negative
``g_ZXZ`` or ``g_X`` give the other members of the same classes.

On the triangle ``g_ZXZ + g_ZZ + g_X = total`` with non-negative couplings the rule reduces to:
ferromagnet iff ``g_ZZ > total/2``, otherwise cluster iff ``g_ZXZ > g_X`` (the two lines meet at
the multicritical point ``(total/4, total/2, total/4)``, where ``f`` has a double zero at 1).

Periodic chain and fermion parity
---------------------------------
The parity ``P = Π_j X_j`` commutes with ``H_0``. A term crossing the boundary picks up ``-P``,
so the fermions obey *antiperiodic* boundary conditions (``k = 2π(n + 1/2)/L``) in the even
sector ``P = +1`` and *periodic* ones (``k = 2πn/L``) in the odd sector ``P = -1``. In each
sector the Bogoliubov vacuum has energy ``-½ Σ_k ε(k)``, but its parity is
``sign det T = Π_{k unpaired} sign f(e^{ik})`` (``T`` the hopping matrix, unpaired momenta
``k ∈ {0, π}``: ``k = 0`` always and ``k = π`` for even ``L`` in the periodic set, ``k = π`` for
odd ``L`` in the antiperiodic set). When that parity is not the sector's own, the lowest state of
the sector carries one quasiparticle and costs ``min_k ε(k)`` more
(:func:`free_fermion_ground_energy`).

This module is part of the core (it imports only :mod:`qeprop.pauli`, :mod:`qeprop.hamiltonian`,
:mod:`qeprop.errors`, numpy), never prints and never touches files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ProblemError
from ..hamiltonian import ParametrisedHamiltonian, Term
from ..pauli import PauliString

__all__ = [
    "DEFAULT_CENTRES",
    "PARAMS",
    "PHASES",
    "dispersion",
    "free_fermion_ground_energy",
    "hamiltonian",
    "hamiltonian_terms",
    "open_chain_correlators",
    "open_chain_derivatives",
    "phase",
    "phase_index",
    "phase_indices",
    "phases",
    "sample_patches",
    "sample_triangle",
    "slice_boundaries",
    "triangle_boundaries",
    "winding_number",
]

#: Parameter names, in the order of the columns of every coupling array of this module.
PARAMS: tuple[str, str, str] = ("g_zxz", "g_zz", "g_x")
#: Phase labels in the order of :func:`phase_index` (the order of the sensor outputs).
PHASES: tuple[str, str, str] = ("cluster", "ferromagnet", "paramagnet")
#: Label of each number of zeros of ``f`` inside the unit circle.
_BY_WINDING: tuple[str, str, str] = ("paramagnet", "ferromagnet", "cluster")
#: Default patch centres ``(g_X, g_ZZ)`` of :func:`sample_patches` (cluster, paramagnet,
#: ferromagnet for ``total = 4``).
DEFAULT_CENTRES: tuple[tuple[float, float], ...] = ((1.0, 0.5), (2.5, 0.5), (0.5, 3.0))

_BOUNDARIES = ("periodic", "open")


# --------------------------------------------------------------------------- Hamiltonian
def _check_length(length: object) -> int:
    if not isinstance(length, int | np.integer) or isinstance(length, bool):
        raise ProblemError(f"the chain length must be an integer, got {length!r}")
    if length < 3:
        raise ProblemError(
            f"the cluster-Ising chain needs at least 3 sites (the Z X Z term spans 3), got {length}"
        )
    return int(length)


def hamiltonian_terms(
    length: int,
    *,
    boundary: str = "periodic",
    offset: int = 0,
    params: Sequence[str] = PARAMS,
) -> list[Term]:
    r"""Terms of ``H_0 = g_ZXZ Σ Z_{j-1} X_j Z_{j+1} - g_ZZ Σ Z_j Z_{j+1} - g_X Σ X_j``.

    Parameters
    ----------
    length:
        Number of sites ``L >= 3``; site ``j`` is qubit ``offset + j``.
    boundary:
        ``"periodic"`` (indices mod ``L``: ``L`` terms of each kind) or ``"open"`` (cluster terms
        for ``j = 1 .. L-2``, bonds ``(j, j+1)`` for ``j = 0 .. L-2``, fields on all sites).
    offset:
        Index of the first qubit, so the chain can be embedded in a larger register.
    params:
        Names of the three couplings ``(g_ZXZ, g_ZZ, g_X)``; the couplings are parameters
        (inputs) of the Hamiltonian, not fixed numbers.

    Returns
    -------
    list of :class:`~qeprop.hamiltonian.Term`
        All cluster terms (coefficient ``+1`` times ``params[0]``), then all bonds (``-1`` times
        ``params[1]``), then all fields (``-1`` times ``params[2]``).
    """
    n = _check_length(length)
    if boundary not in _BOUNDARIES:
        raise ProblemError(f"unknown boundary {boundary!r}; expected one of {list(_BOUNDARIES)}")
    if not isinstance(offset, int | np.integer) or isinstance(offset, bool) or offset < 0:
        raise ProblemError(f"the qubit offset must be a non-negative integer, got {offset!r}")
    names = tuple(params)
    if len(names) != 3 or not all(isinstance(p, str) and p for p in names):
        raise ProblemError(f"params must be three non-empty names (g_zxz, g_zz, g_x), got {params}")
    if len(set(names)) != 3:
        raise ProblemError(f"the three parameter names must differ, got {list(names)}")
    off = int(offset)

    def q(j: int) -> int:
        return off + j % n

    if boundary == "periodic":
        centres, bonds = range(n), range(n)
    else:
        centres, bonds = range(1, n - 1), range(n - 1)
    terms = [
        Term(1.0, PauliString.from_letters({q(j - 1): "Z", q(j): "X", q(j + 1): "Z"}), names[0])
        for j in centres
    ]
    terms += [
        Term(-1.0, PauliString.from_letters({q(j): "Z", q(j + 1): "Z"}), names[1]) for j in bonds
    ]
    terms += [Term(-1.0, PauliString.from_letters({q(j): "X"}), names[2]) for j in range(n)]
    return terms


def hamiltonian(
    length: int, *, boundary: str = "periodic", params: Sequence[str] = PARAMS
) -> ParametrisedHamiltonian:
    """The cluster-Ising chain on qubits ``0 .. length-1`` with parameters ``params``.

    See :func:`hamiltonian_terms` for the terms; the parameter vector is ordered as ``params``
    (default ``("g_zxz", "g_zz", "g_x")``).
    """
    terms = hamiltonian_terms(length, boundary=boundary, params=params)
    return ParametrisedHamiltonian(int(length), terms, params=tuple(params))


# --------------------------------------------------------------------------- phase diagram
def _as_points(points: object, what: str = "points") -> np.ndarray:
    try:
        arr = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        raise ProblemError(f"{what} must be real numbers (g_zxz, g_zz, g_x)") from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ProblemError(f"{what} must have shape (N, 3) = (g_zxz, g_zz, g_x), got {arr.shape}")
    bad = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
    if bad.size:
        raise ProblemError(f"{what}: couplings of row {int(bad[0])} are not finite: {arr[bad[0]]}")
    return arr


def _check_tol(tol: float) -> float:
    t = float(tol)
    if not np.isfinite(t) or t < 0:
        raise ProblemError(f"tol must be a non-negative finite number, got {tol!r}")
    return t


def _zero_moduli(points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` moduli of the zeros of ``f(z) = g_zxz z² - g_zz z + g_x`` (``inf``: no zero).

    Degenerate rows: ``g_zxz = 0`` leaves one zero ``g_x / g_zz`` (the other is at infinity);
    ``g_zxz = g_zz = 0`` leaves none. A row of three zeros raises :class:`ProblemError`.
    """
    a, b, c = points[:, 0], -points[:, 1], points[:, 2]
    dead = (a == 0) & (b == 0) & (c == 0)
    if np.any(dead):
        raise ProblemError(
            f"row {int(np.flatnonzero(dead)[0])}: all three couplings are zero, so H_0 = 0 and "
            "the phase is undefined"
        )
    out = np.full((len(points), 2), np.inf)
    quad = a != 0
    lin = ~quad & (b != 0)
    out[lin, 0] = np.abs(c[lin] / b[lin])
    aq, bq, cq = a[quad], b[quad], c[quad]
    disc = bq * bq - 4.0 * aq * cq
    real = disc >= 0
    # real zeros: the cancellation-free formula q = -(b + sign(b) sqrt(disc)) / 2,
    # z1 = q / a, z2 = c / q; q = 0 only for b = c = 0 (double zero at the origin)
    s = np.sqrt(np.where(real, disc, 0.0))
    qv = -0.5 * (bq + np.copysign(s, bq))
    safe_q = np.where(qv == 0, 1.0, qv)
    z1 = np.abs(qv / aq)
    z2 = np.where(qv == 0, 0.0, np.abs(cq / safe_q))
    # complex pair: both zeros have modulus sqrt(c / a) (c / a > 0 since 4ac > b^2)
    cm = np.sqrt(np.abs(cq / aq))
    out[quad, 0] = np.where(real, z1, cm)
    out[quad, 1] = np.where(real, z2, cm)
    return out


def _zero_counts(points: np.ndarray, tol: float) -> np.ndarray:
    """Zeros of ``f`` strictly inside the unit circle per row; ``-1`` if one is within ``tol``."""
    mod = _zero_moduli(points)
    with np.errstate(invalid="ignore"):  # inf - 1 is fine; no NaN can arise
        crit = np.any(np.abs(mod - 1.0) < tol, axis=1)
    counts = np.sum(mod < 1.0, axis=1)
    return np.where(crit, -1, counts)


def phase_indices(points: object, *, tol: float = 1e-9) -> np.ndarray:
    """Vectorised :func:`phase_index`: ``(N,)`` ints for ``points`` of shape ``(N, 3)``."""
    counts = _zero_counts(_as_points(points), _check_tol(tol))
    # winding 0, 1, 2 -> paramagnet (2), ferromagnet (1), cluster (0); critical stays -1
    return np.where(counts < 0, -1, 2 - counts)


def phases(points: object, *, tol: float = 1e-9) -> np.ndarray:
    """Vectorised :func:`phase`: an ``(N,)`` array of labels for ``points`` of shape ``(N, 3)``
    (columns ``g_zxz, g_zz, g_x``)."""
    idx = phase_indices(points, tol=tol)
    labels = np.array([*PHASES, "critical"])
    return labels[np.where(idx < 0, 3, idx)]


def _one(g_zxz: float, g_zz: float, g_x: float) -> np.ndarray:
    return _as_points([[g_zxz, g_zz, g_x]], what="couplings")


def winding_number(g_zxz: float, g_zz: float, g_x: float, *, tol: float = 1e-9) -> int:
    """Number of zeros of ``f(z) = g_zxz z² - g_zz z + g_x`` strictly inside the unit circle.

    This is the winding number of ``f(e^{ik})`` around the origin: the number of Majorana zero
    modes at each end of an open chain (``2**w`` quasi-degenerate ground states). Raises
    :class:`ProblemError` on a phase boundary (a zero within ``tol`` of the unit circle), where
    the winding number is undefined, and when all couplings vanish.
    """
    w = int(_zero_counts(_one(g_zxz, g_zz, g_x), _check_tol(tol))[0])
    if w < 0:
        raise ProblemError(
            f"couplings ({g_zxz}, {g_zz}, {g_x}) lie on a phase boundary (a zero of f within "
            f"{tol} of the unit circle): the winding number is undefined"
        )
    return w


def phase(g_zxz: float, g_zz: float, g_x: float, *, tol: float = 1e-9) -> str:
    """Phase of the cluster-Ising chain: ``"cluster"``, ``"ferromagnet"``, ``"paramagnet"`` or
    ``"critical"``.

    Counts the zeros of ``f(z) = g_zxz z² - g_zz z + g_x`` inside the unit circle (0, 1, 2 ->
    paramagnet, ferromagnet, cluster); ``"critical"`` when a zero ``z`` has
    ``|abs(z) - 1| < tol``. The label names the winding class: negative ``g_zz`` gives the
    antiferromagnet, still labelled ``"ferromagnet"``. ``g_zxz = 0`` leaves a linear ``f``, and
    ``g_zxz = g_zz = 0`` a constant one (paramagnet). All three couplings zero raise
    :class:`ProblemError`.
    """
    return str(phases(_one(g_zxz, g_zz, g_x), tol=tol)[0])


def phase_index(g_zxz: float, g_zz: float, g_x: float, *, tol: float = 1e-9) -> int:
    """Index of :func:`phase` in :data:`PHASES`: 0 cluster, 1 ferromagnet, 2 paramagnet,
    -1 critical."""
    return int(phase_indices(_one(g_zxz, g_zz, g_x), tol=tol)[0])


# --------------------------------------------------------------------------- free fermions
def dispersion(g_zxz: float, g_zz: float, g_x: float, k: object) -> np.ndarray:
    """Single-particle energies ``ε(k) = 2 |f(e^{ik})| = 2 |g_zxz e^{2ik} - g_zz e^{ik} + g_x|``.

    Normalised so that a quasiparticle costs ``ε(k)`` (e.g. ``g_x = 1`` alone: ``ε = 2``, the
    cost of flipping one ``X_j = +1`` to ``-1``) and the vacuum energy is ``-½ Σ_k ε(k)``.
    """
    kk = np.asarray(k, dtype=float)
    z = np.exp(1j * kk)
    return 2.0 * np.abs(g_zxz * z * z - g_zz * z + g_x)


def free_fermion_ground_energy(
    g_zxz: float, g_zz: float, g_x: float, length: int, *, parity: int | None = None
) -> float:
    r"""Exact ground-state energy of the *periodic* chain of ``length`` sites from free fermions.

    In the sector of parity ``P = Π_j X_j = +1`` the fermions are antiperiodic,
    ``k = 2π(n + ½)/L``; for ``P = -1`` periodic, ``k = 2πn/L``. The lowest energy of a sector is
    ``E_vac = -½ Σ_k ε(k)`` with ``ε(k) = 2|f(e^{ik})|`` if the Bogoliubov vacuum has the sector's
    parity, ``Π_{k ∈ {0, π}} sign f(e^{ik})`` over the sector's unpaired momenta, and
    ``E_vac + min_k ε(k)`` (one quasiparticle) otherwise.

    Parameters
    ----------
    g_zxz, g_zz, g_x:
        Couplings of :func:`hamiltonian_terms` (any signs).
    length:
        Number of sites ``L >= 3``.
    parity:
        ``+1`` or ``-1`` for the lowest energy in that parity sector; ``None`` (default) for the
        ground-state energy, the lower of the two.
    """
    n = _check_length(length)
    if parity not in (None, 1, -1):
        raise ProblemError(f"parity must be +1, -1 or None, got {parity!r}")
    _one(g_zxz, g_zz, g_x)  # finite reals

    def sector(p: int) -> float:
        shift = 0.5 if p == 1 else 0.0
        m = np.arange(n)
        k = 2.0 * np.pi * (m + shift) / n
        eps = dispersion(g_zxz, g_zz, g_x, k)
        e_vac = -0.5 * float(np.sum(eps))
        # unpaired momenta: k = 0 (periodic), k = π (periodic & even L, antiperiodic & odd L)
        unpaired = []
        if p == -1:
            unpaired.append(g_zxz - g_zz + g_x)  # f(1)
        if (p == -1 and n % 2 == 0) or (p == 1 and n % 2 == 1):
            unpaired.append(g_zxz + g_zz + g_x)  # f(-1)
        vac_parity = 1
        for fk in unpaired:
            vac_parity *= -1 if fk < 0 else 1  # f = 0: zero mode, both parities cost nothing
        return e_vac if vac_parity == p else e_vac + float(np.min(eps))

    if parity is not None:
        return sector(parity)
    return min(sector(1), sector(-1))


# --------------------------------------------------------------------------- sampling
def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_count(n: object) -> int:
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0:
        raise ProblemError(f"the number of samples must be a non-negative integer, got {n!r}")
    return int(n)


def _check_total(total: float) -> float:
    t = float(total)
    if not np.isfinite(t) or t <= 0:
        raise ProblemError(f"total must be a positive finite number, got {total!r}")
    return t


def sample_triangle(
    n: int, rng: np.random.Generator | int | None = None, total: float = 4.0
) -> np.ndarray:
    """``n`` points uniform on the simplex ``g_zxz + g_zz + g_x = total``, all couplings ``>= 0``.

    Drawn as ``total * Dirichlet(1, 1, 1)``. ``rng`` is a :class:`numpy.random.Generator` (or a
    seed). Returns an ``(n, 3)`` array with columns ``(g_zxz, g_zz, g_x)``.
    """
    count, tot = _check_count(n), _check_total(total)
    return tot * _rng(rng).dirichlet(np.ones(3), size=count)


def sample_patches(
    n: int,
    rng: np.random.Generator | int | None = None,
    centres: Sequence[tuple[float, float]] = DEFAULT_CENTRES,
    width: float = 0.4,
    total: float = 4.0,
    *,
    return_centres: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The restricted training set of Wanjura & Marquardt: ``n`` points from small squares.

    Each sample picks a centre ``(g_X, g_ZZ)`` uniformly at random and draws ``g_X``, ``g_ZZ``
    uniformly from the square of side ``width`` around it; ``g_ZXZ = total - g_X - g_ZZ``.
    Nothing is clipped: a square that leaves the triangle (some coupling could become negative)
    raises :class:`ProblemError` before sampling. For ``total = 4`` the default centres lie in

    * ``(1.0, 0.5)`` -> ``g = (2.5, 0.5, 1.0)``: cluster (``g_ZXZ > g_X``, ``g_ZZ < 2``);
    * ``(2.5, 0.5)`` -> ``g = (1.0, 0.5, 2.5)``: paramagnet (``g_ZXZ < g_X``, ``g_ZZ < 2``);
    * ``(0.5, 3.0)`` -> ``g = (0.5, 3.0, 0.5)``: ferromagnet (``g_ZZ > 2``),

    and so do their whole squares.

    Returns
    -------
    ``(n, 3)`` array with columns ``(g_zxz, g_zz, g_x)``; with ``return_centres=True`` also the
    ``(n,)`` index of each sample's centre.
    """
    count, tot = _check_count(n), _check_total(total)
    c = np.asarray(centres, dtype=float)
    if c.ndim != 2 or c.shape[1] != 2 or len(c) == 0 or not np.all(np.isfinite(c)):
        raise ProblemError(f"centres must be a non-empty list of finite (g_X, g_ZZ) pairs: {c}")
    w = float(width)
    if not np.isfinite(w) or w < 0:
        raise ProblemError(f"width must be a non-negative finite number, got {width!r}")
    half = 0.5 * w
    lowest = np.stack([c[:, 0] - half, c[:, 1] - half, tot - c.sum(axis=1) - w], axis=1)
    outside = np.flatnonzero(np.any(lowest < 0, axis=1))
    if outside.size:
        i = int(outside[0])
        raise ProblemError(
            f"the square of side {w} around centre {i} (g_X, g_ZZ) = {tuple(c[i])} leaves the "
            f"triangle g_zxz + g_zz + g_x = {tot} (a coupling would be negative)"
        )
    gen = _rng(rng)
    which = gen.integers(len(c), size=count)
    d = gen.uniform(-half, half, size=(count, 2))
    g_x = c[which, 0] + d[:, 0]
    g_zz = c[which, 1] + d[:, 1]
    pts = np.stack([tot - g_x - g_zz, g_zz, g_x], axis=1)
    return (pts, which) if return_centres else pts


def triangle_boundaries(total: float = 4.0, n: int = 200) -> dict[str, np.ndarray]:
    """Exact phase boundaries on the triangle ``g_zxz + g_zz + g_x = total`` (for plotting).

    Returns ``{name: (n, 3) array of (g_zxz, g_zz, g_x)}``:

    * ``"ferromagnet_boundary"``: ``g_ZZ = total/2`` (``f(1) = 0``), from ``(total/2, total/2,
      0)`` to ``(0, total/2, total/2)``; it separates the ferromagnet from both other phases;
    * ``"cluster_paramagnet_boundary"``: ``g_ZXZ = g_X`` for ``0 <= g_ZZ <= total/2`` (a complex
      pair of zeros on the unit circle), from ``(total/2, 0, total/2)`` to the multicritical point
      ``(total/4, total/2, total/4)``;
    * ``"outline"``: the triangle's corners, closed (4 points).
    """
    tot = _check_total(total)
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 2:
        raise ProblemError(f"n must be an integer >= 2, got {n!r}")
    t = np.linspace(0.0, 1.0, int(n))
    half = 0.5 * tot
    g_x = half * t
    fm = np.stack([half - g_x, np.full_like(t, half), g_x], axis=1)
    g_zz = half * t
    side = 0.5 * (tot - g_zz)
    cp = np.stack([side, g_zz, side], axis=1)
    outline = tot * np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    return {
        "ferromagnet_boundary": fm,
        "cluster_paramagnet_boundary": cp,
        "outline": outline,
    }


def slice_boundaries(
    fixed: dict[str, float],
    x: str,
    y: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    n: int = 400,
) -> list[np.ndarray]:
    r"""Exact critical lines (gap closings) in a 2-D slice of the coupling space.

    The couplings are ``p = p_0 + u e_x + v e_y``: parameter ``x`` is ``u``, ``y`` is ``v`` and
    the third one is ``fixed``. The gap closes where ``f(z) = g_ZXZ z^2 - g_ZZ z + g_X`` has a
    zero on the unit circle, ``f(e^{ik}) = 0``:

    * ``k = 0`` and ``k = π`` (real zeros ``z = ±1``): one real linear equation in ``(u, v)``,
      a straight line;
    * ``0 < k < π`` (a complex pair): two real linear equations, one point per ``k``; sweeping
      ``k`` traces a curve.

    Returns the pieces inside the box ``x_range × y_range`` as ``(m, 2)`` arrays of ``(u, v)``.
    """
    names = list(PARAMS)
    if x not in names or y not in names or x == y:
        raise ProblemError(f"x and y must be two different names of {names}, got {x!r}, {y!r}")
    (third,) = [p for p in names if p not in (x, y)]
    if set(fixed) != {third}:
        raise ProblemError(f"fix exactly the third coupling {third!r}, got {sorted(fixed)}")
    p0 = np.zeros(3)
    p0[names.index(third)] = float(fixed[third])
    ex = np.eye(3)[names.index(x)]
    ey = np.eye(3)[names.index(y)]
    (x0, x1), (y0, y1) = x_range, y_range

    def w(k: np.ndarray) -> np.ndarray:
        z = np.exp(1j * k)
        return np.stack([z**2, -z, np.ones_like(z)])

    pieces: list[np.ndarray] = []
    for k in (0.0, np.pi):
        wk = w(np.array([k]))[:, 0].real
        a, b, c = ex @ wk, ey @ wk, -(p0 @ wk)
        if abs(b) > abs(a):
            u = np.linspace(x0, x1, n)
            v = (c - a * u) / b
        elif abs(a) > 0:
            v = np.linspace(y0, y1, n)
            u = (c - b * v) / a
        else:
            continue
        pieces += _inside(np.column_stack([u, v]), x_range, y_range)
    ks = np.linspace(0.0, np.pi, 4 * n)[1:-1]
    wk = w(ks)
    a, b, c = ex @ wk, ey @ wk, -(p0 @ wk)
    det = a.real * b.imag - b.real * a.imag
    ok = np.abs(det) > 1e-12
    u = np.where(ok, (c.real * b.imag - b.real * c.imag) / np.where(ok, det, 1.0), np.nan)
    v = np.where(ok, (a.real * c.imag - c.real * a.imag) / np.where(ok, det, 1.0), np.nan)
    pieces += _inside(np.column_stack([u, v]), x_range, y_range)
    return pieces


def _inside(
    curve: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float]
) -> list[np.ndarray]:
    """The runs of consecutive points of ``curve`` inside the box (at least 2 points each)."""
    inside = (
        np.isfinite(curve).all(axis=1)
        & (curve[:, 0] >= x_range[0]) & (curve[:, 0] <= x_range[1])
        & (curve[:, 1] >= y_range[0]) & (curve[:, 1] <= y_range[1])
    )  # fmt: skip
    out: list[np.ndarray] = []
    start = None
    for i, flag in enumerate([*inside, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= 2:
                out.append(curve[start:i])
            start = None
    return out


# ---------------------------------------------------------------------------- open chain (exact)
def _open_chain_majorana(n: int, g_zxz: float, g_zz: float, g_x: float) -> np.ndarray:
    """Real antisymmetric ``A`` (``2n x 2n``) with ``H_0 = (i/4) Σ_mn A_mn γ_m γ_n`` (open chain).

    Jordan-Wigner with the string ``P_j = Π_{k<j} X_k``: ``a_j = P_j Z_j = γ_{2j}``,
    ``b_j = P_j Y_j = γ_{2j+1}``. Then ``X_j = i a_j b_j``, ``Z_j Z_{j+1} = i b_j a_{j+1}`` and
    ``Z_{j-1} X_j Z_{j+1} = i b_{j-1} a_{j+1}``, so ``H_0 = i Σ c_(m,n) γ_m γ_n`` with
    ``c = -g_X, -g_ZZ, +g_ZXZ`` on those pairs, i.e. ``A_mn = 2 c_(m,n) = -A_nm``.
    """
    a = np.zeros((2 * n, 2 * n))

    def put(m: int, k: int, c: float) -> None:
        a[m, k] += 2.0 * c
        a[k, m] -= 2.0 * c

    for j in range(n):
        put(2 * j, 2 * j + 1, -g_x)
        if j < n - 1:
            put(2 * j + 1, 2 * j + 2, -g_zz)
        if 0 < j < n - 1:
            put(2 * j - 1, 2 * j + 2, g_zxz)
    return a


def open_chain_correlators(
    length: int, g_zxz: float, g_zz: float, g_x: float
) -> dict[str, np.ndarray | float]:
    r"""Exact ground-state energy and correlators of the OPEN cluster-Ising chain (free fermions).

    ``H_0 = g_ZXZ Σ_{j=1}^{L-2} Z_{j-1} X_j Z_{j+1} - g_ZZ Σ_{j=0}^{L-2} Z_j Z_{j+1}
    - g_X Σ_{j=0}^{L-1} X_j`` (the ``"open"`` terms of :func:`hamiltonian_terms`). With
    ``H_0 = (i/4) γᵀ A γ`` (:func:`_open_chain_majorana`; ``A`` real antisymmetric) and
    ``iA = Σ_k ε_k u_k u_k†``, the ground state has ``E_0 = -(1/4) Σ_k |ε_k|`` and the Majorana
    covariance ``Γ_mn = ⟨i γ_m γ_n⟩ = -(i sign(iA))_nm`` (``m ≠ n``; real); every correlator
    below is a
    single element of ``Γ`` (two Majoranas, so Wick's theorem needs no further pairings):

    ``⟨X_j⟩ = Γ_{2j, 2j+1}``, ``⟨Z_j Z_{j+1}⟩ = Γ_{2j+1, 2j+2}``,
    ``⟨Z_{j-1} X_j Z_{j+1}⟩ = Γ_{2j-1, 2j+2}``.

    The spin chain with open ends maps onto the fermions without a boundary term, so this is the
    spin ground state whenever it is unique (no zero mode ``ε_k ≈ 0``: in the cluster and
    ferromagnetic phases edge modes make it (nearly) degenerate, and the result is one state of
    the manifold).

    Returns
    -------
    dict with ``energy`` (float), ``x`` ``(L,)``, ``zz`` ``(L-1,)`` (bond ``j, j+1``), ``zxz``
    ``(L-2,)`` (centre ``j = 1 .. L-2``) and ``gap`` (float: ``min_k |ε_k|``, the lowest
    single-fermion energy, i.e. the many-body gap).
    """
    n = _check_length(length)
    a = _open_chain_majorana(n, g_zxz, g_zz, g_x)
    ev, u = np.linalg.eigh(1j * a)
    # the ground state empties the positive modes of H = (1/4) γ† (iA) γ;
    # ⟨γ_m γ_n⟩ = δ_mn - sign(iA)_nm, hence Γ_mn = ⟨i γ_m γ_n⟩ = -i sign(iA)_nm for m != n
    sgn = (u * np.sign(ev)) @ u.conj().T
    gamma = -np.real(1j * sgn).T
    j = np.arange(n)
    return {
        "energy": float(-0.25 * np.sum(np.abs(ev))),
        "x": gamma[2 * j, 2 * j + 1],
        "zz": gamma[2 * j[:-1] + 1, 2 * j[:-1] + 2],
        "zxz": gamma[2 * j[1:-1] - 1, 2 * j[1:-1] + 2],
        "gap": float(np.min(np.abs(ev))),
    }


def open_chain_derivatives(
    length: int, g_zxz: float, g_zz: float, g_x: float, step: float = 1e-5
) -> dict[str, dict[str, np.ndarray | float]]:
    """``∂/∂g_X`` and ``∂/∂g_ZZ`` of :func:`open_chain_correlators` (centred differences of step
    ``step``: the error is ``O(step²)`` from the third derivative plus ``1e-16 / step`` rounding).

    Returns ``{"g_x": {...}, "g_zz": {...}}`` with the keys ``energy``, ``x``, ``zz``, ``zxz``.
    """
    out: dict[str, dict[str, np.ndarray | float]] = {}
    for name, dx, dz in (("g_x", step, 0.0), ("g_zz", 0.0, step)):
        hi = open_chain_correlators(length, g_zxz, g_zz + dz, g_x + dx)
        lo = open_chain_correlators(length, g_zxz, g_zz - dz, g_x - dx)
        out[name] = {
            k: (np.asarray(hi[k]) - np.asarray(lo[k])) / (2 * step)
            for k in ("energy", "x", "zz", "zxz")
        }
        out[name]["energy"] = float(np.asarray(out[name]["energy"]))
    return out
