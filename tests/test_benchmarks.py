"""Smoke tests of the benchmark scripts: they run end to end on tiny settings (numbers not checked)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _tiny_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 10
    images = (rng.integers(0, 255, (400, 32, 32, 3)) * 0.3 + labels[:, None, None, None] * 15).astype(np.uint8)
    np.savez(path, x_train=images[:300], y_train=labels[:300], x_test=images[300:], y_test=labels[300:])
    return path


@pytest.mark.slow
def test_compare_smoke_profile_writes_every_method(tmp_path) -> None:
    data = _tiny_npz(tmp_path / "tiny.npz")
    command = [sys.executable, str(BENCHMARKS / "compare.py"), "--profile", "smoke", "--data", str(data),
               "--cache-dir", str(tmp_path / "cache"), "--results-dir", str(tmp_path / "results")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results" / "smoke.json").read_text())
    methods = {row["method"] for row in results["rows"]}
    assert methods == {"spiral_original", "spiral_previous", "iterative_ft", "oneshot_kd", "oneshot_ft",
                       "modelpruning", "scratch", "scratch_kd"}
    required = {"method", "target", "top1", "top1_std", "seeds", "params", "macs", "latency_ms_b1",
                "latency_ms_b64", "size_bytes", "wall_s"}
    assert all(required <= set(row) for row in results["rows"])
    structured = [row for row in results["rows"] if row["method"] != "modelpruning"]
    assert all(row["macs"] < results["teacher"]["macs"] for row in structured)
    assert (tmp_path / "results" / "smoke.png").read_bytes()[:4] == b"\x89PNG"
    # resumable: a second run reuses every cached result and trains nothing
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "[compare]" not in again.stdout
    # the distillation sweep adds its rows next to the others (KD is the cached spiral_original)
    sweep = subprocess.run([*command, "--distill"], capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    rows = json.loads((tmp_path / "results" / "smoke.json").read_text())["rows"]
    assert {"spiral_dkd", "spiral_kd_at", "spiral_fitnet", "spiral_rkd"} | methods == {row["method"] for row in rows}


@pytest.mark.slow
def test_spiral_search_smoke_pairs_variants_with_the_baseline(tmp_path) -> None:
    data = _tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "search.json"
    spiral = "spiral_cubic_short_lr05_t2"
    command = [sys.executable, str(BENCHMARKS / "spiral_search.py"), "--profile", "smoke", "--data", str(data),
               "--cache-dir", str(tmp_path / "cache"), "--variants", "oneshot_kd", spiral, "oneshot_kd_vsplit", f"{spiral}_vsplit",
               "--seeds", "0", "1", "--workers", "2", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert len(results["runs"]) == 8 and "FAILED" not in result.stdout
    rows = {row["variant"]: row for row in results["rows"]}
    all_pairs = []
    for suffix in ("", "_vsplit"):  # each spiral is paired with the one-shot + KD runs on its own validation split
        assert rows[f"oneshot_kd{suffix}"]["vs_baseline"] == 0.0 and rows[f"oneshot_kd{suffix}"]["seeds"] == [0, 1]
        mine = [r for r in results["runs"] if r["variant"] == spiral + suffix]
        baseline = {r["seed"]: r["top1"] for r in results["runs"] if r["variant"] == f"oneshot_kd{suffix}"}
        pairs = [r["top1"] - baseline[r["seed"]] for r in mine]
        assert rows[spiral + suffix]["vs_baseline"] == pytest.approx(sum(pairs) / 2)
        all_pairs += pairs
    (pooled,) = [row for row in results["pooled"] if row["variant"] == spiral]  # both splits together
    assert pooled["runs"] == 4 and pooled["vs_baseline"] == pytest.approx(sum(all_pairs) / 4)
    assert all(r["macs"] < r["teacher_macs"] for r in results["runs"])
    assert len({(r["teacher_top1"], r["teacher_sha256"]) for r in results["runs"]}) == 1  # every run names its teacher
    assert not any(Path(r["model_path"]).is_absolute() for r in results["runs"])  # relative to --cache-dir
    # validation top-1 is reported only where the teacher never trained on the validation split
    assert rows[spiral]["val_top1"] is None and 0 <= rows[f"{spiral}_vsplit"]["val_top1"] <= 1
    assert "KD T 2" in rows[spiral]["recipe"] and "teacher's validation split" in rows[f"{spiral}_vsplit"]["recipe"]
    # a labels-only variant trains its stages without the teacher's loss
    labels_only = [*command[:command.index("--variants")], "--variants", "iterative_ft_e24_vsplit", "--seeds", "0", "--out", str(out)]
    assert subprocess.run(labels_only, capture_output=True, text=True, timeout=600).returncode == 0
    (report_path,) = (tmp_path / "cache" / "smoke" / "search").glob("teacher_*/iterative_ft_e24_vsplit/t0.5_s0/report.json")
    report = json.loads(report_path.read_text())
    assert report["settings"]["distill"] is None and report["stages"]
    assert "no KD" in {row["variant"]: row for row in json.loads(out.read_text())["rows"]}["iterative_ft_e24_vsplit"]["recipe"]


@pytest.mark.slow
def test_latency_allocation_smoke_pairs_per_layer_with_uniform_at_the_latency_uniform_reached(tmp_path) -> None:
    data = _tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "latency_allocation.json"
    command = [sys.executable, str(BENCHMARKS / "latency_allocation.py"), "--profile", "smoke_latency", "--data", str(data),
               "--cache-dir", str(tmp_path / "cache"), "--budgets", "0.7", "--epochs", "1", "--seeds", "0", "1",
               "--rounds", "2", "--repeats", "3", "--workers", "2", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["allocation"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"uniform", "per_layer"} and rows["per_layer"]["seeds"] == [0, 1]
    pairs = [mine - theirs for mine, theirs in zip(rows["per_layer"]["top1_per_seed"], rows["uniform"]["top1_per_seed"])]
    assert rows["per_layer"]["vs_uniform"] == pytest.approx(sum(pairs) / 2) and rows["uniform"]["vs_uniform"] == 0.0
    low, high = rows["per_layer"]["latency_vs_uniform_range"]
    assert 0 < low <= rows["per_layer"]["latency_vs_uniform"] <= high
    (plan_file,) = (tmp_path / "cache" / "smoke_latency" / "latency_allocation").glob("teacher_*/plan.json")
    planned = json.loads(plan_file.read_text())
    plan = planned["students"]["0.7"]
    assert plan["budget_ms"] == pytest.approx(0.7 * planned["teacher_ms"]) and plan["uniform_reached_ms"] > 0
    assert all(rows[a]["macs"] == plan[a]["macs"] < json.loads(out.read_text())["teacher"]["macs"] for a in rows)


def test_latency_allocation_refuses_a_budget_outside_zero_one(tmp_path) -> None:
    data = _tiny_npz(tmp_path / "tiny.npz")
    result = subprocess.run([sys.executable, str(BENCHMARKS / "latency_allocation.py"), "--data", str(data), "--budgets", "0.5", "1.5"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--budgets must be fractions of the teacher's latency in (0, 1), got [1.5]" in result.stderr


def test_committed_results_hold_no_machine_paths() -> None:
    machine_path = re.compile(r"(?<![\w.])/(?:tmp|root|home|work)/")
    files = [*sorted((BENCHMARKS / "results").glob("*.json")), BENCHMARKS / "RESULTS.md", BENCHMARKS / "README.md"]
    found = [f"{path.name}: {match.group(0)}" for path in files if path.is_file() for match in machine_path.finditer(path.read_text())]
    assert not found, found[:5]


def test_compare_refuses_a_missing_data_file(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(BENCHMARKS / "compare.py"), "--data", str(tmp_path / "none.npz")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "none.npz' does not exist" in result.stderr


def _run_benchmark(script: str, *args: str, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``benchmarks/<script>`` writing its JSON to ``out``; it must succeed. Returns the process and the JSON."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(out.read_text())


@pytest.mark.slow
def test_latency_script_runs_on_one_model(tmp_path) -> None:
    out = tmp_path / "latency.json"
    _, results = _run_benchmark("latency.py", "--models", "resnet18", "--repeats", "1", "--rounds", "2", out=out)
    rows = results["rows"]
    assert {row["method"] for row in rows} == {"dense", "structured", "masks (ModelPruning)"}
    assert {row["layout"] for row in rows} == {"contiguous", "channels_last"}
    structured = [row for row in rows if row["method"] == "structured"]
    assert len(structured) == 6 and all(row["macs_reduction"] > 1.5 for row in structured)
    (fastest,) = results["fastest"]
    assert fastest["model"] == "resnet18" and fastest["speedup_per_macs_b64"] > 0
    low, high = fastest["speedup_b64_range"]  # per-round speed-ups around their median
    assert low <= fastest["speedup_b64"] <= high and results["rounds"] == 2
    # --merge adds another model's rows and keeps resnet18's; other settings are refused before any work
    merge = ["--models", "mobilenet_v3_small", "--repeats", "1", "--merge"]
    refused = subprocess.run([sys.executable, str(BENCHMARKS / "latency.py"), *merge, "--rounds", "3", "--out", str(out)],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "--merge:" in refused.stderr
    _, results = _run_benchmark("latency.py", *merge, "--rounds", "2", out=out)
    assert [row["model"] for row in results["fastest"]] == ["resnet18", "mobilenet_v3_small"] and len(results["commands"]) == 2


@pytest.mark.slow
def test_op_profile_splits_depthwise_convolutions_from_the_others(tmp_path) -> None:
    result, results = _run_benchmark("op_profile.py", "--models", "mobilenet_v3_small", "--batch", "2", "--iterations", "1",
                                     out=tmp_path / "ops.json")
    profile = results["models"]["mobilenet_v3_small"]
    assert profile["macs_reduction"] > 2
    for times in (profile["dense_ms"], profile["pruned_ms"]):
        assert times["depthwise_conv"] > 0 and times["conv"] > 0 and times["batch_norm"] > 0
    assert "| mobilenet_v3_small | depthwise_conv |" in result.stdout


@pytest.mark.slow
def test_overhead_script_quick_mode(tmp_path) -> None:
    _, results = _run_benchmark("overhead.py", "--quick", out=tmp_path / "overhead.json")
    assert results["settings"]["quick"] is True
    assert all(row["cached_distill_over_student_step"] > 0 for row in results["distillation"])


@pytest.mark.slow
def test_quantize_benchmark_writes_every_variant(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from lightning_spiral import build_model, save_model

    model = tmp_path / "model.pt"
    save_model(build_model("vgg_bn", num_classes=10, input_shape=(3, 32, 32), config=[8, "M", 16, "M"]), model)
    data = _tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "quantize.json"
    command = [sys.executable, str(BENCHMARKS / "quantize.py"), "--model", str(model), "--data", str(data),
               "--repeats", "2", "--rounds", "1", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"fp32_torch", "fp32_ort", "fp16_ort", "int8_ort"} <= set(results["rows"])
    assert results["parity"]["onnx_top1_agreement"] == 1.0
    assert str(tmp_path) not in out.read_text()


def test_cuda_timing_tables_every_device_and_precision_and_refuses_without_a_gpu(monkeypatch, capsys) -> None:
    import torch
    import torch.nn as nn

    from lightning_spiral.spiral.final_timing import cuda_timing, time_side_by_side

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import cuda_timing as script

    networks = {0: nn.Linear(64, 64), 1: nn.Linear(64, 2)}
    timing = time_side_by_side(networks, torch.zeros(1, 64), rounds=2, repeats=2, threads=1)
    # the GPU sections, made on the CPU: the same path with device="cpu"
    timing["cuda"] = cuda_timing(networks, torch.zeros(1, 64), precisions=["32-true", "bf16-mixed"], rounds=2, repeats=2,
                                 threads=1, device="cpu")
    rows = script.figure_rows(timing)
    assert [(row["device"], row["precision"], row["stage"]) for row in rows] == [
        ("cpu", "32-true", "0"), ("cpu", "32-true", "1"), ("cuda", "32-true", "0"), ("cuda", "32-true", "1"),
        ("cuda", "bf16-mixed", "0"), ("cuda", "bf16-mixed", "1")]
    assert all(row["speedup_b1"] == 1.0 for row in rows if row["stage"] == "0")  # each over the teacher in its precision
    table = script.render_markdown(rows, "header").splitlines()
    assert table[0] == "header" and len(table) == 4 + len(rows) and table[-1].startswith("| cuda | bf16-mixed | 1 |")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as refused:
        script.main([])
    assert refused.value.code == 2 and "no CUDA GPU is visible" in capsys.readouterr().err


def _search_runs(top1: dict[str, dict[float, list[float]]], teacher_top1: float) -> list[dict]:
    """Search-file runs of one teacher: per variant and target, one run per seed with these test top-1s."""
    return [{"variant": variant, "target": target, "seed": seed, "top1": value, "val_top1": value - 0.01, "teacher_top1": teacher_top1,
             "macs": int(target * 1e6), "teacher_macs": 10**6, "wall_s": 1.0}
            for variant, by_target in top1.items() for target, values in by_target.items() for seed, value in enumerate(values)]


def test_search_rows_compare_runs_of_the_same_teacher_only(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from spiral_search import render_markdown, summarise

    runs = [*_search_runs({"oneshot_kd": {0.2: [0.70, 0.71]}, "spiral_cubic": {0.2: [0.72, 0.74]}}, 0.78),
            *_search_runs({"oneshot_kd": {0.2: [0.60, 0.60]}, "spiral_cubic": {0.2: [0.75, 0.76]}}, 0.79)]  # a retrained teacher
    rows = {(r["variant"], r["teacher_top1"]): r for r in summarise(runs, 10**6)}
    assert rows["spiral_cubic", 0.78]["vs_baseline"] == pytest.approx(0.025) and rows["spiral_cubic", 0.79]["vs_baseline"] == pytest.approx(0.155)
    assert rows["spiral_cubic", 0.79]["vs_teacher"] == pytest.approx(-0.035)  # against its own teacher
    markdown = render_markdown({"commands": [], "date": "2026-12-03", "torch": "2", "runs": runs, "rows": list(rows.values())})
    assert "78.00% (4 runs), 79.00% (4 runs)" in markdown
    assert "**Teacher 78.00%, target 20% of its MACs**" in markdown and "**Teacher 79.00%, target 20% of its MACs**" in markdown


def test_recipe_rows_pair_the_spiral_with_one_shot_and_check_the_goals(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import recipe
    from spiral_search import summarise

    spiral, oneshot, levered = "spiral_cubic_short_lr03_e24_vsplit", "oneshot_kd_e24_vsplit", "spiral_cubic_short_lr03_e24_vsplit_wp03"
    runs = [*_search_runs({spiral: {0.2: [0.775, 0.780, 0.776], 0.1: [0.757, 0.752, 0.755]},
                           oneshot: {0.2: [0.770, 0.772, 0.773], 0.1: [0.744, 0.746, 0.745]},
                           "spiral_cubic_lr05": {0.2: [0.1, 0.1, 0.1]}}, 0.7858),  # a 12-epoch round: not a recipe row
            *_search_runs({spiral: {0.2: [0.778, 0.775]}, levered: {0.2: [0.770, 0.773]}}, 0.7875)]  # a retrained teacher's screen
    teacher, rows, screens = recipe.collect("vgg_bn", {"runs": runs, "rows": summarise(runs, 10**6)})
    assert teacher == {"top1": 0.7858, "macs": 10**6}  # the teacher of most runs
    assert sorted((r["method"], r["target"]) for r in rows) == [("oneshot_kd", 0.1), ("oneshot_kd", 0.2), ("spiral", 0.1), ("spiral", 0.2)]
    by_method = {(r["method"], r["target"]): r for r in rows}
    assert by_method["spiral", 0.2]["epochs"] == 24 and by_method["spiral", 0.2]["seeds"] == [0, 1, 2]
    assert by_method["spiral", 0.2]["macs_ratio"] == pytest.approx(0.2)
    assert by_method["spiral", 0.1]["vs_oneshot_kd"] == pytest.approx(0.029 / 3)  # paired per seed: (13 + 6 + 10) / 3 thousandths
    assert by_method["oneshot_kd", 0.1]["vs_spiral"] == pytest.approx(-0.029 / 3)
    # the lever is paired with the spiral rerun on its own teacher: (-8 - 2) / 2 thousandths
    screen = {r["method"]: r for r in screens}
    assert set(screen) == {"spiral", "spiral_waypoint_lr03"} and screen["spiral_waypoint_lr03"]["vs_spiral"] == pytest.approx(-0.005)
    assert screen["spiral_waypoint_lr03"]["val_vs_spiral"] == pytest.approx(-0.005)  # validation paired the same way
    assert screen["spiral_waypoint_lr03"]["teacher_top1"] == 0.7875
    assert recipe.goals(rows, 0.7858) == [
        "spiral − oneshot_kd at 20%: +0.53 points (goal ≥ +1.0: not met)",
        "spiral − oneshot_kd at 10%: +0.97 points (goal ≥ +1.0: not met)",
        "spiral − teacher at 20%: -0.88 points (goal ≥ −0.5: not met)",
    ]
    markdown = recipe.render_markdown({"teachers": {"vgg_bn": teacher}, "rows": rows, "screens": screens})
    assert "**vgg_bn, lever screen** — another teacher, 78.75%" in markdown
