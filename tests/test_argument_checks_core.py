"""Argument checks of the core API, whole message: SpiralModule, models, measurement, quantization, files.

Every generic rule goes through :mod:`lightning_spiral.checks` (one wording per rule); each case
matches the *exact* message, so a change of wording or a check that stops firing fails here. The
file cases write real files to ``tmp_path``: text, empty, truncated, a foreign zip and a pickle
whose ``__reduce__`` would run a shell command (it must be refused, never run).
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from lightning_spiral import SpiralModule
from lightning_spiral.deploy import QuantizeSettings, add_fake_quant, export_pt2, onnx_session, quantize_int8
from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.io import carries_architecture, load_model, load_teacher, restore_checkpoint, save_model
from lightning_spiral.measure import count_macs, measure_latency, measure_model, measure_onnx_latency
from lightning_spiral.models import CifarMobileNetV2, CifarResNet, SmallCNN, build_model
from lightning_spiral.objective import check_macs_budget

DIGITS = (1, 8, 8)
SGD = torch.optim.SGD
STEP_LR = torch.optim.lr_scheduler.StepLR
ONE_CYCLE = torch.optim.lr_scheduler.OneCycleLR


def exactly(message: str) -> str:
    """A ``match`` pattern for the whole message."""
    return f"^{re.escape(message)}$"


def small_cnn() -> nn.Module:
    return build_model("small_cnn", num_classes=10, input_shape=DIGITS, widths=[8, 8])


MODULE_CASES = [
    (dict(num_classes=1), "`num_classes` must be an integer >= 2, got 1."),
    (dict(num_classes=True), "`num_classes` must be an integer >= 2, got True."),
    (dict(mutual="yes"), "`mutual` must be True or False, got 'yes'."),
    (dict(cache_teacher=1), "`cache_teacher` must be True or False, got 1."),
    (dict(teacher_lr=-0.1), "`teacher_lr` must be a finite number > 0, got -0.1. None uses the student's learning rate."),
    (dict(student="resnet20"), "`student` must be None or an nn.Module, got 'resnet20'."),
    (dict(student=SmallCNN), f"`student` must be None or an nn.Module, got {SmallCNN!r}. Pass an instance, not its class."),
    (dict(optimizer=functools.partial(SGD, lr=-1)),
     "`optimizer` must be a factory of a torch.optim.Optimizer, got functools.partial(<class 'torch.optim.sgd.SGD'>, lr=-1). "
     "torch refused it (ValueError: Invalid learning rate: -1)."),
    (dict(optimizer=functools.partial(SGD, lr=0.1, momentum=-0.9)),
     "`optimizer` must be a factory of a torch.optim.Optimizer, got functools.partial(<class 'torch.optim.sgd.SGD'>, lr=0.1, "
     "momentum=-0.9). torch refused it (ValueError: Invalid momentum value: -0.9)."),
    (dict(optimizer="sgd"),
     "`optimizer` must be None or a factory of a torch.optim.Optimizer (a functools.partial, Hydra's `_partial_: true`), "
     "got 'sgd'."),
    (dict(scheduler=functools.partial(STEP_LR)),
     "`scheduler` must be a factory of a scheduler that takes the optimizer, got "
     "functools.partial(<class 'torch.optim.lr_scheduler.StepLR'>). torch refused it "
     "(TypeError: StepLR.__init__() missing 1 required positional argument: 'step_size')."),
    (dict(scheduler=functools.partial(ONE_CYCLE, max_lr=0.1)),
     "`scheduler` must be a factory of a scheduler that takes the optimizer, got "
     "functools.partial(<class 'torch.optim.lr_scheduler.OneCycleLR'>, max_lr=0.1). torch refused it "
     "(ValueError: You must define either total_steps OR (epochs AND steps_per_epoch))."),
]


@pytest.mark.parametrize(("kwargs", "message"), MODULE_CASES)
def test_spiral_module_refuses_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"student": small_cnn(), "num_classes": 10, **kwargs}
    with pytest.raises(SpiralConfigError, match=exactly(message)):
        SpiralModule(**arguments)


def test_the_optimizer_is_tried_without_side_effects() -> None:
    student = small_cnn()
    before = {name: tensor.clone() for name, tensor in student.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        module = SpiralModule(student, num_classes=10, optimizer=functools.partial(SGD, lr=0.1),
                              scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR))
    assert all(torch.equal(before[name], tensor) for name, tensor in student.state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in student.parameters())
    assert module.optimizer_factory.keywords == {"lr": 0.1}
    assert SpiralModule(None).student is None  # load_from_checkpoint's call: no network, the default optimizer


MODEL_CASES = [
    ("resnet20", dict(num_classes=1), "`num_classes` must be an integer >= 2, got 1."),
    ("resnet20", dict(num_classes=10.0), "`num_classes` must be an integer >= 2, got 10.0."),
    ("resnet20", dict(input_shape=(32, 32)),
     "`input_shape` must be 3 integers >= 1 (C, H, W), got (32, 32). Give one sample's shape without the batch dimension."),
    ("resnet20", dict(input_shape="3x32x32"),
     "`input_shape` must be 3 integers >= 1 (C, H, W), got '3x32x32'. Give one sample's shape without the batch dimension."),
    ("resnet20", dict(input_shape=[3, 32, 32.0]),
     "`input_shape` must be 3 integers >= 1 (C, H, W), got [3, 32, 32.0]. Give one sample's shape without the batch dimension."),
    ("vgg11_bn", dict(input_shape=(3, 16, 16)),
     "`input_shape` must be (C, H, W) with H and W >= 32 for model 'vgg11_bn', got (3, 16, 16)."),
    ("small_cnn", dict(widths=[8, 0]),
     "`widths` must be a sequence of at least 2 integers >= 1, got [8, 0]. The max-pool follows the second block."),
    ("small_cnn", dict(widths=16),
     "`widths` must be a sequence of at least 2 integers >= 1, got 16. The max-pool follows the second block."),
    ("mobilenet_v2", dict(width_mult="wide"),
     "`width_mult` must be a finite number > 0, got 'wide'. 1.0 is the paper's network; 0.5 halves every layer's channels."),
    ("mobilenet_v2", dict(width_mult=float("inf")),
     "`width_mult` must be a finite number > 0, got inf. 1.0 is the paper's network; 0.5 halves every layer's channels."),
    ("vgg_bn", dict(config=[]),
     "`config` must be a non-empty list of conv widths (integers >= 1) and 'M' max-pools, got []. "
     "See VGG_CONFIGS, e.g. [32, 'M', 64, 'M']."),
]


@pytest.mark.parametrize(("name", "kwargs", "message"), MODEL_CASES)
def test_build_model_refuses_bad_arguments(name: str, kwargs: dict, message: str) -> None:
    arguments = {"num_classes": 10, "input_shape": (3, 32, 32), **kwargs}
    with pytest.raises(SpiralConfigError, match=exactly(message)):
        build_model(name, **arguments)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SmallCNN(num_classes=0), "`num_classes` must be an integer >= 1, got 0. It is the number of output logits."),
        (lambda: CifarMobileNetV2(10, in_channels=0),
         "`in_channels` must be an integer >= 1, got 0. It is the number of channels of the input image."),
        (lambda: CifarResNet(depth=21, num_classes=10), "`depth` must be 6n + 2 with n >= 1 (20, 32, 44, 56, ...), got 21."),
        (lambda: CifarResNet(depth="20", num_classes=10), "`depth` must be 6n + 2 with n >= 1 (20, 32, 44, 56, ...), got '20'."),
    ],
)
def test_model_classes_check_their_arguments(build, message: str) -> None:
    with pytest.raises(SpiralConfigError, match=exactly(message)):
        build()


class Untouchable(nn.Module):
    """A network whose forward must not run: the arguments are refused first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model ran before its arguments were checked")


