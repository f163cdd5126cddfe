"""A cumulative link mixed model (proportional odds, logit link) with two crossed random intercepts, fitted
by the Laplace approximation, the likelihood R's ordinal::clmm (nAGQ = 1) and interlace-lme's `clmm` use:

    logit P(Y ≤ k | u) = α_k − x'β − u_a − u_b,    u_a ~ N(0, θ_a²), u_b ~ N(0, θ_b²)

    log L ≈ Σ log P(y_i | v̂) − ½‖v̂‖² − ½ log|I + ΛZ'WZΛ|      (u = θ·v, v̂ the conditional mode)

Why not interlace-lme's `clmm` itself (the analysis used it before, and the tests keep it as the reference):
it optimises every parameter by Nelder–Mead, with a per-response Python loop in the likelihood and a
finite-difference Hessian of 4·P² evaluations, which took ~20 s for 1,000 responses on this machine, so the
analysis could only afford a 600-response subsample. This fits the same likelihood with exact gradients:

- v̂ by Newton's method (log P(y | η) is concave in η for the logit link; step halving for safety).
- Every response belongs to one level of each factor, so each factor's block of H = I + ΛZ'WZΛ is diagonal;
  eliminating the factor with more levels (Schur complement) leaves one dense Cholesky of the other's size.
- The gradient of log L in (α, β, θ) is exact: the envelope theorem at the mode, and d log|H| through the
  implicit derivative of v̂ and the third derivative of log P (the weights W depend on η and α).
- L-BFGS-B over (α₁, log increments of α, β, θ ≥ 0), so the thresholds stay ordered.
- Standard errors: the (α, β) block of the inverse Hessian of −log L in (α, β, θ), the Hessian from central
  differences of the exact gradient (ordinal and interlace difference the likelihood itself). A θ estimated
  at zero is held there: the likelihood is even in θ, so it carries no information about the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize
from scipy.special import expit

_TINY = 1e-300  # floor for a category probability (log stays finite far from the optimum)
_MODE_TOL = 1e-10  # Newton stops when no random effect moves by more than this
_HESS_STEP = 1e-4  # relative step of the central differences for the Hessian
_ZERO_THETA = 1e-4  # an SD below this is on the boundary: held fixed for the standard errors


@dataclass
class ClmmFit:
    thresholds: np.ndarray  # α_1 < … < α_{K−1}
    beta: np.ndarray
    theta: np.ndarray  # SDs of the two random intercepts, in the order the groups were given (logit scale)
    cov: np.ndarray  # covariance of (thresholds, beta)
    loglik: float  # Laplace log-likelihood at the optimum
    converged: bool
    evaluations: int  # likelihood + gradient evaluations of the optimizer

    @property
    def beta_se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov)[len(self.thresholds):])


def _derivatives(alpha: np.ndarray, eta: np.ndarray, y: np.ndarray, k: int, third: bool = False) -> dict:
    """log P(Y = y | η), s = d log P/dη and W = −d² log P/dη²; with `third`, what the gradient of the Laplace
    likelihood needs besides. P = F(A) − F(B), A = α_y − η (+∞ for the top category), B = α_{y−1} − η (−∞ for
    the bottom one); a_j = (d^j F(A)/dA^j)/P, b_j = −(d^j F(B)/dB^j)/P."""
    up, lo = y < k - 1, y > 0
    big_a = np.where(up, alpha[np.minimum(y, k - 2)] - eta, np.inf)
    big_b = np.where(lo, alpha[np.maximum(y - 1, 0)] - eta, -np.inf)
    fa_cdf, fb_cdf = expit(big_a), expit(big_b)
    # in the upper tail F(A) − F(B) loses its digits; (1 − F(B)) − (1 − F(A)) = F(−B) − F(−A) keeps them
    p = np.maximum(np.where(big_b > 0, expit(-big_b) - expit(-big_a), fa_cdf - fb_cdf), _TINY)
    fa, fb = fa_cdf * (1 - fa_cdf), fb_cdf * (1 - fb_cdf)  # logistic density, from the CDF
    a1, b1 = fa / p, -fb / p
    a2, b2 = fa * (1 - 2 * fa_cdf) / p, -fb * (1 - 2 * fb_cdf) / p
    s = -(a1 + b1)  # d log P / dη  (dA/dη = dB/dη = −1)
    # second derivatives of log P in (A, B): ℓ_x = P_x/P, ℓ_xy = P_xy/P − ℓ_x ℓ_y (P_AB = 0)
    l_aa, l_ab, l_bb = a2 - a1 ** 2, -a1 * b1, b2 - b1 ** 2
    out = {"logp": np.log(p), "s": s, "w": -(l_aa + 2 * l_ab + l_bb), "a1": a1, "b1": b1, "up": up, "lo": lo}
    if third:  # ℓ_xyz = P_xyz/P − (P_xy ℓ_z + P_xz ℓ_y + P_yz ℓ_x)/P + 2 ℓ_x ℓ_y ℓ_z
        a3 = (fa * (1 - 2 * fa_cdf) ** 2 - 2 * fa * fa) / p
        b3 = -(fb * (1 - 2 * fb_cdf) ** 2 - 2 * fb * fb) / p
        l_aaa, l_bbb = a3 - 3 * a2 * a1 + 2 * a1 ** 3, b3 - 3 * b2 * b1 + 2 * b1 ** 3
        l_aab, l_abb = -a2 * b1 + 2 * a1 ** 2 * b1, -b2 * a1 + 2 * a1 * b1 ** 2
        out.update(w_eta=l_aaa + 3 * l_aab + 3 * l_abb + l_bbb,  # dW/dη
                   s_a=-(l_aa + l_ab), s_b=-(l_ab + l_bb),  # ds/dA, ds/dB: a threshold moves A or B, not η
                   w_a=-(l_aaa + 2 * l_aab + l_abb), w_b=-(l_aab + 2 * l_abb + l_bbb))  # dW/dA, dW/dB
    return out


class _Laplace:
    """−log L and its gradient for y (codes 0..K−1), X (no intercept), and two factors' level codes; the
    first factor is the one with more levels (its diagonal block is eliminated)."""

    def __init__(self, y: np.ndarray, x: np.ndarray, ga: np.ndarray, gb: np.ndarray):
        self.y, self.x, self.ga, self.gb = y, x, ga, gb
        self.k = int(y.max()) + 1
        self.na, self.nb = int(ga.max()) + 1, int(gb.max()) + 1
        self.cell = ga * self.nb + gb
        self.va, self.vb = np.zeros(self.na), np.zeros(self.nb)  # warm start of the mode

    def _factor(self, w: np.ndarray, ta: float, tb: float):
        """H = [[D1, C], [Cᵀ, D2]] (D1, D2 diagonal): D1, G = D1⁻¹C, the Cholesky of S = D2 − CᵀG, log|H|."""
        d1 = 1 + ta ** 2 * np.bincount(self.ga, w, self.na)
        d2 = 1 + tb ** 2 * np.bincount(self.gb, w, self.nb)
        c = ta * tb * np.bincount(self.cell, w, self.na * self.nb).reshape(self.na, self.nb)
        g = c / d1[:, None]
        s = np.diag(d2) - c.T @ g
        chol = linalg.cho_factor(s, lower=True)
        logdet = float(np.sum(np.log(d1)) + 2 * np.sum(np.log(np.diag(chol[0]))))
        return d1, c, g, chol, logdet

    @staticmethod
    def _solve(fac, ra: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d1, c, g, chol, _ = fac
        xb = linalg.cho_solve(chol, rb - g.T @ ra)
        xa = (ra - c @ xb) / (d1 if ra.ndim == 1 else d1[:, None])
        return xa, xb

    def _mode(self, alpha, beta, ta, tb):
        """Conditional mode of v by Newton's method; returns (derivatives there, factorization there)."""
        fixed = self.x @ beta
        va, vb = self.va, self.vb

        def at(va_, vb_):
            d = _derivatives(alpha, fixed + ta * va_[self.ga] + tb * vb_[self.gb], self.y, self.k)
            d["q"] = float(d["logp"].sum() - 0.5 * (va_ @ va_ + vb_ @ vb_))
            return d

        d = at(va, vb)
        for _ in range(100):
            fac = self._factor(d["w"], ta, tb)
            ra = ta * np.bincount(self.ga, d["s"], self.na) - va
            rb = tb * np.bincount(self.gb, d["s"], self.nb) - vb
            sa, sb = self._solve(fac, ra, rb)
            step = 1.0
            while True:
                cand = at(va + step * sa, vb + step * sb)
                if cand["q"] >= d["q"] - 1e-12 * abs(d["q"]) or step < 1e-6:
                    break
                step /= 2
            va, vb, d = va + step * sa, vb + step * sb, cand
            if step * max(np.abs(sa).max(initial=0), np.abs(sb).max(initial=0)) < _MODE_TOL:
                break
        self.va, self.vb = va, vb
        return d, self._factor(d["w"], ta, tb)

    def value_grad(self, alpha, beta, theta, grad: bool = True):
        """(−log L, its gradient in (α, β, θ))."""
        ta, tb = float(theta[0]), float(theta[1])
        d, fac = self._mode(alpha, beta, ta, tb)
        value = -(d["q"] - 0.5 * fac[4])
        if not grad:
            return value, None
        d = _derivatives(alpha, self.x @ beta + ta * self.va[self.ga] + tb * self.vb[self.gb], self.y, self.k, True)
        n, km1, p = len(self.y), self.k - 1, self.x.shape[1]
        ga, gb, va, vb, w, s = self.ga, self.gb, self.va, self.vb, d["w"], d["s"]
        up, lo = d["up"], d["lo"]
        rows_up, rows_lo = np.flatnonzero(up), np.flatnonzero(lo)
        col_up, col_lo = self.y[up], self.y[lo] - 1
        n_par = km1 + p + 2
        # direct effects of each parameter at fixed v: on η (E), on s (sd), on W (wd)
        e = np.zeros((n, n_par))
        e[:, km1:km1 + p] = self.x
        e[:, -2], e[:, -1] = va[ga], vb[gb]
        sd = -w[:, None] * e
        wd = np.zeros((n, n_par))
        sd[rows_up, col_up] += d["s_a"][up]
        sd[rows_lo, col_lo] += d["s_b"][lo]
        wd[rows_up, col_up] += d["w_a"][up]
        wd[rows_lo, col_lo] += d["w_b"][lo]
        # d(∇_v Q)/dφ, and dv̂/dφ = H⁻¹ of it (implicit function theorem at the mode)
        ra = ta * _bincount_cols(ga, sd, self.na)
        rb = tb * _bincount_cols(gb, sd, self.nb)
        ra[:, -2] += np.bincount(ga, s, self.na)
        rb[:, -1] += np.bincount(gb, s, self.nb)
        da, db = self._solve(fac, ra, rb)
        dw = wd + d["w_eta"][:, None] * (e + ta * da[ga] + tb * db[gb])
        # the entries of H⁻¹ that the trace needs: per response its (a, a), (a, b) and (b, b) elements
        d1, c, g, chol, _ = fac
        hbb = linalg.cho_solve(chol, np.eye(self.nb))
        hab = -g @ hbb
        haa_diag = 1 / d1 - np.sum(hab * g, axis=1)
        h_aa, h_ab, h_bb = haa_diag[ga], hab[ga, gb], np.diag(hbb)[gb]
        c_a, c_b = ta * h_aa + tb * h_ab, ta * h_ab + tb * h_bb  # (H⁻¹ M_iᵀ) at the response's two levels
        trace = (ta * c_a + tb * c_b) @ dw  # tr(H⁻¹ Mᵀ diag(dW) M)
        trace[-2] += 2 * float(w @ c_a)  # tr(H⁻¹ (dMᵀWM + MᵀW dM)) for θ_a and θ_b
        trace[-1] += 2 * float(w @ c_b)
        dq = e.T @ s
        dq[:km1] = np.bincount(col_up, d["a1"][up], km1) + np.bincount(col_lo, d["b1"][lo], km1)
        return value, -(dq - 0.5 * trace)


