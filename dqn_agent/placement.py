"""Which library runs the small arithmetic of each env step: numpy on a CPU, torch on a GPU.

Acting, evaluating and stepping CartPole each work on a handful of numbers per agent, where a
call costs more than its arithmetic. On a CPU numpy's calls cost less than torch's (see
`vector_env.step_cartpole` and `networks.HostQNetwork`), and numpy reads the tensors' memory
without a copy. On a GPU, torch computes on the device, so that a step never waits for a copy to
the host. Every such choice in the package asks `numpy_for`, which is how the tests run the
GPU's code path on a CPU: they set `NUMPY_ON_CPU` to False.
"""

from __future__ import annotations

import torch

NUMPY_ON_CPU = True
"""Whether tensors on the CPU are handed to numpy for the per-step arithmetic."""


def numpy_for(device: torch.device) -> bool:
    """Whether the per-step arithmetic of tensors on `device` runs in numpy."""
    return NUMPY_ON_CPU and device.type == "cpu"
