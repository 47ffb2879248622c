"""The container and cluster configs of docker/: Ray accepts them, and they keep the cluster shut.

No Docker engine needed: Ray's own cluster-config validation (what `ray up` runs before it
touches a machine) and the settings that make the clusters safe, read from the files.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.util import prepare_config, validate_config

# Ray's cluster validation needs jsonschema (ray[default] brings it).
jsonschema = pytest.importorskip("jsonschema")

DOCKER = Path(__file__).resolve().parents[1] / "docker"
CLUSTER_CONFIGS = ["cluster.yaml", "cluster-aws.yaml"]


def load(name: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((DOCKER / name).read_text())
    return config


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_cluster_config_passes_rays_validation(name: str) -> None:
    prepared = prepare_config(load(name))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_local_cluster_config_bootstraps_as_ray_up_does() -> None:
    """`ray up` resolves a local config fully (no cloud account involved) before any SSH."""
    config = _bootstrap_config(load("cluster.yaml"), no_config_cache=True)
    node_type = config["available_node_types"][config["head_node_type"]]
    n_workers = len(config["provider"]["worker_ips"])
    assert node_type["min_workers"] == node_type["max_workers"] == n_workers


def test_validation_rejects_a_config_ray_would_not_run() -> None:
    """The check above has teeth: a misspelt key in the docker section is an error."""
    broken = load("cluster.yaml")
    broken["docker"]["run_option"] = broken["docker"].pop("run_options")
    with pytest.raises(jsonschema.ValidationError, match="run_option"):
        validate_config(prepare_config(copy.deepcopy(broken)))


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_every_node_runs_the_project_image_with_token_auth(name: str) -> None:
    config = load(name)
    docker = config["docker"]
    assert "dqn-sweeps" in docker["image"]
    options = " ".join(docker["run_options"])
    assert "RAY_AUTH_MODE=token" in options
    # The token reaches each node as a file mount from the launching machine, into the
    # container's home (/home/ray in the image), not through the image.
    token_path = options.split("RAY_AUTH_TOKEN_PATH=")[1].split()[0]
    mount = next(remote for remote, local in config["file_mounts"].items() if "secrets" in local)
    assert token_path.startswith(mount.replace("~", "/home/ray") + "/")
    assert config["file_mounts"][mount] == "docker/.secrets"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start


def test_compose_cluster_is_private_and_authenticated() -> None:
    compose = load("docker-compose.yml")
    services: dict[str, Any] = compose["services"]
    assert {"ray-head", "ray-worker", "ray-gpu-worker", "submit"} <= set(services)
    for name, service in services.items():
        assert service["environment"]["RAY_AUTH_MODE"] == "token", name
        assert service["environment"]["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_token", name
        assert service["secrets"] == ["ray_token"], name
        assert not str(service["user"]).startswith(("0:", "root")), name
        assert service["shm_size"] == "1g", name
        # Only the head publishes a port, and only on the loopback interface.
        ports = service.get("ports", [])
        assert all(str(port).startswith("127.0.0.1:") for port in ports), name
        assert bool(ports) == (name == "ray-head"), name
    assert compose["secrets"]["ray_token"]["file"].endswith(".secrets/ray_token}")


def test_secrets_and_build_inputs_stay_out_of_git_and_the_build_context() -> None:
    lines = (DOCKER.parent / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"  # an allowlist: nothing enters the build context unless named
    assert "docker/.secrets" in rules
    assert not any(rule.startswith("!docker/.secrets") for rule in rules)
    for folder in (".secrets", "wheels"):
        rules = (DOCKER / folder / ".gitignore").read_text().split()
        assert "*" in rules
