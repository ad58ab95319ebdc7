"""Keras on a TensorFlow cluster: two processes on this machine, each one worker of TF_CONFIG's cluster
(MultiWorkerMirroredStrategy), train the 1-replica model, and the chief alone writes the run folder.

Each worker is a fresh process (`_worker`, started by the `workers` fixture): a cluster's strategy is made before
TensorFlow starts. In float64, with BatchNormalization over the global batch and dropout off, the losses at every
step, the weights and the moving statistics of the two workers match one replica to 1e-10 (the check that a
per-replica BatchNorm fails, tests/functional/test_replicas_keras.py); training.fit over the cluster, for one epoch
and --resume for the second, leaves the run folder and the test metrics of one replica, written by the chief.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.functional.test_replicas_keras import TOLERANCE, _fit, _spec_and_data, _steps, assert_same_trajectory

WORKERS = 2
OPTIMIZER = "sgd-nesterov"  # momentum and Nesterov's look-ahead; Adam is proven on one machine's replicas


def _one_replica(package, folder: Path) -> dict:
    """The reference, trained in the chief outside the cluster (TF_CONFIG hidden; the strategy already exists)."""
    from tests.recipes import full_optimizer

    _, _, optimizers, _ = _spec_and_data()
    cluster = os.environ.pop("TF_CONFIG")
    try:
        return {
            "steps": _steps(package, full_optimizer(optimizers[OPTIMIZER]), 1, False),
            "fit": _fit(package, folder, 1),
        }
    finally:
        os.environ["TF_CONFIG"] = cluster


def _worker(out: str, folder: str) -> None:
    """One worker of the cluster: its trajectory and a resumed training.fit (the chief: one replica's too)."""
    import keras

    from runtime.keras import backends, distributed
    from tests.functional.test_replicas import build_replicated
    from tests.recipes import full_optimizer

    _, _, optimizers, batch = _spec_and_data()
    distributed.scope(1, batch)  # joins the cluster now, before TensorFlow starts
    keras.config.set_floatx("float64")
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    package = build_replicated(Path(folder) / f"package{index}")
    optimizer = full_optimizer(optimizers[OPTIMIZER])
    results = {"chief": distributed.is_chief()}
    with backends.honour_float64():
        if results["chief"]:
            results["one"] = _one_replica(package, Path(folder) / "fit1")
        results["cluster"] = _steps(package, optimizer, 1, False)
        results["fit"] = _fit(package, Path(folder) / "fit2", 1, resumed=True)
    Path(out).write_text(json.dumps(results))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("localhost", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> list[dict]:
    """Both workers' results, in worker order."""
    folder = tmp_path_factory.mktemp("keras-cluster")
    hosts = [f"localhost:{port}" for port in _free_ports(WORKERS)]
    env = os.environ | {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    processes = []
    for index in range(WORKERS):
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        out = str(folder / f"{index}.json")
        code = f"from tests.functional.test_replicas_keras_cluster import _worker; _worker({out!r}, {str(folder)!r})"
        env_of_worker = env | {"TF_CONFIG": json.dumps(config)}
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", code], cwd=REPO, env=env_of_worker, stderr=subprocess.PIPE, text=True
            )
        )
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    return [json.loads((folder / f"{index}.json").read_text()) for index in range(WORKERS)]


def test_two_workers_train_the_one_replica_model(workers):
    chief, other = workers
    assert (chief["chief"], other["chief"]) == (True, False)
    assert (chief["one"]["steps"]["replicas"], chief["cluster"]["replicas"]) == (1, WORKERS)
    assert_same_trajectory(chief["one"]["steps"], chief["cluster"])
    assert_same_trajectory(chief["cluster"], other["cluster"])  # one model, whichever worker reads it


def test_fit_on_the_cluster_writes_one_run_and_resumes(workers):
    one, cluster = workers[0]["one"]["fit"], workers[0]["fit"]
    assert cluster["files"] == one["files"]
    assert len(cluster["losses"]) == 2
    np.testing.assert_allclose(cluster["losses"], one["losses"], rtol=TOLERANCE)
    assert cluster["metrics"]["test_accuracy"] == one["metrics"]["test_accuracy"]  # each test image counted once
    np.testing.assert_allclose(cluster["metrics"]["test_loss"], one["metrics"]["test_loss"], rtol=TOLERANCE)
    assert workers[1]["fit"]["metrics"] == {}  # the other worker wrote nothing it reports


def _cluster(monkeypatch, task: dict, chief: bool = False) -> None:
    cluster = {"worker": ["localhost:1", "localhost:2"]} | ({"chief": ["localhost:3"]} if chief else {})
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))


@pytest.mark.parametrize(
    ("task", "chief", "writes"),
    [
        ({"type": "worker", "index": 0}, False, True),
        ({"type": "worker", "index": 1}, False, False),
        ({"type": "chief", "index": 0}, True, True),
        ({"type": "worker", "index": 0}, True, False),
    ],
)
def test_the_chief_alone_writes(monkeypatch, task, chief, writes):
    from runtime.keras import distributed

    _cluster(monkeypatch, task, chief)
    assert distributed.is_chief() is writes
    assert distributed.cluster_size() == (3 if chief else 2)


def test_a_cluster_refuses_what_it_cannot_run(monkeypatch):
    from runtime.common.replicas import ReplicasError
    from runtime.keras import distributed

    _cluster(monkeypatch, {"type": "worker", "index": 0})
    with pytest.raises(ReplicasError, match="the replica count; leave --replicas out"):
        distributed.check(2, 32)
    with pytest.raises(ReplicasError, match="2 does not divide the global batch_size 33"):
        distributed.check(1, 33)
    distributed.check(1, 32)
    monkeypatch.setattr(distributed, "backend", lambda: "jax")
    with pytest.raises(ReplicasError, match="trains Keras on TensorFlow only, not on jax"):
        distributed.check(1, 32)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ReplicasError, match="TF_CONFIG: not a TensorFlow cluster description"):
        distributed.cluster_size()
