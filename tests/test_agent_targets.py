"""TD targets, Double DQN, the target network and the truncation/termination distinction."""

from __future__ import annotations

import copy

import pytest
import torch

from dqn_agent.buffer import Batch
from dqn_agent.networks import QNetwork
from dqn_agent.targets import td_loss, td_target, update_target


def _networks(dueling: bool = False) -> tuple[QNetwork, QNetwork]:
    online = QNetwork(2, 4, 3, [8, 8], dueling=dueling)
    online.reset_parameters([torch.Generator().manual_seed(s) for s in (0, 1)])
    target = copy.deepcopy(online)
    return online, target


def _batch(terminated: float) -> Batch:
    gen = torch.Generator().manual_seed(5)
    return Batch(
        obs=torch.randn(2, 5, 4, generator=gen),
        actions=torch.randint(3, (2, 5), generator=gen),
        rewards=torch.ones(2, 5),
        next_obs=torch.randn(2, 5, 4, generator=gen),
        terminated=torch.full((2, 5), terminated),
    )


def test_target_network_is_unchanged_by_an_online_step_and_equal_after_a_hard_update() -> None:
    online, target = _networks()
    before = copy.deepcopy(target.state_dict())
    optimizer = torch.optim.SGD(online.parameters(), lr=0.1)
    batch = _batch(0.0)
    q = online(batch.obs).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    loss, _ = td_loss(q, td_target(batch, online, target, gamma=0.9, double=False), "mse")
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert not torch.equal(online.state_dict()["advantage.weight"], before["advantage.weight"])
    update_target(online, target, tau=1.0)
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, online.state_dict()[name]), name


def test_soft_update_moves_a_fraction_tau_of_the_way() -> None:
    online, target = _networks()
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    old = copy.deepcopy(target.state_dict())
    update_target(online, target, tau=0.25)
    for name, tensor in target.state_dict().items():
        expected = old[name] + 0.25 * (online.state_dict()[name] - old[name])
        assert torch.allclose(tensor, expected), name


def test_termination_cuts_the_bootstrap_and_truncation_keeps_it() -> None:
    online, target = _networks()
    terminal = td_target(_batch(1.0), online, target, gamma=0.9, double=False)
    assert torch.equal(terminal, torch.ones(2, 5))
    # A time-limit cut is stored with terminated = 0: the target bootstraps from s'.
    truncated = _batch(0.0)
    expected = 1.0 + 0.9 * target(truncated.next_obs).max(dim=-1).values
    assert torch.allclose(td_target(truncated, online, target, gamma=0.9, double=False), expected)


def test_double_dqn_scores_the_online_networks_choice_with_the_target_network() -> None:
    online, target = _networks()
    with torch.no_grad():
        for p in target.parameters():
            p.mul_(-1.0)  # make the two networks disagree
    batch = _batch(0.0)
    choice = online(batch.next_obs).argmax(dim=-1, keepdim=True)
    expected = 1.0 + 0.9 * target(batch.next_obs).gather(-1, choice).squeeze(-1)
    double = td_target(batch, online, target, gamma=0.9, double=True)
    plain = td_target(batch, online, target, gamma=0.9, double=False)
    assert torch.allclose(double, expected)
    assert (double <= plain + 1e-6).all() and not torch.allclose(double, plain)


@pytest.mark.parametrize("dueling", [False, True])
def test_network_shapes(dueling: bool) -> None:
    online, _ = _networks(dueling)
    assert online(torch.zeros(2, 7, 4)).shape == (2, 7, 3)


def test_dueling_head_combines_value_and_mean_centred_advantage() -> None:
    online, _ = _networks(dueling=True)
    obs = torch.randn(2, 6, 4)
    hidden = obs
    for layer in online.hidden:
        hidden = torch.relu(layer(hidden))
    assert online.value is not None
    value, advantage = online.value(hidden), online.advantage(hidden)
    q = online(obs)
    assert torch.allclose(q, value + advantage - advantage.mean(dim=-1, keepdim=True))
    # Averaging Q over actions recovers V(s): the advantages are centred.
    assert torch.allclose(q.mean(dim=-1, keepdim=True), value, atol=1e-6)


def test_huber_and_mse_losses_sum_per_agent_means() -> None:
    q = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([[3.0, 0.5], [1.0, 1.0]])
    mse, per_agent = td_loss(q, y, "mse")
    assert torch.allclose(per_agent, torch.tensor([(9.0 + 0.25) / 2, 1.0]))
    assert torch.isclose(mse, per_agent.sum())
    _, huber = td_loss(q, y, "huber")
    assert torch.allclose(huber, torch.tensor([(2.5 + 0.125) / 2, 0.5]))


def test_each_agent_is_initialised_from_its_own_seed_alone() -> None:
    group = QNetwork(3, 4, 2, [8])
    group.reset_parameters([torch.Generator().manual_seed(s) for s in (10, 11, 12)])
    alone = QNetwork(1, 4, 2, [8])
    alone.reset_parameters([torch.Generator().manual_seed(11)])
    for name, tensor in alone.state_dict().items():
        assert torch.equal(tensor[0], group.state_dict()[name][1]), name
