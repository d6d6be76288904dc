"""Regenerate the README's default-run section and Deploy table from real ``lightning-spiral`` runs.

A standalone script (the package never imports it). It runs the default command
``python -m lightning_spiral hydra.run.dir=<out>/default`` (and, unless ``--skip-deploy``, the same
with ``quantize=int8_ptq`` into ``<out>/int8_ptq``) as subprocesses, then rewrites the README's
blocks between marker comments:

- ``<!-- default-run:start -->`` … ``<!-- default-run:end -->``: the command, wall time, a one-line
  recipe made from the run's ``report.json`` settings (spiral, pruning, distillation, optimizer),
  the data and model, the machine line, and the run's table from its ``report.md``;
- ``<!-- deploy-table:start -->`` … ``<!-- deploy-table:end -->``: the quantizing command, the
  serving one-liner (given the model's absolute path, so it works from any directory; it is run
  once from another folder to check it) and the teacher, final and quantized rows of that run.

The README is written atomically, a diff of what changed is printed, and the runs' report paths
and figures go to ``benchmarks/results/readme_tables.json``.

``--check`` runs nothing: it exits 1 when the README's ``Recipe:`` line differs from the line the
current defaults (``lightning_spiral.spiral.settings.DEFAULTS`` through ``conf/``) would produce.

Usage:
    python benchmarks/readme_tables.py                    # both runs in a new temp folder, ~5 min on 2 cores
    python benchmarks/readme_tables.py --out runs/readme  # into a folder of your choice
    python benchmarks/readme_tables.py --out runs/readme --reuse   # rewrite from finished runs
    python benchmarks/readme_tables.py --skip-deploy      # only the default run
    python benchmarks/readme_tables.py --check            # is the README's recipe line current?
"""

from __future__ import annotations

import argparse
import difflib
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lightning_spiral.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results" / "readme_tables.json"
DEFAULT_BLOCK, DEPLOY_BLOCK = "default-run", "deploy-table"
QUANTIZE = "int8_ptq"
SCRIPT = "python benchmarks/readme_tables.py"
SERVE = ("python -c \"import sys, numpy as np, onnxruntime as ort; s = ort.InferenceSession(sys.argv[1]); "
         "print(s.run(None, {{'{name}': np.zeros({shape}, np.float32)}})[0].shape)\" {path}")


def markers(name: str) -> tuple[str, str]:
    """The start and end comments of the README block ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def block_body(text: str, name: str) -> str:
    """What stands between the markers of block ``name`` (ValueError when they are missing or out of order)."""
    start, end = markers(name)
    match = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), text, flags=re.DOTALL)
    if match is None:
        raise ValueError(f"README has no block {start} … {end} (each on a line of its own, in that order)")
    return match.group(1)


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block ``name`` holding ``body``; the markers and everything outside stay as they are."""
    block_body(text, name)  # raises when the markers are missing
    start, end = markers(name)
    pattern = re.escape(start) + r"\n.*?" + re.escape(end)
    return re.sub(pattern, lambda _: f"{start}\n{body.rstrip()}\n{end}", text, count=1, flags=re.DOTALL)


def short_name(target: str) -> str:
    """``lightning_spiral.distill.kd.KDLoss`` → ``KDLoss``."""
    return target.rsplit(".", 1)[-1]


def arguments(node: dict[str, Any]) -> str:
    """``key=value`` for the non-null scalar entries of a described (or composed) object, sorted by key."""
    return ", ".join(f"{key}={value}" for key, value in sorted(node.items())
                     if not key.startswith("_") and value is not None and not isinstance(value, (dict, list)))


def recipe_line(settings: dict[str, Any]) -> str:
    """One line of the recipe, from a ``report.json`` ``settings`` record (or :func:`default_settings`)."""
    spiral, pruning, distill = settings["spiral"], settings["pruning"], settings["distill"]
    if spiral["schedule"] == "constant":
        cut = f"`constant` schedule, {pruning['amount']:.0%} of the channels per stage until MACs ≤ {spiral['target_macs_ratio']:.0%}"
    else:
        cut = f"`{spiral['schedule']}` schedule of MACs targets landing on {spiral['target_macs_ratio']:.0%} of the teacher's"
    scope = "global" if pruning.get("global_pruning") else "per layer"
    optimizer = settings.get("optimizer") or {}
    trained = f", {short_name(optimizer['_target_'])} lr {optimizer.get('lr')}" if optimizer.get("_target_") else ""
    return (f"Recipe: teacher trained {spiral['teacher_epochs']} epochs; {cut} in {spiral['max_stages']} stages of "
            f"{spiral['stage_epochs']} epochs{trained}; {pruning['importance'].upper()} channel pruning ({scope}); "
            f"{short_name(distill['_target_'])} ({arguments(distill)}) from the {spiral['teacher']} teacher.")


