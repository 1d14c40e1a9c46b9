"""First call on a lent GPU: check the engine's CUDA paths and time its steps, to size the full run.

Synthetic uint8 images (this measures time and mechanics, not accuracy), full width, batch 1024:
* the fused RMSNorm + TSRA unit against the reference on this machine, forward and backward (`fused_unit_check`);
* training steps of the TSRA model, the ReLU control and, if that check passed, the TSRA model built with the fused unit;
* on the TSRA model, merging the change of basis, checked to leave the function unchanged (float32);
* a sweep row the way the sweeps run it (prune a copy to two parameter targets, evaluate, fine-tune, evaluate), at two
  lengths, so that a row's fixed cost and its cost per step can be told apart; again on the fused model, if there is one,
  since a run that trains with the fused unit fine-tunes fused models.
`tools/gpu/reproduce.py` and `study.py` read the JSON to choose the engine and the schedule.

    python tools/gpu/probe.py --out probe.json                              # on the GPU (about 40 s)
    python tools/gpu/probe.py --device cpu --width 0.0625 --batch-size 64 --out /tmp/probe.json   # CPU check
"""
import argparse, copy, sys, time
from pathlib import Path

import torch
import torch.nn as nn

from cob_paper.cob import ChannelRMSNorm
from cob_paper.data import batches
from cob_paper.files import provenance, write_json
from cob_paper.fused import HAS_TRITON, FusedRMSNormTSRA
from cob_paper.models import VGG, count_parameters, relu_vgg_config, tsra_vgg_config
from cob_paper.prune import ParameterTarget, importance_after_rotation, prune
from cob_paper.speed import timed
from cob_paper.train import Execution, evaluate, finetune_recipe, relu_recipe, train, tsra_recipe
from cob_paper.tsra import TSRA

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from fused_unit import forward_backward, forward_only       # bench/fused_unit.py: how the unit is compared with the reference
from _harness import peak_bytes, reset_peak                 # bench/_harness.py: peak memory per measurement


def sweep_row_times(model, importance, images, labels, common, quiet, device) -> list[dict]:
    "A sweep row (prune a copy, evaluate, fine-tune, evaluate) timed at two targets and two lengths, and its fixed and per-step cost."
    rows = []
    for target in (0.3, 0.8):
        # far enough apart that the per-step cost is not lost in the noise of a row's fixed cost
        for steps in (10, 50):
            def row():
                pruned = copy.deepcopy(model)
                prune(pruned, importance, ParameterTarget(target))
                evaluate(pruned, images, labels)
                train(pruned, images, labels, finetune_recipe(steps=steps, **common), execution=quiet)
                return evaluate(pruned, images, labels)
            seconds, _ = timed(device, row)
            rows.append({"target": target, "finetune_steps": steps, "row_s": seconds})
    for target in (0.3, 0.8):
        short, long = [r for r in rows if r["target"] == target]
        per_step = (long["row_s"] - short["row_s"]) / (long["finetune_steps"] - short["finetune_steps"])
        rows.append({"target": target, "finetune_step_s": per_step, "row_fixed_s": short["row_s"] - per_step * short["finetune_steps"]})
    return rows


