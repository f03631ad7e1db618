"""Ray addresses and connections: refuse what cannot work before Ray starts or waits."""

from __future__ import annotations

import os
import re
import socket

from musicgym.errors import ConfigError

_ADDRESS = re.compile(r"^(ray://)?([A-Za-z0-9._-]+):(\d{1,5})$")
# how long to wait for a TCP answer from the cluster's address before saying it is unreachable
# (ray.init itself retries an unreachable GCS for minutes)
REACH_TIMEOUT_S = 5.0


def check_address(address: str | None) -> None:
    """Raise :class:`ConfigError` unless ``address`` is one ``ray.init`` understands.

    Accepted: ``None`` (start a local Ray, or use ``RAY_ADDRESS``), ``auto``, ``local``,
    ``HOST:PORT`` (a cluster's GCS, from a machine of the cluster; 6379 by default) and
    ``ray://HOST:PORT`` (Ray Client, from outside the cluster; 10001 by default).
    """
    if address is None or address in ("auto", "local"):
        return
    match = _ADDRESS.match(address) if isinstance(address, str) else None
    if match is None or not 1 <= int(match.group(3)) <= 65535:
        raise ConfigError(f"--address {address!r}: expected ray://HOST:PORT (Ray Client, e.g. "
                          "ray://head-node:10001), HOST:PORT (a cluster's GCS, e.g. "
                          "head-node:6379), 'auto' or 'local'")


def check_num_env_runners(num_env_runners: int) -> None:
    """Raise :class:`ConfigError` unless ``num_env_runners`` is an integer >= 0."""
    if not isinstance(num_env_runners, int) or isinstance(num_env_runners, bool) \
            or num_env_runners < 0:
        raise ConfigError(f"--num-env-runners: must be an integer >= 0 (0 samples in the driver "
                          f"process), got {num_env_runners!r}")


def resolve_address(address: str | None) -> str | None:
    """``address``, else ``RAY_ADDRESS``, else None (a local Ray); checked."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_address(address)
    return address


def check_reachable(address: str | None) -> None:
    """Raise :class:`ConfigError` if nothing answers on ``HOST:PORT`` within a few seconds."""
    match = _ADDRESS.match(address or "")
    if match is None:  # None, auto, local: nothing to dial
        return
    host, port = match.group(2), int(match.group(3))
    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(f"--address {address}: nothing answers there ({exc}); is the Ray "
                          "cluster running (ray status on its head node), and is this the head "
                          "node's GCS port (6379) or Ray Client port (10001)?") from exc


def connect(address: str | None, num_env_runners: int) -> bool:
    """Connect to (or start) Ray unless it already is; return whether we must shut it down."""
    import ray

    if ray.is_initialized():
        return False
    check_reachable(address)
    try:
        if address is None:
            # a local instance: one CPU per env runner even if that oversubscribes the machine
            ray.init(num_cpus=max(os.cpu_count() or 1, num_env_runners),
                     include_dashboard=False)
        else:
            ray.init(address=address)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc} (is it running, "
                          "and is this the head node's address?)") from exc
    except (ImportError, ModuleNotFoundError) as exc:  # ray:// without ray[client]
        raise ConfigError(f"--address {address}: {exc} (a ray:// address needs Ray Client: "
                          "pip install 'ray[client]'; or use the GCS address HOST:6379 from a "
                          "machine of the cluster)") from exc
    return True


def cluster_nodes() -> list[str]:
    """The ids of the cluster's live nodes."""
    import ray

    return sorted(node["NodeID"] for node in ray.nodes() if node.get("Alive"))


def env_runner_nodes(algo) -> list[str]:
    """The node id of each remote env runner of ``algo``, in runner order."""
    import ray

    return algo.env_runner_group.foreach_env_runner(
        lambda runner: ray.get_runtime_context().get_node_id(), local_env_runner=False)
