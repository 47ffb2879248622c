"""Vector environments: the batched torch CartPole against gymnasium's, step by step."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch

from dqn_agent.evaluation import TorchCartPoleEvaluator, greedy_policy
from dqn_agent.networks import QNetwork
from dqn_agent.vector_env import (
    GymnasiumVectorEnv,
    TorchCartPole,
    autoreset_step,
    cartpole_dynamics,
    make_vector_env,
)

CPU = torch.device("cpu")


def test_torch_cartpole_matches_gymnasium_step_by_step() -> None:
    """From gymnasium's own states, the same actions give the same next states, rewards,
    terminations and truncations, over many episodes of random play. On the CPU the env steps
    with numpy; the dynamics computed by torch, as on a GPU, are compared too."""
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    ours = TorchCartPole([0], device=CPU)
    ours.reset()
    obs, _ = env.reset(seed=0)
    steps = terminations = truncations = 0
    while steps < 8_000:
        ours.state = torch.as_tensor(env.unwrapped.state, dtype=torch.float64).reshape(1, 4)  # type: ignore[attr-defined]
        ours.elapsed[0] = env._elapsed_steps  # type: ignore[attr-defined]
        # Odd episodes play at random (the pole falls); even ones balance with a simple rule,
        # so that they reach the 500-step limit.
        balance = (terminations + truncations) % 2 == 0
        action = int(obs[2] + 0.5 * obs[3] > 0) if balance else int(rng.integers(2))
        by_torch, fell = cartpole_dynamics(ours.state.clone(), torch.tensor([action]))
        obs, reward, terminated, truncated, _ = env.step(action)
        out = ours.step(torch.tensor([action]))
        np.testing.assert_array_equal(out.final_obs[0].numpy(), obs)
        np.testing.assert_array_equal(by_torch[0].float().numpy(), obs)
        assert bool(fell[0]) == terminated
        assert float(out.reward[0]) == reward
        assert bool(out.terminated[0]) == terminated
        assert bool(out.truncated[0]) == truncated
        terminations += terminated
        truncations += truncated
        steps += 1
        if terminated or truncated:
            obs, _ = env.reset()
    assert terminations > 5 and truncations > 5  # both kinds of ending were compared


def test_torch_cartpole_running_on_its_own_matches_gymnasium() -> None:
    """The same comparison without help: our env keeps its own step counter across episodes
    and resets itself (gymnasium's copy is put in each of our start states), so the 500-step
    limit and its reset are compared as well. Start states are tested in the next test."""
    ours = TorchCartPole([3], device=CPU)
    obs = ours.reset()[0].numpy()
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.state = ours.state[0].numpy().copy()  # type: ignore[attr-defined]
    rng = np.random.default_rng(1)
    endings: list[str] = []
    for _ in range(12_000):
        balance = len(endings) % 2 == 0
        action = int(obs[2] + 0.5 * obs[3] > 0) if balance else int(rng.integers(2))
        out = ours.step(torch.tensor([action]))
        expected, reward, terminated, truncated, _ = env.step(action)
        np.testing.assert_array_equal(out.final_obs[0].numpy(), expected)
        assert float(out.reward[0]) == reward
        assert (bool(out.terminated[0]), bool(out.truncated[0])) == (terminated, truncated)
        if terminated or truncated:
            endings.append("truncated" if truncated else "terminated")
            env.reset()
            env.unwrapped.state = ours.state[0].numpy().copy()  # type: ignore[attr-defined]
        obs = out.next_obs[0].numpy()
    assert endings.count("truncated") >= 5 and endings.count("terminated") >= 5


def test_torch_cartpole_draws_fresh_start_states_on_its_own() -> None:
    envs = TorchCartPole([4], device=CPU)
    starts = [tuple(envs.reset()[0].tolist())]
    for _ in range(3_000):
        out = envs.step(torch.ones(1, dtype=torch.int64))  # push right: ~10-step episodes
        if bool(out.terminated[0] | out.truncated[0]):
            starts.append(tuple(out.next_obs[0].tolist()))
    assert len(starts) > 4 * TorchCartPole.BLOCK and len(set(starts)) == len(starts)


def test_torch_cartpole_resets_in_the_step_that_ends_an_episode() -> None:
    envs = TorchCartPole([1, 2, 3], device=CPU)
    obs = envs.reset()
    assert obs.shape == (3, 4) and obs.abs().max() <= 0.05
    ended = 0
    for _ in range(200):
        out = envs.step(torch.ones(3, dtype=torch.int64))  # always push right: falls quickly
        done = out.terminated | out.truncated
        ended += int(done.sum())
        # Where an episode ended, the next observation is a fresh start state, not the final one.
        assert (out.next_obs[done].abs() <= 0.05).all()
        assert (out.final_obs[~done] == out.next_obs[~done]).all()
    assert ended >= 3 * 10


def test_start_states_depend_on_the_seed_alone() -> None:
    group = TorchCartPole([7, 8], device=CPU).reset()
    alone = TorchCartPole([8], device=CPU).reset()
    assert torch.equal(group[1], alone[0]) and not torch.equal(group[0], group[1])


def test_dynamics_by_numpy_and_by_torch_agree() -> None:
    """The CPU computes with numpy, a GPU with torch: the same function, whose sines and cosines
    may differ in the last of float64's 53 bits (torch's vectorised kernels against numpy's)."""
    rng = np.random.default_rng(0)
    state = rng.uniform(-1, 1, size=(10_000, 4)) * np.array([3.0, 2.0, 0.3, 2.0])
    actions = rng.integers(2, size=10_000)
    by_numpy, fell_numpy = cartpole_dynamics(state, actions)
    by_torch, fell_torch = cartpole_dynamics(torch.from_numpy(state), torch.from_numpy(actions))
    np.testing.assert_allclose(by_torch.numpy(), by_numpy, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(fell_torch.numpy(), fell_numpy)
    assert 0.2 < fell_numpy.mean() < 0.8  # both outcomes compared


def test_the_whole_step_by_numpy_and_by_torch_agrees() -> None:
    """`TorchCartPole` steps with numpy on the CPU and with torch on a GPU: the same function,
    run both ways for 3,000 steps of 6 copies, falls, time limits and resets from the
    start-state blocks included. Each step starts both from the numpy state, since the last-bit
    differences of their sines (see above) grow over a long balanced episode."""
    rng = np.random.default_rng(1)
    n, block = 6, 64
    starts = rng.uniform(-0.05, 0.05, size=(n * block, 4))
    first_start = np.arange(n) * block
    state, elapsed, used = starts[first_start].copy(), np.zeros(n, np.int64), np.ones(n, np.int64)
    state_t, elapsed_t, used_t = (torch.from_numpy(a.copy()) for a in (state, elapsed, used))
    starts_t, first_start_t = torch.from_numpy(starts), torch.from_numpy(first_start)
    endings = {"terminated": 0, "truncated": 0}
    for t in range(3_000):
        if t % 256 == 0:  # as TorchCartPole refills: every copy back to the start of its block
            used[:] = 0
            used_t.zero_()
        state_t.copy_(torch.from_numpy(state))
        balance = (state[:, 2] + 0.5 * state[:, 3] > 0).astype(np.int64)
        actions = np.where(np.arange(n) % 2 == 0, balance, rng.integers(2, size=n))
        final, terminated, truncated = autoreset_step(
            state, elapsed, used, starts, first_start, actions
        )
        final_t, terminated_t, truncated_t = autoreset_step(
            state_t, elapsed_t, used_t, starts_t, first_start_t, torch.from_numpy(actions)
        )
        for mine, theirs in ((final_t, final), (state_t, state)):
            np.testing.assert_allclose(mine.numpy(), theirs, rtol=0, atol=1e-15)
        for mine, theirs in (
            (terminated_t, terminated),
            (truncated_t, truncated),
            (elapsed_t, elapsed),
            (used_t, used),
        ):
            np.testing.assert_array_equal(mine.numpy(), theirs)
        endings["terminated"] += int(terminated.sum())
        endings["truncated"] += int(truncated.sum())
    assert endings["terminated"] >= 20 and endings["truncated"] >= 5


def test_dynamics_broadcast_over_any_leading_shape() -> None:
    state = torch.zeros(3, 5, 4, dtype=torch.float64)
    next_state, fell = cartpole_dynamics(state, torch.ones(3, 5, dtype=torch.int64))
    assert next_state.shape == (3, 5, 4) and fell.shape == (3, 5) and not fell.any()


def test_gymnasium_vector_env_keeps_the_final_observation() -> None:
    envs = GymnasiumVectorEnv("CartPole-v1", [0, 1], device=CPU)
    envs.reset()
    for _ in range(100):
        out = envs.step(torch.ones(2, dtype=torch.int64))
        done = out.terminated | out.truncated
        if done.any():
            # The final state of a fallen pole is outside the start range.
            assert (out.final_obs[done].abs().max(dim=1).values > 0.05).all()
            assert (out.next_obs[done].abs() <= 0.05).all()
            break
    else:
        pytest.fail("no episode ended in 100 steps of pushing right")
    envs.close()


def test_backend_choice() -> None:
    assert isinstance(make_vector_env("CartPole-v1", [0], device=CPU), TorchCartPole)
    gym_env = make_vector_env("CartPole-v1", [0], device=CPU, backend="gymnasium")
    assert isinstance(gym_env, GymnasiumVectorEnv)
    with pytest.raises(ValueError, match="only for CartPole-v1"):
        make_vector_env("Acrobot-v1", [0], device=CPU, backend="torch")


def test_torch_evaluator_scores_as_gymnasium_does() -> None:
    """Greedy returns of three networks, batched on the device, against the same policies
    played in gymnasium from the same start states (those the evaluator draws from each seed).
    The networks are untrained: their episodes end at all sorts of lengths."""
    seeds, episodes = [11, 12, 13], 6
    net = QNetwork(3, 4, 2, [16])
    net.reset_parameters([torch.Generator().manual_seed(s) for s in seeds])
    greedy = greedy_policy(net)
    scores = TorchCartPoleEvaluator(seeds, episodes, CPU)(greedy)
    env = gym.make("CartPole-v1")
    for k, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(seed)
        starts = torch.rand(episodes, 4, generator=generator, dtype=torch.float64) * 0.1 - 0.05
        returns = []
        for start in starts.numpy():
            env.reset(seed=0)
            env.unwrapped.state = start.copy()  # type: ignore[attr-defined]
            obs, total, done = start.astype(np.float32), 0.0, False
            while not done:
                all_obs = np.zeros((3, 1, 4), dtype=np.float32)
                all_obs[k, 0] = obs
                action = int(greedy(torch.from_numpy(all_obs))[k, 0])
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        # By numpy in float64, each agent's row alone: the same floats (not 9.666666984558105
        # for 9.666666666666666, as a float32 sum gave).
        assert scores[k][0] == np.mean(returns)
        assert scores[k][1] == np.std(returns)
    assert len({round(mean) for mean, _ in scores}) > 1  # the policies differ


def test_an_agents_evaluation_figures_are_the_same_bits_alone_or_in_a_group() -> None:
    """Mean and std of each agent's returns come from its own row alone: a reduction over a
    (K, episodes) tensor added a lone agent's returns in another order than K rows'."""
    seeds = list(range(20, 28))
    # A linear policy per seed, fixed by the seed: its returns vary from episode to episode.
    weights = {s: torch.randn(4, generator=torch.Generator().manual_seed(s)) for s in seeds}

    def policy(group: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
        w = torch.stack([weights[s] for s in group])  # (K, 4)
        return lambda obs: (torch.einsum("kni,ki->kn", obs, w) > 0).long()

    together = TorchCartPoleEvaluator(seeds, 20, CPU)(policy(seeds))
    for k, seed in enumerate(seeds):
        alone = TorchCartPoleEvaluator([seed], 20, CPU)(policy([seed]))
        assert alone[0] == together[k], seed  # exact, not approximate
    assert len({std for _, std in together}) > 4  # the policies' returns do spread
