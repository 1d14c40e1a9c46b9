"""The TSRA study (issue 17) inside lent-GPU commands: choose the epochs per model from the probe, then run it stage by stage.

The grid trains 1 + len(TSRA_STUDY_VARIANTS) TSRA models and 1 + len(TSRA_STUDY_CONTROLS) ReLU controls per seed, all at
the same schedule; the fixed-ratio sweeps of the paper's TSRA and of the chosen variant follow. The epochs per model are the most that
the step times measured by `tools/gpu/probe.py` on the same machine say will let all of it finish within `--budget`
seconds for `--seeds` seeds, with the engine that trains longest, chosen as in `reproduce.py` (variants the fused unit
cannot compute train unfused); `--epochs` gives them instead (a second command keeps the first's config so). Fewer
than `MIN_STUDY_EPOCHS` are refused: models that short are too far from trained to compare variants. Each experiment's
results are archived to
`OUT/results.tar` as soon as they are written,
and a model of the grid that a command cut short had finished is reloaded, not retrained, by the next command on the
same warm machine (the workspace stays in `--runs`). The chosen epochs become `STUDY_EPOCHS` afterwards, so that
`cob-paper reproduce --preset tsra_study` names the same config.

    python tools/gpu/study.py --probe .data/probe.json --budget 400 --out $OUT --runs .data/runs     # on the GPU
    python tools/gpu/study.py --probe /tmp/probe.json --budget 60 --out /tmp/study --runs /tmp/study/runs --check   # CPU
"""
import dataclasses, json, math, time
from pathlib import Path

import torch

from cob_paper.experiments import (SEEDS_RUN_EPOCHS, ReproductionConfig, TSRA_STUDY_VARIANTS, Workspace, fusable, reproduce, smoke_config,
                                   tsra_study_config, tsra_study_experiments)
from cob_paper.files import provenance, write_json
from cob_paper.results import seeds_in_words
from cob_paper.train import steps_per_epoch
from reproduce import (FIXED_OVERHEAD_S, engine_settings, export_results, gpu_run_parser, longest, probe_engines,  # tools/gpu/
                       read_ladder, refuse, row_costs, sweep_row_count, timed_at_another_batch, usable_engines)

STAGES = ("unpruned", "grid", "fixed_ratio", "selected")
# the fewest epochs per model worth a study: the record's shortest full-width models (the full_seeds run's) are
# "far from trained"; a variant's effect on models shorter than that says little about the paper's
MIN_STUDY_EPOCHS = SEEDS_RUN_EPOCHS


def too_short(schedule: dict, given: bool) -> str | None:
    "Why the study's epochs are not worth running, or None."
    if schedule["epochs"] >= MIN_STUDY_EPOCHS: return None
    source = "--epochs" if given else f"the {schedule['budget_s']:.0f} s budget's choice"
    return (f"{source}, {schedule['epochs']} epoch(s) per model, is under the {MIN_STUDY_EPOCHS} worth a study (models that short are far from trained); "
            f"give it a budget that fits {MIN_STUDY_EPOCHS} or more (a loan of its own, if need be).")


