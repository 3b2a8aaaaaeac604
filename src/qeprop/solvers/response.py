"""Exact linear response of a state-vector equilibrium (the β → 0 limit of QEP).

For ``H(λ) = H + λ B`` and an observable ``A``:

* pure state or equal-weight manifold ``{ψ_k}``: first-order perturbation theory gives
  ``dψ_k = -(H - E_k)^+ Q B ψ_k`` (``Q`` projects out the manifold), so
  ``d⟨A⟩/dλ = -2 Re Σ_k w_k ⟨φ_k|A|ψ_k⟩`` with ``φ_k = (H - E_k)^+ Q B ψ_k``: one linear solve
  per manifold vector, whatever the number of observables ``A``;
* Gibbs state: ``χ_AB = Tr(A W) + ⟨A⟩⟨B⟩/T`` with ``W = V (K ∘ V†BV) V†`` and
  ``K_mn = (p_m - p_n)/(E_m - E_n)`` (``-p_m/T`` on the diagonal).

The linear solve is dense (``eigh``) for small dimensions and matrix-free MINRES on the shifted
operator projected off the manifold otherwise; either way only the backend's engine (``apply``)
touches the Hamiltonian, so the same code serves the sparse and the matrix-free backends.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla

from ..errors import ConvergenceError
from ..hamiltonian import ParametrisedHamiltonian
from ..states import Equilibrium
from . import StateSpec, engine_for
from .exact import blas_threads

__all__ = ["shifted_solve", "susceptibility_weights", "vector_response"]

#: largest dimension whose linear-response solve is done by a dense ``eigh``
DENSE_RESPONSE_MAX_DIM = 4096


def shifted_solve(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    state: Equilibrium,
    k: int,
    rhs: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    """``φ = (H - E_k)^+ rhs`` on the complement of the state's manifold (dense or MINRES).

    ``rhs`` must be orthogonal to the manifold; the result is projected onto its complement.
    """
    manifold = state.vectors
    ek = state.energies[k]
    d = ham.dim
    engine = engine_for(ham, state)
    coef = ham.string_coefficients(values)
    if spec.use_dense(d) and d <= DENSE_RESPONSE_MAX_DIM:
        with blas_threads(spec.blas_threads, d):
            ev, vec = np.linalg.eigh(ham.dense(values))
        c = vec.conj().T @ rhs
        denom = ev - ek
        keep = np.abs(denom) > max(spec.degeneracy_tol, 1e-12)
        # levels inside the manifold are excluded (rhs is orthogonal to them)
        overlap = np.sum(np.abs(vec.conj().T @ manifold) ** 2, axis=1)
        keep &= overlap < 0.5
        phi = vec[:, keep] @ (c[keep] / denom[keep])
    else:
        count = [0]
        cplx = np.iscomplexobj(rhs) or np.iscomplexobj(manifold) or not ham.is_real

        def shifted(v: np.ndarray) -> np.ndarray:
            w = np.asarray(engine.apply(coef, v)) - ek * v
            return w - manifold @ (manifold.conj().T @ w)

        def mv(v: np.ndarray) -> np.ndarray:
            count[0] += 1
            if not cplx:
                return shifted(v)
            # complex Hermitian system as a real symmetric one of twice the size
            w = shifted(v[:d] + 1j * v[d:])
            return np.concatenate([w.real, w.imag])

        n_real = 2 * d if cplx else d
        op = spla.LinearOperator((n_real, n_real), matvec=mv, dtype=np.float64)
        b = np.concatenate([rhs.real, rhs.imag]) if cplx else rhs.real
        maxiter = spec.maxiter if spec.maxiter is not None else min(20 * d, 20000)
        sol, info = spla.minres(op, b, rtol=min(1e-12, spec.tol), maxiter=maxiter)
        if info != 0:
            raise ConvergenceError(
                f"MINRES for the linear-response equation did not converge (info={info}, "
                f"{count[0]} iterations); the gap above the state may be too small"
            )
        phi = sol[:d] + 1j * sol[d:] if cplx else sol
    return phi - manifold @ (manifold.conj().T @ phi)


def susceptibility_weights(state: Equilibrium) -> np.ndarray:
    """``K_mn = (p_m - p_n) / (E_m - E_n)`` (``-p_m / T`` for ``E_m = E_n``) of a Gibbs state."""
    e = state.energies
    p = state.weights
    t = float(state.temperature)  # type: ignore[arg-type]
    lo_p = np.where(e[:, None] <= e[None, :], p[:, None], p[None, :])  # weight of the lower level
    gap = np.abs(e[:, None] - e[None, :])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        x = gap / t
        g = np.where(x > 1e-8, -np.expm1(-x) / np.where(x > 0, x, 1.0), 1.0 - x / 2)
    return -lo_p * g / t


def vector_response(
    ham: ParametrisedHamiltonian,
    values: np.ndarray,
    free: Equilibrium,
    a_coef: np.ndarray,
    b_coef: np.ndarray,
    spec: StateSpec,
) -> np.ndarray:
    """Exact ``d⟨A_i⟩/dλ`` at ``λ = 0`` for ``H(values) + λ B`` in the equilibrium ``free``.

    ``a_coef`` is ``(n_ops, n_strings)``, ``b_coef`` is ``(n_strings,)``; returns ``(n_ops,)``.
    See the module docstring for the formulas.
    """
    engine = engine_for(ham, free)
    if free.kind == "thermal":
        v = free.vectors
        with blas_threads(spec.blas_threads, ham.dim):
            b_eig = v.conj().T @ np.asarray(engine.apply(b_coef, v))
            w = v @ (susceptibility_weights(free) * b_eig) @ v.conj().T
        tr = ham.structure.string_traces(w).real
        vecs, wts = free.significant()
        ps = np.asarray(engine.matrix_elements(vecs, vecs, wts)).real
        return a_coef @ tr + (a_coef @ ps) * (b_coef @ ps) / float(free.temperature)  # type: ignore[arg-type]
    bpsi = np.asarray(engine.apply(b_coef, free.vectors))
    phis = np.empty_like(free.vectors, dtype=np.result_type(free.vectors, bpsi.dtype))
    for k in range(free.degeneracy):
        rhs = bpsi[:, k]
        rhs = rhs - free.vectors @ (free.vectors.conj().T @ rhs)
        phis[:, k] = shifted_solve(ham, values, free, k, rhs, spec)
    elems = engine.matrix_elements(phis, free.vectors.astype(phis.dtype), free.weights)
    return -2.0 * (a_coef @ np.asarray(elems).real)
