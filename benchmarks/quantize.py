"""fp32 vs fp16 vs INT8 for serving a spiral's final model: test top-1, size on disk, CPU latency.

Two INT8 candidates are evaluated on the same model, calibration data and test split:

| candidate | flow | serving runtime |
| --- | --- | --- |
| `int8_ort` | ONNX export -> `quant_pre_process` -> `quantize_static` (QDQ, per-channel int8 weights, int8 activations, min/max) | ONNX Runtime |
| `int8_torchao` | `torch.export` -> torchao PT2E `prepare_pt2e` / `convert_pt2e` with `X86InductorQuantizer` | `torch.compile` (Inductor, freezing) |

plus the fp32 model in PyTorch (eager) and in ONNX Runtime, and fp16 weights in ONNX Runtime. The
package ships only the winner (ONNX Runtime, see README "Deploy"); torchao is needed only here
(`pip install torchao`), and its rows are skipped without it.

Calibration uses the validation split carved from the training images (1,000 images); top-1 is
on the full 10,000-image test split. Latency: the package's own functions (warm-up, median of
``--repeats`` calls, ``--threads`` threads), repeated ``--rounds`` times with the candidates
interleaved; the median over rounds is reported, because other processes share this CPU.

Run:  python benchmarks/quantize.py --model path/to/final/model.pt   (about 5 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from lightning_spiral import load_model
from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.data import NpzDataModule
from lightning_spiral.deploy import convert_fp16, export_onnx, export_pt2, onnx_parity, onnx_session, onnx_top1, quantize_int8
from lightning_spiral.measure import file_size, measure_latency, measure_onnx_latency
from lightning_spiral.records import machine_info

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "cifar10_subset.npz"
DEFAULT_MODEL = HERE / "cache" / "quick" / "spiral_original" / "t0.2_s0" / "stage_4" / "model.pt"  # final model of the 20% spiral


def torch_top1(model: torch.nn.Module, loader: Any) -> float:
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    return correct / total


def torchao_candidate(model: torch.nn.Module, data: NpzDataModule) -> tuple[torch.nn.Module, int, float] | None:
    """The torchao PT2E INT8 model compiled by Inductor, its int8 state-dict size and its compile time."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e import allow_exported_model_train_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        return None
    example = torch.randn(64, *data.input_shape)
    graph = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)).module()
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for images, _ in data.val_dataloader():
            prepared(images)
    converted = allow_exported_model_train_eval(convert_pt2e(prepared))  # measure_latency switches to eval
    buffer = io.BytesIO()
    torch.save(converted.state_dict(), buffer)
    torch._inductor.config.freezing = True
    start = time.perf_counter()
    compiled = torch.compile(converted)
    with torch.no_grad():
        compiled(example)
    return compiled, len(buffer.getvalue()), time.perf_counter() - start