def _bincount_cols(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Column-wise group sums: out[l, j] = Σ values[i, j] over codes[i] == l."""
    return np.column_stack([np.bincount(codes, values[:, j], n) for j in range(values.shape[1])])


def _to_thresholds(z: np.ndarray) -> np.ndarray:
    return z[0] + np.concatenate([[0.0], np.cumsum(np.exp(z[1:]))])


def fit(y: np.ndarray, x: np.ndarray, groups: tuple[np.ndarray, np.ndarray]) -> ClmmFit:
    """Fit the CLMM. `y`: category codes 0..K−1 (every one observed); `x`: fixed-effect columns without an
    intercept (the thresholds are the intercepts); `groups`: level codes 0..L−1 of the two random intercepts.

    Raises ArithmeticError when the information matrix is singular (e.g. a column of x is a combination of
    the others)."""
    y = np.asarray(y, dtype=np.intp)
    x = np.asarray(x, dtype=float)
    swap = groups[1].max() > groups[0].max()  # the factor with more levels goes first (it is eliminated)
    ga, gb = (groups[1], groups[0]) if swap else groups
    model = _Laplace(y, x, np.asarray(ga, dtype=np.intp), np.asarray(gb, dtype=np.intp))
    km1, p = model.k - 1, x.shape[1]
    cum = np.clip(np.cumsum(np.bincount(y, minlength=model.k))[:-1] / len(y), 0.01, 0.99)
    alpha0 = np.log(cum / (1 - cum))
    z0 = np.concatenate([[alpha0[0]], np.log(np.maximum(np.diff(alpha0), 1e-3)), np.zeros(p), [1.0, 1.0]])
    evaluations = 0

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        alpha = _to_thresholds(z[:km1])
        value, g = model.value_grad(alpha, z[km1:km1 + p], z[km1 + p:])
        g_alpha = g[:km1]  # chain rule to (α₁, log increments): dα_k/dz_m = e^{z_m} for 1 ≤ m ≤ k
        tail = np.cumsum(g_alpha[::-1])[::-1]
        return value, np.concatenate([[g_alpha.sum()], np.exp(z[1:km1]) * tail[1:], g[km1:]])

    bounds = [(None, None)] * (km1 + p) + [(0.0, None)] * 2
    res = optimize.minimize(objective, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-6})
    alpha, beta, theta = _to_thresholds(res.x[:km1]), res.x[km1:km1 + p], res.x[km1 + p:]
    value, _ = model.value_grad(alpha, beta, theta, grad=False)
    cov = _covariance(model, np.concatenate([alpha, beta, theta]), km1, p)
    return ClmmFit(thresholds=alpha, beta=beta, theta=theta[::-1] if swap else theta, cov=cov, loglik=-value,
                   converged=bool(res.success), evaluations=evaluations)


def _covariance(model: _Laplace, phi: np.ndarray, km1: int, p: int) -> np.ndarray:
    """(α, β) block of the inverse Hessian of −log L in (α, β, θ); θ on the boundary held fixed."""
    free = [i for i in range(len(phi)) if i < km1 + p or phi[i] > _ZERO_THETA]

    def grad(at: np.ndarray) -> np.ndarray:
        return model.value_grad(at[:km1], at[km1:km1 + p], at[km1 + p:])[1]

    hess = np.empty((len(free), len(free)))
    for j, i in enumerate(free):
        h = _HESS_STEP * max(1.0, abs(phi[i]))
        plus, minus = phi.copy(), phi.copy()
        plus[i] += h
        minus[i] -= h
        hess[:, j] = (grad(plus) - grad(minus))[free] / (2 * h)
    hess = (hess + hess.T) / 2
    try:
        cov = linalg.cho_solve(linalg.cho_factor(hess), np.eye(len(free)))
    except linalg.LinAlgError:
        raise ArithmeticError("the CLMM's information matrix is singular: a fixed effect is not "
                              "identified in these data") from None
    return cov[:km1 + p, :km1 + p]
