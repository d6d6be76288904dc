"""Pretrained torchvision weights by name: loaded from torch.hub's cache, a clear error when offline."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torchvision

from lightning_spiral.errors import WeightsDownloadError
from lightning_spiral.models import build_model

NAME = "mobilenet_v3_small"  # the smallest ImageNet model with weights (~10 MB)


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """An empty torch.hub cache and no network: every socket connection is refused."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_offline_download_names_the_url_and_where_to_put_the_file(offline: Path) -> None:
    url = torchvision.models.get_model_weights(NAME)["DEFAULT"].url
    expected = (
        rf"Downloading `weights`='DEFAULT' of 'torchvision.{NAME}' from {url} failed \(URLError: .*\). "
        rf"Without a network, copy that file to '{offline / Path(url).name}' \(torch.hub's cache"
    )
    with pytest.raises(WeightsDownloadError, match=expected):
        build_model(f"torchvision.{NAME}", num_classes=1000, input_shape=(3, 32, 32), weights="DEFAULT")
    assert not list(offline.glob("*.pth"))


def test_weights_in_the_cache_load_without_a_network(offline: Path) -> None:
    # the file torchvision would download, stood in for by a random network's weights
    reference = torchvision.models.get_model(NAME, weights=None, num_classes=1000)
    url = torchvision.models.get_model_weights(NAME)["IMAGENET1K_V1"].url
    offline.mkdir(parents=True)
    torch.save(reference.state_dict(), offline / Path(url).name)
    net = build_model(f"torchvision.{NAME}", num_classes=1000, input_shape=(3, 32, 32), weights="IMAGENET1K_V1")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), reference.state_dict().values()))