def default_settings() -> dict[str, Any]:
    """The parts of a settings record that :func:`recipe_line` reads, as the current defaults compose them."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from lightning_spiral.spiral.settings import default_stage_epochs  # registers ${spiral_default:...}

    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config")
    spiral = OmegaConf.to_container(cfg.spiral, resolve=True)
    spiral["stage_epochs"] = default_stage_epochs(spiral["stage_epochs"], spiral["max_stages"], spiral["schedule"])
    return {"spiral": spiral, "pruning": OmegaConf.to_container(cfg.pruning, resolve=True),
            "distill": OmegaConf.to_container(cfg.distill, resolve=True), "optimizer": spiral["optimizer"]}


def recipe_in(text: str) -> str | None:
    """The ``Recipe:`` line of the README's default-run block, or ``None``."""
    lines = [line for line in block_body(text, DEFAULT_BLOCK).splitlines() if line.startswith("Recipe: ")]
    return lines[0] if lines else None


def check_readme(text: str) -> list[str]:
    """What is stale or missing in ``text`` against the current defaults (empty: nothing)."""
    problems = []
    for name in (DEFAULT_BLOCK, DEPLOY_BLOCK):
        try:
            block_body(text, name)
        except ValueError as err:
            problems.append(str(err))
    if not problems:
        expected, found = recipe_line(default_settings()), recipe_in(text)
        if found != expected:
            problems.append(f"README recipe line is stale:\n  README:   {found}\n  defaults: {expected}")
    return problems


def earlier_wall_s(results: Path, run_dir: Path) -> float | None:
    """The wall seconds an earlier call of this script recorded for ``run_dir`` in ``results``, if any."""
    try:
        runs = json.loads(results.read_text(encoding="utf-8"))["runs"].values()
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return next((run.get("wall_s") for run in runs if run.get("run_dir") == str(run_dir.resolve())), None)


