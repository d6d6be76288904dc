"""Built-in path parity: a 3-stage spiral on digits (amount 0.25, 2 epochs per stage), seeds 0-2.

Prints the test top-1 of the teacher and every stage and writes them as JSON. Run it against two
checkouts to compare them (``PYTHONPATH=<checkout> python benchmarks/builtin_parity.py out.json``);
``results/builtin_parity.json`` holds the comparison of 3aa4d8c with the module-driven driver.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile

import lightning.pytorch as L

from lightning_spiral import KDLoss, PruningCallback, Spiral
from lightning_spiral.data import DigitsDataModule
from lightning_spiral.models import build_model

TRAINER = functools.partial(L.Trainer, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, logger=False)


def run(seed: int) -> dict:
    L.seed_everything(seed, verbose=False)
    data = DigitsDataModule(batch_size=64)
    report = Spiral(
        model=build_model("small_cnn", num_classes=10, input_shape=data.input_shape), datamodule=data, trainer=TRAINER,
        pruning=functools.partial(PruningCallback, amount=0.25, verbose=0), loss=KDLoss(temperature=4.0, alpha=0.9),
        schedule="constant", target_macs_ratio=0.2, max_stages=3, teacher_epochs=4, stage_epochs=2, max_accuracy_drop=1.0,
        output_dir=tempfile.mkdtemp() + "/run", latency_repeats=2, seed=seed, verbose=0,
    ).run()
    return {"seed": seed, "teacher": report.teacher.top1, "stages": [s.top1 for s in report.stages],
            "macs": [s.macs for s in report.stages]}


if __name__ == "__main__":
    rows = []
    for seed in (0, 1, 2):
        rows.append(run(seed))
        print(rows[-1], flush=True)
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(rows, out)
