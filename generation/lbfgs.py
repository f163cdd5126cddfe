"""L-BFGS on a batch of independent problems at once (the optimiser of research design §3.4 and §5.4).

``torch.optim.LBFGS`` treats its parameters as one vector: given a batch of images whose losses are summed,
one image's curvature pairs and step length would steer every other image, so the result for a
(content, style) pair would depend on which pairs share its batch. This runs the same algorithm as
``torch.optim.LBFGS(lr, history_size, line_search_fn=None)`` with every dot product, step length and
stopping test taken per image (the batch dimension), so a batch of B images computes the B results that
B separate runs would, with one network pass per evaluation for all of them.

Differences from B separate runs: a curvature pair that one image rejects (y·s <= 1e-10) still takes a
history slot for the batch, with zero weight for that image, so such an image may keep fewer pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.linalg import vecdot


def minimize_lbfgs(
    x: torch.Tensor,
    closure: Callable[[], torch.Tensor],
    max_iter: int,
    *,
    lr: float = 1.0,
    history_size: int = 100,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
) -> int:
    """Minimise each item's loss over ``x[i]`` in place; returns the number of ``closure`` calls.

    ``x``: a leaf tensor (B, ...) with ``requires_grad``. ``closure()`` zeroes ``x.grad``, computes the
    per-item losses (B,), back-propagates their sum and returns them. At most ``max_iter`` evaluations
    and updates, as ``torch.optim.LBFGS(max_iter=...)`` does in one ``step``.
    """
    batch = x.shape[0]

    def evaluate() -> tuple[torch.Tensor, torch.Tensor]:
        loss = closure().detach()
        return loss, x.grad.detach().reshape(batch, -1).clone()

    loss, grad = evaluate()
    evaluations = 1
    active = grad.abs().amax(1) > tolerance_grad
    dirs: list[torch.Tensor] = []  # y_k = g_{k+1} - g_k
    steps: list[torch.Tensor] = []  # s_k = t_k d_k
    rhos: list[torch.Tensor] = []  # 1 / (y_k . s_k) per item, 0 where the pair was rejected
    h_diag = torch.ones(batch, dtype=grad.dtype, device=grad.device)
    direction = step = prev_grad = None
    for n_iter in range(1, max_iter + 1):
        if n_iter == 1:
            direction = -grad
        else:
            y = grad - prev_grad
            s = direction * step[:, None]
            ys = vecdot(y, s)
            accept = ys > 1e-10
            if accept.any():
                if len(dirs) == history_size:
                    dirs.pop(0), steps.pop(0), rhos.pop(0)
                dirs.append(y)
                steps.append(s)
                rhos.append(torch.where(accept, 1.0 / ys.clamp_min(1e-10), 0.0))
                h_diag = torch.where(accept, ys / vecdot(y, y).clamp_min(1e-30), h_diag)
            # Two-loop recursion (Nocedal & Wright, Algorithm 7.4), per item.
            q = -grad
            alphas = []
            for s_i, y_i, rho_i in zip(reversed(steps), reversed(dirs), reversed(rhos), strict=True):
                alpha_i = vecdot(s_i, q) * rho_i
                q = q - alpha_i[:, None] * y_i
                alphas.append(alpha_i)
            r = q * h_diag[:, None]
            for s_i, y_i, rho_i, alpha_i in zip(steps, dirs, rhos, reversed(alphas), strict=True):
                beta_i = vecdot(y_i, r) * rho_i
                r = r + (alpha_i - beta_i)[:, None] * s_i
            direction = r
        prev_grad, prev_loss = grad, loss
        # The first step is scaled by 1/|g|_1 (as torch does), later steps take the full length ``lr``.
        step = torch.full_like(h_diag, lr)
        if n_iter == 1:
            step = torch.clamp(1.0 / grad.abs().sum(1), max=1.0) * lr
        active &= vecdot(grad, direction) <= -tolerance_change  # not a descent direction: stop
        step = torch.where(active, step, 0.0)
        with torch.no_grad():
            x.add_((direction * step[:, None]).view_as(x))
        if n_iter == max_iter or not active.any():
            break
        loss, grad = evaluate()
        evaluations += 1
        active &= grad.abs().amax(1) > tolerance_grad
        active &= (direction * step[:, None]).abs().amax(1) > tolerance_change
        active &= (loss - prev_loss).abs() >= tolerance_change
        if not active.any():
            break
    return evaluations
