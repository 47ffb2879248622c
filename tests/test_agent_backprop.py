"""Hand-written backpropagation and the transposed Q-value head give autograd's numbers."""

from __future__ import annotations

import copy

import pytest
import torch

from dqn_agent.backprop import Backprop
from dqn_agent.config import LossName
from dqn_agent.networks import QNetwork, StackedLinear
from dqn_agent.targets import td_loss, td_loss_gradient


def _network(hidden: list[int], dueling: bool, n_agents: int = 3) -> QNetwork:
    net = QNetwork(n_agents, 5, 3, hidden, dueling=dueling).double()
    net.reset_parameters([torch.Generator().manual_seed(s) for s in range(n_agents)])
    return net


@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize(("hidden", "dueling"), [([16], False), ([16, 8], False), ([8, 8], True)])
def test_backprop_gradients_equal_autograds(
    hidden: list[int], dueling: bool, loss: LossName
) -> None:
    net = _network(hidden, dueling)
    reference = copy.deepcopy(net)
    gen = torch.Generator().manual_seed(7)
    obs = torch.randn(3, 32, 5, generator=gen, dtype=torch.float64)
    actions = torch.randint(3, (3, 32), generator=gen)
    targets = 3 * torch.randn(3, 32, generator=gen, dtype=torch.float64)  # some |d| > 1

    q_ref = reference(obs)
    q_taken = q_ref.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    total, per_agent_ref = td_loss(q_taken, targets, loss)
    total.backward()  # type: ignore[no-untyped-call]

    backprop = Backprop(net, batch_size=32)
    q = backprop.forward(obs)
    taken = actions.unsqueeze(-1)
    elementwise, grad_taken = td_loss_gradient(q.gather(-1, taken).squeeze(-1), targets, loss)
    backprop.backward(torch.zeros_like(q).scatter_(-1, taken, grad_taken.unsqueeze(-1)))

    torch.testing.assert_close(q, q_ref.detach())
    torch.testing.assert_close(elementwise.mean(dim=1), per_agent_ref)
    for (name, p), p_ref in zip(net.named_parameters(), reference.parameters(), strict=True):
        assert p.grad is not None and p_ref.grad is not None
        torch.testing.assert_close(p.grad, p_ref.grad, msg=name)


def test_backprop_overwrites_gradients_rather_than_accumulating() -> None:
    net = _network([8], dueling=False)
    backprop = Backprop(net, batch_size=4)
    obs = torch.randn(3, 4, 5, dtype=torch.float64)
    grad_q = torch.randn(3, 4, 3, dtype=torch.float64)
    backprop.forward(obs)
    backprop.backward(grad_q)
    first = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    backprop.forward(obs)
    backprop.backward(grad_q)
    again = [p.grad for p in net.parameters() if p.grad is not None]
    assert len(first) == len(again) == len(list(net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_a_narrow_head_computed_transposed_equals_the_plain_product() -> None:
    gen = torch.Generator().manual_seed(3)
    head = StackedLinear(2, 6, 2).double()
    head.reset_parameters([gen, gen])
    x = torch.randn(2, 16, 6, generator=gen, dtype=torch.float64)  # batch 16 > 2 outputs
    torch.testing.assert_close(head(x), torch.baddbmm(head.bias, x, head.weight))


def test_a_narrow_layer_keeps_its_weight_and_gradient_stored_transposed() -> None:
    net = _network([16], dueling=False)
    Backprop(net, batch_size=32)
    head, hidden = net.advantage, net.hidden_layers()[0]
    assert head.out_major and not hidden.out_major
    assert head.weight.shape == (3, 16, 3)  # (K, in, out) as every layer's
    assert head.weight.transpose(1, 2).is_contiguous()
    assert head.weight.grad is not None and head.weight.grad.stride() == head.weight.stride()
    assert copy.deepcopy(net).advantage.weight.stride() == head.weight.stride()


@pytest.mark.parametrize(("width", "batch"), [(16, 16), (32, 64), (64, 32), (256, 64)])
def test_every_layer_computes_an_agent_the_same_alone_or_among_eight(
    width: int, batch: int
) -> None:
    """An agent's numbers must not depend on its group (float32, one thread): forward and
    backward of every kind of layer, the one-output V(s) head included, for agent 3 of 8 and
    the same agent alone."""
    torch.set_num_threads(1)
    group = QNetwork(8, width, 2, [width], dueling=True)
    group.reset_parameters([torch.Generator().manual_seed(s) for s in range(8)])
    alone = QNetwork(1, width, 2, [width], dueling=True)
    with torch.no_grad():
        for mine, theirs in zip(alone.parameters(), group.parameters(), strict=True):
            mine.copy_(theirs[3:4])
    obs = torch.randn(8, batch, width, generator=torch.Generator().manual_seed(0))
    grad_q = torch.randn(8, batch, 2, generator=torch.Generator().manual_seed(1))
    grouped, single = Backprop(group, batch), Backprop(alone, batch)
    assert torch.equal(grouped.forward(obs)[3:4], single.forward(obs[3:4]))
    assert torch.equal(group(obs)[3:4], alone(obs[3:4]))
    grouped.backward(grad_q)
    single.backward(grad_q[3:4])
    for (name, p), q in zip(group.named_parameters(), alone.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        assert torch.equal(p.grad[3:4], q.grad), name
