"""RhtexExecutor on the 4-node Slurm test cluster (tests/cluster/cluster.sh,
network namespaces with real slurmd; needs root, as the Rust cluster tests).

A Parsl bash app `$PARSL_MPI_PREFIX hostname` with 2 nodes x 2 ranks, on an
executor whose interchange_config has a Slurm [provider]: the interchange
submits the block with sbatch, and the app's ranks land on the task's nodes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import parsl
import pytest
from parsl import Config, bash_app

from rhtex.parsl import RhtexExecutor

from conftest import REPO, bin_dir, wait_gone

CLUSTER = REPO / "tests" / "cluster" / "cluster.sh"


def cluster_command(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def cluster():
    if os.getuid() != 0:
        pytest.fail("the Slurm cluster tests need root (namespaces, a bridge, slurm.conf)")
    was_up = subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode == 0
    if not was_up:
        cluster_command("install")
        cluster_command("up", "4")
    facts = dict(line.split("=", 1) for line in cluster_command("env").splitlines() if "=" in line)
    yield facts
    if not was_up:
        cluster_command("down")


@bash_app
def mpi_hostname(parsl_resource_specification, stdout=parsl.AUTO_LOGNAME):
    return 'echo "$PARSL_MPI_NODELIST"; $PARSL_MPI_PREFIX hostname'


def test_ranks_land_on_the_task_nodes(cluster, tmp_path):
    head = cluster["RHTEX_CLUSTER_HEAD_ADDRESS"]
    config = tmp_path / "interchange.toml"
    config.write_text(
        f'manager_listen = "tcp://{head}:0"\n'
        "[provider]\n"
        'kind = "slurm"\n'
        "nodes_per_block = 2\n"
        "max_blocks = 1\n"
        "max_idle = 300\n"
        'walltime = "00:10:00"\n'
        'launcher = "srun"\n'
        "poll_period = 0.5\n"
        f'pool_manager = "{bin_dir() / "pool-manager"}"\n'
    )
    executor = RhtexExecutor(
        label="slurm", interchange_config=config, mpi_launcher="srun", working_dir=tmp_path / "w"
    )
    dfk = parsl.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo")))
    try:
        future = mpi_hostname(parsl_resource_specification={"num_nodes": 2, "ranks_per_node": 2})
        assert future.result(timeout=300) == 0
        nodelist, *hosts = Path(future.stdout).read_text().split()
        task_nodes = nodelist.split(",")
        assert len(task_nodes) == 2
        assert set(task_nodes) <= set(cluster["RHTEX_CLUSTER_NODES"].split(","))
        assert sorted(hosts) == sorted(task_nodes * 2), (task_nodes, hosts)
        status = executor._client.status()
        assert [block["provider"] for block in status["blocks"]] == ["slurm"]
    finally:
        pids = executor._deployment.pids()
        dfk.cleanup()
        parsl.clear()
    assert wait_gone(pids, 30) == []
