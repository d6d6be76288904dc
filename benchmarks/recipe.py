"""Issue 19's table: the spiral's 24-epoch recipe against one-shot + KD on two networks, with every lever tried.

Reads the method searches of ``spiral_search.py`` — ``results/search.json`` (the quick profile's
half-width VGG-BN teacher) and ``results/search_resnet20.json`` (``--profile resnet20``, CIFAR
ResNet-20) — and collects their 24-epoch variants (the validation split the teacher never saw, the
full 10,000-image test split) into one row per (network, target, method). ``spiral`` is the
shipped recipe (cubic schedule, three one-epoch waypoints, one long final stage, lr 0.03) and
``oneshot_kd`` the same 24 epochs of KD after a single pruning step; a lever's rows (``_cutmix``:
CutMix function matching) give it to both. ``vs one-shot`` pairs each run with the one-shot + KD
run of the same levers, seed and split (``spiral_waypoint_lr03``, waypoints at 0.3 × lr, with
plain ``oneshot_kd``: one-shot has no waypoints), ``vs spiral`` with the spiral run of the same seed.

A network's ``rows`` come from its main teacher (the one most of the runs distilled from); runs of
another teacher of the same network (e.g. a lost cache retrained: its runs cannot be paired with the
main teacher's) are the ``screens``, each lever there paired with the spiral and one-shot + KD
rerun on that teacher.

Output: ``results/recipe.json`` = ``{"teachers": {network: {"top1", "macs"}}, "rows": [...],
"screens": [...]}`` and RESULTS.md's ``recipe`` section, with the issue's goals checked per network.

Run:  python benchmarks/recipe.py          (seconds: it trains nothing)
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_io import publish  # noqa: E402
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


def collect(network: str, search: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The main teacher of one network's search file, its recipe rows, and the rows of its other teachers."""
    runs = [r for r in search["runs"] if r["variant"] in METHODS.values()]
    main_top1 = collections.Counter(r["teacher_top1"] for r in runs).most_common(1)[0][0]
    macs = next((r["teacher_macs"] for r in search["runs"] if "teacher_macs" in r), None)
    variant_of = {variant: method for method, variant in METHODS.items()}
    rows = [recipe_row(network, variant_of[row["variant"]], row, runs) for row in search["rows"] if row["variant"] in variant_of]
    return ({"top1": main_top1, "macs": macs}, [r for r in rows if r["teacher_top1"] == main_top1],
            [r for r in rows if r["teacher_top1"] != main_top1])


def recipe_row(network: str, method: str, row: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """recipe.json's row of one search row, with its per-seed difference to the spiral of the same teacher."""
    same = [r for r in runs if (r["teacher_top1"], r["target"]) == (row["teacher_top1"], row["target"])]
    spiral = {r["seed"]: r for r in same if r["variant"] == METHODS["spiral"]}
    mine = [r for r in same if r["variant"] == row["variant"] and r["seed"] in spiral]
    diffs = [r["top1"] - spiral[r["seed"]]["top1"] for r in mine]
    val_diffs = [r["val_top1"] - spiral[r["seed"]]["val_top1"] for r in mine if row["val_top1"] is not None]
    return {
        "network": network, "target": row["target"], "method": method, "top1": row["top1"], "top1_std": row["top1_std"],
        "seeds": row["seeds"], "macs_ratio": row["macs_ratio"], "epochs": sum(VARIANTS[row["variant"]].epochs(row["target"])),
        "variant": row["variant"], "recipe": row["recipe"], "teacher_top1": row["teacher_top1"], "val_top1": row["val_top1"],
        "vs_teacher": row["vs_teacher"], "vs_oneshot_kd": row["vs_baseline"], "vs_oneshot_kd_std": row["vs_baseline_std"],
        **paired_difference("vs_spiral", diffs), **paired_difference("val_vs_spiral", val_diffs),
    }


def paired_difference(key: str, diffs: list[float]) -> dict[str, float | None]:
    """``key`` and ``key_std``: the mean and std over seeds of per-seed differences (None where there are none)."""
    return {key: statistics.mean(diffs) if diffs else None, f"{key}_std": statistics.stdev(diffs) if len(diffs) > 1 else None}


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
                  *table(rows), "", *(f"- {line}" for line in goals(rows, teacher["top1"])), ""]
        for top1 in dict.fromkeys(r["teacher_top1"] for r in recipe["screens"] if r["network"] == network):
            screen = [r for r in recipe["screens"] if (r["network"], r["teacher_top1"]) == (network, top1)]
            lines += [f"**{network}, lever screen** — another teacher, {100 * top1:.2f}%: each lever paired with the spiral "
                      "and one-shot + KD rerun on it", "",
                      *table(screen), ""]
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> list[str]:
    """A markdown table of recipe rows, by target and then top-1."""
    lines = ["| target | method | recipe | seeds | top-1 % | Δ vs teacher | vs one-shot (pts) | vs spiral (pts) | val top-1 % "
             "| val vs spiral (pts) | MACs % |",
             "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in sorted(rows, key=lambda r: (-r["target"], -r["top1"])):
        val = "–" if row["val_top1"] is None else f"{100 * row['val_top1']:.2f}"
        lines.append(f"| {row['target']:.0%} | {row['method']} | {row['recipe']} | {len(row['seeds'])} | "
                     f"{100 * row['top1']:.2f} ± {100 * row['top1_std']:.2f} | {100 * row['vs_teacher']:+.2f} | "
                     f"{paired(row, 'vs_oneshot_kd')} | {paired(row, 'vs_spiral')} | {val} | {paired(row, 'val_vs_spiral')} | "
                     f"{100 * row['macs_ratio']:.1f} |")
    return lines


def paired(row: dict[str, Any], key: str) -> str:
    """A paired difference in points, mean ± std over seeds ('–' where nothing was paired)."""
    if row[key] is None:
        return "–"
    return f"{100 * row[key]:+.2f} ± {100 * (row[f'{key}_std'] or 0):.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "recipe.json")
    args = parser.parse_args(argv)
    missing = [str(path.relative_to(HERE)) for path in SEARCHES.values() if not path.is_file()]
    if missing:
        parser.error(f"no search results at {missing}: run spiral_search.py first (see its docstring)")
    recipe: dict[str, Any] = {"teachers": {}, "rows": [], "screens": []}
    for network, path in SEARCHES.items():
        teacher, rows, screens = collect(network, json.loads(path.read_text()))
        recipe["teachers"][network] = teacher
        recipe["rows"] += rows
        recipe["screens"] += screens
    publish(args.out, recipe, "recipe", TITLE, render_markdown(recipe))


if __name__ == "__main__":
    main()
