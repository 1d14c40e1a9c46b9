"""The full reproduction inside one lent-GPU command: choose the schedule from the probe, then run it.

A lent GPU gives a session 15 minutes all told and 10 per command, and trained weights are too
large to bring back, so every experiment runs in one command. The training length (epochs per
model, the same for both) and the fine-tuning length are the longest that the step times
measured by `bench/gpu_probe.py` on the same machine say will finish within `--budget`
seconds; the lengths chosen, the estimate and its inputs go to `schedule.json`. The
experiments then run in the order of `cob_paper.experiments.EXPERIMENTS` (unpruned, importance,
fixed_ratio, threshold), each writing its results file as soon as it ends, so a run cut short
still leaves what it finished. The chosen lengths become `FULL_EPOCHS` and
`FULL_FINETUNE_EPOCHS` afterwards, so that `cob-paper reproduce --full` names the same config.

    python bench/gpu_reproduce.py --probe probe.json --budget 450 --out $OUT   # on the GPU
    python bench/gpu_reproduce.py --probe /tmp/probe.json --budget 450 --out /tmp/check --runs /tmp/check/runs --check
"""
import argparse, json, math, time
from pathlib import Path

import torch

from cob_paper.experiments import EXPERIMENTS, Workspace, full_config, reproduce, smoke_config
from cob_paper.files import provenance, write_json
from cob_paper.train import steps_per_epoch

# (fine-tuning epochs, fewest training epochs worth taking with it), most fine-tuning first
CHOICES = ((3, 60), (2, 30), (1, 15))
MAX_EPOCHS, EPOCH_GRANULARITY, FIXED_OVERHEAD_S = 100, 5, 25.0


def choose_schedule(probe: dict, budget_s: float, train_images: int = 50_000, calibration_images: int = 10_000) -> dict:
    "Epochs per model and fine-tuning epochs that fit `budget_s`, from the probe's step times."
    template = full_config()
    per_epoch = steps_per_epoch(train_images, template.tsra_train.batch_size)
    rows = 3 * len(template.ratios) + 2 * sum(len(t) for t in template.thresholds.values())
    statistics_passes = 3 + 3 + 2
    fits = [r for r in probe["finetune_rows"] if "finetune_step_s" in r]
    finetune_step = max(sum(r["finetune_step_s"] for r in fits) / len(fits), 0.0)
    row_fixed = max(sum(r["row_fixed_s"] for r in fits) / len(fits), 0.0)
    train_epoch = per_epoch * (probe["tsra"]["step_s"] + probe["relu"]["step_s"])
    fixed = FIXED_OVERHEAD_S + statistics_passes * calibration_images * probe["merge_check"]["statistics_s_per_image"]
    for finetune_epochs, fewest in CHOICES:
        finetuning = rows * (row_fixed + finetune_epochs * per_epoch * finetune_step)
        epochs = (budget_s - fixed - finetuning) / train_epoch
        epochs = min(MAX_EPOCHS, EPOCH_GRANULARITY * math.floor(epochs / EPOCH_GRANULARITY))
        if epochs >= fewest: break
    epochs = max(epochs, 10)
    estimate = fixed + epochs * train_epoch + rows * (row_fixed + finetune_epochs * per_epoch * finetune_step)
    return {"epochs": epochs, "finetune_epochs": finetune_epochs, "estimated_s": estimate, "budget_s": budget_s,
            "inputs": {"steps_per_epoch": per_epoch, "rows": rows, "train_epoch_s": train_epoch,
                       "finetune_step_s": finetune_step, "row_fixed_s": row_fixed, "fixed_s": fixed}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", default="probe.json")
    parser.add_argument("--budget", type=float, required=True, help="seconds the whole reproduction may take")
    parser.add_argument("--epochs", type=float, help="override the chosen training epochs")
    parser.add_argument("--finetune-epochs", type=float, help="override the chosen fine-tuning epochs")
    parser.add_argument("--data", default=None)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="gpu-out", help="results go to OUT/results, the schedule to OUT/schedule.json")
    parser.add_argument("--dry-run", action="store_true", help="only choose and print the schedule")
    parser.add_argument("--check", action="store_true", help="run the smoke config instead (a CPU check of this script)")
    args = parser.parse_args()
    started, device = time.perf_counter(), "cuda" if torch.cuda.is_available() else "cpu"
    probe = json.loads(Path(args.probe).read_text())
    schedule = choose_schedule(probe, args.budget)
    if args.epochs: schedule["epochs"] = args.epochs
    if args.finetune_epochs: schedule["finetune_epochs"] = args.finetune_epochs
    config = full_config(epochs=schedule["epochs"], finetune_epochs=schedule["finetune_epochs"])
    if args.check: config = smoke_config()
    out = Path(args.out)
    schedule.update({"config_hash": config.digest(), "probe": probe, **provenance(device)})
    write_json(out / "schedule.json", schedule)
    print(f"schedule: {schedule['epochs']} epochs per model, {schedule['finetune_epochs']} fine-tuning epochs, "
          f"estimated {schedule['estimated_s']:.0f} s of a {args.budget:.0f} s budget; config {config.digest()}", flush=True)
    if args.dry_run: return
    workspace = Workspace(results=out / "results", runs=Path(args.runs), data_root=args.data, device=device, progress=True)
    for name in EXPERIMENTS:
        summary = reproduce(workspace, config, only=[name])
        print(f"== {name}: {summary[0]['seconds']:.1f} s, at {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
