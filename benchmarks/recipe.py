"""Issue 19's table: the spiral's 24-epoch recipe against one-shot + KD on two networks, with every lever tried.

Reads the method searches of ``spiral_search.py`` — ``results/search.json`` (the quick profile's
half-width VGG-BN teacher) and ``results/search_resnet20.json`` (``--profile resnet20``, CIFAR
ResNet-20) — and collects their 24-epoch variants (the validation split the teacher never saw, the
full 10,000-image test split) into one row per (network, target, method). ``spiral`` is the
shipped recipe (cubic schedule, three one-epoch waypoints, one long final stage, lr 0.03) and
``oneshot_kd`` the same 24 epochs of KD after a single pruning step; a lever's rows (``_cutmix``:
CutMix function matching) give it to both. ``vs one-shot`` pairs each run with the one-shot + KD
run of the same levers, seed and split (``spiral_waypoint_lr03``, waypoints at 0.3 × lr, with
plain ``oneshot_kd``: one-shot has no waypoints).

Output: ``results/recipe.json`` = ``{"teachers": {network: {"top1", "macs"}}, "rows": [...]}``
and RESULTS.md's ``recipe`` section, with the issue's goals checked per network.

Run:  python benchmarks/recipe.py          (seconds: it trains nothing)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_io import in_results_dir, update_results_section, write_json  # noqa: E402
from spiral_search import VARIANTS  # noqa: E402

SEARCHES = {"vgg_bn": HERE / "results" / "search.json", "resnet20": HERE / "results" / "search_resnet20.json"}
# recipe.json's method -> the spiral_search.py variant that ran it
METHODS = {
    "spiral": "spiral_cubic_short_lr03_e24_vsplit",
    "oneshot_kd": "oneshot_kd_e24_vsplit",
    "iterative_ft": "iterative_ft_e24_vsplit",
    "spiral_cutmix": "spiral_cubic_short_lr03_e24_vsplit_cutmix",
    "oneshot_kd_cutmix": "oneshot_kd_e24_vsplit_cutmix",
    "spiral_waypoint_lr03": "spiral_cubic_short_lr03_e24_vsplit_wp03",
}
GOALS = "spiral ≥ 1.0 point above oneshot_kd at 20% and at 10% of the MACs; ≤ 0.5 points under the teacher at 20%"
TITLE = "recipe.py — the 24-epoch recipe on two networks (issue 19)"


def collect(network: str, search: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The teacher and the recipe rows of one network's search file."""
    macs = next((r["teacher_macs"] for r in search["runs"] if "teacher_macs" in r), None)
    teacher = {"top1": search["teacher_top1"], "macs": macs}
    variant_of = {variant: method for method, variant in METHODS.items()}
    rows = []
    for row in search["rows"]:
        method = variant_of.get(row["variant"])
        if method is None:
            continue
        rows.append({
            "network": network, "target": row["target"], "method": method, "top1": row["top1"], "top1_std": row["top1_std"],
            "seeds": row["seeds"], "macs_ratio": row["macs_ratio"], "epochs": sum(VARIANTS[row["variant"]].epochs(row["target"])),
            "variant": row["variant"], "recipe": row["recipe"], "val_top1": row["val_top1"], "vs_teacher": row["vs_teacher"],
            "vs_oneshot_kd": row["vs_baseline"], "vs_oneshot_kd_std": row["vs_baseline_std"],
        })
    return teacher, rows


def goals(rows: list[dict[str, Any]], teacher_top1: float) -> list[str]:
    """One line per goal of the issue for one network: the measured figure and whether it is met."""
    spiral = {r["target"]: r for r in rows if r["method"] == "spiral"}
    lines = []
    for target in (0.2, 0.1):
        if target in spiral and spiral[target]["vs_oneshot_kd"] is not None:
            gap = 100 * spiral[target]["vs_oneshot_kd"]
            lines.append(f"spiral − oneshot_kd at {target:.0%}: {gap:+.2f} points (goal ≥ +1.0: {'met' if gap >= 1.0 else 'not met'})")
    if 0.2 in spiral:
        gap = 100 * (spiral[0.2]["top1"] - teacher_top1)
        lines.append(f"spiral − teacher at 20%: {gap:+.2f} points (goal ≥ −0.5: {'met' if gap >= -0.5 else 'not met'})")
    return lines


def render_markdown(recipe: dict[str, Any]) -> str:
    lines = ["`python benchmarks/recipe.py`, from the runs of `spiral_search.py` (their commands and machines are in "
             "`results/search*.json`). 24 epochs after the teacher, 3 seeds, test top-1 on the full 10,000-image test split; "
             "the validation split is one the teacher never trained on. 'vs one-shot' is the mean ± std over seeds of the "
             "paired difference to one-shot + KD with the same levers (same seed, split and data order).", "",
             f"Goals: {GOALS}.", ""]
    for network, teacher in recipe["teachers"].items():
        rows = [r for r in recipe["rows"] if r["network"] == network]
        lines += [f"**{network}** — teacher {100 * teacher['top1']:.2f}%, {teacher['macs'] / 1e6:.1f}M MACs", "",
                  "| target | method | recipe | seeds | top-1 % | Δ vs teacher | vs one-shot (pts) | val top-1 % | MACs % |",
                  "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in sorted(rows, key=lambda r: (-r["target"], -r["top1"])):
            paired = "–" if row["vs_oneshot_kd"] is None else f"{100 * row['vs_oneshot_kd']:+.2f} ± {100 * (row['vs_oneshot_kd_std'] or 0):.2f}"
            val = "–" if row["val_top1"] is None else f"{100 * row['val_top1']:.2f}"
            lines.append(f"| {row['target']:.0%} | {row['method']} | {row['recipe']} | {len(row['seeds'])} | "
                         f"{100 * row['top1']:.2f} ± {100 * row['top1_std']:.2f} | {100 * row['vs_teacher']:+.2f} | {paired} | "
                         f"{val} | {100 * row['macs_ratio']:.1f} |")
        lines += ["", *(f"- {line}" for line in goals(rows, teacher["top1"])), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "recipe.json")
    args = parser.parse_args(argv)
    missing = [str(path.relative_to(HERE)) for path in SEARCHES.values() if not path.is_file()]
    if missing:
        parser.error(f"no search results at {missing}: run spiral_search.py first (see its docstring)")
    recipe: dict[str, Any] = {"teachers": {}, "rows": []}
    for network, path in SEARCHES.items():
        teacher, rows = collect(network, json.loads(path.read_text()))
        recipe["teachers"][network] = teacher
        recipe["rows"] += rows
    write_json(args.out, recipe)
    markdown = render_markdown(recipe)
    print(markdown)
    if in_results_dir(args.out):
        update_results_section(HERE / "RESULTS.md", "recipe", TITLE, markdown)


if __name__ == "__main__":
    main()
