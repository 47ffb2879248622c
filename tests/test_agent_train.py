"""The training loop: reproducible from the seed, independent of grouping, and it learns."""

from __future__ import annotations

import copy
import math
from typing import Any

import pandas as pd
import pytest
import torch

from dqn_agent import (
    AgentConfig,
    Budget,
    EvalSettings,
    Progress,
    TrialSpec,
    evaluation,
    placement,
    train,
    train_group,
    training,
    vector_env,
)
from dqn_agent.buffer import ReplayBuffer
from dqn_agent.evaluation import greedy_policy
from dqn_agent.fused import FusedLearner
from dqn_agent.networks import QNetwork
from dqn_agent.training import LearnerName, flush_denormals

# Small and quick: learning starts early and updates every step.
QUICK = AgentConfig(
    hidden_sizes=(32,),
    lr=1e-3,
    batch_size=32,
    buffer_size=2_000,
    learning_starts=100,
    train_every=1,
    gradient_steps=1,
    target_update_every=50,
    epsilon_decay_steps=500,
)


SOLVES_CARTPOLE = AgentConfig(
    hidden_sizes=(64, 64),
    lr=1e-3,
    batch_size=64,
    buffer_size=10_000,
    learning_starts=500,
    train_every=1,
    gradient_steps=1,
    target_update_every=100,
    epsilon_decay_steps=3_000,
    epsilon_end=0.02,
)
"""Settings with which an agent clears a greedy return of 150 on CartPole within 5,000 steps."""


def _spec(seed: int, steps: int = 1_500, **changes: Any) -> TrialSpec:
    agent = AgentConfig.from_dict({**QUICK.to_dict(), **changes})
    return TrialSpec(
        env_id="CartPole-v1",
        agent=agent,
        seed=seed,
        budget=Budget(env_steps=steps),
        eval=EvalSettings(every_steps=500, episodes=2),
    )


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_same_seed_gives_identical_results() -> None:
    first, second = train(_spec(3)), train(_spec(3))
    pd.testing.assert_frame_equal(
        first.episodes.drop(columns="wall_s"), second.episodes.drop(columns="wall_s")
    )
    pd.testing.assert_frame_equal(
        first.evals.drop(columns="wall_s"), second.evals.drop(columns="wall_s")
    )
    for name, tensor in first.state_dict.items():
        assert torch.equal(tensor, second.state_dict[name]), name


def test_different_seeds_give_different_returns() -> None:
    a, b = train(_spec(1)), train(_spec(2))
    assert a.episodes["episode_return"].tolist() != b.episodes["episode_return"].tolist()


@pytest.mark.parametrize(
    ("learner", "changes"),
    [
        ("fused", {}),
        ("fused", {"double": True, "dueling": True, "tau": 0.01}),
        ("fused", {"hidden_sizes": (50, 30), "loss": "huber", "max_grad_norm": 1.0}),
        # Clipping with 8 parameter tensors, where summing the per-tensor squares as one
        # stacked tensor ordered a lone agent's additions differently.
        ("fused", {"hidden_sizes": (32, 32), "dueling": True, "max_grad_norm": 0.5}),
        ("reference", {"double": True, "loss": "mse"}),
        ("reference", {"hidden_sizes": (32, 32), "dueling": True, "max_grad_norm": 0.5}),
    ],
)
def test_a_seed_trains_the_same_alone_or_in_a_group(
    learner: LearnerName, changes: dict[str, Any]
) -> None:
    specs = [_spec(seed, **changes) for seed in range(5, 13)]  # a group of 8
    group = train_group(specs, learner=learner)
    alone = train(_spec(6, **changes), learner=learner)
    pd.testing.assert_series_equal(
        group[1].episodes["episode_return"], alone.episodes["episode_return"]
    )
    # Every logged figure and every final weight, not only returns: a leak between agents that
    # leaves returns unchanged (a gradient clipped by the whole group's norm) still shows here.
    pd.testing.assert_frame_equal(
        group[1].evals.drop(columns=["wall_s", "trial_id"]),
        alone.evals.drop(columns=["wall_s", "trial_id"]),
    )
    for name, tensor in alone.state_dict.items():
        assert torch.equal(group[1].state_dict[name], tensor), name
    assert group[0].episodes["episode_return"].tolist() != alone.episodes["episode_return"].tolist()


