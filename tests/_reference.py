"""Independent dense-matrix reference for QEP gradients (plain numpy; no qeprop code).

Every operator is built here from Kronecker products of 2x2 Pauli matrices (qubit 0 = leftmost
factor), states come from ``numpy.linalg.eigh`` of the full matrix, and derivatives of expectation
values are exact:

* pure eigenstate ``|k⟩`` (first-order perturbation theory, ``H -> H + λB``)::

      d⟨A⟩/dλ = 2 Re Σ_{m≠k} ⟨k|A|m⟩⟨m|B|k⟩ / (E_k - E_m)

* Gibbs state ``ρ = exp(-H/T)/Z`` (Daleckii-Krein divided differences of the Boltzmann weights)::

      d⟨A⟩/dλ = Σ_{mn} A_nm B_mn K_mn + ⟨A⟩⟨B⟩/T,   K_mn = (p_m - p_n)/(E_m - E_n),  K_nn = -p_n/T

The training gradient is ``∂L/∂θ_j = Σ_l ε_l ∂⟨O_l⟩/∂θ_j`` with ``ε = ∂L/∂y`` at the free outputs.
The problems are described by :class:`_problems.ProblemSpec` (plain labels and numbers), so the
reference never goes through qeprop's parser, Hamiltonian structure or solvers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:  # pragma: no cover
    from _problems import ProblemSpec

SINGLE = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}

LossFn = Callable[[np.ndarray], tuple[float, np.ndarray]]


def parse_label(label: str) -> dict[int, str]:
    """``"X0 Y3"`` -> ``{0: "X", 3: "Y"}`` (``""`` is the identity)."""
    out: dict[int, str] = {}
    for tok in label.split():
        letter, q = tok[0].upper(), int(tok[1:])
        assert letter in "XYZ" and q not in out, label
        out[q] = letter
    return out


def pauli_sparse(label: str, n: int) -> sp.csr_array:
    """Kronecker product of single-qubit Paulis (sparse, so 10 qubits stay cheap)."""
    letters = parse_label(label)
    assert all(q < n for q in letters), (label, n)
    out = sp.csr_array(np.ones((1, 1), dtype=complex))
    for q in range(n):
        out = sp.kron(out, sp.csr_array(SINGLE[letters.get(q, "I")]), format="csr")
    return out


def pauli_matrix(label: str, n: int) -> np.ndarray:
    return pauli_sparse(label, n).toarray()


def op_matrix(terms: Sequence[tuple[float, str]], n: int) -> np.ndarray:
    d = 1 << n
    out = sp.csr_array((d, d), dtype=complex)
    for c, label in terms:
        out = out + c * pauli_sparse(label, n)
    return out.toarray()


def eigh(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.linalg.eigh`` on one BLAS thread: multi-threaded LAPACK on a small shared machine
    is up to 30x slower for these sizes (thread contention)."""
    with threadpool_limits(1, user_api="blas"):
        return np.linalg.eigh(h)


def eigvalsh(h: np.ndarray) -> np.ndarray:
    with threadpool_limits(1, user_api="blas"):
        return np.linalg.eigvalsh(h)


@dataclass(frozen=True)
class DenseState:
    """All eigenpairs of ``H`` and the weights of the chosen equilibrium over them."""

    energies: np.ndarray  # (d,)
    vectors: np.ndarray  # (d, d) columns = eigenvectors
    weights: np.ndarray  # (d,) Boltzmann weights, or a one-hot vector for a pure level
    level: int | None  # the level of a pure state, None for a Gibbs state
    temperature: float | None

    def expect(self, op: np.ndarray) -> float:
        v = self.vectors
        if self.level is not None:
            x = v[:, self.level]
            return float(np.real(np.vdot(x, op @ x)))
        diag = np.einsum("im,im->m", v.conj(), op @ v).real
        return float(self.weights @ diag)


def dense_state(
    h: np.ndarray, kind: str = "ground", temperature: float | None = None, level: int = 0
) -> DenseState:
    ev, vec = eigh(h)
    if kind == "thermal":
        assert temperature is not None and temperature > 0
        boltz = np.exp(-(ev - ev[0]) / temperature)
        return DenseState(ev, vec, boltz / boltz.sum(), None, float(temperature))
    k = 0 if kind == "ground" else level
    w = np.zeros(len(ev))
    w[k] = 1.0
    return DenseState(ev, vec, w, k, None)


def response(st: DenseState, a_ops: Sequence[np.ndarray], b: np.ndarray) -> np.ndarray:
    """Exact ``d⟨A_i⟩/dλ`` at ``λ = 0`` for ``H + λB`` (see the module docstring)."""
    with threadpool_limits(1, user_api="blas"):
        return _response(st, a_ops, b)


