"""Calibration of the training schedule (issue: measure the engine on a GPU and fix the short schedule).

Trains the TSRA model and the ReLU control with the paper's recipes for a short schedule, recording
accuracy on a held-out split of the training set after every epoch (the test set chooses nothing;
the final checkpoint's test accuracy is reported), plus an A/B of bf16 autocast against float32 on
the TSRA model for a few epochs. Writes one JSON with provenance.

    python bench/calibrate_schedule.py --width 0.0625 --train-size 2000 --epochs 1 --ab-epochs 1   # CPU check
    python bench/calibrate_schedule.py --epochs 40 --ab-epochs 5                                    # on a GPU
"""
import argparse, dataclasses, time
from pathlib import Path

import torch

from cob_paper.data import find_shared_cifar10, holdout_split, load_cifar10
from cob_paper.files import provenance, write_json
from cob_paper.models import VGG, relu_vgg_config, tsra_vgg_config
from cob_paper.train import evaluate, relu_recipe, train, tsra_recipe


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=40, help="training length of each model")
    parser.add_argument("--ab-epochs", type=float, default=5, help="length of each arm of the bf16/float32 A/B (0: skip)")
    parser.add_argument("--holdout", type=int, default=5000)
    parser.add_argument("--train-size", type=int, default=None, help="subset of the training set (default: all)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--models", default="tsra,relu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="results/calibration")
    args = parser.parse_args()
    started, device = time.perf_counter(), torch.device(args.device)
    data = load_cifar10(find_shared_cifar10()).subset(args.train_size, None, seed=args.seed).to(device)
    train_idx, holdout_idx = holdout_split(len(data.train_labels), args.holdout, seed=args.seed)
    train_part = (data.train_images[train_idx.to(device)], data.train_labels[train_idx.to(device)])
    holdout = (data.train_images[holdout_idx.to(device)], data.train_labels[holdout_idx.to(device)])
    common = dict(epochs=args.epochs, batch_size=args.batch_size, compile=args.compile, seed=args.seed, log_every=50)
    arms = {"tsra": (tsra_vgg_config, tsra_recipe(**common)), "relu": (relu_vgg_config, relu_recipe(**common))}
    if args.ab_epochs:
        ab = dict(common, epochs=args.ab_epochs)
        arms["tsra_ab_bf16"] = (tsra_vgg_config, tsra_recipe(**ab, bf16=True))
        arms["tsra_ab_float32"] = (tsra_vgg_config, tsra_recipe(**ab, bf16=False))
    wanted = args.models.split(",") + [k for k in arms if k.startswith("tsra_ab")]
    runs = {}
    for name in wanted:
        make_config, recipe = arms[name]
        torch.manual_seed(args.seed)
        model = VGG(make_config(width_multiplier=args.width)).to(device)
        t = time.perf_counter()
        history = train(model, *train_part, recipe, holdout=holdout, description=name)
        runs[name] = {"recipe": dataclasses.asdict(recipe), "holdout_curve": history.holdout,
                      "final_test_accuracy": evaluate(model, data.test_images, data.test_labels, bf16=recipe.bf16),
                      "wall_time_s": time.perf_counter() - t,
                      "images_per_s_median": sorted(r["images_per_s"] for r in history.records)[len(history.records) // 2],
                      "records": history.records}
        best = max(history.holdout, key=lambda h: h["accuracy"])
        print(f"{name}: final test {runs[name]['final_test_accuracy']:.4f}, best held-out {best['accuracy']:.4f} "
              f"at epoch {best['epoch']}, {runs[name]['wall_time_s']:.0f} s", flush=True)
        # rewritten after every run, so that a run cut short by a time limit still leaves what it finished
        result = {"benchmark": "calibrate_schedule", "quick": args.width < 1 or args.train_size is not None,
                  "config": {k: v for k, v in vars(args).items() if k not in ("out", "device")}, "seed": args.seed,
                  "finished_runs": list(runs), "runs": runs, "wall_time_s": time.perf_counter() - started, **provenance(device)}
        path = write_json(Path(args.out) / f"schedule-{device.type}.json", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
