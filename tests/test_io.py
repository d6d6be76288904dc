"""Model files: architecture as data + weights, reloaded safely with identical outputs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lightning_spiral import load_model, prune, save_model
from lightning_spiral.errors import ModelFormatError
from lightning_spiral.models import build_model

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
    with pytest.raises(ModelFormatError, match="not a readable lightning-spiral model file"):
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
    with pytest.raises(ModelFormatError, match=r"has format None; expected 'lightning-spiral-model/1'"):
        load_model(tmp_path / "other.pt")


def test_model_without_spec_cannot_be_saved(tmp_path) -> None:
    with pytest.raises(ModelFormatError, match="carries no ModelSpec"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "model.pt")