MEASURE_CASES = [
    (lambda: measure_latency("net", (4,), 1), "`model` must be an nn.Module, got 'net'."),
    (lambda: measure_latency(Untouchable(), (4,), True),
     "`batch_size` must be an integer >= 1, got True. Time one call of at least one sample."),
    (lambda: measure_latency(Untouchable(), [4, -1], 1),
     "`input_shape` must be a non-empty sequence of integers >= 1, got [4, -1]. "
     "Give one sample's shape without the batch dimension, e.g. (3, 32, 32)."),
    (lambda: measure_model(Untouchable(), (4,), repeats=0),
     "`repeats` must be an integer >= 1, got 0. Use at least 20 for a stable figure."),
    (lambda: measure_model(Untouchable(), (4,), threads=2.0),
     "`threads` must be an integer >= 1, got 2.0. Pass the thread count the model will run with."),
    (lambda: measure_model(Untouchable(), (4,), memory_format="nhwc"),
     "`memory_format` must be one of ['contiguous', 'channels_last'], got 'nhwc'."),
    (lambda: count_macs(Untouchable(), [[1.0, 2.0]]),
     "`example_inputs` must be a tensor batch, e.g. torch.randn(1, 3, 32, 32), got [[1.0, 2.0]]."),
    (lambda: measure_onnx_latency("/nonexistent/model.onnx", (4,), 1),
     "`path` must be an existing ONNX file, got '/nonexistent/model.onnx'. Write one with lightning_spiral.deploy.export_onnx."),
    (lambda: measure_onnx_latency("/nonexistent/model.onnx", (4,), 1, warmup=-1),
     "`warmup` must be an integer >= 0, got -1. Use 0 to skip the warm-up."),
    (lambda: quantize_int8("/nonexistent/fp32.onnx", "/nonexistent/int8.onnx", []),
     "`fp32_path` must be an existing ONNX file, got '/nonexistent/fp32.onnx'. Write one with lightning_spiral.deploy.export_onnx."),
    (lambda: onnx_session("/nonexistent/model.onnx", threads=0),
     "`threads` must be an integer >= 1, got 0. Pass the thread count the model will run with."),
    (lambda: export_pt2(Untouchable(), "/nonexistent/net.pt2", ()),
     "`input_shape` must be a non-empty sequence of integers >= 1, got (). "
     "Give one sample's shape without the batch dimension, e.g. (3, 32, 32)."),
    (lambda: add_fake_quant(nn.Linear(2, 2), momentum=0),
     "`momentum` must be a number in (0, 1], got 0. It is the weight of the newest batch in the moving average of the "
     "input range, e.g. 0.1."),
]


