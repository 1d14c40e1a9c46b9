"""The engine ladder: from the authors' style of training step to this project's fastest, in one process, on the same data.

For the TSRA model and the ReLU control, each rung trains a fresh model (same seed, same batches) for `--steps` timed
steps after `--warmup` untimed ones, then evaluates it:

* `authors` — float32, eager, channels-first, a DataLoader over PIL images with per-image torchvision transforms and 0
  workers, TSRA computed by moving the channel axis last, slicing and concatenating, the loss read back every 10 steps;
* `eager` — `cob_paper.train.train`: data on the device, batched augmentation, bf16 autocast, channels-last and fused
  optimizers on CUDA, no host sync per step;
* `compiled` — the same with `Execution(compile=True)` (`torch.compile` of the model);
* `fused`, `compiled+fused` — the TSRA model built with `fused=True` (one RMSNorm + TSRA module per conv unit; its
  Triton kernel on CUDA when eager), without and with compilation.

Per rung: training and evaluation images/s (steady state), the first step's seconds (compilation included), peak
memory (on CUDA the rung's own: its model, training and evaluation, over what was held before it was built, which is
the data; on a CPU the process's peak resident set), and the largest logit difference from the eager model on the same
weights and batch, in true float32 (TF32 off: a rung is only worth using if it computes the same function). First, the statistics pass (chapter 3) in seconds per 10,000
images, on the TSRA model; then the rungs one at a time, each for both models, `authors` last, the results file
rewritten after each, so that a ladder cut short by a time limit keeps what it measured. Ratios: each rung over
`authors`, and TSRA over the ReLU control per rung.

    python bench/train_throughput.py                        # CPU: width 1/8, batch 128 (minutes: CPU compilation is slow)
    python bench/train_throughput.py --full --synthetic --out $OUT/results/bench      # GPU: full VGG-16, batch 1024
Writes <--out>/ (default runs/bench; results/bench is the record) train_throughput-<cpu|cuda>.json and prints a table.
"""
import argparse, copy, sys, time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import peak_bytes, reset_peak, synchronize, timed, write_bench
from cob_paper.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, batches, find_cifar10, load_cifar10
from cob_paper.models import VGG, relu_vgg_config, tsra_vgg_config
from cob_paper.stats import collect_statistics, full_precision_matmul
from cob_paper.train import Execution, evaluate, relu_recipe, train, tsra_recipe
from cob_paper.tsra import TSRA, logistic_gains

# this project's rungs first, cheapest to measure first; the authors' reference loop last (float32, one image at a time
# through PIL: slow to measure, and no run trains with it)
RUNGS = ("eager", "fused", "compiled", "compiled+fused", "authors")
MODELS = {"tsra": (tsra_vgg_config, tsra_recipe), "relu": (relu_vgg_config, relu_recipe)}


class SlicingTSRA(nn.Module):
    "The authors' way: channel axis moved last, split by slicing, halves scaled, concatenated, moved back."
    def __init__(self, d_U, channel_dim):
        super().__init__()
        self.d_U, self.channel_dim = d_U, channel_dim

    def forward(self, x):
        x = x.movedim(self.channel_dim, -1)
        x_U, x_V = x[..., :self.d_U], x[..., self.d_U:]
        g_U, g_V = logistic_gains(x_U.norm(dim=-1, keepdim=True), x_V.norm(dim=-1, keepdim=True))
        return torch.cat([g_U * x_U, g_V * x_V], dim=-1).movedim(-1, self.channel_dim)


def authors_style(model: VGG) -> VGG:
    "The same network and weights, its TSRAs computed the authors' way."
    model = copy.deepcopy(model)
    for block in list(model.features) + list(model.classifier[:-1]):
        if type(getattr(block, "act", None)) is TSRA: block.act = SlicingTSRA(block.act.subspace_sizes[0], block.act.channel_dim)
    return model


def authors_loader(images, labels, batch_size, train: bool):
    from PIL import Image
    from torchvision import transforms
    steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
    transform = transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    array, targets = images.permute(0, 2, 3, 1).cpu().numpy(), labels.tolist()     # PIL images live on the host, as the authors' did

    class Dataset(torch.utils.data.Dataset):
        def __len__(self): return len(targets)
        def __getitem__(self, i): return transform(Image.fromarray(array[i])), targets[i]
    return torch.utils.data.DataLoader(Dataset(), batch_size=batch_size, shuffle=train, num_workers=0, drop_last=train)


