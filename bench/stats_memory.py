"""Statistics pass: streaming Gram accumulation against capturing every activation.

Both compute the same per-unit, per-subspace Gram matrices of the TSRA VGG-16's post-activation
outputs over real CIFAR-10 training images (`cob_paper.stats.collect_statistics` and its reference
`collect_statistics_by_capture`). Each method runs in its own subprocess; peak memory is the
process's peak RSS counted from just before the pass (CPU, Linux) or max allocated CUDA memory, minus what the model and the images
already took before the pass.

    python bench/stats_memory.py                      # CPU, 2,000 images, full-width VGG-16
    python bench/stats_memory.py --images 10000 --device cuda
Writes <--out>/ (default runs/bench; results/bench is the record) stats_memory-<device>.json with provenance, and prints the ratios.
"""
import argparse, json, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import peak_bytes, reset_peak, run_child, synchronize, write_bench

from cob_paper.data import batches, calibration_indices, find_cifar10, holdout_split, load_cifar10
from cob_paper.models import VGG, tsra_vgg_config
from cob_paper.stats import collect_statistics, collect_statistics_by_capture


def child(args):
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = load_cifar10(find_cifar10(), download=False)
    train_idx, _ = holdout_split(len(data.train_labels), 0)
    index = calibration_indices(train_idx, args.images)
    images = data.train_images[index].to(device)
    del data
    model = VGG(tsra_vgg_config(width_multiplier=args.width)).to(device)
    pass_batches = list(batches(images, batch_size=args.batch_size, device=device))
    reset_peak(device)
    baseline = peak_bytes(device)
    method = collect_statistics if args.method == "streaming" else collect_statistics_by_capture
    start = time.perf_counter()
    stats = method(model, pass_batches)
    synchronize(device)
    seconds = time.perf_counter() - start
    checksum = sum(float(g.trace()) for s in stats for g in s.grams)
    print(json.dumps({"seconds": seconds, "peak_extra_bytes": peak_bytes(device) - baseline, "gram_trace_sum": checksum}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/bench", help="results/bench to change the record")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method")
    args = parser.parse_args()
    if args.child: return child(args)
    rows, started = {}, time.perf_counter()
    for method in ("streaming", "capture"):
        rows[method] = run_child(__file__, ["--child", "--method", method] +
                                 [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k in ("images", "batch_size", "width", "device")])
        print(f"{method:9s} {rows[method]['seconds']:8.2f} s   peak extra memory {rows[method]['peak_extra_bytes'] / 2**20:9.1f} MiB")
    ratios = {"memory capture / streaming": rows["capture"]["peak_extra_bytes"] / max(rows["streaming"]["peak_extra_bytes"], 1),
              "time capture / streaming": rows["capture"]["seconds"] / rows["streaming"]["seconds"]}
    same = abs(rows["capture"]["gram_trace_sum"] - rows["streaming"]["gram_trace_sum"]) <= 1e-8 * abs(rows["capture"]["gram_trace_sum"])
    for k, v in ratios.items(): print(f"{k}: {v:.2f}x")
    print(f"same Gram matrices (trace sum to 1e-8): {same}")
    write_bench(args.out, "stats_memory", torch.device(args.device), {"config": {"images": args.images, "batch_size": args.batch_size,
                "width_multiplier": args.width, "model": "tsra-vgg16", "seed": 0}, "rows": rows, "ratios": ratios, "same_result": same}, started)


if __name__ == "__main__":
    main()