def _response(st: DenseState, a_ops: Sequence[np.ndarray], b: np.ndarray) -> np.ndarray:
    v, e = st.vectors, st.energies
    if st.level is not None:
        k = st.level
        x = v[:, k]
        b_col = v.conj().T @ (b @ x)  # ⟨m|B|k⟩
        denom = e[k] - e
        denom[k] = np.inf  # drop m = k
        out = []
        for a in a_ops:
            a_col = v.conj().T @ (a @ x)  # ⟨m|A|k⟩, so ⟨k|A|m⟩ = conj
            out.append(2.0 * np.real(np.sum(np.conj(a_col) * b_col / denom)))
        return np.array(out)
    t = float(st.temperature)  # type: ignore[arg-type]
    p = st.weights
    # K_mn = (p_m - p_n)/(E_m - E_n) written from the lower level of the pair, which is exact
    # and free of cancellation: p_hi = p_lo exp(-Δ/T), so K = p_lo expm1(-Δ/T)/Δ -> -p_lo/T.
    delta = np.abs(e[:, None] - e[None, :])
    p_lo = np.where(e[:, None] <= e[None, :], p[:, None], p[None, :])
    safe = np.where(delta > 0, delta, 1.0)
    k_mat = np.where(delta > 0, p_lo * np.expm1(-delta / t) / safe, -p_lo / t)
    b_eig = v.conj().T @ b @ v  # B_mn
    mean_b = float(np.real(np.sum(p * np.diag(b_eig))))
    out = []
    for a in a_ops:
        a_eig = v.conj().T @ a @ v  # A_mn, so a_eig.T[m, n] = A_nm
        mean_a = float(np.real(np.sum(p * np.diag(a_eig))))
        out.append(float(np.real(np.sum(a_eig.T * b_eig * k_mat))) + mean_a * mean_b / t)
    return np.array(out)


class DenseModel:
    """Dense matrices of one :class:`_problems.ProblemSpec` and exact gradients for it."""

    def __init__(self, spec: ProblemSpec) -> None:
        n = spec.n_qubits
        self.spec = spec
        self.n = n
        self.fixed = op_matrix([(c, lab) for c, lab, p in spec.terms if p is None], n)
        names = [*spec.params, *spec.inputs]
        self.derivs = {
            name: op_matrix([(c, lab) for c, lab, p in spec.terms if p == name], n)
            for name in names
        }
        self.outputs = {name: op_matrix(t, n) for name, t in spec.outputs.items()}
        self.cost = op_matrix(spec.cost, n) if spec.cost is not None else None

    # -------------------------------------------------------------------------------- operators
    def operator(self, name: str) -> np.ndarray:
        """``∂H/∂p`` for a parameter of ``system.full``: couplings, inputs and nudges."""
        if name in self.derivs:
            return self.derivs[name]
        if name == "nu[cost]":
            assert self.cost is not None
            return self.cost
        assert name.startswith("nu[") and name.endswith("]"), name
        return self.outputs[name[3:-1]]

    def hamiltonian(
        self, values: Mapping[str, float], nudges: Mapping[str, float] = {}
    ) -> np.ndarray:
        h = self.fixed.copy()
        for name, v in {**values, **nudges}.items():
            h = h + v * self.operator(name)
        return h

    def state(
        self,
        values: Mapping[str, float],
        kind: str = "ground",
        temperature: float | None = None,
        level: int = 0,
        nudges: Mapping[str, float] = {},
    ) -> DenseState:
        return dense_state(self.hamiltonian(values, nudges), kind, temperature, level)

    def outputs_at(self, st: DenseState) -> np.ndarray:
        return np.array([st.expect(o) for o in self.outputs.values()])

    # -------------------------------------------------------------------------------- gradients
    def gradient(
        self,
        values: Mapping[str, float],
        loss: LossFn | None,
        kind: str = "ground",
        temperature: float | None = None,
        level: int = 0,
    ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """``(∂L/∂θ over spec.trainable, outputs y, L, ε)``; ``loss=None`` means ``L = ⟨C⟩``."""
        st = self.state(values, kind, temperature, level)
        if loss is None:
            assert self.cost is not None
            ops = [self.cost]
            y = np.array([st.expect(self.cost)])
            val, eps = float(y[0]), np.ones(1)
        else:
            ops = list(self.outputs.values())
            y = self.outputs_at(st)
            val, eps = loss(y)
            eps = np.asarray(eps, dtype=float)
        grad = np.array(
            [eps @ response(st, ops, self.derivs[name]) for name in self.spec.trainable]
        )
        return grad, y, float(val), eps

    def loss_at(
        self,
        values: Mapping[str, float],
        loss: LossFn,
        kind: str = "ground",
        temperature: float | None = None,
        level: int = 0,
    ) -> float:
        return float(loss(self.outputs_at(self.state(values, kind, temperature, level)))[0])

    def susceptibility(
        self,
        names: Sequence[str],
        values: Mapping[str, float],
        kind: str = "ground",
        temperature: float | None = None,
        step: float = 1e-5,
    ) -> np.ndarray:
        """Central finite-difference ``χ_ab = ∂⟨A_a⟩/∂p_b`` over ``names`` (dense eigh)."""
        ops = [self.operator(n) for n in names]
        base_nudges = {n: 0.0 for n in names if n.startswith("nu[")}
        chi = np.empty((len(names), len(names)))
        for b, name in enumerate(names):
            cols = []
            for s in (1.0, -1.0):
                vals = dict(values)
                nud = dict(base_nudges)
                target = nud if name in nud else vals
                target[name] = target[name] + s * step
                st = self.state(vals, kind, temperature, nudges=nud)
                cols.append(np.array([st.expect(o) for o in ops]))
            chi[:, b] = (cols[0] - cols[1]) / (2 * step)
        return chi


def thermal_expectation_expm(h: np.ndarray, op: np.ndarray, temperature: float) -> float:
    """``Tr(exp(-H/T) O) / Z`` with ``scipy.linalg.expm`` (a second, eigh-free reference)."""
    shift = np.linalg.norm(h, 2)  # keeps exp(-H/T) bounded; cancels in the ratio
    rho = scipy.linalg.expm(-(h + shift * np.eye(len(h))) / temperature)
    return float(np.real(np.trace(rho @ op)) / np.real(np.trace(rho)))
