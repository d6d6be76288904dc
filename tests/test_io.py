"""Model files: architecture as data + weights, reloaded safely with identical outputs; portable programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch

from lightning_spiral import load_model, prune, save_model
from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.io import load_teacher, restore
from lightning_spiral.models import build_model
from lightning_spiral.models.spec import spec_of
from lightning_spiral.portable import export_program
from user_project import ConvNet

CIFAR = (3, 32, 32)


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2", "vgg11_bn"])
def test_pruned_model_round_trip_gives_identical_outputs(tmp_path, name: str) -> None:
    model = build_model(name, num_classes=10, input_shape=CIFAR)
    prune(model, torch.randn(1, *CIFAR), amount=0.4)
    prune(model, torch.randn(1, *CIFAR), amount=0.3)  # two stages: the history is cumulative
    model.eval()
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    x = torch.randn(2, *CIFAR)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert [p.shape for p in loaded.parameters()] == [p.shape for p in model.parameters()]
    assert not list(tmp_path.glob("*.tmp"))


def test_reload_in_a_fresh_process(tmp_path) -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    prune(model, torch.randn(1, 1, 8, 8), amount=0.5)
    model.eval()
    x = torch.randn(3, 1, 8, 8)
    torch.save({"x": x, "y": model(x).detach()}, tmp_path / "io.pt")
    save_model(model, tmp_path / "model.pt")
    code = (
        "import torch; from lightning_spiral import load_model; "
        f"d = torch.load({str(tmp_path / 'io.pt')!r}); m = load_model({str(tmp_path / 'model.pt')!r}); "
        "assert torch.allclose(m(d['x']), d['y'], atol=1e-6); print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_pickled_object_is_refused(tmp_path) -> None:
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "lightning-spiral-model/1", "spec": Boom(), "state_dict": {}}, path)
    with pytest.raises(ModelFormatError, match=r"evil.pt' was refused: it pickles print, and loading pickled objects "
                       r"could run code"):
        load_model(path)


def test_truncated_file_is_a_clear_error(tmp_path) -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    save_model(model, tmp_path / "model.pt")
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="not a readable lightning-spiral model file"):
        load_model(tmp_path / "cut.pt")


def test_missing_file_and_foreign_format(tmp_path) -> None:
    with pytest.raises(ModelFormatError, match=r"`path` '.*nothing.pt' does not exist"):
        load_model(tmp_path / "nothing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ModelFormatError, match=r"has format None; expected one of \['lightning-spiral-model/1', 'lightning-spiral-model/2'\]"):
        load_model(tmp_path / "other.pt")


def test_a_file_in_the_first_format_still_loads(tmp_path) -> None:
    model = prune(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), torch.randn(1, 1, 8, 8), amount=0.5)
    spec = spec_of(model)
    old_spec = {"name": spec.name, "kwargs": spec.kwargs, "input_shape": list(spec.input_shape),
                "pruning_history": spec.pruning_history}  # the keys /1 files have: no dtype, no class
    state = {key: value.clone() for key, value in model.state_dict().items()}
    torch.save({"format": "lightning-spiral-model/1", "spec": old_spec, "state_dict": state}, tmp_path / "old.pt")
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(load_model(tmp_path / "old.pt")(x), model.eval()(x))
    assert spec_of(load_model(tmp_path / "old.pt")).input_dtype == "float32"


def test_a_network_without_a_record_saves_and_restores(tmp_path) -> None:
    net = ConvNet(width=8).eval()
    save_model(net, tmp_path / "plain.pt")
    assert spec_of(net) is None  # saving attaches nothing to the caller's network
    payload = torch.load(tmp_path / "plain.pt", weights_only=True)
    assert payload["format"] == "lightning-spiral-model/2"
    assert payload["spec"] == {"name": None, "kwargs": None, "input_shape": None, "input_dtype": "float32",
                               "pruning_history": [], "network_class": "user_project.models.ConvNet"}
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(restore(ConvNet(width=8), tmp_path / "plain.pt")(x), net(x))


def test_load_teacher_restores_a_users_network_onto_the_model_given(tmp_path) -> None:
    net = prune(ConvNet(width=8), torch.randn(1, 1, 8, 8), amount=0.5).eval()
    save_model(net, tmp_path / "teacher.pt")
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(load_teacher(tmp_path / "teacher.pt", ConvNet(width=8))(x), net(x))
    with pytest.raises(ModelFormatError, match=r"holds a network of user_project\.models\.ConvNet .* `lightning_spiral\.restore\(ConvNet"):
        load_teacher(tmp_path / "teacher.pt")


class Branchy(torch.nn.Module):
    """A forward whose control flow depends on the data: torch.export cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_exported_program_runs_in_a_fresh_process_without_the_users_class(tmp_path) -> None:
    net = prune(ConvNet(width=12), torch.randn(1, 1, 8, 8), amount=0.5).eval()
    export_program(net, torch.randn(1, 1, 8, 8), tmp_path / "net.pt2")
    assert not list(tmp_path.glob("*.tmp"))
    with zipfile.ZipFile(tmp_path / "net.pt2") as archive:  # every payload is raw tensor bytes, none pickled
        configs = [json.loads(archive.read(name)) for name in archive.namelist() if name.endswith("_config.json")]
    assert configs and not any(meta["use_pickle"] for config in configs for meta in config["config"].values())
    x = torch.randn(5, 1, 8, 8)  # another batch size than the example's: the batch dimension is dynamic
    torch.save({"x": x, "y": net(x).detach()}, tmp_path / "io.pt")
    code = (
        "import sys, torch; program = torch.export.load('net.pt2').module(); d = torch.load('io.pt'); "
        "assert not any(name.startswith(('user_project', 'lightning_spiral', 'lightning')) for name in sys.modules); "
        "print((program(d['x']) - d['y']).abs().max().item())"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # user_project is not importable
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip()) <= 1e-5


def test_export_errors_name_the_model_and_the_input(tmp_path) -> None:
    with pytest.raises(SpiralConfigError, match=r"torch.export cannot export Branchy with an input of shape \(1, 3\) \("):
        export_program(Branchy(), torch.randn(1, 3), tmp_path / "branchy.pt2")
    with pytest.raises(SpiralConfigError, match=r"`example_input` must be a tensor batch \(N, ...\) with N >= 1 .* got \(\)"):
        export_program(ConvNet(), torch.tensor(1.0), tmp_path / "net.pt2")
    assert not list(tmp_path.iterdir())  # nothing written
