"""Unit tier: the framework-neutral training rules (schedules, plateau, early stopping) and run-folder writes."""

import json
import math
from pathlib import Path

import pytest

from runtime.common import rules, rundir
from tests.recipes import make_recipe


def test_schedules_and_stopping_rules() -> None:
    recipe = make_recipe(
        optimizer={"name": "sgd", "learning_rate": 0.1},
        epochs=10,
        schedule={"name": "step", "step_size": 3, "gamma": 0.5},
    )
    assert [rules.scheduled_lr(recipe, e) for e in (0, 2, 3, 6)] == [0.1, 0.1, 0.05, 0.025]
    cosine = make_recipe(
        optimizer={"name": "sgd", "learning_rate": 0.1}, epochs=4, schedule={"name": "cosine", "min_learning_rate": 0.0}
    )
    assert rules.scheduled_lr(cosine, 0) == 0.1 and math.isclose(rules.scheduled_lr(cosine, 2), 0.05)
    plateau = rules.Plateau(factor=0.5, patience=2, min_learning_rate=0.01)
    assert [plateau.step(v, 0.1) for v in (1.0, 1.0, 1.0)] == [0.1, 0.1, 0.05]
    stop = rules.EarlyStop(patience=2)
    assert [stop.step(v, e) for e, v in enumerate((1.0, 0.9, 0.95, 0.95))] == [
        (True, False),
        (True, False),
        (False, False),
        (False, True),
    ]


def test_json_writes_are_atomic_and_unwritable_folders_are_refused(tmp_path: Path) -> None:
    rundir.write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1} and len(list(tmp_path.iterdir())) == 1
    (tmp_path / "file").write_text("")
    with pytest.raises(rundir.RunDirError, match="not writable"):
        rundir.prepare_run_dir(tmp_path / "file" / "run")


def test_an_epoch_record_has_exactly_the_fields_history_json_is_read_back_with():
    """epoch_record builds a plain dict (the standalone packages print it without pydantic); EpochRecord reads it."""
    record = rundir.epoch_record(0, (0.5, 0.75), None, 0.1, 1.23456)
    assert set(record) == set(rundir.EpochRecord.model_fields)
    assert rundir.EpochRecord.model_validate(record).model_dump() == record
