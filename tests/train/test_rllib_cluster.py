"""``musicgym train --backend rllib --address`` on a Ray cluster of two nodes started here.

The cluster is made the way docs/rllib.md tells a user to make one, ``ray start --head`` and
``ray start --address=HEAD:PORT`` (one CPU each), both on 127.0.0.1; the training runs in a
separate ``python -m musicgym`` process, as from a shell, through the GCS address and through
Ray Client (``ray://``). Every Ray process the test starts
is in a process group of its own, ended by id when the test ends, whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import musicgym

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 120
TRAIN_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_nodes(address: str, n: int, env: dict) -> None:
    """Block until the cluster at ``address`` has ``n`` live nodes (or fail the test)."""
    script = ("import sys, time, ray\n"
              f"ray.init(address={address!r}, logging_level='ERROR')\n"
              f"deadline = time.monotonic() + {START_TIMEOUT_S}\n"
              f"while sum(n['Alive'] for n in ray.nodes()) < {n}:\n"
              "    if time.monotonic() > deadline:\n"
              "        sys.exit('nodes did not join')\n"
              "    time.sleep(1)\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=START_TIMEOUT_S + 60)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node and a worker node of one CPU each, for the module's tests.

    Yields the GCS address, the Ray Client address and the environment for drivers.
    """
    pytest.importorskip("ray.rllib", reason="ray[rllib] is not installed")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not installed")
    # Ray's session files go in a short folder of our own (Unix socket paths are limited)
    temp = Path(tempfile.mkdtemp(prefix="mg-ray-"))
    port, client_port = _free_port(), _free_port()
    address = f"127.0.0.1:{port}"
    src = str(Path(musicgym.__file__).resolve().parents[1])
    env = {**os.environ,
           # the nodes' workers import this musicgym (docs: the same version on every node)
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
           # a throwaway cluster on the loopback: Ray's token authentication would make every
           # node and driver need the same token file
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           # Ray Client's server starts a process per client: give it time on a loaded machine
           "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120"}
    env.pop("RAY_ADDRESS", None)
    node = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats", "--block"]
    nodes: list[subprocess.Popen] = []
    try:
        with open(temp / "head.log", "wb") as log:
            nodes.append(subprocess.Popen(
                [ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false",
                 f"--ray-client-server-port={client_port}", f"--temp-dir={temp}", *node],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for_nodes(address, 1, env)
        with open(temp / "worker.log", "wb") as log:
            nodes.append(subprocess.Popen(
                [ray_cli, "start", f"--address={address}", *node],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for_nodes(address, 2, env)
        yield address, f"ray://127.0.0.1:{client_port}", env
    finally:
        # the worker first, then the head; each group holds its node's raylet, GCS, workers
        for proc in reversed(nodes):
            _end_group(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the node's process group, then SIGKILL to what is left of it (the GCS
    server outlives a SIGTERM)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)  # let the raylet's children see their parent go
    proc.wait(timeout=15)


# how Ray Client's start-up race shows (seen under load, before musicgym runs): the proxier
# reads the command line of a start-up shim that has just exited (a zombie), or reports that
# the per-client server it started is gone ("Starting Ray client server failed", 7 December,
# in CI on a loaded machine; the test passed alone right after)
RAY_CLIENT_RACES = ("psutil.ZombieProcess", "Starting Ray client server failed")


def _musicgym(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "musicgym", *args], env=env,
                          capture_output=True, text=True, timeout=TRAIN_TIMEOUT_S)


def test_train_and_resume_on_two_nodes(ray_cluster, tmp_path):
    address, _, env = ray_cluster
    config = tmp_path / "tiny.yaml"
    config.write_text("env_id: musicgym/Kick-v0\nsteps: 64\nn_envs: 2\neval_episodes: 2\n"
                      "algo_kwargs: {num_epochs: 1, minibatch_size: 32}\n")
    runs = tmp_path / "runs"
    done = _musicgym(["train", "--config", str(config), "--backend", "rllib", "--address",
                      address, "--num-env-runners", "2", "--runs", str(runs), "--no-progress"],
                     env)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs.iterdir()
    setup = json.loads((run / "rllib.json").read_text())
    assert setup["address"] == address
    assert len(setup["cluster_nodes"]) == 2
    # one CPU per node and one per env runner: Ray had to put one runner on each node
    assert sorted(setup["env_runner_nodes"]) == setup["cluster_nodes"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["steps"] for row in metrics] == [64]
    assert json.loads((run / "evaluations.json").read_text())[-1]["steps"] == 64

    # resumed through the cluster too: the same run folder, 64 more steps, logs appended
    again = _musicgym(["train", "--resume", str(run), "--steps", "128", "--backend", "rllib",
                       "--address", address, "--num-env-runners", "2", "--no-progress"], env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert list(runs.iterdir()) == [run]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["steps"] for row in metrics] == [64, 128]
    assert [row["iteration"] for row in metrics] == [1, 2]
    assert [e["steps"] for e in json.loads((run / "evaluations.json").read_text())] == [64, 128]
    setup = json.loads((run / "rllib.json").read_text())
    assert [s["steps_before"] for s in setup["sessions"]] == [0, 64]
    assert sorted(setup["env_runner_nodes"]) == setup["cluster_nodes"]


def test_train_through_ray_client(ray_cluster, tmp_path):
    _, client_address, env = ray_cluster
    config = tmp_path / "tiny.yaml"
    # Accompany with its LSTM, two envs in each runner
    config.write_text("env_id: musicgym/Accompany-v0\nsteps: 64\nn_envs: 4\neval_episodes: 1\n"
                      "algo_kwargs: {num_epochs: 1}\n")
    runs = tmp_path / "runs"
    args = ["train", "--config", str(config), "--backend", "rllib", "--address", client_address,
            "--num-env-runners", "2", "--runs", str(runs), "--no-progress"]
    done = _musicgym(args, env)
    if done.returncode != 0 and any(race in done.stderr for race in RAY_CLIENT_RACES):
        # Ray's proxier polls the client server it started and then reads its command line:
        # a start-up shim that exits between the two is a zombie there, and the connection
        # fails before musicgym runs (seen under load). Nothing was written: connect again.
        assert not runs.exists() or not any(runs.iterdir())
        done = _musicgym(args, env)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs.iterdir()
    setup = json.loads((run / "rllib.json").read_text())
    assert setup["address"] == client_address and setup["num_envs_per_env_runner"] == 2
    assert setup["policy"] == {"masked": False, "lstm": True}
    assert len(setup["cluster_nodes"]) == 2
    assert sorted(setup["env_runner_nodes"]) == setup["cluster_nodes"]
    assert [row["steps"] for row in json.loads((run / "metrics.json").read_text())] == [64]
