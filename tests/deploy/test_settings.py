"""The `quantize` config group and its validation: bad values fail before any work, naming the argument."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from lightning_spiral.deploy import QuantizeSettings
from lightning_spiral.errors import SpiralConfigError


@pytest.mark.parametrize("option", ["none", "int8_ptq", "int8_qat", "fp16"])
def test_every_quantize_option_builds_its_settings(option: str) -> None:
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"quantize={option}"])
    settings = instantiate(cfg.quantize)
    assert isinstance(settings, QuantizeSettings) and settings.kind == option


def test_the_default_is_no_quantization() -> None:
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        assert instantiate(compose(config_name="config").quantize).kind == "none"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kind="int4"), r"`kind` must be one of \['none', 'int8_ptq', 'int8_qat', 'fp16'\], got 'int4'"),
        (dict(calibration_split="test"), r"`calibration_split` must be one of \['train', 'val'\], got 'test'\. The test split is for"),
        (dict(calibration_batches=0), r"`calibration_batches` must be an integer >= 1, got 0"),
        (dict(qat_epochs=1.5), r"`qat_epochs` must be an integer >= 1, got 1.5"),
        (dict(max_top1_drop=2), r"`max_top1_drop` must be a number in \[0, 1\], got 2\. It is a fraction of top-1"),
        (dict(qat_lr=0), r"`qat_lr` must be a finite number > 0, got 0\. It is the learning rate"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        QuantizeSettings(**kwargs)


def test_build_spiral_hands_the_spiral_settings_not_a_dict(tmp_path) -> None:
    # regression: passing an instantiated dataclass through Hydra's `_convert_="all"` turned it into a dict
    from lightning_spiral.spiral import build_spiral

    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["quantize=int8_qat", "quantize.qat_epochs=3"])
    spiral = build_spiral(cfg, output_dir=tmp_path / "run")
    assert spiral.quantize == QuantizeSettings(kind="int8_qat", qat_epochs=3)
