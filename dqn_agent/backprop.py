"""Backpropagation through a stacked Q-network, written out by hand into buffers allocated once.

Autograd would compute the same gradients (tests/test_agent_backprop.py checks that it does),
but for networks this small it costs more than the arithmetic: every step it records a graph,
allocates every activation and gradient afresh, and writes gradients through extra copies. On
a CPU the fresh allocations are the worst of it: a (K, 256, 256) gradient written to new memory
each step ran several times slower than the same product written to memory already in use.

For one training batch, the passes are:

    forward   h_0 = obs,  h_{i+1} = relu(h_i W_i + b_i),  q = h_L W_head + b_head
    backward  dW_i = h_i^T dz_i,   db_i = sum over the batch of dz_i,
              dh_i = dz_i W_i^T,   dz_{i-1} = dh_i where h_i > 0, else 0

with every product batched over the K agents of the group. The gradient buffers are installed as
the parameters' `.grad`, so any torch optimizer updates from them unchanged.
"""

from __future__ import annotations

import torch

from dqn_agent.networks import QNetwork, StackedLinear


class Backprop:
    """Forward and backward passes of `net` for training batches of `batch_size` transitions.

    `forward` keeps the activations that `backward` needs; call them in that order, with no other
    `forward` of this object in between. Gradients are written to the parameters' `.grad`
    (overwritten, not accumulated), which therefore must not be reset to None.
    """

    def __init__(self, net: QNetwork, batch_size: int) -> None:
        self.net = net
        weight = net.layers()[0].weight
        n_agents, device, dtype = weight.shape[0], weight.device, weight.dtype

        def buffer(*shape: int) -> torch.Tensor:
            return torch.zeros(n_agents, *shape, device=device, dtype=dtype)

        self.hidden_layers = net.hidden_layers()
        widths = [layer.weight.shape[2] for layer in self.hidden_layers]
        self.h = [buffer(batch_size, width) for width in widths]
        """h_1 .. h_L: outputs of the hidden layers, after the ReLU."""
        self.dz = [buffer(batch_size, width) for width in widths]
        """dz_0 .. dz_{L-1}: gradients of the loss with respect to z_i = h_i W_i + b_i, each
        hidden layer's pre-activation (dz_i has the shape of h_{i+1})."""
        self.obs = buffer(batch_size, net.layers()[0].weight.shape[1])
        for p in net.parameters():
            if p.grad is None:  # kept if present: see `networks.flatten_parameters`
                p.grad = torch.zeros_like(p)  # laid out in memory as p is

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values (K, batch, n_actions) for observations (K, batch, obs_dim)."""
        if obs.shape != self.obs.shape:  # copy_ would broadcast a wrong batch silently
            raise ValueError(
                f"expected observations {tuple(self.obs.shape)}, got {tuple(obs.shape)}"
            )
        with torch.no_grad():
            self.obs.copy_(obs)
            x = self.obs
            for layer, out in zip(self.hidden_layers, self.h, strict=True):
                torch.baddbmm(layer.bias, x, layer.weight, out=out)
                x = out.relu_()
            advantage: torch.Tensor = self.net.advantage(x)
            if self.net.value is None:
                return advantage
            value: torch.Tensor = self.net.value(x)
            return value + advantage - advantage.mean(dim=-1, keepdim=True)

    def backward(self, grad_q: torch.Tensor) -> None:
        """Write d(loss)/d(parameter) into every `.grad`, given d(loss)/dq (K, batch, n_actions)."""
        with torch.no_grad():
            x = self.h[-1] if self.h else self.obs
            net = self.net
            if net.value is None:
                grad_x = _head_backward(net.advantage, x, grad_q)
            else:
                # q = V + A - mean(A): dV = sum_a dq, dA = dq - mean_a dq
                grad_value = grad_q.sum(dim=-1, keepdim=True)
                grad_advantage = grad_q - grad_q.mean(dim=-1, keepdim=True)
                grad_x = _head_backward(net.advantage, x, grad_advantage)
                grad_x += _head_backward(net.value, x, grad_value)
            for i in reversed(range(len(self.hidden_layers))):
                grad_z = self.dz[i]
                _relu_backward(grad_x, self.h[i], out=grad_z)
                layer = self.hidden_layers[i]
                inputs = self.h[i - 1] if i > 0 else self.obs
                _write_grads(layer, inputs, grad_z)
                if i > 0:
                    grad_x = torch.bmm(grad_z, layer.weight.transpose(1, 2))


def _relu_backward(grad_h: torch.Tensor, h: torch.Tensor, *, out: torch.Tensor) -> None:
    """dz = dh where the unit was active (h > 0), else 0, into `out`.

    This is the kernel autograd itself runs for a ReLU: one pass over the tensors. Multiplying
    by the boolean mask `h > 0` gives the same numbers but first materialises and converts the
    mask, which ran ten times slower on a (10, 64, 256) batch."""
    torch.ops.aten.threshold_backward.grad_input(grad_h, h, 0.0, grad_input=out)


def _head_backward(head: StackedLinear, x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """Gradients of a head; returns d(loss)/dx.

    A narrow head stores its weight transposed (see `StackedLinear`), and so does its `.grad`
    (made by `zeros_like`). Its dW^T = grad_out^T x is written there directly, with the wide
    input axis last, which CPU matrix kernels run fastest."""
    assert head.weight.grad is not None and head.bias.grad is not None
    if head.weight.shape[2] == 1:
        # V(s), one output: its weight gradient is a matrix-vector product per agent, which a
        # batched product rounds differently for one agent than for several (torch hands a
        # lone one to another kernel). An agent's numbers must not depend on its group, so the
        # sum is written out; it is the same for any K (tested).
        torch.sum(grad_out * x, dim=1, keepdim=True, out=head.weight.grad.transpose(1, 2))
        torch.sum(grad_out, dim=1, keepdim=True, out=head.bias.grad)
    elif head.out_major:
        torch.bmm(grad_out.transpose(1, 2), x, out=head.weight.grad.transpose(1, 2))
        torch.sum(grad_out, dim=1, keepdim=True, out=head.bias.grad)
    else:
        _write_grads(head, x, grad_out)
    return torch.bmm(grad_out, head.weight.transpose(1, 2))


def _write_grads(layer: StackedLinear, inputs: torch.Tensor, grad_z: torch.Tensor) -> None:
    """dW = inputs^T dz and db = sum of dz over the batch, into the layer's `.grad` buffers."""
    assert layer.weight.grad is not None and layer.bias.grad is not None
    torch.bmm(inputs.transpose(1, 2), grad_z, out=layer.weight.grad)
    torch.sum(grad_z, dim=1, keepdim=True, out=layer.bias.grad)
