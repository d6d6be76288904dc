"""The command's contract on bad input, as a new user meets it: one line naming the key, exit 2, nothing touched.

Every case runs the real entry point against a finished run (``hydra.run.dir`` = that run, with
``spiral.overwrite=true`` so that each case reaches its own check) and asserts: exit status 2, one
``lightning-spiral: error:`` line naming the key or path, no traceback, little time (the default
config trains a 20-epoch teacher: no case may start it), and the run byte-identical afterwards —
its ``.hydra/`` record and ``cli.log`` included.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_contract import TINY_RUN, assert_refused_in_one_line, run_cli, snapshot

from lightning_spiral.io import save_model
from lightning_spiral.models import build_model

SECONDS_BEFORE_TRAINING = 20  # building and checking takes a few seconds; the 20-epoch teacher takes longer


class RunsCode:
    """A pickle whose loading would run ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def npz(folder: Path, name: str, **changes: np.ndarray) -> str:
    """A small .npz in the layout NpzDataModule reads, with some arrays replaced."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8), "y_train": np.arange(40) % 10,
              "x_test": rng.integers(0, 255, (20, 8, 8, 3), dtype=np.uint8), "y_test": np.arange(20) % 10}
    arrays.update(changes)
    path = folder / f"{name}.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad data and model files, as a user might hand them over."""
    folder = tmp_path_factory.mktemp("bad_files")
    images = np.zeros((40, 8, 8, 3), dtype=np.float32)
    images[3, 1, 1, 0] = np.nan
    model_file = folder / "model.pt"
    save_model(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), model_file)
    (folder / "truncated.pt").write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    (folder / "notes.txt").write_text("my teacher is the one from last week\n")
    with (folder / "evil.pt").open("wb") as handle:
        pickle.dump({"state_dict": RunsCode(folder / "MARKER")}, handle)
    torch.save({"weights": RunsCode(folder / "MARKER")}, folder / "evil_zip.pt")
    return {
        "string_labels": npz(folder, "string_labels", y_train=np.array([str(i % 10) for i in range(40)])),
        "string_images": npz(folder, "string_images", x_train=np.full((40, 8, 8, 3), "px")),
        "nan_images": npz(folder, "nan_images", x_train=images),
        "labels_out_of_range": npz(folder, "labels_out_of_range", y_test=np.arange(20) - 5),
        "float_labels": npz(folder, "float_labels", y_train=np.arange(40) / 3),
        "sizes": npz(folder, "sizes", y_train=np.arange(39) % 10),
        "text": str(folder / "notes.txt"), "truncated": str(folder / "truncated.pt"),
        "evil": str(folder / "evil.pt"), "evil_zip": str(folder / "evil_zip.pt"), "marker": str(folder / "MARKER"),
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished one-stage run of the default config: what every refused command must leave as it is."""
    run = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli([*TINY_RUN, f"hydra.run.dir={run}"])
    assert result.code == 0, result.stderr[-3000:]
    (run / "cli.log").write_text("the log of the finished run\n")  # it must not be appended to
    return run


NPZ = ["data=npz", "spiral.max_stages=1"]
CONSTANT = ["spiral.schedule=constant", "pruning.amount=0.2"]
CASES = [
    # Hydra composition and instantiation
    (["foo=1"], "unknown key `foo`"),
    (["spiral.bogus=1"], "unknown key `spiral.bogus`"),
    (["+spiral.bogus=1"], "unknown key `spiral.bogus`"),
    (["+pruning.bogus=1"], "unknown key `pruning.bogus`"),
    (["data=bogus"], "`data`='bogus' is not a config option; allowed: cifar10, digits"),
    (["model=bogus"], "`model`='bogus' is not a config option"),
    (["trainer=bogus"], "`trainer`='bogus' is not a config option"),
    (["spiral.max_stages=[1"], "an override cannot be parsed"),
    # the seed, before anything is seeded
    (["seed=abc"], "`seed` must be an integer >= 0, got 'abc'."),
    (["seed=-1"], "`seed` must be an integer >= 0, got -1."),
    (["seed=1.5"], "`seed` must be an integer >= 0, got 1.5."),
    # the spiral's own values
    (["spiral.stage_epochs=1.5"], "`stage_epochs` must be one integer or a list of `max_stages`=4 integers, got 1.5"),
    (["spiral.stage_epochs=[1,2]"], "`stage_epochs` must be one integer or a list of `max_stages`=4 integers"),
    (["spiral.stage_epochs=0"], "`stage_epochs` must be an integer >= 1, got 0."),
    (["spiral.max_stages=0"], "`max_stages` must be an integer >= 1, got 0."),
    (["spiral.max_stages=true"], "`max_stages` must be an integer >= 1, got True."),
    (["spiral.teacher_epochs=-1"], "`teacher_epochs` must be an integer >= 0, got -1."),
    (["spiral.target_macs_ratio=0"], "`target_macs_ratio` must be a number in (0, 1], got 0."),
    (["spiral.target_macs_ratio=1.5"], "`target_macs_ratio` must be a number in (0, 1], got 1.5."),
    (["spiral.target_macs_ratio=nan"], "`target_macs_ratio` must be a number in (0, 1], got nan."),
    (["spiral.schedule=bogus"], "`schedule` must be one of ['constant', "),
    (["spiral.teacher=bogus"], "`teacher` must be one of ['previous', 'original'], got 'bogus'."),
    (["spiral.max_accuracy_drop=2"], "`max_accuracy_drop` must be a number in [0, 1], got 2."),
    (["spiral.latency_repeats=0"], "`latency_repeats` must be an integer >= 1, got 0."),
    (["spiral.threads=0"], "`threads` must be an integer >= 1, got 0."),
    (["spiral.verbose=5"], "`verbose` must be one of [0, 1, 2], got 5."),
    (["spiral.loggers=bogus"], "`loggers` must be one of ['auto', 'csv', 'tensorboard', 'none'], got 'bogus'."),
    (["spiral.distill_weight=0"], "`distill_weight` must be a finite number > 0, got 0."),
    (["spiral.distill_weight=inf"], "`distill_weight` must be a finite number > 0, got inf."),
    (["spiral.cache_teacher=maybe"], "`cache_teacher` must be True or False, got 'maybe'."),
    (["spiral.network=backbone"], "`network`='backbone' names an attribute of `module`, but no `module` was given."),
    (["spiral.monitor=val/bogus"], "`monitor.key`='val/bogus' is not logged by SpiralModule.validation_step"),
    (["macs_budget=2"], "`macs_budget`"),
    (["spiral.teacher_checkpoint=/no/such/teacher.pt"], "`teacher_checkpoint` '/no/such/teacher.pt' does not exist."),
    # the optimizer, which torch would only refuse inside the teacher's fit
    (["spiral.optimizer.lr=-1"], "`optimizer`"),
    (["spiral.optimizer.momentum=-0.5"], "`optimizer`"),
    # the Trainer, built once before any work
    (["trainer.precision=bogus"], "`trainer` is refused by Lightning: Precision 'bogus' is invalid."),
    (["trainer.devices=0"], "`trainer` is refused by Lightning: `Trainer(devices=0)` value is not a valid input"),
    (["trainer.devices=abc"], "`trainer` is refused by Lightning: `devices` selected with `CPUAccelerator` should be an int > 0."),
    (["trainer=ddp_cpu", "trainer.devices=0"], "`trainer` is refused by Lightning"),
    (["trainer.accelerator=gpu"], "`trainer` is refused by Lightning"),
    (["+trainer.max_epochs=5"], "`trainer.max_epochs`=5 would be ignored: the spiral sets each stage's epochs."),
    (["+trainer.strategy=ddp_spawn"], "`strategy`=ddp_spawn runs training in spawned or forked processes"),
    # pruning
    ([*CONSTANT, "pruning.amount=1.5"], "`amount`"),
    (["pruning.amount=0.3"], "`schedule`='cubic' gives every stage its own MACs target"),
    (["pruning.importance=bogus"], "`importance`"),
    (["pruning.round_to=0"], "`round_to`"),
    (["spiral.schedule=constant", "pruning.target_latency_ms=-1"], "`target_latency_ms`"),
    (["spiral.schedule=constant", "pruning.target_latency_ms=0"], "`target_latency_ms`"),
    (["spiral.schedule=constant", "pruning.target_latency_ms=nan"], "`target_latency_ms`"),
    (["spiral.schedule=constant", "pruning.target_latency_ms=5", "pruning.latency_batch_size=0"], "`latency_batch_size`"),
    ([*CONSTANT, "pruning.amount=0.05", "spiral.target_macs_ratio=0.1"], "`target_macs_ratio`=0.1 cannot be reached"),
    # the distillation loss
    (["distill.temperature=0"], "`temperature`"),
    (["distill.temperature=inf"], "`temperature`"),
    (["distill.alpha=1.5"], "`alpha`"),
    # the data
    (["data.batch_size=0"], "`batch_size` must be an integer >= 1, got 0."),
    (["data.val_fraction=1.5"], "`val_fraction`"),
    ([*NPZ, "data.path=/no/such/data.npz"], "`path`"),
    ([*NPZ, "data.path={string_labels}"], "y_train"),
    ([*NPZ, "data.path={float_labels}"], "y_train"),
    ([*NPZ, "data.path={labels_out_of_range}"], "y_test"),
    ([*NPZ, "data.path={string_images}"], "x_train"),
    ([*NPZ, "data.path={nan_images}"], "x_train"),
    ([*NPZ, "data.path={sizes}"], "y_train"),
    # teacher files that are no model file
    (["spiral.teacher_checkpoint={text}"], "{text}"),
    (["spiral.teacher_checkpoint={truncated}"], "{truncated}"),
    (["spiral.teacher_checkpoint={evil}"], "{evil}"),
    (["spiral.teacher_checkpoint={evil_zip}"], "{evil_zip}"),
]


@pytest.mark.parametrize(("overrides", "fragment"), CASES, ids=[" ".join(args) for args, _ in CASES])
def test_bad_input_is_refused_in_one_line_and_leaves_the_run_as_it_was(
    overrides: list[str], fragment: str, files: dict[str, str], finished_run: Path
) -> None:
    before = snapshot(finished_run)
    args = [override.format(**files) for override in overrides]
    result = run_cli([*args, f"hydra.run.dir={finished_run}", "spiral.overwrite=true"])
    assert_refused_in_one_line(result, fragment.format(**files))
    assert result.seconds < SECONDS_BEFORE_TRAINING
    assert snapshot(finished_run) == before
    assert not Path(files["marker"]).exists()  # no pickled code ran
    assert "weights_only=False" not in result.stderr  # never advise loading a refused file unsafely


def test_a_refused_run_into_an_existing_run_keeps_its_hydra_record(finished_run: Path) -> None:
    before = snapshot(finished_run)
    result = run_cli(["spiral.max_stages=2", f"hydra.run.dir={finished_run}"])  # no overwrite
    assert_refused_in_one_line(result, f"`output_dir` '{finished_run}' already holds a spiral run (report.json)")
    assert snapshot(finished_run) == before
    assert ".hydra/overrides.yaml" in before and ".hydra/config.yaml" in before


def test_the_record_is_written_once_the_run_is_accepted(finished_run: Path) -> None:
    overrides = (finished_run / ".hydra" / "overrides.yaml").read_text()
    assert "spiral.max_stages=1" in overrides and "spiral.teacher_epochs=1" in overrides
    assert "schedule: cubic" in (finished_run / ".hydra" / "config.yaml").read_text()  # resolved: the values the run used
