"""Training throughput: the authors' style of training step against this project's engine.

(a) authors' style: float32, eager, channels-first, a DataLoader over PIL images with per-image
    torchvision transforms and 0 workers, TSRA computed by moving the channel axis last, slicing
    and concatenating, the loss read back every 10 steps;
(b) this engine: `cob_paper.train.train` (data on the device, batched augmentation, bf16 autocast,
    channels-last and fused optimizers on CUDA, optional torch.compile).

Each configuration runs in its own subprocess so that peak memory (CUDA: max allocated; CPU: peak
RSS of the process) is its own. On a CPU the model is width-reduced; on a GPU it is the full VGG-16.

    python bench/train_throughput.py                 # CPU: width 1/8, batch 128
    python bench/train_throughput.py --full          # GPU: full VGG-16, batch 1024, also with compile
Writes results/bench/train_throughput-<cpu|cuda>.json with provenance, and prints a table.
"""
import argparse, dataclasses, json, resource, subprocess, sys, time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cob_paper.data import CIFAR10_MEAN, CIFAR10_STD, find_shared_cifar10, load_cifar10
from cob_paper.files import provenance, write_json
from cob_paper.models import VGG, relu_vgg_config, tsra_vgg_config
from cob_paper.train import relu_recipe, train, tsra_recipe
from cob_paper.tsra import TSRA, logistic_gains


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


def authors_style_model(config):
    model = VGG(config)
    for block in list(model.features) + list(model.classifier[:-1]):
        if isinstance(getattr(block, "act", None), TSRA):
            block.act = SlicingTSRA(block.act.subspace_sizes[0], block.act.channel_dim)
    return model


def run_authors_style(model, data, batch_size, steps, warmup, device, recipe):
    from PIL import Image
    from torchvision import transforms
    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    images = data.train_images.permute(0, 2, 3, 1).numpy()
    labels = data.train_labels.tolist()

    class Dataset(torch.utils.data.Dataset):
        def __len__(self): return len(labels)
        def __getitem__(self, i): return transform(Image.fromarray(images[i])), labels[i]

    loader = torch.utils.data.DataLoader(Dataset(), batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True)
    if recipe.optimizer == "adamw": optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    else: optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    model.train()
    step, start = 0, None
    while step < warmup + steps:
        for x, y in loader:
            if step == warmup:
                if device.type == "cuda": torch.cuda.synchronize()
                start = time.perf_counter()
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step % 10 == 0: loss.item()
            if step == warmup + steps: break
    if device.type == "cuda": torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def run_engine(model, data, batch_size, steps, warmup, recipe, compile):
    config = dataclasses.replace(recipe, steps=warmup + steps, epochs=None, batch_size=batch_size,
                                 log_every=warmup, compile=compile, warmup_steps=0)
    history = train(model, data.train_images, data.train_labels, config, progress=False)
    timed = history.records[1:]   # the first record holds the warm-up (and compilation)
    return sum(r["images_per_s"] for r in timed) / len(timed)


def child(args):
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = load_cifar10(find_shared_cifar10(), download=False)
    data = data.subset(train_size=max(args.batch_size * (args.steps + args.warmup + 1), 2048))
    maker = tsra_vgg_config if args.model == "tsra" else relu_vgg_config
    recipe = tsra_recipe() if args.model == "tsra" else relu_recipe()
    config = maker(width_multiplier=args.width)
    if device.type == "cuda": torch.cuda.reset_peak_memory_stats()
    if args.config == "authors":
        model = authors_style_model(config).to(device)
        ips = run_authors_style(model, data, args.batch_size, args.steps, args.warmup, device, recipe)
    else:
        model = VGG(config).to(device)
        ips = run_engine(model, data.to(device), args.batch_size, args.steps, args.warmup, recipe, args.config == "engine+compile")
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"images_per_s": ips, "peak_memory_bytes": peak, "peak_memory_kind":
                      "CUDA max allocated" if device.type == "cuda" else "process peak RSS (includes the data set)"}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-width VGG-16, batch 1024 (for a GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--models", default="tsra,relu")
    parser.add_argument("--out", default="results/bench")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config"); parser.add_argument("--model")
    parser.add_argument("--width", type=float); parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()
    if args.child: return child(args)

    width, batch = (1.0, 1024) if args.full else (1 / 8, 128)
    steps = args.steps or (30 if args.full else 10)
    warmup = args.warmup or (10 if args.full else 3)
    configs = ["authors", "engine"] + (["engine+compile"] if args.device.startswith("cuda") else [])
    rows, started = [], time.perf_counter()
    for model in args.models.split(","):
        for config in configs:
            cmd = [sys.executable, __file__, "--child", "--device", args.device, "--config", config, "--model", model,
                   "--width", str(width), "--batch-size", str(batch), "--steps", str(steps), "--warmup", str(warmup)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr); rows.append({"model": model, "config": config, "error": out.stderr[-500:]}); continue
            rows.append({"model": model, "config": config, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(f"{model:5s} {config:15s} {rows[-1]['images_per_s']:10.1f} img/s   peak {rows[-1]['peak_memory_bytes'] / 2**20:9.1f} MiB", flush=True)
    ratios = {}
    for model in args.models.split(","):
        by = {r["config"]: r for r in rows if r["model"] == model and "error" not in r}
        for config in configs[1:]:
            if config in by and "authors" in by:
                ratios[f"{model}: {config} / authors"] = by[config]["images_per_s"] / by["authors"]["images_per_s"]
    for k, v in ratios.items(): print(f"{k}: {v:.2f}x")
    device = torch.device(args.device)
    result = {"benchmark": "train_throughput", "quick": not args.full,
              "config": {"width_multiplier": width, "batch_size": batch, "timed_steps": steps, "warmup_steps": warmup,
                         "models": args.models.split(","), "configurations": configs, "seed": 0},
              "rows": rows, "ratios": ratios, "wall_time_s": time.perf_counter() - started, **provenance(device)}
    path = write_json(Path(args.out) / f"train_throughput-{device.type}{'' if args.full else '-quick'}.json", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