def authors_train(model, data, batch_size, steps, warmup, recipe, device) -> dict:
    if recipe.optimizer == "adamw": optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    else: optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    model.train()
    step, start, first = 0, time.perf_counter(), None
    while step < warmup + steps:
        for x, y in authors_loader(data.train_images, data.train_labels, batch_size, train=True):
            if step == warmup: synchronize(device); start = time.perf_counter()
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step == 1: synchronize(device); first = time.perf_counter() - start
            if step % 10 == 0: loss.item()
            if step == warmup + steps: break
    synchronize(device)
    return {"train_images_per_s": steps * batch_size / (time.perf_counter() - start), "first_step_s": first}


@torch.no_grad()
def authors_evaluate(model, images, labels, device) -> float:
    model.eval()
    correct = sum(int((model(x.to(device)).argmax(1) == y.to(device)).sum()) for x, y in authors_loader(images, labels, 1000, False))
    return correct / len(labels)


def rung_model(name: str, rung: str, width: float, device) -> VGG:
    make_config, _ = MODELS[name]
    torch.manual_seed(0)
    model = VGG(make_config(width_multiplier=width, **({"fused": True} if "fused" in rung else {})))
    return (authors_style(model) if rung == "authors" else model).to(device)


def measure(name: str, rung: str, data, test, args, device) -> dict:
    _, make_recipe = MODELS[name]
    held = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0      # the data, and nothing of this rung's
    model, reference = rung_model(name, rung, args.width, device), rung_model(name, "eager", args.width, device)
    probe = next(batches(test[0][:256], batch_size=256, device=device)).float()
    compiled = "compiled" in rung
    # the same weights, eval mode, true float32 (with TF32 on, correct rungs differed by 6e-5 to 7e-5 on an H100): the eager function?
    with torch.no_grad(), full_precision_matmul():
        check = torch.compile(copy.deepcopy(model)) if compiled else model
        difference = (check.eval()(probe) - reference.eval()(probe)).abs().max().item()
    del check, reference, probe             # the check's copies are not the rung's memory
    reset_peak(device)
    if rung == "authors":
        row = authors_train(model, data, args.batch_size, args.steps, args.warmup, make_recipe(), device)
        eval_seconds, _ = timed(device, lambda: authors_evaluate(model, *test, device))
    else:
        recipe = make_recipe(steps=args.warmup + args.steps, batch_size=args.batch_size, warmup_steps=0)
        history = train(model, data.train_images, data.train_labels, recipe,
                        execution=Execution(log_every=args.warmup, progress=False, compile=compiled))
        # the first interval holds the warm-up; after it, all timed images over all their seconds (a mean of the
        # intervals' rates would count a fast interval as much as a slow one, though it took less time, and read high);
        # each step trains batch_size images, so an interval's seconds are its steps over its rate, times the batch
        spans = [(r["step"] - before["step"], r["images_per_s"]) for before, r in zip(history.records, history.records[1:])]
        row = {"train_images_per_s": sum(steps for steps, _ in spans) / sum(steps / rate for steps, rate in spans),
               "first_step_s": history.first_step_s}
        evaluated = torch.compile(model) if compiled else model
        evaluate(evaluated, *test)                                   # warm-up (and compilation for evaluation)
        eval_seconds, _ = timed(device, lambda: evaluate(evaluated, *test))
    return {"model": name, "rung": rung, **row, "eval_images_per_s": len(test[1]) / eval_seconds,
            "peak_memory_bytes": peak_bytes(device) - held, "max_abs_logit_difference": difference}