def choose_epochs(probe: dict, budget_s: float, seeds: int = 1, template: ReproductionConfig | None = None,
                  engine: dict | None = None, fixed_epochs: int | None = None) -> dict:
    "Whole epochs per model that let `seeds` seeds of the study fit `budget_s` with `engine` (at least 1), or `fixed_epochs`; the estimate."
    template, engine = template or tsra_study_config(), engine or probe_engines(probe)[0]
    per_epoch = steps_per_epoch(template.training_images, template.tsra_train.batch_size)   # every recipe's (timed_at_another_batch)
    grid = template.experiments["grid"]
    variants = [{}] + list(grid["variants"].values())        # the paper's TSRA and the grid's variants
    fused = sum(fusable("tsra", v) for v in variants) if engine["fused_tsra"] else 0
    tsra_models, relu_models = len(variants), 1 + len(grid.get("controls", {}))     # the paper's ReLU control and the grid's
    # a variant the fused unit cannot compute trains at the engine's unfused rate
    train_epoch = per_epoch * (fused * engine["step_s"]["tsra"] + (tsra_models - fused) * engine["unfused_tsra_step_s"]
                               + relu_models * engine["step_s"]["relu"])
    compile_s = tsra_models * engine["first_step_s"]["tsra"] + relu_models * engine["first_step_s"]["relu"]
    finetune_step, row_fixed = row_costs(probe, engine["fused_tsra"])
    rows = sweep_row_count(template, ["fixed_ratio"]) + len(template.experiments["selected"]["arms"]) * len(template.experiments["selected"]["strategies"])
    finetune_epochs = template.finetune.epochs
    statistics = 3 * template.calibration_size * probe["merge_check"]["statistics_s_per_image"]   # paper's TSRA, ReLU, chosen
    per_seed_fixed = statistics + compile_s + rows * (row_fixed + finetune_epochs * per_epoch * finetune_step)
    epochs = fixed_epochs or max(1, math.floor(((budget_s - FIXED_OVERHEAD_S) / seeds - per_seed_fixed) / train_epoch))
    return {"epochs": epochs, "seeds": seeds, "estimated_s": FIXED_OVERHEAD_S + seeds * (per_seed_fixed + epochs * train_epoch),
            "budget_s": budget_s, "engine": engine,
            "inputs": {"steps_per_epoch": per_epoch, "models_per_seed": tsra_models + relu_models, "fused_models_per_seed": fused,
                       "rows_per_seed": rows, "train_epoch_s": train_epoch, "statistics_s": statistics}}


def main():
    preset_seeds = tsra_study_config().seeds
    parser = gpu_run_parser(__doc__, len(preset_seeds), "study_schedule.json")
    parser.add_argument("--epochs", type=int, help="override the chosen epochs per model (e.g. to resume with the same config)")
    args = parser.parse_args()
    started, device = time.perf_counter(), "cuda" if torch.cuda.is_available() else "cpu"
    probe = json.loads(Path(args.probe).read_text())
    ladder = read_ladder(args.ladder)
    seeds = list(range(args.seeds))
    if seeds != preset_seeds and not args.check:   # the preset names the results: other seeds would not be the record's config
        raise SystemExit(f"the tsra_study preset runs seeds {preset_seeds}; change its default seeds in nbs/07_experiments.ipynb "
                         f"first, then run this with --seeds {args.seeds}.")
    template = tsra_study_config(seeds=seeds)
    if not args.check and (why := timed_at_another_batch(probe, ladder, template)): parser.error(why)
    schedule = longest([choose_epochs(probe, args.budget, args.seeds, template, engine=e, fixed_epochs=args.epochs)
                        for e in usable_engines(probe, ladder)])
    if why := too_short(schedule, args.epochs is not None): refuse(parser, args, why)
    config = tsra_study_config(epochs=schedule["epochs"], seeds=seeds)
    if args.check:
        two = dict(list(TSRA_STUDY_VARIANTS.items())[:2])
        config = smoke_config(seeds=seeds, holdout=200, experiments=tsra_study_experiments(seeds, (0.5,), two))
    config = dataclasses.replace(config, settings=engine_settings(config, schedule["engine"]))
    out = Path(args.out)
    schedule.update({"digests": {n: config.digest(n) for n in config.experiments}, "probe": probe, **provenance(device)})
    write_json(out / "study_schedule.json", schedule)
    print(f"study: {schedule['epochs']} epochs per model, {seeds_in_words(args.seeds)}, engine {schedule['engine']['rung']}, estimated {schedule['estimated_s']:.0f} s "
          f"of a {args.budget:.0f} s budget", flush=True)
    if schedule["estimated_s"] > args.budget:
        print(f"WARNING: {schedule['epochs']} epochs are estimated at {schedule['estimated_s']:.0f} s, over the {args.budget:.0f} s budget; "
              f"the study goes stage by stage, and the next command with --epochs {schedule['epochs']} reloads the models this one finished.", flush=True)
    if args.dry_run: return
    workspace = Workspace(Path(args.runs), args.data, device)
    for name in STAGES:
        reproduce(workspace, config, only=[name])
        export_results(workspace.results.root, out)
        print(f"== {name} done at {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
