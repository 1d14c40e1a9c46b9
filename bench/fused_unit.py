"""The fused RMSNorm + TSRA unit against the reference pair, forward + backward and forward alone.

The reference is `TSRA(ChannelRMSNorm(x))`, the two modules of chapters 0 and 1; the fused unit is
`cob_paper.fused.FusedRMSNormTSRA` on its PyTorch path, and on CUDA also on its Triton kernel. All
run on the same input, in the plain (N, C, H, W) layout and in channels_last. The units are timed
round-robin (one call of each in turn, repeated) so that a busy machine slows them alike; medians
are reported. "forward" is the statistics pass's case (no autograd). With --compile, each unit is
also timed under torch.compile, with the compile time reported separately.

On a CPU the default is one thread: on a small shared machine, OpenMP hand-offs between busy cores
cost milliseconds per operation and swamp what is measured (--threads 0 keeps torch's default).

    python bench/fused_unit.py                      # CPU: N=128, C=64, 16x16, float32, under a minute
    python bench/fused_unit.py --compile            # also torch.compile of each (minutes on a CPU)
    python bench/fused_unit.py --device cuda --batch 1024 --dtype bfloat16 --compile
Writes <--out>/ (default runs/bench; results/bench is the record) fused_unit-<device>.json with provenance, and prints the ratios.
"""
import argparse, statistics, sys, time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import timed, write_bench

from cob_paper.cob import ChannelRMSNorm
from cob_paper.fused import HAS_TRITON, FusedRMSNormTSRA
from cob_paper.tsra import TSRA


def forward_backward(unit, x, grad_y):
    leaf = x.detach().requires_grad_()
    unit(leaf).backward(grad_y)
    return leaf.grad


def forward_only(unit, x):
    with torch.no_grad(): return unit(x)


def units(split, device, with_compile):
    "Name -> unit. A compiled unit compiles on its first call, which `measure` times separately."
    reference = nn.Sequential(ChannelRMSNorm(), TSRA(split)).to(device)
    found = {"reference": reference, "fused-torch": FusedRMSNormTSRA(split, backend="torch").to(device)}
    if device.type == "cuda" and HAS_TRITON: found["fused-triton"] = FusedRMSNormTSRA(split, backend="triton").to(device)
    if with_compile:
        found["reference-compiled"] = torch.compile(reference, fullgraph=True)
        found["fused-compiled"] = torch.compile(FusedRMSNormTSRA(split, backend="auto").to(device), fullgraph=True)
    return found


def measure(found, x, grad_y, repeats, device):
    rows = {name: {} for name in found}
    for name, unit in found.items():   # first calls: warm-up, and for compiled units the compile (training and no-grad graphs)
        first, _ = timed(device, lambda: (forward_backward(unit, x, grad_y), forward_only(unit, x)))
        if name.endswith("compiled"): rows[name]["compile_s"] = first
        for _ in range(2): forward_backward(unit, x, grad_y); forward_only(unit, x)
    times = {name: {"forward_backward": [], "forward": []} for name in found}
    for _ in range(repeats):
        for name, unit in found.items():
            times[name]["forward_backward"].append(timed(device, lambda: forward_backward(unit, x, grad_y))[0])
            times[name]["forward"].append(timed(device, lambda: forward_only(unit, x))[0])
    for name in found:
        for what, values in times[name].items(): rows[name][f"{what}_ms"] = 1e3 * statistics.median(values)
    reference_y, reference_grad = forward_only(found["reference"], x).float(), forward_backward(found["reference"], x, grad_y).float()
    for name, unit in found.items():
        rows[name]["max_abs_difference"] = {
            "output": (forward_only(unit, x).float() - reference_y).abs().max().item(),
            "input_gradient": (forward_backward(unit, x, grad_y).float() - reference_grad).abs().max().item()}
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--split", type=int, default=None, help="d_U (default channels // 2)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads; 0 keeps torch's default")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/bench", help="results/bench to change the record")
    args = parser.parse_args()
    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cpu" and args.threads > 0: torch.set_num_threads(args.threads)
    d_U = args.channels // 2 if args.split is None else args.split
    split = (d_U, args.channels - d_U)
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch, args.channels, args.size, args.size)
    x = torch.randn(shape, generator=generator).to(device, getattr(torch, args.dtype))
    grad_y = torch.randn(shape, generator=generator).to(device, x.dtype)

    layouts = {}
    for layout, memory_format in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        found = units(split, device, args.compile)
        layouts[layout] = measure(found, x.contiguous(memory_format=memory_format),
                                  grad_y.contiguous(memory_format=memory_format), args.repeats, device)
        for name, row in layouts[layout].items():
            compile_note = f"   compile {row['compile_s']:6.1f} s" if "compile_s" in row else ""
            print(f"{layout:13s} {name:18s} forward+backward {row['forward_backward_ms']:8.2f} ms   "
                  f"forward {row['forward_ms']:8.2f} ms{compile_note}")
    ratios = {}
    for layout, rows in layouts.items():
        for what in ("forward_backward", "forward"):
            for name in rows:
                if name != "reference":
                    ratios[f"{layout} {what}: reference / {name}"] = rows["reference"][f"{what}_ms"] / rows[name][f"{what}_ms"]
            if "fused-compiled" in rows:
                ratios[f"{layout} {what}: reference-compiled / fused-compiled"] = \
                    rows["reference-compiled"][f"{what}_ms"] / rows["fused-compiled"][f"{what}_ms"]
    for k, v in ratios.items(): print(f"{k}: {v:.2f}x")
    write_bench(args.out, "fused_unit", device, {
        "config": {"batch": args.batch, "channels": args.channels, "size": args.size, "split": list(split), "dtype": args.dtype,
                   "repeats": args.repeats, "compile": args.compile, "threads": torch.get_num_threads() if device.type == "cpu" else None,
                   "seed": 0},
        "rows": layouts, "ratios": ratios}, started)


if __name__ == "__main__":
    main()
