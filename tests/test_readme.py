"""The README's Lightning example runs as written (docs that run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_lightning_example_runs(tmp_path, monkeypatch) -> None:
    example = next(block for block in _python_blocks() if "PruningCallback(amount=0.3" in block)
    assert len(example.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "student.pt").is_file()
    assert any(getattr(c, "pruned", False) for c in namespace["trainer"].callbacks)


def test_readme_own_module_example_runs(tmp_path, monkeypatch) -> None:
    example = next(block for block in _python_blocks() if "DistillationCallback(teacher" in block)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    model, teacher, trainer = namespace["model"], namespace["teacher"], namespace["trainer"]
    assert model.net[0].out_channels == teacher[0].out_channels // 2
    assert torch.isfinite(trainer.callback_metrics["train/loss/distill"])
    assert "training_step" not in vars(model)  # the module is given back as written


def test_readme_api_imports_exist() -> None:
    imports = next(block for block in _python_blocks() if block.lstrip().startswith("from lightning_spiral import ("))
    exec(compile(imports, str(README), "exec"), {})  # noqa: S102


def test_readme_own_project_example_runs(tmp_path, monkeypatch) -> None:
    example = next(block for block in _python_blocks() if "module=LitClassifier(backbone=Backbone())" in block)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    report, net = namespace["report"], namespace["net"]
    assert report.final.stage == 3 and report.final.macs <= 0.3 * report.teacher.macs
    assert net.l1[0].out_channels < 32 and "val_acc" in report.final.metrics


# --- The default-run and Deploy blocks that benchmarks/readme_tables.py writes --------------------------------------

def _readme_tables():
    import importlib.util

    path = README.parent / "benchmarks" / "readme_tables.py"
    spec = importlib.util.spec_from_file_location("readme_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _composed_defaults() -> dict:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import lightning_spiral.spiral.settings  # noqa: F401 - registers ${spiral_default:...}

    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config")
    return {name: OmegaConf.to_container(cfg[name], resolve=True) for name in ("spiral", "pruning", "distill")}


def test_readme_has_the_generated_blocks() -> None:
    text = README.read_text()
    for name in ("default-run", "deploy-table"):
        assert text.count(f"<!-- {name}:start -->") == 1 and text.count(f"<!-- {name}:end -->") == 1
        assert text.index(f"<!-- {name}:start -->") < text.index(f"<!-- {name}:end -->")
    tables = _readme_tables()
    assert "| teacher |" in tables.block_body(text, "default-run")
    deploy = tables.block_body(text, "deploy-table")
    assert "sys.argv[1]" in deploy and "$RUN/quantized/model.onnx" in deploy and "| int8_ptq |" in deploy


def test_readme_recipe_line_matches_the_current_defaults() -> None:
    from lightning_spiral.spiral.settings import DEFAULTS, default_stage_epochs

    composed, tables = _composed_defaults(), _readme_tables()
    spiral = composed["spiral"]
    for name in ("schedule", "target_macs_ratio", "max_stages", "teacher_epochs", "stage_epochs", "teacher"):
        assert spiral[name] == getattr(DEFAULTS, name), name  # the yaml reads DEFAULTS
    epochs = default_stage_epochs(spiral["stage_epochs"], spiral["max_stages"], spiral["schedule"])
    line = tables.recipe_in(README.read_text())
    assert line is not None, "README's default-run block has no `Recipe:` line"
    for part in (f"teacher trained {DEFAULTS.teacher_epochs} epochs", f"`{DEFAULTS.schedule}` schedule",
                 f"{DEFAULTS.target_macs_ratio:.0%} of the teacher's", f"in {DEFAULTS.max_stages} stages of {epochs} epochs",
                 f"{composed['pruning']['importance'].upper()} channel pruning",
                 f"temperature={composed['distill']['temperature']}", f"alpha={composed['distill']['alpha']}",
                 f"from the {DEFAULTS.teacher} teacher"):
        assert part in line, f"{part!r} not in README's {line!r}; rerun python benchmarks/readme_tables.py"
    assert tables.check_readme(README.read_text()) == []


SYNTHETIC = """# title

