"""Stacked Q-networks: parameters moved into one flat buffer compute and train as before, with
torch's Adam through `FlatAdam`; numpy's evaluation of a network equals torch's."""

from __future__ import annotations

import copy

import pytest
import torch

from dqn_agent.networks import FLAT_ALIGN, HostQNetwork, QNetwork, flatten_parameters
from dqn_agent.optimizer import FlatAdam


def _network(dueling: bool = True) -> QNetwork:
    net = QNetwork(3, 4, 2, [16, 8], dueling=dueling)
    net.reset_parameters([torch.Generator().manual_seed(s) for s in range(3)])
    return net


def test_flattened_parameters_are_views_of_one_buffer_with_their_layout_kept() -> None:
    net = _network()
    before = copy.deepcopy(net)
    obs = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(9))
    flat = flatten_parameters(net)

    size = sum(p.numel() for p in before.parameters())
    # Padded with zeros to whole SIMD blocks, so that fused Adam treats every weight alike.
    assert flat.numel() % FLAT_ALIGN == 0 and size <= flat.numel() < size + FLAT_ALIGN
    assert not flat[size:].any()
    for (name, p), p_before in zip(net.named_parameters(), before.parameters(), strict=True):
        assert torch.equal(p, p_before), name
        assert p.stride() == p_before.stride(), name  # a head's transposed storage survives
        assert p.grad is not None and p.grad.stride() == p.stride(), name
    assert torch.equal(net(obs), before(obs))
    with torch.no_grad():
        flat.zero_()
    assert all(not p.any() for p in net.parameters())  # they share the buffer's memory


def test_flat_adam_on_the_buffer_updates_every_weight_as_torch_adam_on_each() -> None:
    net = _network()
    reference = copy.deepcopy(net)
    flat = flatten_parameters(net)
    optimizer = FlatAdam(flat, lr=1e-2)
    reference_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2, fused=True)
    gen = torch.Generator().manual_seed(4)
    for _ in range(5):
        for p, p_ref in zip(net.parameters(), reference.parameters(), strict=True):
            grad = torch.randn(p.shape, generator=gen)
            assert p.grad is not None
            p.grad.copy_(grad)  # written through the view, as Backprop writes it
            p_ref.grad = torch.empty_like(p_ref).copy_(grad)  # in p_ref's memory layout
        optimizer.step()
        reference_optimizer.step()
    for (name, p), p_ref in zip(net.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, p_ref, rtol=0, atol=0, msg=name)
        assert not torch.equal(p, _network().get_parameter(name)), name  # Adam did move it


def test_flat_adam_needs_the_gradient_allocated() -> None:
    with pytest.raises(ValueError, match=r"\.grad is already allocated"):
        FlatAdam(torch.nn.Parameter(torch.zeros(3)), lr=1e-3)


@pytest.mark.parametrize("dueling", [False, True])
def test_numpy_evaluation_equals_torch_and_sees_every_update(dueling: bool) -> None:
    net = _network(dueling)
    flat = flatten_parameters(net)
    host = HostQNetwork(net)
    obs = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(host(obs.numpy())), net(obs))
        flat.mul_(-2.0)  # as an optimizer step does: in place
        torch.testing.assert_close(torch.from_numpy(host(obs.numpy())), net(obs))
