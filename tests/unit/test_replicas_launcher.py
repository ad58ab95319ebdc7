"""Replicas started by an outside launcher (torchrun, accelerate launch): what the training scripts refuse."""

import pytest

from runtime.common import interrupt
from runtime.common import replicas as replica_rules
from runtime.common.recipe import parse_options
from tests.recipes import make_recipe


def test_replicas_under_an_outside_launcher_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "the launcher sets the replica count" in replica_rules.launcher_problem(2, 32)
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert "3 does not divide the global batch_size 32" in replica_rules.launcher_problem(1, 32)
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert replica_rules.launcher_problem(1, 32) is None  # more processes than this machine's cores: the launcher's
    monkeypatch.delenv("WORLD_SIZE")
    assert replica_rules.launcher_problem(4, 32) is None  # no launcher: --replicas's own checks apply


def test_a_script_refuses_replicas_the_framework_cannot_give_in_one_line(monkeypatch, capsys):
    def main(options):  # what runtime.keras.distributed.scope raises on a cluster, once Keras has counted its devices
        raise replica_rules.ReplicasError("--replicas 2: this process is one of the 2 of TF_CONFIG's cluster")

    monkeypatch.setattr("sys.argv", ["train_keras.py", "--replicas", "2"])
    with pytest.raises(SystemExit) as stopped:
        interrupt.run_script(
            main, lambda argv: parse_options(argv, make_recipe(), "runs/mlp", framework="keras"), "keras"
        )
    assert stopped.value.code == 2
    assert (
        capsys.readouterr().err == "train_keras.py: --replicas 2: this process is one of the 2 of TF_CONFIG's cluster\n"
    )
