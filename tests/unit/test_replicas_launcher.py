"""Replicas started by an outside launcher (torchrun, accelerate launch): what the training scripts refuse."""

from runtime.common import replicas as replica_rules


def test_replicas_under_an_outside_launcher_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "the launcher sets the replica count" in replica_rules.launcher_problem(2, 32)
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert "3 does not divide the global batch_size 32" in replica_rules.launcher_problem(1, 32)
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert replica_rules.launcher_problem(1, 32) is None  # more processes than this machine's cores: the launcher's
    monkeypatch.delenv("WORLD_SIZE")
    assert replica_rules.launcher_problem(4, 32) is None  # no launcher: --replicas's own checks apply