# (Huber is checked below: while every TD error is below 1, its gradient is MSE's halved, and
# Adam's steps do not change when every gradient is scaled by one factor, so the weights may
# match.)
@pytest.mark.parametrize(
    "changes",
    [
        {"double": True},
        {"tau": 0.05},
        {"dueling": True},
        {"gamma": 0.5},
        {"max_grad_norm": 1e-3},  # QUICK clips at the default 10, which these gradients never reach
        {"learning_starts": 300},
        {"gradient_steps": 2},
        {"lr": 3e-3},
    ],
)
def test_each_setting_reaches_the_training(changes: dict[str, Any]) -> None:
    # Rare target copies: right after one, online and target networks agree, and Double DQN's
    # choice of next action is DQN's.
    slow = {"target_update_every": 300}
    plain, changed = train(_spec(2, 600, **slow)), train(_spec(2, 600, **slow, **changes))
    common = plain.state_dict.keys() & changed.state_dict.keys()  # dueling adds value.*
    assert all(not torch.equal(plain.state_dict[k], changed.state_dict[k]) for k in common)


def test_the_loss_setting_chooses_the_logged_loss() -> None:
    # Equal weights or not (see above), the TD loss logged at each evaluation is the chosen one:
    # Huber's is at most MSE's half-square and differs from MSE's.
    mse, huber = train(_spec(2, 600, loss="mse")), train(_spec(2, 600, loss="huber"))
    mse_loss = mse.evals["td_loss"].dropna().to_numpy()
    huber_loss = huber.evals["td_loss"].dropna().to_numpy()
    assert len(mse_loss) == len(huber_loss) == 2  # updates begin after the eval at step 0
    assert (huber_loss < mse_loss).all()


def test_updates_start_at_learning_starts_and_take_gradient_steps_every_train_every(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    original = FusedLearner.update

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(FusedLearner, "update", counted)
    train(_spec(1, 600, learning_starts=100, train_every=4, gradient_steps=3))
    assert calls == 126 * 3  # env steps 100, 104, ..., 600, three gradient steps each
    # The td_loss logged at an evaluation is NaN where no update happened since the one before:
    # with learning_starts 550, at steps 0 and 500, not at 600.
    late = train(_spec(1, 600, learning_starts=550))
    assert late.evals["env_step"].tolist() == [0, 500, 600]
    assert late.evals["td_loss"].isna().tolist() == [True, True, False]


def test_evaluation_envs_are_seeded_apart_from_training_envs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, list[int]] = {}
    make_envs, make_evaluator = vector_env.make_vector_env, evaluation.make_evaluator

    def envs_spy(env_id: str, seeds: list[int], **kwargs: Any) -> Any:
        seen["train"] = list(seeds)
        return make_envs(env_id, seeds, **kwargs)

    def evaluator_spy(envs: Any, env_id: str, seeds: list[int], *args: Any) -> Any:
        seen["eval"] = list(seeds)
        return make_evaluator(envs, env_id, seeds, *args)

    monkeypatch.setattr(training, "make_vector_env", envs_spy)
    monkeypatch.setattr(training, "make_evaluator", evaluator_spy)
    train_group([_spec(0, 200), _spec(1, 200)])
    assert len(seen["train"]) == len(seen["eval"]) == 2
    assert not set(seen["train"]) & set(seen["eval"])  # no eval env replays a training env
    assert len(set(seen["train"])) == 2  # and the seeds' envs differ


class _StoredTransitions:
    """Stands in for ReplayBuffer in a training run and keeps what `add` was given."""

    def __init__(self) -> None:
        self.next_obs: list[torch.Tensor] = []
        self.terminated: list[torch.Tensor] = []

    def spy_on(self, buffer_class: type[ReplayBuffer]) -> type[ReplayBuffer]:
        record = self

        class Spy(buffer_class):  # type: ignore[valid-type, misc]
            def add(
                self, obs: Any, actions: Any, rewards: Any, next_obs: Any, term: Any, trunc: Any
            ) -> None:
                record.next_obs.append(next_obs[0].clone())
                record.terminated.append(term[0].clone())
                super().add(obs, actions, rewards, next_obs, term, trunc)

        return Spy


