"""The spiral's last stage on scikit-learn digits: INT8 accuracy, report, resume, and serving without our code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from lightning_spiral.deploy import QuantizeSettings, onnx_session, onnx_top1  # noqa: E402
from lightning_spiral.errors import SpiralConfigError  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "spiral"))
from test_spiral_driver import make_spiral  # noqa: E402

SETTINGS = dict(max_stages=1, quantize=QuantizeSettings(kind="int8_ptq", calibration_batches=2))


def kept_stages(report) -> list[str]:
    """The stage numbers the side-by-side timing times beside the quantized artifact."""
    return sorted(str(result.stage) for result in (report.teacher, *report.stages) if result.kept)


@pytest.fixture(scope="module")
def quantized_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantized")
    report = make_spiral(root, **SETTINGS).run()
    return root, report


@pytest.mark.slow
def test_int8_model_keeps_the_fp32_accuracy_and_is_smaller(quantized_run) -> None:
    root, report = quantized_run
    quantized = report.quantized
    assert quantized is not None and quantized.kind == "int8_ptq"
    assert quantized.top1 >= report.final.top1 - 0.02  # digits: within 2 points of the fp32 final model
    assert quantized.size_bytes * 2.5 <= report.final.size_bytes
    assert quantized.runtime.startswith("onnxruntime ")
    path = root / "run" / quantized.model_path
    assert path.stat().st_size == quantized.size_bytes
    session = onnx_session(path)  # the recorded test top-1 is reproducible from the file alone
    data = make_spiral(root / "unused", **SETTINGS).datamodule
    data.setup("test")
    assert onnx_top1(session, data.test_dataloader()) == quantized.top1


@pytest.mark.slow
def test_report_records_and_shows_the_quantized_model_timed_beside_the_stages(quantized_run) -> None:
    root, report = quantized_run
    run = root / "run"
    data = json.loads((run / "report.json").read_text())
    assert {"kind", "top1", "size_bytes", "runtime", "model_path"} <= set(data["quantized"])
    served = data["timing"]["quantized"]  # timed in the same alternating rounds as the teacher and stage 1
    assert served["runtime"] == report.quantized.runtime and served["speedup_b64"] > 0
    low, high = served["speedup_b64_range"]
    assert low <= served["speedup_b64"] <= high and sorted(data["timing"]["stages"]) == kept_stages(report)
    markdown = (run / "report.md").read_text()
    assert "| int8_ptq |" in markdown and f"{served['speedup_b64']:.2f}×" in markdown
    assert f"int8_ptq in {served['runtime']} ({data['timing']['threads']} threads, batch 64)" in markdown
    assert not list(run.rglob("*.tmp"))


@pytest.mark.slow
def test_quantized_artifact_runs_in_a_process_without_lightning_spiral(quantized_run) -> None:
    root, report = quantized_run
    script = textwrap.dedent(
        """
        import sys, numpy as np, onnxruntime as ort
        session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
        logits = session.run(None, {"input": np.zeros((3, 1, 8, 8), dtype=np.float32)})[0]
        assert "lightning_spiral" not in sys.modules and "torch" not in sys.modules
        print(logits.shape, np.isfinite(logits).all())
        """
    )
    path = root / "run" / report.quantized.model_path
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 10) True"


def copied_run(root, tmp_path, edit) -> tuple:
    """A copy of the finished run whose ``report.json`` ``edit`` changed, and its stage files' bytes."""
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    data = json.loads((run / "report.json").read_text())
    edit(data)
    (run / "report.json").write_text(json.dumps(data))
    return run, {p: p.read_bytes() for p in run.glob("stage_*/model.pt")}


@pytest.mark.slow
@pytest.mark.parametrize("timing", ["none", "without the artifact"])
def test_resume_after_the_stages_runs_only_the_quantization_then_the_timing(quantized_run, tmp_path, timing) -> None:
    root, report = quantized_run

    def killed_during_quantization(data: dict) -> None:
        data["quantized"] = None  # stages recorded, quantization not
        if timing == "none":
            data["timing"] = None  # this order: the timing follows the quantization
        else:
            del data["timing"]["quantized"]  # a run recorded when the timing came first

    run, stage_files = copied_run(root, tmp_path, killed_during_quantization)
    shutil.rmtree(run / "quantized")
    resumed = make_spiral(tmp_path, model=None, resume=True, **SETTINGS).run()
    assert resumed.stages == report.stages
    assert all(p.read_bytes() == content for p, content in stage_files.items())
    assert sorted(p.name for p in run.glob("stage_*")) == ["stage_0", "stage_1"]
    assert resumed.quantized is not None and (run / resumed.quantized.model_path).is_file()
    assert resumed.quantized.top1 == report.quantized.top1  # same calibration, same file, same accuracy
    assert resumed.timing["quantized"]["speedup_b64"] > 0 and sorted(resumed.timing["stages"]) == kept_stages(report)


@pytest.mark.slow
def test_resume_after_the_quantization_runs_only_the_timing(quantized_run, tmp_path) -> None:
    root, report = quantized_run
    run, _ = copied_run(root, tmp_path, lambda data: data.update(timing=None))  # killed while timing
    artifact = (run / report.quantized.model_path).read_bytes()
    resumed = make_spiral(tmp_path, model=None, resume=True, **SETTINGS).run()
    assert resumed.quantized == report.quantized and (run / report.quantized.model_path).read_bytes() == artifact
    assert resumed.timing["quantized"]["speedup_b64"] > 0


@pytest.mark.slow
def test_resuming_a_finished_quantized_run_redoes_nothing(quantized_run, tmp_path) -> None:
    root, report = quantized_run
    run, _ = copied_run(root, tmp_path, lambda data: None)
    recorded = (run / "report.json").read_text()
    resumed = make_spiral(tmp_path, model=None, resume=True, **SETTINGS).run()
    assert resumed.stages == report.stages and resumed.quantized == report.quantized
    assert resumed.timing == report.timing and (run / "report.json").read_text() == recorded


def test_spiral_refuses_a_quantize_value_that_is_not_settings(tmp_path) -> None:
    with pytest.raises(SpiralConfigError, match=r"`quantize` must be a QuantizeSettings or None, got str \('int8_ptq'\)"):
        make_spiral(tmp_path, quantize="int8_ptq")


@pytest.mark.slow
def test_int8_qat_fine_tunes_when_ptq_loses_too_much(tmp_path) -> None:
    # max_top1_drop=0 with a 1-epoch teacher: post-training INT8 usually loses a little, so the fit runs;
    # which branch ran is read from the note, and the fit's logs must exist exactly when it ran
    settings = QuantizeSettings(kind="int8_qat", calibration_batches=1, max_top1_drop=0.0, qat_epochs=1)
    report = make_spiral(tmp_path, max_stages=1, teacher_epochs=1, quantize=settings).run()
    quantized = report.quantized
    assert quantized is not None and quantized.kind == "int8_qat"
    fine_tuned = "quantization-aware fine-tuning (post-training INT8 lost" in quantized.note
    assert fine_tuned or "no fine-tuning" in quantized.note
    assert (tmp_path / "run" / quantized.model_path).is_file()
    assert (tmp_path / "run" / "quantized" / "logs").is_dir() == fine_tuned  # the fit logs beside the artifact
    assert quantized.top1 >= report.final.top1 - 0.05