def fused_unit_check(device: torch.device) -> dict:
    """The fused RMSNorm + TSRA unit (its Triton kernel on CUDA) against the unfused reference on this machine: output and
    input gradient, in float32 and bf16, channels-last (the layout training uses), measured the way bench/fused_unit.py
    measures them. `reproduce.py` trains with the fused unit only if this passes here, since the ladder's own check
    compares forward outputs only."""
    reference = nn.Sequential(ChannelRMSNorm(), TSRA((64, 64))).to(device)
    fused = FusedRMSNormTSRA((64, 64)).to(device)           # backend "auto": the Triton kernel on CUDA, as training uses it
    check = {"backend_available": bool(HAS_TRITON and device.type == "cuda")}
    for dtype, tolerance in ((torch.float32, 1e-4), (torch.bfloat16, 5e-2)):
        x = torch.randn(64, 128, 16, 16, generator=torch.Generator().manual_seed(1)).to(device, dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).to(device, dtype)
        # the reference in float32 on the same values: what remains is the fused unit's own rounding
        difference = lambda measure: (measure(fused, x, grad).float() - measure(reference, x.float(), grad.float())).abs().max().item()
        name = str(dtype).removeprefix("torch.")
        check[name] = {"max_abs_output_difference": difference(lambda unit, x, grad: forward_only(unit, x)),
                       "max_abs_gradient_difference": difference(forward_backward), "tolerance": tolerance}
        check[name]["ok"] = max(check[name]["max_abs_output_difference"], check[name]["max_abs_gradient_difference"]) <= tolerance
    check["ok"] = all(check[n]["ok"] for n in ("float32", "bfloat16"))
    return check


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    parser.add_argument("--out", default="probe.json")
    args = parser.parse_args()
    device, started = torch.device(args.device), time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    n = args.batch_size * 8
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator).to(device)
    labels = torch.randint(0, 10, (n,), generator=generator).to(device)
    steps_per_epoch = len(labels) // args.batch_size
    common = dict(batch_size=args.batch_size)
    quiet = Execution(log_every=10_000, progress=False)
    result = {"benchmark": "gpu_probe", "synthetic_data": True, "config": vars(args), "steps_per_epoch_here": steps_per_epoch}

    try: result["fused_check"] = fused_unit_check(device)
    except Exception as e:          # a kernel that fails here is a finding, and the run trains without it
        result["fused_check"] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
    print("fused", result["fused_check"], flush=True)

    models = {}
    arms = [("tsra", tsra_vgg_config, tsra_recipe, {}), ("relu", relu_vgg_config, relu_recipe, {})]
    if result["fused_check"]["ok"]: arms.append(("tsra_fused", tsra_vgg_config, tsra_recipe, {"fused": True}))
    for arm, make_config, recipe, fused in arms:
        torch.manual_seed(0)
        if device.type == "cuda":     # this model's own peak: not the largest so far, nor the earlier models still held
            reset_peak(device); held = torch.cuda.memory_allocated(device)
        model = VGG(make_config(width_multiplier=args.width, **fused)).to(device)
        warm, _ = timed(device, lambda: train(model, images, labels, recipe(steps=5, **common), execution=quiet))
        seconds, _ = timed(device, lambda: train(model, images, labels, recipe(steps=args.steps, **common), execution=quiet))
        eval_seconds, _ = timed(device, lambda: evaluate(model, images, labels))
        result[arm] = {"first_5_steps_s": warm, "step_s": seconds / args.steps, "images_per_s": args.steps * args.batch_size / seconds,
                       "evaluate_s_per_image": eval_seconds / n, "parameters": count_parameters(model)}
        if device.type == "cuda": result[arm]["peak_memory_bytes"] = peak_bytes(device) - held
        models[arm] = model
        print(arm, {k: round(v, 5) if isinstance(v, float) else v for k, v in result[arm].items()}, flush=True)

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False   # the check compares in true float32
    model = models["tsra"].float().eval()
    calibration = list(batches(images[:2 * 1000], batch_size=1000, device=device))
    probe_batch = calibration[0][:256].contiguous(memory_format=torch.channels_last) if device.type == "cuda" else calibration[0][:256]
    with torch.no_grad(): before = model(probe_batch)
    stats_seconds, importance = timed(device, lambda: importance_after_rotation(model, calibration, rotate=True))
    with torch.no_grad(): after = model(probe_batch)
    result["merge_check"] = {"max_abs_logit_change": (after - before).abs().max().item(),
                             "max_abs_logit": before.abs().max().item(), "statistics_s_per_image": stats_seconds / 2000}
    print("merge", result["merge_check"], flush=True)

    result["finetune_rows"] = sweep_row_times(model, importance, images, labels, common, quiet, device)
    if "tsra_fused" in models:     # the run fine-tunes pruned copies of fused models when it trains with the fused unit
        fused = models["tsra_fused"].float().eval()
        fused_importance = importance_after_rotation(fused, calibration, rotate=True)
        result["finetune_rows_fused"] = sweep_row_times(fused, fused_importance, images, labels, common, quiet, device)
    print("rows", {k: result[k] for k in ("finetune_rows", "finetune_rows_fused") if k in result}, flush=True)
    result.update(provenance(device))
    result["wall_time_s"] = time.perf_counter() - started
    print(f"wrote {write_json(Path(args.out), result)} in {result['wall_time_s']:.1f} s")


if __name__ == "__main__":
    main()
