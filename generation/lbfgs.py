"""L-BFGS on a batch of independent problems at once (the optimiser of research design §3.4 and §5.4).

``torch.optim.LBFGS`` treats its parameters as one vector: given a batch of images whose losses are summed,
one image's curvature pairs and step length would steer every other image, so the result for a
(content, style) pair would depend on which pairs share its batch. This runs the same algorithm as
``torch.optim.LBFGS(lr, history_size, line_search_fn=None)`` with every dot product, step length and
stopping test taken per image (the batch dimension), so a batch of B images computes the B results that
B separate runs would, with one network pass per evaluation for all of them.

The search direction -H g comes from the compact form of the inverse L-BFGS matrix (Byrd, Nocedal & Schnabel
1994, Math. Program. 63) instead of torch's two-loop recursion: the same matrix, computed with two matrix
products over the stored pairs and a few m x m solves (in float64), where the two-loop runs four small
kernels per stored pair, twice. So the kernels per step no longer grow with the history (~800 at 100 pairs),
which is what bounds an unbatched image on a GPU, and the working vector is no longer read and written again
for every pair (docs/generation.md, Speed).

Differences from B separate runs: a curvature pair that one image rejects (y·s <= 1e-10) still takes a
history slot for the batch, stored as zeros for that image, so such an image may keep fewer pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.linalg import solve_triangular, vecdot


class _History:
    """The last ``size`` pairs (s_i, y_i) of every item, and their inner products s_i·y_j and y_i·y_j.

    Pairs live in a ring of slots; slot ``(oldest + t) % size`` holds the t-th oldest, so rolling a slot-ordered
    vector or matrix by ``-oldest`` puts it in time order.
    """

    def __init__(self, batch: int, numel: int, size: int, like: torch.Tensor) -> None:
        # Rows s_0, y_0, s_1, y_1, ...: the stored pairs form one (2k, n) matrix per item.
        self.pairs = like.new_zeros(batch, size, 2, numel)
        self.sy = torch.zeros(batch, size, size, dtype=torch.float64, device=like.device)
        self.yy = torch.zeros_like(self.sy)
        self.kept = torch.zeros(batch, size, dtype=torch.bool, device=like.device)
        self.count = self.oldest = 0
        self.newest: int | None = None  # a pair added since the last direction, whose products are missing

    def add(self, s: torch.Tensor, y: torch.Tensor, accept: torch.Tensor) -> None:
        """Store a pair (over the oldest once all slots are used); an item that rejects it stores zeros."""
        size = self.pairs.shape[1]
        slot = (self.oldest + self.count) % size
        if self.count == size:
            self.oldest = (self.oldest + 1) % size
        else:
            self.count += 1
        keep = accept[:, None]
        self.pairs[:, slot, 0] = torch.where(keep, s, 0.0)
        self.pairs[:, slot, 1] = torch.where(keep, y, 0.0)
        self.kept[:, slot] = accept
        self.newest = slot

    def direction(self, grad: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """-H g with H = gamma I + the stored pairs' correction, per item (B, n)."""
        k = self.count
        if k == 0:
            return -gamma[:, None] * grad
        stored = self.pairs[:, :k].reshape(grad.shape[0], 2 * k, -1)
        # One pass over the history: every pair against g, and against the newest y to extend the products.
        # (B, n, 1 or 2) as the transpose of a row-major stack: BLAS reads it in place (a (B, n, 2) stack is 3x slower)
        vectors = [grad] if self.newest is None else [grad, self.pairs[:, self.newest, 1]]
        products = torch.bmm(stored, torch.stack(vectors, dim=1).mT).double()
        if self.newest is not None:
            j, self.newest = self.newest, None
            self.sy[:, :k, j] = products[:, 0::2, 1]
            self.yy[:, :k, j] = self.yy[:, j, :k] = products[:, 1::2, 1]
        shift = -self.oldest  # slot order -> time order
        sg = products[:, 0::2, 0].roll(shift, 1)
        yg = products[:, 1::2, 0].roll(shift, 1)
        sy = self.sy[:, :k, :k].roll((shift, shift), (1, 2))
        yy = self.yy[:, :k, :k].roll((shift, shift), (1, 2))
        # R = upper triangle of S^T Y in time order; a rejected (zero) pair gets R_ii = 1, which decouples it.
        r = sy.triu() + torch.diag_embed((~self.kept[:, :k]).roll(shift, 1).double())
        g64 = gamma.double()[:, None]
        u = solve_triangular(r, sg[..., None], upper=True)[..., 0]
        v = sy.diagonal(dim1=1, dim2=2) * u + g64 * (torch.bmm(yy, u[..., None])[..., 0] - yg)
        w = solve_triangular(r.mT, v[..., None], upper=False)[..., 0]
        # H g = gamma g + S w - gamma Y u (the compact form with H_0 = gamma I); coefficients back in slot order
        coefficients = torch.stack([-w, g64 * u], dim=2).roll(-shift, 1).reshape(grad.shape[0], 1, 2 * k)
        return torch.bmm(coefficients.to(grad.dtype), stored)[:, 0] - gamma[:, None] * grad


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
    # At most max_iter - 1 pairs are ever made.
    history = _History(batch, grad.shape[1], max(1, min(history_size, max_iter - 1)), grad)
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
                history.add(s, y, accept)
                h_diag = torch.where(accept, ys / vecdot(y, y).clamp_min(1e-30), h_diag)
            direction = history.direction(grad, h_diag)
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