@pytest.mark.parametrize("env_id", ["MountainCar-v0", "CartPole-v1"])
def test_a_time_limit_bootstraps_and_a_real_ending_does_not(
    env_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the trainer stores at an episode's end: the state the action led to (never the next
    episode's start), flagged terminal only when the episode really ended, not when the time
    limit cut it. MountainCar under random play only ever hits its 200-step limit; CartPole's
    pole falls."""
    stored = _StoredTransitions()
    monkeypatch.setattr(training, "ReplayBuffer", stored.spy_on(ReplayBuffer))
    result = train(_spec(0, steps=450) if env_id == "CartPole-v1" else _other_env(env_id, 450))
    ends = result.episodes["env_step"].to_numpy() - 1  # index of each episode's last step
    assert len(ends) >= 2
    terminated = torch.stack(stored.terminated)
    final = torch.stack(stored.next_obs)[ends]
    if env_id == "MountainCar-v0":  # truncated at 200 and 400 steps
        assert ends.tolist() == [199, 399] and not terminated.any()
        assert (final[:, 1] != 0).all()  # moving: a start state has velocity 0
    else:
        assert terminated[ends].all() and int(terminated.sum()) == len(ends)
        fell = (final[:, 0].abs() > 2.4) | (final[:, 2].abs() > 0.2095)
        assert fell.all()  # a start state is within 0.05 of upright


def _other_env(env_id: str, steps: int) -> TrialSpec:
    return TrialSpec(
        env_id=env_id,
        agent=QUICK,
        seed=0,
        budget=Budget(env_steps=steps),
        eval=EvalSettings(every_steps=steps, episodes=1),
    )


def _is_flushed(x: float) -> bool:
    return bool((torch.tensor([x]) * 1.0).item() == 0.0)


@pytest.mark.parametrize("before", [False, True])
def test_training_flushes_denormals_and_puts_the_setting_back(before: bool) -> None:
    torch.set_flush_denormal(before)
    try:
        with flush_denormals():
            assert _is_flushed(1e-40)  # a denormal reads as zero inside
            assert not _is_flushed(1e-30)  # normal numbers are untouched
        assert _is_flushed(1e-40) == before
        inside: list[bool] = []
        train(_spec(0, steps=200), progress=lambda p: inside.append(_is_flushed(1e-40)))
        assert inside and all(inside)  # flushed while training
        assert _is_flushed(1e-40) == before
    finally:
        torch.set_flush_denormal(False)


def test_rows_carry_the_trial_columns_and_the_tables_are_consistent() -> None:
    spec = _spec(4)
    result = train(spec)
    for table in (result.episodes, result.evals):
        assert (table["trial_id"] == spec.trial_id).all()
        assert (table["hidden_sizes"] == "32").all()
        assert (table["seed"] == 4).all() and (table["env_id"] == "CartPole-v1").all()
        assert (table["config"] == "default").all()
    episodes = result.episodes
    assert episodes["episode"].tolist() == list(range(len(episodes)))
    assert episodes["env_step"].is_monotonic_increasing
    # Each episode ends episode_length steps after the previous one ended.
    assert (
        episodes["env_step"].diff().iloc[1:].tolist()
        == episodes["episode_length"].iloc[1:].tolist()
    )
    assert (episodes["episode_return"] == episodes["episode_length"]).all()  # CartPole: +1 a step
    assert result.evals["env_step"].tolist() == [0, 500, 1_000, 1_500]
    assert result.env_steps == 1_500
    assert result.evals["q_mean"].iloc[1:].notna().all()


def test_tables_have_the_same_column_types_with_rows_or_none() -> None:
    """A trial too short to finish an episode still gets numeric columns (they were 'object',
    which Parquet stores as nulls), and the types are those of a longer trial's tables."""
    short, full = train(_spec(0, steps=5)), train(_spec(0, steps=600))
    assert short.episodes.empty and not full.episodes.empty
    for name in ("episodes", "evals"):
        assert getattr(short, name).dtypes.to_dict() == getattr(full, name).dtypes.to_dict()
    assert full.episodes.dtypes["episode_return"] == "float64"
    assert full.evals.dtypes["episodes_done"] == "int64"
    assert pd.api.types.is_string_dtype(full.episodes.dtypes["trial_id"])


def test_budget_in_episodes_stops_after_that_many_episodes() -> None:
    spec = TrialSpec(
        env_id="CartPole-v1",
        agent=QUICK,
        seed=0,
        budget=Budget(env_steps=None, episodes=7),
        eval=EvalSettings(every_steps=10_000, episodes=1),
    )
    result = train(spec)
    assert len(result.episodes) == 7
    assert result.env_steps == int(result.episodes["env_step"].iloc[-1])
    with pytest.raises(ValueError, match="budget in episodes needs a group of one"):
        train_group([spec, TrialSpec(**{**spec.__dict__, "seed": 1})])


def test_group_members_must_differ_only_in_seed() -> None:
    with pytest.raises(ValueError, match="differ only in seed"):
        train_group([_spec(1), _spec(2, lr=3e-3)])
    with pytest.raises(ValueError, match="seeds must be distinct"):
        train_group([_spec(1), _spec(1)])


def test_progress_is_reported() -> None:
    seen: list[Progress] = []
    train(_spec(0, steps=2_000), progress=seen.append)
    assert [p.env_step for p in seen] == [500, 1_000, 1_500, 2_000]
    assert seen[-1].total_env_steps == 2_000 and seen[-1].last_eval_return is not None


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0", "LunarLander-v3"])
def test_other_discrete_envs_run_through_the_loop_and_their_rewards_reach_the_q_values(
    env_id: str,
) -> None:
    """A run of 300 steps: too short to learn these envs, long enough for their rewards to
    show in the Q-values (Acrobot and MountainCar pay -1 per step, so Q turns negative)."""
    spec = TrialSpec(
        env_id=env_id,
        agent=QUICK,
        seed=0,
        budget=Budget(env_steps=300),
        eval=EvalSettings(every_steps=300, episodes=1),
    )
    evals = train(spec).evals
    assert evals["env_step"].tolist() == [0, 300]
    # Updates ran (learning starts at 100) and their figures are finite numbers.
    last = evals.iloc[-1]
    assert math.isfinite(last["td_loss"]) and math.isfinite(last["q_mean"])
    assert math.isfinite(last["eval_return_mean"])
    if env_id != "LunarLander-v3":
        assert last["q_mean"] < 0


@pytest.mark.parametrize("learner", ["fused", "reference"])
def test_agent_clears_a_reward_threshold_on_cartpole_within_a_small_budget(
    learner: LearnerName,
) -> None:
    # Untrained agents average about 10-20; 150 needs a real policy.
    spec = TrialSpec(
        env_id="CartPole-v1",
        agent=SOLVES_CARTPOLE,
        seed=0,
        budget=Budget(env_steps=5_000),
        eval=EvalSettings(every_steps=1_000, episodes=5),
    )
    result = train(spec, learner=learner)
    assert result.evals["eval_return_mean"].iloc[0] < 50
    assert result.evals["eval_return_mean"].max() >= 150


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_training_matches_its_own_seed_and_keeps_weights_on_the_host_afterwards() -> None:
    spec = TrialSpec(**{**_spec(2).__dict__, "device": "cuda"})
    first, second = train(spec), train(spec)
    assert first.evals["eval_return_mean"].tolist() == second.evals["eval_return_mean"].tolist()
    assert all(t.device.type == "cpu" for t in first.state_dict.values())


def test_cuda_without_a_usable_gpu_is_refused_before_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as a CPU-only torch
    spec = TrialSpec(**{**_spec(2).__dict__, "device": "cuda"})
    with pytest.raises(ValueError, match=r"device 'cuda': torch .* cannot use a GPU"):
        train(spec)


@pytest.mark.parametrize("dueling", [False, True])
def test_acting_through_numpy_chooses_the_actions_torch_chooses(
    dueling: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = QNetwork(4, 4, 3, [32, 16], dueling=dueling)
    online.reset_parameters([torch.Generator().manual_seed(s) for s in range(4)])
    by_numpy = FusedLearner(copy.deepcopy(online), QUICK)
    monkeypatch.setattr(placement, "NUMPY_ON_CPU", False)
    by_torch = FusedLearner(online, QUICK)
    assert by_numpy.host is not None and by_torch.host is None
    gen = torch.Generator().manual_seed(1)
    greedy_counts = []
    for epsilon in (0.0, 0.5, 1.0):
        for _ in range(50):
            obs, u = torch.randn(4, 4, generator=gen), torch.rand(4, 2, generator=gen)
            actions = by_numpy.act(obs, u, epsilon)
            assert actions.dtype == torch.int64
            assert torch.equal(actions, by_torch.act(obs, u, epsilon))
        obs = torch.randn(4, 4, generator=gen)
        greedy_counts.append(len(set(by_numpy.act(obs, u, 0.0).tolist())))
    assert max(greedy_counts) > 1  # the greedy actions are not all one action


def test_greedy_evaluation_through_numpy_chooses_the_actions_torch_chooses() -> None:
    online = QNetwork(3, 4, 2, [64, 64])
    online.reset_parameters([torch.Generator().manual_seed(s) for s in range(3)])
    obs = torch.randn(3, 500, 4, generator=torch.Generator().manual_seed(5))
    by_numpy = greedy_policy(online, numpy=True)(obs)
    assert torch.equal(by_numpy, greedy_policy(online, numpy=False)(obs))
    assert 0 < by_numpy.float().mean() < 1  # both actions occur
