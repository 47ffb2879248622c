"""Adam for the trainer's one flat tensor of weights, one call of torch's fused Adam kernel.

`torch.optim.Adam(fused=True)` runs the same kernel, but each `step()` first passes through the
optimizer class's machinery: step hooks, a profiler record, a no-grad guard, the parameter
groups, and the sorting of tensors by device and type. For a [64, 64] network of ten agents
that bookkeeping took longer than the update: 148 us per step against 82 us for the same
kernel reached through the functional `torch.optim.adam.adam`, on one core of the 2-core
development machine. The functional API still sorts its lists (here of one tensor) by device
and type on every call; calling the kernel directly, as it ends by doing, took 60 us against
its 75-110 us in a later measurement. The trainer steps a single tensor (see
`networks.flatten_parameters`), so it needs none of that.
"""

from __future__ import annotations

import torch


class FlatAdam:
    """Adam (Kingma and Ba, 2015) on one parameter tensor, from the gradient in its `.grad`.

    Elementwise, so the K agents stacked in the tensor keep K independent optimizer states. Its
    updates equal `torch.optim.Adam([weights], lr=lr, fused=True)`'s exactly (tested).
    """

    def __init__(
        self,
        weights: torch.Tensor,
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if weights.grad is None:
            raise ValueError("FlatAdam needs a tensor whose .grad is already allocated")
        self.weights, self.grad = weights, weights.grad
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = torch.zeros_like(weights)
        """First moment: running mean of the gradient."""
        self.exp_avg_sq = torch.zeros_like(weights)
        """Second moment: running mean of the squared gradient."""
        self.steps = torch.zeros((), dtype=torch.float32, device=weights.device)
        """Updates taken so far, for the bias correction; the fused kernel reads it here."""

    def step(self) -> None:
        """One update of every weight from the current `.grad`."""
        with torch.no_grad():
            self.steps += 1  # the kernel reads the count after this update, as torch's own does
            torch._fused_adam_(
                [self.weights],
                [self.grad],
                [self.exp_avg],
                [self.exp_avg_sq],
                [],  # no AMSGrad maxima
                [self.steps],
                lr=self.lr,
                beta1=self.betas[0],
                beta2=self.betas[1],
                weight_decay=0.0,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