def run_spiral(run_dir: Path, overrides: list[str], reuse: Path | None) -> float | None:
    """Run ``python -m lightning_spiral`` into ``run_dir`` (its output in ``run_dir``.log); return its wall seconds.

    With ``reuse`` (the results JSON), a finished run is not run again; its wall time comes from that JSON.
    """
    if reuse is not None and (run_dir / "report.json").is_file():
        print(f"reusing {run_dir}")
        return earlier_wall_s(reuse, run_dir)
    command = [sys.executable, "-m", "lightning_spiral", f"hydra.run.dir={run_dir}", *overrides]
    print("running:", " ".join(command[1:]), f"(log: {run_dir}.log)", flush=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(f"{run_dir}.log", "w", encoding="utf-8") as log:
        done = subprocess.run(command, cwd=run_dir.parent, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed with exit {done.returncode}; see {run_dir}.log")
    return time.perf_counter() - started


def report_table(run_dir: Path) -> list[str]:
    """The run's ``report.md`` from its table up to the machine line (table, final line, notes)."""
    lines = (run_dir / "report.md").read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    last = next((i for i, line in enumerate(lines) if line.startswith("Machine:")), len(lines))
    return lines[first:last]


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(report: dict[str, Any]) -> str:
    """Where the run was measured: CPU, cores, versions and how latency was timed."""
    m, spiral = report["machine"], report["settings"]["spiral"]
    accelerator = (report["settings"].get("trainer") or {}).get("accelerator", "?")
    return (f"Machine: {cpu_name()}, {m['cpu_count']} cores, trainer accelerator `{accelerator}`; Python {m['python']}, torch {m['torch']}, "
            f"lightning {m['lightning']}, torch-pruning {m['torch_pruning']}; {m['platform']}. Latency: "
            f"{m['threads']} threads, fastest of {spiral['latency_repeats']} runs.")


def wall_text(report: dict[str, Any], wall_s: float | None) -> str:
    """The command's wall time when this script timed it, and the training time from the report."""
    training = sum(stage.get("wall_s") or 0.0 for stage in [report["teacher"], *report["stages"]])
    if wall_s is None:
        return f"{training:.0f} s of training"
    return f"{wall_s:.0f} s wall time for the whole command, {training:.0f} s of it training"


def default_block(report: dict[str, Any], run_dir: Path, wall_s: float | None) -> str:
    """The body of the default-run block."""
    data, model = report["settings"]["data"], report["settings"]["model"]
    return "\n".join([
        f"`lightning-spiral` with no arguments (`python -m lightning_spiral hydra.run.dir=<out>/default`), run by "
        f"`{SCRIPT}`, which rewrote this block; {report['machine']['date'][:10]}, {wall_text(report, wall_s)}.",
        "",
        recipe_line(report["settings"]),
        "",
        f"Data: `{short_name(data['_target_'])}` ({arguments(data)}); model `{short_name(model['_target_'])}` "
        f"({model['parameters']:,} parameters).",
        "",
        machine_line(report),
        "",
        *report_table(run_dir),
    ])


def final_rows(run_dir: Path, report: dict[str, Any]) -> list[str]:
    """The header, teacher, final-stage and quantized rows of a run's ``report.md`` table."""
    table = [line for line in report_table(run_dir) if line.startswith("|")]
    keep = {"teacher", str(report["final"]["stage"]), report["quantized"]["kind"]}
    return table[:2] + [row for row in table[2:] if row.split("|")[1].strip() in keep]


def serve_command(run_dir: Path, report: dict[str, Any], path: str) -> str:
    """The serving one-liner for the run's quantized model at ``path``, a batch of 8 zeros."""
    import onnxruntime as ort

    model = run_dir / report["quantized"]["model_path"]
    first = ort.InferenceSession(str(model)).get_inputs()[0]
    shape = tuple(8 if not isinstance(size, int) else size for size in first.shape)
    return SERVE.format(name=first.name, shape=shape, path=path)


def check_serving(run_dir: Path, report: dict[str, Any]) -> str:
    """Run the one-liner with the model's absolute path from another folder; return what it printed."""
    model = (run_dir / report["quantized"]["model_path"]).resolve()
    with tempfile.TemporaryDirectory() as elsewhere:
        done = subprocess.run(serve_command(run_dir, report, str(model)), shell=True, cwd=elsewhere,  # noqa: S602
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the serving one-liner failed from another folder: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def deploy_block(report: dict[str, Any], run_dir: Path, wall_s: float | None) -> str:
    """The body of the deploy-table block: command, serving one-liner, measured rows."""
    model_path = report["quantized"]["model_path"]
    return "\n".join([
        "```bash",
        f"RUN=$PWD/runs/int8 && lightning-spiral quantize={QUANTIZE} hydra.run.dir=$RUN   # the run prints no path: name its folder",
        serve_command(run_dir, report, f"$RUN/{model_path}"),
        "```",
        "",
        f"The default run with `quantize={QUANTIZE}` (`python -m lightning_spiral quantize={QUANTIZE} "
        f"hydra.run.dir=<out>/{QUANTIZE}`, run by `{SCRIPT}`; {report['machine']['date'][:10]}, "
        f"{wall_text(report, wall_s)}); fp32 rows are PyTorch eager, the {QUANTIZE} row ONNX Runtime:",
        "",
        *final_rows(run_dir, report),
        "",
        machine_line(report),
    ])


def summary(report: dict[str, Any], run_dir: Path, wall_s: float | None) -> dict[str, Any]:
    """What ``readme_tables.json`` keeps of one run."""
    return {"run_dir": run_dir.name, "report_json": f"{run_dir.name}/report.json",  # relative to --out: no machine paths
            "wall_s": wall_s, "recipe": recipe_line(report["settings"]), "teacher": report["teacher"],
            "final": report["final"], "quantized": report.get("quantized"), "machine": report["machine"]}


def print_diff(old: str, new: str) -> None:
    """Print what changed in the README (a unified diff), or that nothing did."""
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "README.md", "README.md", lineterm="", n=0))
    print("\n".join(diff) if diff else "README.md unchanged")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=None, help="folder of the runs (default: a new temp folder, kept)")
    parser.add_argument("--reuse", action="store_true", help="use runs already finished under --out")
    parser.add_argument("--skip-deploy", action="store_true", help=f"skip the quantize={QUANTIZE} run and its block")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's recipe line is stale; runs nothing")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def rewrite(args: argparse.Namespace) -> None:
    """Run (or reuse) the runs, rewrite the README blocks, write the results JSON."""
    out = (args.out or Path(tempfile.mkdtemp(prefix="readme_tables_"))).resolve()
    jobs = [("default", DEFAULT_BLOCK, [], default_block)]
    if not args.skip_deploy:
        jobs.append((QUANTIZE, DEPLOY_BLOCK, [f"quantize={QUANTIZE}"], deploy_block))
    for _, block, _, _ in jobs:  # fail before minutes of runs, not after them
        block_body(args.readme.read_text(encoding="utf-8"), block)
    bodies, results = {}, {"script": SCRIPT, "runs": {}}
    for name, block, overrides, render in jobs:
        run_dir = out / name
        wall_s = run_spiral(run_dir, overrides, args.results if args.reuse else None)
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        bodies[block] = render(report, run_dir, wall_s)
        results["runs"][name] = summary(report, run_dir, wall_s)
        if name == QUANTIZE:
            results["runs"][name]["serving_output"] = check_serving(run_dir, report)
    old = args.readme.read_text(encoding="utf-8")  # read again: others may have edited it meanwhile
    new = old
    for block, body in bodies.items():
        new = replace_block(new, block, body)
    if new != old:
        atomic_write_text(args.readme, new)
    print_diff(old, new)
    atomic_write_text(args.results, json.dumps(results, indent=2) + "\n")
    print(f"runs in {out}; figures in {args.results}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check:
        problems = check_readme(args.readme.read_text(encoding="utf-8"))
        print("\n".join(problems) if problems else "README recipe line matches the current defaults")
        return 1 if problems else 0
    rewrite(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