def statistics_pass(data, args, device) -> dict:
    model = rung_model("tsra", "eager", args.width, device)
    calibration = list(batches(data.train_images[:args.statistics_images], batch_size=500, device=device))
    collect_statistics(model, calibration[:1])                               # warm-up
    seconds, _ = timed(device, lambda: collect_statistics(model, calibration))
    return {"images": args.statistics_images, "seconds": seconds, "seconds_per_10k_images": seconds * 10_000 / args.statistics_images}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-width VGG-16, batch 1024 (for a GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per rung")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (compilation happens here)")
    parser.add_argument("--models", default="tsra,relu")
    parser.add_argument("--rungs", default=",".join(RUNGS))
    parser.add_argument("--statistics-images", type=int, default=None)
    parser.add_argument("--synthetic", action="store_true", help="random images instead of CIFAR-10 (timing only)")
    parser.add_argument("--out", default="runs/bench", help="results/bench to change the record")
    args = parser.parse_args()
    for option, names, known in (("--rungs", args.rungs, RUNGS), ("--models", args.models, tuple(MODELS))):
        if unknown := [n for n in names.split(",") if n not in known]:     # else measured under a name it is not
            parser.error(f"{option}: unknown {unknown}; choose among {', '.join(known)} (comma-separated).")
    started, device = time.perf_counter(), torch.device(args.device)
    args.width, args.batch_size = (1.0, 1024) if args.full else (1 / 8, 128)
    if args.steps is None: args.steps = 30 if args.full else 20
    if args.warmup is None: args.warmup = 10 if args.full else 5
    if args.statistics_images is None: args.statistics_images = 10_000 if args.full else 2_000
    if args.steps < 1 or args.warmup < 1:
        parser.error(f"--steps ({args.steps}) and --warmup ({args.warmup}) must be at least 1: the first steps compile and warm up.")
    if args.synthetic:        # on a lent GPU before all of CIFAR-10 has arrived: the cost of a step does not depend on the pixels
        g = torch.Generator().manual_seed(0)
        n = args.batch_size * (args.steps + args.warmup + 1)
        cifar = CIFAR10(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g),
                        torch.randint(0, 256, (2000, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(0, 10, (2000,), generator=g))
    else: cifar = load_cifar10(find_cifar10(), download=False)
    data = cifar.subset(train_size=args.batch_size * (args.steps + args.warmup + 1)).to(device)
    test = (cifar.test_images[:2000].to(device), cifar.test_labels[:2000].to(device))
    config = {"width_multiplier": args.width, "batch_size": args.batch_size, "timed_steps": args.steps, "warmup_steps": args.warmup,
              "models": args.models.split(","), "rungs": args.rungs.split(","), "synthetic_data": args.synthetic, "seed": 0,
              "peak_memory": "CUDA: the rung's model, training and evaluation, over what was held before it (the data)"
                             if device.type == "cuda" else "the process's peak resident set"}
    # the statistics pass first and the rungs in order of cost, each for both models, so that a ladder cut short by a
    # time limit (the first call on a lent GPU gives it a couple of minutes) keeps the cheap comparisons of both models
    try: statistics = statistics_pass(data, args, device)
    except Exception as e:                   # recorded, not fatal: the rungs still get measured
        statistics = {"error": f"{type(e).__name__}: {e}"[:500]}
    print(f"statistics pass: {statistics}", flush=True)
    rows = []
    for rung in args.rungs.split(","):
        for name in args.models.split(","):
            if "fused" in rung and name != "tsra": continue
            try: rows.append(measure(name, rung, data, test, args, device))
            except Exception as e:                   # a rung that fails here (no compiler, no kernel) is recorded, not fatal
                rows.append({"model": name, "rung": rung, "error": f"{type(e).__name__}: {e}"[:500]})
            write_bench(args.out, "train_throughput", device, {"config": config | {"partial": True}, "rows": rows,
                                                               "statistics": statistics}, started,
                        quiet=True)          # what has been measured survives a timeout
            r = rows[-1]
            print(f"{name:5s} {rung:15s} " + (r["error"][:100] if "error" in r else
                  f"train {r['train_images_per_s']:9.0f} img/s  eval {r['eval_images_per_s']:9.0f} img/s  first step "
                  f"{r['first_step_s']:6.2f} s  peak {r['peak_memory_bytes'] / 2**20:8.0f} MiB  |dlogit| {r['max_abs_logit_difference']:.1e}"), flush=True)
    ok = {(r["model"], r["rung"]): r for r in rows if "error" not in r}
    ratios = {f"{m}: {rung} / authors (training)": ok[(m, rung)]["train_images_per_s"] / ok[(m, "authors")]["train_images_per_s"]
              for (m, rung) in ok if rung != "authors" and (m, "authors") in ok}
    ratios.update({f"tsra / relu, {rung} (training)": ok[("tsra", rung)]["train_images_per_s"] / ok[("relu", rung)]["train_images_per_s"]
                   for rung in RUNGS if ("tsra", rung) in ok and ("relu", rung) in ok})
    fastest = max((r for (m, _), r in ok.items() if m == "tsra"), key=lambda r: r["train_images_per_s"], default=None)
    if fastest and ("relu", "eager") in ok:
        ratios["tsra fastest rung / relu eager (training)"] = fastest["train_images_per_s"] / ok[("relu", "eager")]["train_images_per_s"]
    for k, v in ratios.items(): print(f"{k}: {v:.2f}x")
    write_bench(args.out, "train_throughput", device, {"config": config, "rows": rows, "ratios": ratios, "statistics": statistics,
                                                       "fastest_tsra_rung": fastest["rung"] if fastest else None}, started)


if __name__ == "__main__":
    main()
