"""The spiral driver end to end on scikit-learn digits: stages, stop rules, rollback, reload."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from lightning_spiral import KDLoss, PruningCallback, Spiral, load_model, save_model
from lightning_spiral.data import DigitsDataModule
from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.models import build_model
from lightning_spiral.distill import callback as callback_module
from lightning_spiral.distill import mixing
from lightning_spiral.spiral import driver, final_timing
from lightning_spiral.spiral.driver import teacher_for_stage
from lightning_spiral.spiral.waypoint_lr import LearningRateScale

TRAINER = functools.partial(
    L.Trainer, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False
)


def make_spiral(tmp_path, **overrides) -> Spiral:
    L.seed_everything(0, verbose=False)
    data = DigitsDataModule(batch_size=64)
    settings = dict(
        model=build_model("small_cnn", num_classes=10, input_shape=data.input_shape),
        datamodule=data,
        trainer=TRAINER,
        pruning=functools.partial(PruningCallback, amount=0.25, verbose=0),
        loss=KDLoss(temperature=4.0, alpha=0.9),
        schedule="constant",
        target_macs_ratio=0.6,  # one stage of amount 0.25 keeps ~57% of the MACs
        max_stages=2,
        teacher_epochs=4,
        stage_epochs=1,
        output_dir=str(tmp_path / "run"),
        latency_repeats=3,
    )
    return Spiral(**{**settings, **overrides})


def test_two_stage_spiral_writes_a_complete_report(tmp_path) -> None:
    report = make_spiral(tmp_path, target_macs_ratio=0.35, max_accuracy_drop=1.0).run()  # about the files, not the floor
    run = tmp_path / "run"
    data = json.loads((run / "report.json").read_text())
    assert [s["stage"] for s in data["stages"]] == [1, 2]
    required = {"stage", "top1", "params", "macs", "latency_ms_b1", "latency_ms_b64", "size_bytes", "model_path", "kept"}
    assert all(required <= set(stage) for stage in [data["teacher"], *data["stages"]])
    macs = [data["teacher"]["macs"]] + [s["macs"] for s in data["stages"]]
    assert macs[0] > macs[1] > macs[2]
    assert data["final"]["stage"] == report.final.stage
    assert (run / "report.md").is_file() and (run / "spiral.png").read_bytes()[:4] == b"\x89PNG"
    for stage in data["stages"]:
        assert (run / stage["model_path"]).stat().st_size == stage["size_bytes"] > 0
    assert not list(run.rglob("*.tmp"))


def test_stage_model_reloads_in_a_fresh_process_with_identical_accuracy(tmp_path) -> None:
    report = make_spiral(tmp_path, max_stages=1).run()
    stage = report.stages[0]
    code = (
        "import torch, lightning.pytorch as L\n"
        "from lightning_spiral import load_model\n"
        "from lightning_spiral.data import DigitsDataModule\n"
        "data = DigitsDataModule(batch_size=64); data.setup('test')\n"
        f"model = load_model({str(tmp_path / 'run' / stage.model_path)!r})\n"
        "correct = total = 0\n"
        "with torch.no_grad():\n"
        "    for x, y in data.test_dataloader():\n"
        "        correct += (model(x).argmax(1) == y).sum().item(); total += len(y)\n"
        "print(correct / total)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(stage.top1, abs=1e-6)


def test_stops_as_soon_as_the_target_is_reached(tmp_path) -> None:
    report = make_spiral(tmp_path, target_macs_ratio=0.8, max_stages=3, max_accuracy_drop=1.0).run()  # target, not floor
    assert len(report.stages) == 1
    assert report.final.macs <= 0.8 * report.teacher.macs


def test_a_stage_below_the_accuracy_floor_is_rolled_back(tmp_path) -> None:
    spiral = make_spiral(
        tmp_path,
        pruning=functools.partial(PruningCallback, amount=0.95, verbose=0),
        max_accuracy_drop=0.0,
        optimizer=functools.partial(torch.optim.SGD, lr=1e-6),  # no recovery from pruning
    )
    report = spiral.run()
    assert len(report.stages) == 1 and not report.stages[0].kept
    assert "rolled back" in report.stages[0].note
    assert report.final.stage == 0


def test_teacher_checkpoint_skips_teacher_training(tmp_path) -> None:
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    save_model(teacher, tmp_path / "teacher.pt")
    report = make_spiral(tmp_path, model=None, teacher_checkpoint=str(tmp_path / "teacher.pt"), max_stages=1).run()
    assert report.settings["spiral"]["teacher_epochs"] is None
    reloaded = load_model(tmp_path / "run" / report.teacher.model_path)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), teacher.state_dict().values()))


def test_without_a_loss_stages_fine_tune_on_labels_only(tmp_path) -> None:
    spiral = make_spiral(tmp_path, loss=None, max_stages=1)
    assert spiral.distillation_callbacks(torch.nn.Linear(64, 10)) == []  # each stage trains on the module's own loss
    report = spiral.run()
    assert report.stages[0].macs < report.teacher.macs


def test_geometric_schedule_lands_on_the_target_in_max_stages(tmp_path, capfd) -> None:
    # a zero floor: the one-epoch waypoint is promoted unjudged, only the last stage can be rolled back
    report = make_spiral(tmp_path, schedule="geometric", target_macs_ratio=0.3, max_stages=2, max_accuracy_drop=0.0,
                         pruning=functools.partial(PruningCallback, verbose=0)).run()
    output = capfd.readouterr()
    assert "schedule geometric: stage MACs targets 55%, 30% of the teacher's" in output.out + output.err
    ratios = [stage.macs / report.teacher.macs for stage in report.stages]
    assert len(ratios) == 2
    assert 0.5 <= ratios[0] <= 0.55 and 0.27 <= ratios[1] <= 0.3  # sqrt(0.3) = 0.548, then 0.3
    final = report.final
    assert final is report.teacher or final.val_top1 >= report.teacher.val_top1  # the final model is within the floor
    assert [s.kept for s in report.stages] == [s.val_top1 >= report.teacher.val_top1 or report.stages[-1].kept for s in report.stages]


def test_a_schedule_refuses_a_pruning_amount_it_would_ignore(tmp_path) -> None:
    with pytest.raises(SpiralConfigError, match=r"sets amount=0.25, but `schedule`='cubic'"):
        make_spiral(tmp_path, schedule="cubic")


def test_a_non_finite_loss_rolls_the_stage_back_and_keeps_earlier_stages(tmp_path) -> None:
    spiral = make_spiral(tmp_path, max_stages=2, max_accuracy_drop=1.0, target_macs_ratio=0.35,
                         stage_epochs=[1, 1], loss=KDLoss(temperature=4.0, alpha=0.9))
    original = spiral.distillation_callbacks

    def explode_in_stage_2(teacher):
        callbacks = original(teacher)
        if spiral.output_dir.joinpath("stage_1", "model.pt").exists():
            callbacks[0].loss = ExplodingLoss()
        return callbacks

    spiral.distillation_callbacks = explode_in_stage_2
    report = spiral.run()
    assert [s.kept for s in report.stages] == [True, False]
    assert "failed and rolled back" in report.stages[1].note and "stage" not in report.stages[1].model_path
    assert "distillation loss became nan" in report.stages[1].note
    assert report.final.stage == 1 and (tmp_path / "run" / "stage_1" / "model.pt").is_file()


class ExplodingLoss(KDLoss):
    """A distillation loss that returns NaN, as a diverging run would."""

    def compute(self, student_logits, teacher_logits, target):
        return super().compute(student_logits, teacher_logits, target) * float("nan")


def test_same_seed_gives_the_same_architectures_and_accuracy(tmp_path) -> None:
    first = make_spiral(tmp_path / "a", max_stages=1).run()
    second = make_spiral(tmp_path / "b", max_stages=1).run()
    assert [s.params for s in first.stages] == [s.params for s in second.stages]
    assert abs(first.final.top1 - second.final.top1) <= 0.001
    assert abs(first.teacher.top1 - second.teacher.top1) <= 0.001


def test_bf16_mixed_spiral_has_no_nan_and_is_timed_in_fp32_and_in_its_own_precision_where_it_trains(tmp_path,
                                                                                                     monkeypatch) -> None:
    # the GPU branch of the final timing, run on the CPU: the driver's wiring, not the device, is under test
    monkeypatch.setattr(driver, "trains_on_cuda", lambda trainer: True)
    monkeypatch.setattr(driver, "cuda_timing", functools.partial(final_timing.cuda_timing, device="cpu"))
    report = make_spiral(tmp_path, max_stages=1, max_accuracy_drop=1.0, timing_rounds=2,
                         trainer=functools.partial(TRAINER, precision="bf16-mixed")).run()
    assert report.stages[0].kept and 0.0 < report.final.top1 <= 1.0
    assert "failed" not in report.stages[0].note
    served = report.timing["cuda"]
    assert list(served) == ["32-true", "bf16-mixed"] and served["bf16-mixed"]["precision"] == "bf16-mixed"
    assert sorted(served["bf16-mixed"]["stages"]) == ["0", "1"]
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "On cpu in 32-true: stage 1" in markdown and "On cpu in bf16-mixed: stage 1" in markdown


def test_function_matching_stages_distil_on_mixed_images_and_the_run_records_it(tmp_path, monkeypatch) -> None:
    mixings: list[str] = []
    real_mix = mixing.mix_batch
    monkeypatch.setattr(callback_module, "mix_batch", lambda *args: mixings.append(args[1]) or real_mix(*args))
    report = make_spiral(tmp_path, max_stages=1, max_accuracy_drop=1.0, teacher_epochs=2, mixing="cutmix").run()
    assert report.stages[0].kept and 0.0 < report.final.top1 <= 1.0
    assert set(mixings) == {"cutmix"} and len(mixings) == 21  # every batch of the one stage epoch, none of the teacher's
    assert report.settings["spiral"]["mixing"] == "cutmix" and report.settings["spiral"]["mixing_alpha"] == 1.0


def test_waypoint_stages_train_at_the_scaled_learning_rate_and_the_last_at_the_full_one(tmp_path, monkeypatch) -> None:
    learning_rates: dict[str, float] = {}

    class Recording(LearningRateScale):
        def on_train_start(self, trainer, pl_module) -> None:
            super().on_train_start(trainer, pl_module)
            learning_rates["scaled"] = trainer.optimizers[0].param_groups[0]["lr"]

    class StageRate(L.Callback):  # runs after every callback's on_train_start
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            learning_rates[trainer.default_root_dir] = trainer.optimizers[0].param_groups[0]["lr"]

    monkeypatch.setattr(driver, "LearningRateScale", Recording)
    spiral = make_spiral(tmp_path, schedule="geometric", target_macs_ratio=0.3, max_stages=2, max_accuracy_drop=1.0, teacher_epochs=1,
                         pruning=functools.partial(PruningCallback, verbose=0), waypoint_lr_scale=0.2,
                         trainer=functools.partial(TRAINER, callbacks=[StageRate()]))
    report = spiral.run()
    assert len(report.stages) == 2 and report.settings["spiral"]["waypoint_lr_scale"] == 0.2
    full = 0.05  # SpiralModule's default SGD learning rate
    assert learning_rates["scaled"] == pytest.approx(0.2 * full)
    by_stage = {Path(root).name: lr for root, lr in learning_rates.items() if root != "scaled"}
    assert by_stage["stage_1"] == pytest.approx(0.2 * full) and by_stage["stage_2"] == pytest.approx(full)


def test_teacher_for_stage() -> None:
    original, previous = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    assert teacher_for_stage("original", original=original, previous=previous) is original
    assert teacher_for_stage("previous", original=original, previous=previous) is previous


def test_a_corrupt_teacher_checkpoint_fails_before_training(tmp_path) -> None:
    (tmp_path / "teacher.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match=r"teacher.pt' is not a readable lightning-spiral model file"):
        make_spiral(tmp_path, model=None, teacher_checkpoint=str(tmp_path / "teacher.pt"))
    assert not (tmp_path / "run").exists()


def test_an_existing_run_directory_is_not_overwritten(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text("{}")
    with pytest.raises(SpiralConfigError, match=r"`output_dir` '.*run' already holds a spiral run"):
        make_spiral(tmp_path)
    assert (tmp_path / "run" / "report.json").read_text() == "{}"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"teacher": "best"}, r"`teacher` must be one of \['previous', 'original'\], got 'best'"),
        ({"target_macs_ratio": 0.0}, r"`target_macs_ratio` must be a number in \(0, 1\], got 0.0"),
        ({"max_accuracy_drop": 2.0}, r"`max_accuracy_drop` must be a number in \[0, 1\], got 2.0"),
        ({"max_stages": 0}, r"`max_stages` must be an integer >= 1, got 0"),
        ({"schedule": "agp"}, r"`schedule` must be one of \['constant', 'geometric', 'linear', 'cubic'\], got 'agp'"),
        ({"stage_epochs": [1, 2, 3]}, r"`stage_epochs` must be one integer or a list of `max_stages`=2 integers"),
        ({"model": None, "teacher_checkpoint": "missing.pt"}, r"`teacher_checkpoint` 'missing.pt' does not exist"),
        ({"model": None}, r"Pass `model` .* `teacher_checkpoint` .* got model=NoneType and teacher_checkpoint=None"),
        ({"pruning": functools.partial(PruningCallback, amount=1.2)}, r"`amount` must be a number in \(0, 1\)"),
        ({"trainer": functools.partial(L.Trainer, strategy="ddp_spawn")},
         r"`strategy`=ddp_spawn runs training in spawned or forked processes"),
        ({"target_macs_ratio": 0.05}, r"`target_macs_ratio`=0.05 cannot be reached: `max_stages`=2 stages of `amount`=0.25 keep 3\d.\d% of the MACs"),
        ({"model": build_model("small_cnn", num_classes=3, input_shape=(1, 8, 8))},
         r"The network outputs shape \(2, 3\) but the data has 10 classes"),
        ({"mixing": "blend"}, r"`mixing` must be one of \['mixup', 'cutmix'\], got 'blend'"),
        ({"mixing": "mixup", "loss": None}, r"`mixing`='mixup' mixes the batches the stages distil on, but there is no"),
        ({"waypoint_lr_scale": 0.2}, r"`waypoint_lr_scale`=0.2 scales the learning rate of a schedule's waypoint stages, but `schedule`='constant' has none"),
        ({"waypoint_lr_scale": 0}, r"`waypoint_lr_scale` must be a finite number > 0, got 0"),
        ({"loggers": "wandb"}, r"`loggers` must be one of \['auto', 'csv', 'tensorboard', 'none'\], got 'wandb'"),
        ({"verbose": 3}, r"`verbose` must be one of \[0, 1, 2\], got 3. 0: silent, 1: stage lines"),
        ({"model": build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))},
         r"The network cannot take the data's input shape \(1, 8, 8\)"),
    ],
)
def test_bad_arguments_fail_before_any_training(tmp_path, overrides: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        make_spiral(tmp_path, **overrides)
    assert not (tmp_path / "run").exists()
