"""The two learners take the same DQN step, and any torch module trains through the reference."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from dqn_agent import AgentConfig, Budget, EvalSettings, TrialSpec, train, train_group
from dqn_agent.buffer import Batch
from dqn_agent.config import LossName
from dqn_agent.fused import FusedLearner
from dqn_agent.learner import ReferenceLearner
from dqn_agent.networks import QNetwork
from dqn_agent.stacked import StackedModule
from tests.test_agent_train import SOLVES_CARTPOLE

K, BATCH, OBS, ACTIONS = 3, 32, 5, 3


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _batch(seed: int) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(K, BATCH, OBS, generator=gen, dtype=torch.float64),
        actions=torch.randint(ACTIONS, (K, BATCH), generator=gen),
        rewards=3 * torch.randn(K, BATCH, generator=gen, dtype=torch.float64),  # some |d| > 1
        next_obs=torch.randn(K, BATCH, OBS, generator=gen, dtype=torch.float64),
        terminated=(torch.rand(K, BATCH, generator=gen) < 0.3).double(),
    )


def _learners(config: AgentConfig) -> tuple[ReferenceLearner, FusedLearner]:
    """Both learners on equal float64 networks, their target networks equal to each other and
    different from the online ones (so that Double DQN's choice of action matters)."""
    net = QNetwork(K, OBS, ACTIONS, config.hidden_sizes, dueling=config.dueling).double()
    net.reset_parameters([torch.Generator().manual_seed(s) for s in range(K)])
    reference, fused = ReferenceLearner(copy.deepcopy(net), config), FusedLearner(net, config)
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for t_ref, t_fused in zip(
            reference.target.parameters(), fused.target.parameters(), strict=True
        ):
            t_ref.add_(0.3 * torch.randn(t_ref.shape, generator=gen, dtype=t_ref.dtype))
            t_fused.copy_(t_ref)
    return reference, fused


@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("max_grad_norm", [None, 0.05])
def test_one_update_of_the_two_learners_gives_the_same_gradients_and_weights(
    loss: LossName, dueling: bool, double: bool, max_grad_norm: float | None
) -> None:
    config = AgentConfig(
        hidden_sizes=(16, 8),
        loss=loss,
        dueling=dueling,
        double=double,
        max_grad_norm=max_grad_norm,
        batch_size=BATCH,
        lr=1e-2,
    )
    reference, fused = _learners(config)
    for step in range(2):  # the second step starts from Adam's state after the first
        batch = _batch(step)
        ref_stats, fused_stats = reference.update(batch), fused.update(batch)
        torch.testing.assert_close(fused_stats.loss, ref_stats.loss)
        torch.testing.assert_close(fused_stats.q_taken, ref_stats.q_taken)
        named = zip(reference.online.named_parameters(), fused.online.parameters(), strict=True)
        for (name, p_ref), p_fused in named:
            assert p_ref.grad is not None and p_fused.grad is not None
            assert p_ref.grad.abs().sum() > 0, name  # every parameter takes part
            torch.testing.assert_close(p_fused.grad, p_ref.grad, msg=name)
            torch.testing.assert_close(p_fused, p_ref, msg=name)
    if max_grad_norm is not None:  # the clip engaged: each agent's norm is now the limit
        squares = [
            p.grad.pow(2).flatten(1).sum(1) for p in fused.online.parameters() if p.grad is not None
        ]
        norms = torch.stack(squares).sum(dim=0).sqrt()  # (K,)
        torch.testing.assert_close(norms, torch.full_like(norms, max_grad_norm), rtol=1e-4, atol=0)


def test_the_learners_update_the_target_network_alike() -> None:
    reference, fused = _learners(AgentConfig(hidden_sizes=(8,), tau=0.25, batch_size=BATCH))
    reference.update_target()
    fused.update_target()
    for t_ref, t_fused in zip(
        reference.target.parameters(), fused.target.parameters(), strict=True
    ):
        torch.testing.assert_close(t_fused, t_ref)


def _layer_norm_mlp(obs_dim: int, n_actions: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(obs_dim, 64),
        nn.LayerNorm(64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.LayerNorm(64),
        nn.ReLU(),
        nn.Linear(64, n_actions),
    )


def _cartpole(seed: int, steps: int) -> TrialSpec:
    """CartPole with settings that solve it in 5,000 steps (the network is each test's own)."""
    return TrialSpec(
        env_id="CartPole-v1",
        agent=SOLVES_CARTPOLE,
        seed=seed,
        budget=Budget(env_steps=steps),
        eval=EvalSettings(every_steps=1_000, episodes=5),
    )


def test_a_custom_layer_norm_network_learns_cartpole_through_the_public_api() -> None:
    result = train(_cartpole(0, 5_000), network=_layer_norm_mlp)
    assert result.evals["eval_return_mean"].iloc[0] < 50  # untrained: about 10-20
    assert result.evals["eval_return_mean"].max() >= 150
    # The weights are the LayerNorm network's, one agent's slice of each.
    norm = result.state_dict["agents.1.weight"]
    assert norm.shape == (1, 64)
    assert not torch.equal(norm, torch.ones(1, 64))  # LayerNorm's scale was trained


def test_a_custom_network_trains_the_same_alone_or_in_a_group() -> None:
    group = train_group([_cartpole(seed, 700) for seed in (4, 5, 6)], network=_layer_norm_mlp)
    alone = train(_cartpole(5, 700), network=_layer_norm_mlp)
    ids = ["wall_s", "trial_id"]
    pd.testing.assert_frame_equal(group[1].evals.drop(columns=ids), alone.evals.drop(columns=ids))
    pd.testing.assert_frame_equal(
        group[1].episodes.drop(columns=ids), alone.episodes.drop(columns=ids)
    )
    for name, tensor in alone.state_dict.items():
        assert torch.equal(group[1].state_dict[name], tensor), name
    assert not torch.equal(
        group[0].state_dict["agents.0.weight"], alone.state_dict["agents.0.weight"]
    )


def test_each_stacked_copy_is_initialised_from_its_own_seed_alone() -> None:
    three = StackedModule(_layer_norm_mlp, 4, 2, [10, 11, 12])
    one = StackedModule(_layer_norm_mlp, 4, 2, [11])
    for name, tensor in one.state_dict().items():
        assert torch.equal(three.state_dict()[name][1:2], tensor), name
    first = three.agents.state_dict()["0.weight"]
    assert not torch.equal(first[0], first[1])
    # Agent 1 alone, as an ordinary module, computes what the stack computes for it.
    obs = torch.randn(3, 7, 4)
    torch.testing.assert_close(three.agent_module(1)(obs[1]), three(obs)[1])


def test_a_custom_network_is_refused_by_the_fused_learner_and_by_save(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learner='fused' supports only the built-in networks"):
        train(_cartpole(0, 10), learner="fused", network=_layer_norm_mlp)
    result = train(
        TrialSpec(
            **{**_cartpole(0, 10).__dict__, "eval": EvalSettings(every_steps=10, episodes=1)}
        ),
        network=_layer_norm_mlp,
    )
    with pytest.raises(ValueError, match="custom `network`"):
        result.save(str(tmp_path / "w.pt"))
    assert not (tmp_path / "w.pt").exists()


def test_an_unknown_learner_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="learner='fast' is invalid: allowed are 'auto'"):
        train(_cartpole(0, 10), learner="fast")  # type: ignore[arg-type]