def run(model_path: Path, data_path: Path, repeats: int, rounds: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    data = NpzDataModule(data_path, batch_size=128, val_fraction=0.1, seed=0, augment=False)
    data.setup()
    shape = tuple(data.input_shape)
    model = load_model(model_path).eval()
    scratch = Path(tempfile.mkdtemp())
    files = {name: scratch / f"{name}.onnx" for name in ("fp32_ort", "fp16_ort", "int8_ort")}
    export_onnx(model, files["fp32_ort"], shape)
    export_pt2(model, scratch / "fp32.pt2", shape)
    convert_fp16(files["fp32_ort"], files["fp16_ort"])
    start = time.perf_counter()
    quantize_int8(files["fp32_ort"], files["int8_ort"], (images for images, _ in data.val_dataloader()))
    ort_quantize_s = time.perf_counter() - start
    test_batches = [images for images, _ in data.test_dataloader()]
    pt2 = torch.export.load(scratch / "fp32.pt2").module()
    with torch.no_grad():
        pt2_diff = max(float((pt2(x) - model(x)).abs().max()) for x in test_batches)
    parity = onnx_parity(model, files["fp32_ort"], test_batches, threads=threads)
    rows: dict[str, dict[str, Any]] = {
        "fp32_torch": {"runtime": "torch eager", "top1": torch_top1(model, data.test_dataloader()), "size_bytes": file_size(model_path)},
    }
    for name, path in files.items():
        rows[name] = {"runtime": "onnxruntime", "top1": onnx_top1(onnx_session(path, threads), data.test_dataloader()),
                      "size_bytes": file_size(path)}
    rows["int8_ort"]["quantize_s"] = ort_quantize_s
    torchao = torchao_candidate(model, data)
    if torchao is not None:
        compiled, size, compile_s = torchao
        rows["int8_torchao"] = {"runtime": "torch.compile (inductor)", "top1": torch_top1(compiled, data.test_dataloader()),
                                "size_bytes": size, "compile_s": compile_s}
    timers = {
        "fp32_torch": lambda b: measure_latency(model, shape, b, repeats=repeats, threads=threads),
        **{name: (lambda b, p=path: measure_onnx_latency(p, shape, b, repeats=repeats, threads=threads)) for name, path in files.items()},
    }
    if torchao is not None:
        timers["int8_torchao"] = lambda b: measure_latency(torchao[0], shape, b, repeats=repeats, threads=threads)
    samples: dict[str, dict[int, list[float]]] = {name: {1: [], 64: []} for name in timers}
    for _ in range(rounds):  # interleaved, so a busy spell on the machine hits every candidate
        for name, timer in timers.items():
            for batch in (1, 64):
                samples[name][batch].append(timer(batch))
    for name, by_batch in samples.items():
        rows[name]["latency_ms_b1"] = statistics.median(by_batch[1])
        rows[name]["latency_ms_b64"] = statistics.median(by_batch[64])
        rows[name]["latency_ms_b64_rounds"] = by_batch[64]
    base = rows["fp32_torch"]
    for row in rows.values():
        row["top1_delta_pts"] = 100 * (row["top1"] - base["top1"])
        row["smaller_than_fp32_file"] = base["size_bytes"] / row["size_bytes"]
        row["speedup_b64_vs_fp32_torch"] = base["latency_ms_b64"] / row["latency_ms_b64"]
        row["speedup_b64_vs_fp32_ort"] = rows["fp32_ort"]["latency_ms_b64"] / row["latency_ms_b64"]
    return {
        "model": {"file": model_path.name, "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest()[:16],
                  "params": sum(p.numel() for p in model.parameters())},
        "parity": {"onnx_max_abs_diff": parity.max_abs_diff, "onnx_top1_agreement": parity.top1_agreement,
                   "pt2_max_abs_diff": pt2_diff, "samples": parity.samples},
        "test_images": len(data.test_set), "calibration_images": len(data.val_set),
        "rows": rows,
    }


def load_note(machine: dict[str, Any]) -> str:
    """How busy the CPUs were when the run started (latency depends on it)."""
    load = machine.get("load_1min_at_start")
    return "load not recorded" if load is None else f"1-minute load average {load:.2f} at start"


def render_markdown(results: dict[str, Any]) -> str:
    parity = results["parity"]
    lines = [
        f"`{results['command']}` — {results['machine']['date']}, torch {results['machine']['torch']}, "
        f"{results['machine']['cpu_count']} CPUs ({load_note(results['machine'])}), {results['threads']} threads; latency = median over "
        f"{results['rounds']} interleaved rounds of the median of {results['repeats']} calls. Model: {results['model']['file']} "
        f"(sha256 {results['model']['sha256']}, {results['model']['params']:,} params); test top-1 on "
        f"{results['test_images']:,} images, calibration on the {results['calibration_images']:,}-image validation split.",
        "",
        f"Export parity on the test split: ONNX max |Δlogit| {parity['onnx_max_abs_diff']:.1e}, top-1 agreement "
        f"{100 * parity['onnx_top1_agreement']:.2f} %; `.pt2` max |Δlogit| {parity['pt2_max_abs_diff']:.1e}.",
        "",
        "| variant | runtime | top-1 % | Δ pts | size | × smaller | b1 ms | b64 ms | b64 speed-up vs fp32 torch | vs fp32 ORT |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in results["rows"].items():
        lines.append(
            f"| {name} | {row['runtime']} | {100 * row['top1']:.2f} | {row['top1_delta_pts']:+.2f} | {row['size_bytes'] / 1e3:.1f} kB | "
            f"{row['smaller_than_fp32_file']:.2f}× | {row['latency_ms_b1']:.3f} | {row['latency_ms_b64']:.2f} | "
            f"{row['speedup_b64_vs_fp32_torch']:.2f}× | {row['speedup_b64_vs_fp32_ort']:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def shown_arguments(argv: list[str]) -> list[str]:
    """The command line without file paths (results never name this machine's folders)."""
    return [a if "/" not in a else Path(a).name for a in argv]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a model file from lightning_spiral.save_model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "quantize.json")
    args = parser.parse_args(argv)
    results = run(args.model, args.data, args.repeats, args.rounds, args.threads)
    results |= {"command": "python benchmarks/quantize.py " + " ".join(shown_arguments(argv if argv is not None else sys.argv[1:])),
                "machine": machine_info(args.threads) | {"load_1min_at_start": os.getloadavg()[0]}, "repeats": args.repeats, "rounds": args.rounds, "threads": args.threads}
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    from results_io import in_results_dir, update_results_section  # one writer of RESULTS.md sections

    if in_results_dir(args.out):  # runs written elsewhere (tests, experiments) leave RESULTS.md alone
        update_results_section(HERE / "RESULTS.md", "quantize", "quantize.py — fp32 vs fp16 vs INT8 (ONNX Runtime, torchao)",
                               render_markdown(results))
    table = Table(title="Serving the final model: fp32 vs fp16 vs INT8")
    for column in ("variant", "runtime", "top-1 %", "Δ pts", "size kB", "× smaller", "b1 ms", "b64 ms", "b64 speed-up"):
        table.add_column(column)
    for name, row in results["rows"].items():
        table.add_row(name, row["runtime"], f"{100 * row['top1']:.2f}", f"{row['top1_delta_pts']:+.2f}", f"{row['size_bytes'] / 1e3:.1f}",
                      f"{row['smaller_than_fp32_file']:.2f}", f"{row['latency_ms_b1']:.3f}", f"{row['latency_ms_b64']:.2f}",
                      f"{row['speedup_b64_vs_fp32_torch']:.2f}×")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