@pytest.mark.parametrize(("call", "message"), MEASURE_CASES)
def test_measurement_and_deploy_functions_refuse_bad_arguments(call, message: str) -> None:
    with pytest.raises(SpiralConfigError, match=exactly(message)):
        call()


SETTINGS_CASES = [
    (dict(kind="int4"), "`kind` must be one of ['none', 'int8_ptq', 'int8_qat', 'fp16'], got 'int4'."),
    (dict(calibration_split="test"),
     "`calibration_split` must be one of ['train', 'val'], got 'test'. The test split is for reported numbers only."),
    (dict(calibration_batches=True), "`calibration_batches` must be an integer >= 1, got True."),
    (dict(qat_epochs=0), "`qat_epochs` must be an integer >= 1, got 0."),
    (dict(max_top1_drop=-0.1), "`max_top1_drop` must be a number in [0, 1], got -0.1. It is a fraction of top-1: 0.01 is 1 point."),
    (dict(qat_lr=float("inf")), "`qat_lr` must be a finite number > 0, got inf. It is the learning rate of the fine-tuning, e.g. 0.005."),
    (dict(qat_lr="0.1"), "`qat_lr` must be a finite number > 0, got '0.1'. It is the learning rate of the fine-tuning, e.g. 0.005."),
]


@pytest.mark.parametrize(("kwargs", "message"), SETTINGS_CASES)
def test_quantize_settings_refuse_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(SpiralConfigError, match=exactly(message)):
        QuantizeSettings(**kwargs)


BUDGET_HINT = "It is the largest fraction of the teacher's MACs the final model may keep; null for no constraint."
@pytest.mark.parametrize("budget", [0, 1.01, -0.5, True, float("nan"), "half"])
def test_check_macs_budget_refuses_bad_values(budget) -> None:
    with pytest.raises(SpiralConfigError, match=exactly(f"`macs_budget` must be a number in (0, 1], got {budget!r}. {BUDGET_HINT}")):
        check_macs_budget(budget)


def test_check_macs_budget_keeps_good_values() -> None:
    assert check_macs_budget(None) is None
    assert check_macs_budget(1) == 1.0 and isinstance(check_macs_budget(1), float)


# ------------------------------------------------------------------------------------------ files
MODEL_FILE = "lightning-spiral model file (written by save_model)"
TEACHER_FILE = "lightning-spiral model file, Lightning checkpoint or state dict (written by save_model or torch.save)"
CHECKPOINT_FILE = "Lightning checkpoint (.ckpt, written by a Trainer)"
READERS = [
    pytest.param(load_model, MODEL_FILE, id="load_model"),
    pytest.param(lambda path: load_teacher(path, small_cnn()), TEACHER_FILE, id="load_teacher"),
    pytest.param(carries_architecture, TEACHER_FILE, id="carries_architecture"),
    pytest.param(lambda path: restore_checkpoint(nn.Linear(2, 2), path), CHECKPOINT_FILE, id="restore_checkpoint"),
]