intro
<!-- default-run:start -->
old table
<!-- default-run:end -->

middle
<!-- deploy-table:start -->
old serve
<!-- deploy-table:end -->
tail
"""


def test_replace_block_rewrites_only_between_the_markers() -> None:
    tables = _readme_tables()
    new = tables.replace_block(SYNTHETIC, "default-run", "new line 1\nnew line 2\n")
    assert new == SYNTHETIC.replace("old table", "new line 1\nnew line 2")
    assert tables.replace_block(new, "default-run", "new line 1\nnew line 2") == new  # idempotent
    assert tables.block_body(new, "deploy-table") == "old serve\n"
    with pytest.raises(ValueError, match="no block"):
        tables.replace_block("no markers here", "default-run", "x")


def _synthetic_run(run_dir: Path) -> dict:
    run_dir.mkdir()
    (run_dir / "report.md").write_text(
        "# Spiral report\n\n| stage | top-1 % |\n| --- | ---: |\n| teacher | 90.00 |\n| 1 | 89.00 |\n\n"
        "Final: stage 1.\n\nMachine: python=3.11\n")
    settings = {"spiral": {"schedule": "constant", "target_macs_ratio": 0.5, "max_stages": 2, "stage_epochs": [3, 3],
                           "teacher_epochs": 4, "teacher": "previous", "latency_repeats": 5},
                "pruning": {"_target_": "x.PruningCallback", "amount": 0.2, "importance": "l2", "global_pruning": True},
                "distill": {"_target_": "x.kd.KDLoss", "temperature": 2.0, "alpha": 0.5},
                "optimizer": {"_target_": "torch.optim.sgd.SGD", "lr": 0.01},
                "data": {"_target_": "x.DigitsDataModule", "batch_size": 64}, "model": {"_target_": "x.SmallCNN", "parameters": 1234}}
    machine = {"python": "3.11", "torch": "2", "lightning": "2", "torch_pruning": "1", "platform": "Linux",
               "cpu_count": 2, "threads": 2, "date": "2026-01-02T00:00:00+00:00"}
    return {"settings": settings, "machine": machine, "teacher": {"wall_s": 10.0}, "stages": [{"wall_s": 5.0}],
            "final": {"stage": 1}}


def test_default_block_renders_a_synthetic_run_into_a_synthetic_readme(tmp_path) -> None:
    tables = _readme_tables()
    report = _synthetic_run(tmp_path / "default")
    body = tables.default_block(report, tmp_path / "default", wall_s=20.0)
    recipe = tables.recipe_line(report["settings"])
    assert recipe == ("Recipe: teacher trained 4 epochs; `constant` schedule, 20% of the channels per stage until "
                      "MACs ≤ 50% in 2 stages of [3, 3] epochs, SGD lr 0.01; L2 channel pruning (global); "
                      "KDLoss (alpha=0.5, temperature=2.0) from the previous teacher.")
    assert recipe in body.splitlines() and "| 1 | 89.00 |" in body and "Final: stage 1." in body
    assert "Machine: python=3.11" not in body and "20 s wall time" in body and "15 s of it training" in body
    assert "fastest of 5 runs" in body
    readme = tmp_path / "README.md"
    readme.write_text(tables.replace_block(SYNTHETIC, "default-run", body))
    assert tables.recipe_in(readme.read_text()) == recipe
    assert tables.main(["--check", "--readme", str(readme)]) == 1  # not the current defaults
    problems = tables.check_readme(readme.read_text())
    assert len(problems) == 1 and "stale" in problems[0]
    current = tables.recipe_line(tables.default_settings())
    readme.write_text(tables.replace_block(SYNTHETIC, "default-run", current))
    assert tables.main(["--check", "--readme", str(readme)]) == 0
    assert tables.main(["--check", "--readme", str(tmp_path / "default" / "report.md")]) == 1  # no markers
