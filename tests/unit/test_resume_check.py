"""What --resume may continue, and run-folder files that cannot be read back: one line each, naming what differs."""

import json
import pickle
from dataclasses import replace

import pytest

from runtime.common import resume, rundir
from tests.recipes import make_recipe

SPEC = {"name": "lenet5", "input": [28, 28, 1], "layers": [{"Flatten": {}}], "training": {"epochs": 5}}


@pytest.fixture
def run(tmp_path):
    """A torch run folder of SPEC trained on 300 images with the default recipe."""
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    info = rundir.run_info("torch", make_recipe(), "cpu", {}, "float32") | {"status": "training", "train_samples": 300}
    (tmp_path / "run.json").write_text(json.dumps(rundir.run_record(info)))
    return tmp_path


def check(run_dir, recipe=None, spec=SPEC, framework="torch", samples=300):
    spec_file = run_dir.parent / "package-spec.json"
    spec_file.write_text(json.dumps(spec))
    resume.check_resumable(run_dir, framework, recipe or make_recipe(), spec_file, samples)


def refusal(*args, **kwargs) -> str:
    with pytest.raises(resume.ResumeMismatchError) as refused:
        check(*args, **kwargs)
    message = str(refused.value)
    assert "\n" not in message and isinstance(refused.value, OSError)
    return message


def test_the_same_run_trained_for_longer_resumes(run):
    check(run, replace(make_recipe(), epochs=50), spec=SPEC | {"training": {"epochs": 50}})


def test_another_model_is_refused_naming_both_specs(run):
    message = refusal(run, spec=SPEC | {"name": "mlp", "layers": []})
    assert f"{run} was trained from spec 'lenet5' (model sha {resume.model_sha(SPEC)}), this is 'mlp'" in message
    assert "only epochs may change" in message


@pytest.mark.parametrize(
    ("recipe", "named"),
    [
        (make_recipe(batch_size=64), "batch_size 32 -> 64"),
        (make_recipe(seed=1), "seed 0 -> 1"),
        (make_recipe(split=(100, 10, 10)), "split None -> [100, 10, 10]"),
        (make_recipe(optimizer={"name": "adam"}), "optimizer.name sgd -> adam"),
    ],
)
def test_another_recipe_is_refused_naming_each_changed_field(run, recipe, named):
    message = refusal(run, recipe)
    assert f"{run} was trained with another recipe: " in message and named in message


def test_another_framework_or_training_set_is_refused(run):
    assert "holds a torch run, this is keras" in refusal(run, framework="keras")
    assert "trained on 300 images, this is 600 (--train-limit)" in refusal(run, samples=600)


def test_a_check_that_ignored_the_recipe_would_be_caught(run, monkeypatch):
    monkeypatch.setattr(resume, "MAY_CHANGE", ("epochs", "batch_size"))  # a planted bug: batch size may change
    check(run, make_recipe(batch_size=64))  # ... goes through, which the test above refuses


def test_a_run_json_of_the_wrong_shape_is_named(run):
    (run / "run.json").write_text("{}")
    with pytest.raises(rundir.RunFileError, match="run.json: not what this program writes there: framework: Field"):
        check(run)
    info = rundir.run_record(rundir.run_info("torch", make_recipe(), "cpu", {}, "float32") | {"status": "training"})
    (run / "run.json").write_text(json.dumps(info | {"recipe": {"batch_size": 32}}))
    with pytest.raises(rundir.RunFileError, match="run.json: cannot be read back .*: it has no 'split'"):
        check(run)
    (run / "run.json").unlink()
    with pytest.raises(rundir.RunFileError, match="run.json: missing"):
        check(run)


@pytest.mark.parametrize(
    ("history", "why"),
    [
        ([1], "0: Input should be a valid dictionary"),
        ({"epoch": 1}, "the file: Input should be a valid list"),
        ([{"epoch": 1}], "0.train_loss: Field required"),
        ([rundir.epoch_record(1, (1.0, 0.5), None, 0.1, 1.0)], "its epochs are not 1, 2, ... in order"),
    ],
)
def test_a_history_of_the_wrong_shape_is_named(tmp_path, history, why):
    (tmp_path / "history.json").write_text(json.dumps(history))
    with pytest.raises(rundir.RunFileError) as wrong:
        rundir.read_history(tmp_path / "history.json")
    assert str(wrong.value).startswith(f"{tmp_path / 'history.json'}: not ") and why in str(wrong.value)
    rows = [rundir.epoch_record(epoch, (1.0, 0.5), (1.1, 0.4), 0.1, 1.0) for epoch in range(2)]
    (tmp_path / "history.json").write_text(json.dumps(rows))
    assert rundir.read_history(tmp_path / "history.json") == rows, "what the loops write reads back"


def test_broken_json_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "history.json").write_text('[{"epoch": 1,')
    with pytest.raises(rundir.RunFileError) as broken:
        rundir.read_json(tmp_path / "history.json")
    assert str(broken.value).startswith(f"{tmp_path / 'history.json'}: cannot be read back")
    assert "\n" not in str(broken.value)


def test_reading_names_the_file_and_says_why_an_unpickling_refusal_matters(tmp_path):
    refused = r"checkpoint.pt: refused: it holds Python objects besides tensors and plain values \(exec\)"
    with pytest.raises(rundir.RunFileError, match=refused):
        with rundir.reading(tmp_path / "checkpoint.pt"):
            raise pickle.UnpicklingError("Weights only load failed.\n\tUnsupported global: GLOBAL exec was not allowed")
    with pytest.raises(rundir.RunFileError, match="state.json: cannot be read back .*: it has no 'epoch'"):
        with rundir.reading(tmp_path / "state.json"):
            {}["epoch"]