def truncated(tmp_path: Path) -> Path:
    save_model(small_cnn(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.pt"


def foreign_zip(tmp_path: Path) -> Path:
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as archive:
        archive.writestr("notes.txt", "not a torch file")
    return tmp_path / "notes.zip"


@pytest.mark.parametrize(("read", "expected"), READERS)
def test_a_text_or_empty_file_is_a_format_error(tmp_path: Path, read, expected: str) -> None:
    (tmp_path / "teacher.ckpt").write_text("epoch=3 val_acc=0.91\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    text, empty = str(tmp_path / "teacher.ckpt"), str(tmp_path / "empty.pt")
    with pytest.raises(ModelFormatError, match=exactly(f"{text!r} is not a readable {expected}: it is a text file, "
                                                       "not one written by torch.save.")):
        read(tmp_path / "teacher.ckpt")
    with pytest.raises(ModelFormatError, match=exactly(f"{empty!r} is not a readable {expected}: the file is empty.")):
        read(tmp_path / "empty.pt")


@pytest.mark.parametrize("make", [truncated, foreign_zip])
@pytest.mark.parametrize(("read", "expected"), READERS)
def test_a_truncated_or_foreign_file_is_a_format_error(tmp_path: Path, make, read, expected: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ModelFormatError) as caught:
        read(path)
    message = str(caught.value)
    assert re.fullmatch(f"{re.escape(repr(str(path)))} is not a readable {re.escape(expected)}: torch.load failed "
                        r"\((RuntimeError|OSError): [^\n]+\); it may be truncated, corrupt or another kind of file\.", message), message


class RunsAShellCommand:
    """Pickles as a call of ``os.system``: loading it unsafely would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


REFUSED = ("{path!r} was refused: it pickles {name}, and loading pickled objects could run code, so only tensors and "
           "plain values are read. Re-save it from the code that trained it: lightning_spiral.save_model(model, path), "
           "or torch.save(model.state_dict(), path); for a Lightning checkpoint, keep objects out of its hyperparameters "
           "(save_hyperparameters(ignore=[...])).")
SYSTEM = f"{os.system.__module__}.system"  # posix.system: what the pickle names


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize(("read", "expected"), READERS)
def test_a_malicious_pickle_is_refused_and_never_run(tmp_path: Path, zip_format: bool, read, expected: str) -> None:
    marker, path = tmp_path / "marker", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": RunsAShellCommand(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ModelFormatError, match=exactly(REFUSED.format(path=str(path), name=SYSTEM))) as caught:
        read(path)
    assert "weights_only=False" not in str(caught.value)
    assert not marker.exists()


def test_a_plain_pickle_is_refused_too(tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(RunsAShellCommand(marker), protocol=2))  # what torch.load reads as a legacy file
    with pytest.raises(ModelFormatError, match=exactly(REFUSED.format(path=str(path), name=SYSTEM))):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda tmp: load_model(5), "`path` must be a file path (str or os.PathLike), got 5."),
        (lambda tmp: save_model("net", tmp / "net.pt"), "`model` must be an nn.Module, got 'net'."),
        (lambda tmp: load_teacher(tmp / "net.pt", model="small_cnn"), "`model` must be None or an nn.Module, got 'small_cnn'."),
        (lambda tmp: restore_checkpoint(nn.Linear(2, 2), tmp / "last.ckpt", attr=3),
         "`attr` must be None or the name of the attribute that holds the network (e.g. 'net'), got 3."),
    ],
)
def test_file_functions_refuse_bad_arguments(tmp_path: Path, call, message: str) -> None:
    with pytest.raises(SpiralConfigError, match=exactly(message)):
        call(tmp_path)
    assert not (tmp_path / "net.pt").exists()


def test_a_model_file_with_a_corrupt_record_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    torch.save({"format": "lightning-spiral-model/2", "spec": 7, "state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(ModelFormatError, match=exactly("A model spec must be a dict of plain values, got int.")):
        load_model(path)
    torch.save({"format": "lightning-spiral-model/2", "spec": {}, "state_dict": {"w": [1.0]}}, path)
    with pytest.raises(ModelFormatError, match=exactly(f"{str(path)!r} is a corrupt {MODEL_FILE}: its 'state_dict' is not a "
                                                       "dict of tensors.")):
        load_model(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelFormatError, match=exactly(f"{str(path)!r} holds a list, not a {MODEL_FILE}.")):
        load_model(path)
