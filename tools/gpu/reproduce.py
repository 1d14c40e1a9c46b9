"""The full reproduction inside one lent-GPU command: choose the engine and the schedule, then run it, seed by seed.

A lent GPU gives a session 15 minutes all told and 10 per command, and trained weights are too large to bring back,
so every experiment runs in one command. For each engine that may train the models (the engine ladder's usable rungs,
`--ladder`, else those the probe timed: eager, and the fused unit where the probe checked it), the training length
(epochs per model, the same for both) and the fine-tuning length are the longest that the step times measured by
`tools/gpu/probe.py` on the same machine say will let every seed of the `full` preset's paper experiments finish within
`--budget` seconds (several seeds at a shorter schedule are preferred to one seed at a longer one); the engine that
trains longest is used. `--schedule-of PRESET` with `--seed-ids` takes that preset's schedule instead, for those seeds:
a session adds seeds to a run of the record (`--only` runs some of its experiments, e.g. `beyond` on models trained
earlier in `--runs`). The choice, the estimate and its inputs go to `schedule.json`; a plan estimated over `--limit`
(the seconds the command has) is refused before anything trains. The run then goes seed by seed, experiment by
experiment, archiving every results file to `OUT/results.tar` as each experiment ends, so a run cut short still leaves
what it finished; this project's experiments (`beyond`, `toolkit_on_tsra`, then `iterative`) run last, each for as many seeds as the time
up to `--limit` allows. A schedule chosen here becomes `FULL_EPOCHS`/`FULL_FINETUNE_EPOCHS` (or the `full_seeds` preset's
`SEEDS_RUN_*`) afterwards, so that a preset names the same config.

    python tools/gpu/reproduce.py --probe probe.json --budget 450 --out $OUT --runs .data/runs   # on the GPU
    python tools/gpu/reproduce.py --probe /tmp/probe.json --budget 60 --out /tmp/check --runs /tmp/check/runs --check   # CPU
"""
import argparse, dataclasses, json, math, os, tarfile, time
from pathlib import Path

import torch

from cob_paper.experiments import ARMS, PRESETS, RunSettings, Workspace, full_config, paper_experiments, reproduce, smoke_config
from cob_paper.files import provenance, write_json
from cob_paper.train import steps_per_epoch

# (fine-tuning epochs, fewest training epochs worth taking with it), most fine-tuning first
CHOICES = ((3, 60), (2, 30), (1, 15))
MAX_EPOCHS, EPOCH_GRANULARITY, FIXED_OVERHEAD_S = 100, 5, 25.0
COMMAND_LIMIT_S = 600       # the longest command a lent GPU runs: the limit of a plan when no --limit is given
PAPER_EXPERIMENTS = tuple(paper_experiments())     # the paper's experiments of the full preset; the others (beyond, ...) are this project's


def sweep_row_count(config, names=PAPER_EXPERIMENTS) -> int:
    """Rows per seed of the sweeps among `names` (arms x strategies), an arm in steps counted once per step: each step prunes
    (and, for CoB, passes over the calibration images) again, which the probe did not time (on the safe side: the steps share
    one fine-tuning)."""
    specs = [config.experiments[n] for n in names if config.experiments[n]["kind"] == "sweep"]
    return sum(ARMS[arm].steps * len(s["strategies"]) for s in specs for arm in s["arms"])


def row_costs(probe: dict, fused: bool = False) -> tuple[float, float]:
    "Seconds per fine-tuning step of a pruned model, and a sweep row's fixed seconds (prune, evaluate twice), from the probe."
    timed_rows = probe.get("finetune_rows_fused") if fused else None     # rows of fused models, where the probe timed them
    fits = [r for r in timed_rows or probe["finetune_rows"] if "finetune_step_s" in r]
    if not fits: raise ValueError("the probe has no fine-tuning rows timed at two lengths; run tools/gpu/probe.py again.")
    # the dearest row's costs, not the mean: the threshold table's rows remove little, so they fine-tune large models
    return max(max(r["finetune_step_s"] for r in fits), 0.0), max(max(r["row_fixed_s"] for r in fits), 0.0)


LOGIT_TOLERANCE = 1e-4      # float32 logits of the same weights: a rung that differs by more computes another function


def _engine(rung: str, compile: bool, fused: bool, step_s: dict, unfused_tsra_step_s: float, first_step_s: dict) -> dict:
    "How the run trains (`rung`), and the seconds per training step of each model that way."
    return {"rung": rung, "compile": compile, "fused_tsra": fused, "step_s": step_s,
            "unfused_tsra_step_s": unfused_tsra_step_s,    # a TSRA variant the fused unit cannot compute (the study's)
            "first_step_s": first_step_s}


def probe_engines(probe: dict) -> list[dict]:
    "The engines the probe timed: eager, and fused where the probe's check of the fused unit passed and it timed it."
    tsra, relu, none = probe["tsra"]["step_s"], probe["relu"]["step_s"], {"tsra": 0.0, "relu": 0.0}
    engines = [_engine("eager (probe)", False, False, {"tsra": tsra, "relu": relu}, tsra, none)]
    if "tsra_fused" in probe and probe.get("fused_check", {}).get("ok"):
        engines.append(_engine("fused (probe)", False, True, {"tsra": probe["tsra_fused"]["step_s"], "relu": relu}, tsra, none))
    return engines


def ladder_engines(ladder: dict, probe: dict) -> list[dict]:
    """The rungs of the engine ladder (bench/train_throughput.py, same machine) usable for the run: measured for both
    models without error, the same function as the eager model (`LOGIT_TOLERANCE`), and, for the fused unit, its forward
    and backward checked against the reference on this machine by the probe (`fused_check`). A rung's name says what it
    does, as in the ladder: "compiled" compiles, "fused" builds TSRA models with the fused unit (the ReLU control, which
    has none, runs the same rung without it); "authors" is the reference loop, not an engine of this project."""
    rows = {(r["model"], r["rung"]): r for r in ladder["rows"] if "error" not in r}
    batch, engines = ladder["config"]["batch_size"], []
    for rung in dict.fromkeys(r["rung"] for r in ladder["rows"] if r["rung"] != "authors"):
        compile, fused = "compiled" in rung, "fused" in rung
        unfused = "compiled" if compile else "eager"
        measured = {"tsra": rows.get(("tsra", rung)), "relu": rows.get(("relu", unfused))}
        if not all(measured.values()) or max(r["max_abs_logit_difference"] for r in measured.values()) > LOGIT_TOLERANCE: continue
        if fused and not probe.get("fused_check", {}).get("ok"): continue
        unfused_tsra = rows.get(("tsra", unfused))
        engines.append(_engine(rung, compile, fused, {m: batch / r["train_images_per_s"] for m, r in measured.items()},
                               batch / unfused_tsra["train_images_per_s"] if unfused_tsra else probe["tsra"]["step_s"],
                               # a compiled model compiles again for each fresh model: its first step is paid per model and seed
                               {m: r["first_step_s"] if compile else 0.0 for m, r in measured.items()}))
    return engines


def choose_schedule(probe: dict, budget_s: float, seeds: int = 3, engine: dict | None = None,
                    fixed: tuple[float, float] | None = None, names=PAPER_EXPERIMENTS) -> dict:
    """Epochs per model and fine-tuning epochs that let `seeds` seeds of the experiments `names` (the paper's) fit
    `budget_s` with `engine`; or, given `fixed` (epochs, fine-tuning epochs), the estimate of that schedule. Without
    "unpruned" among `names`, the models exist already: nothing trains, so only `fixed` can name them."""
    engine = engine or probe_engines(probe)[0]
    trains = "unpruned" in names
    if not trains and not fixed: raise ValueError(f"experiments {list(names)} train no models: give the schedule of the models they use.")
    template = full_config()
    per_epoch = steps_per_epoch(template.training_images, template.tsra_train.batch_size)   # every recipe's (timed_at_another_batch)
    rows = sweep_row_count(template, names)
    finetune_step, row_fixed = row_costs(probe, engine["fused_tsra"])
    train_epoch = per_epoch * sum(engine["step_s"].values()) if trains else 0.0
    statistics = 2 * template.calibration_size * probe["merge_check"]["statistics_s_per_image"]     # one pass per model and seed
    compiling = sum(engine["first_step_s"].values()) if trains else 0.0
    def fixed_per_seed(finetune_epochs):
        return statistics + compiling + rows * (row_fixed + finetune_epochs * per_epoch * finetune_step)
    if fixed: epochs, finetune_epochs = fixed
    else:
        for finetune_epochs, fewest in CHOICES:
            epochs = ((budget_s - FIXED_OVERHEAD_S) / seeds - fixed_per_seed(finetune_epochs)) / train_epoch
            epochs = min(MAX_EPOCHS, EPOCH_GRANULARITY * math.floor(epochs / EPOCH_GRANULARITY))
            if epochs >= fewest: break
        epochs = max(epochs, 5)
    per_seed = fixed_per_seed(finetune_epochs) + epochs * train_epoch
    return {"epochs": epochs, "finetune_epochs": finetune_epochs, "seeds": seeds, "estimated_s": FIXED_OVERHEAD_S + seeds * per_seed,
            "budget_s": budget_s, "engine": engine,
            "inputs": {"steps_per_epoch": per_epoch, "rows_per_seed": rows, "train_epoch_s": train_epoch,
                       "finetune_step_s": finetune_step, "row_fixed_s": row_fixed, "statistics_s": statistics}}


def read_ladder(path: str | None) -> dict | None:
    "The engine ladder's results file, if one was given and the first call wrote it (a ladder may not have run)."
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else None


RECIPES = ("tsra_train", "relu_train", "finetune")    # what a run trains; the estimates time one batch size for all three


def timed_at_another_batch(probe: dict, ladder: dict | None, template) -> str | None:
    """Why the probe's or the ladder's seconds per step are not the run's, or None: they timed other batches than
    `template` trains, or its recipes train batches of different sizes (the estimates take one size for all of them)."""
    trained = {recipe: getattr(template, recipe).batch_size for recipe in RECIPES}
    if len(set(trained.values())) > 1:
        sizes = ", ".join(f"{recipe} {size}" for recipe, size in trained.items())
        return (f"the run's recipes train batches of different sizes ({sizes}), but the estimate times one size for all; "
                f"give them one batch size, or time each size.")
    batch = trained["tsra_train"]
    timed = {"the probe": probe["config"]["batch_size"], **({"the ladder": ladder["config"]["batch_size"]} if ladder else {})}
    wrong = [f"{name} timed batches of {size}" for name, size in timed.items() if size != batch]
    return (f"{' and '.join(wrong)}, but the run trains batches of {batch}, so the estimate would not be the run's; time them "
            f"again at {batch} (probe.py --batch-size {batch}; the ladder's --full).") if wrong else None


def usable_engines(probe: dict, ladder: dict | None) -> list[dict]:
    "The ladder's usable rungs, else the engines the probe timed."
    return (ladder_engines(ladder, probe) if ladder else []) or probe_engines(probe)


def longest(schedules: list[dict]) -> dict:
    "The schedule (one per engine) that trains longest, then fine-tunes longest, then ends soonest; with what was considered."
    best = max(schedules, key=lambda s: (s["epochs"], s.get("finetune_epochs", 0), -s["estimated_s"]))
    best["engines_considered"] = {s["engine"]["rung"]: {k: s[k] for k in ("epochs", "finetune_epochs", "estimated_s") if k in s}
                                  for s in schedules}
    return best


def choose_engine_and_schedule(probe: dict, budget_s: float, seeds: int, ladder: dict | None = None,
                               fixed: tuple[float, float] | None = None, names=PAPER_EXPERIMENTS) -> dict:
    "The schedule of the usable engine (`usable_engines`) that trains longest in the budget (or with `fixed`), then ends soonest."
    return longest([choose_schedule(probe, budget_s, seeds, engine=e, fixed=fixed, names=names) for e in usable_engines(probe, ladder)])


def over_the_limit(schedule: dict, limit_s: float) -> str | None:
    "Why a plan cannot finish in the `limit_s` seconds its command has, or None: its estimate is over them."
    if schedule["estimated_s"] <= limit_s: return None
    return (f"the plan ({schedule['epochs']} epochs per model, {schedule['finetune_epochs']} fine-tuning epochs, "
            f"{schedule['seeds']} seed(s), engine {schedule['engine']['rung']}) is estimated at {schedule['estimated_s']:.0f} s, "
            f"over the {limit_s:.0f} s the command has (--limit, else {COMMAND_LIMIT_S} s): it would be stopped mid-run. "
            f"Run fewer seeds (one --seed-ids), a shorter schedule (--schedule-of full_seeds), or fewer experiments (--only).")


def refuse(parser: argparse.ArgumentParser, args, why: str):
    "Refuse the run (exit 2, before anything trains), except under --check or --dry-run, which say so and go on."
    if not (args.check or args.dry_run): parser.error(why)
    print(f"{'--check' if args.check else '--dry-run'}: refused outside it: {why}", flush=True)


def engine_settings(config, engine: dict) -> RunSettings:
    "`config`'s run settings with `engine`'s compilation and fused unit (never hashed: the results' names do not change)."
    return RunSettings(dataclasses.replace(config.settings.execution, compile=engine["compile"]), engine["fused_tsra"])


def export_results(results_root: Path, out: Path) -> Path:
    "Every results file of the workspace in one archive, `out/results.tar`, replaced atomically (a lent GPU returns 8 files at most)."
    partial = out / "results.tar.partial"
    with tarfile.open(partial, "w") as archive: archive.add(results_root, arcname="results")
    os.replace(partial, out / "results.tar")
    return out / "results.tar"


def gpu_run_parser(description: str, seeds: int, schedule_file: str) -> argparse.ArgumentParser:
    "The options every lent-GPU run script takes (this one and study.py)."
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", default="probe.json")
    parser.add_argument("--budget", type=float, required=True, help="seconds the whole run may take")
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--data", default=None)
    parser.add_argument("--runs", default="runs", help="the workspace (trained weights stay here; results are archived to OUT)")
    parser.add_argument("--out", default="gpu-out", help=f"results go to OUT/results.tar, the schedule to OUT/{schedule_file}")
    parser.add_argument("--ladder", help="the engine ladder's results on this machine (bench/train_throughput.py): train with "
                        "its usable rung that trains longest in the budget (else the engines the probe timed)")
    parser.add_argument("--dry-run", action="store_true", help="only choose and print the schedule")
    parser.add_argument("--check", action="store_true", help="a smoke-sized config instead (a CPU check of the script)")
    return parser


def main():
    parser = gpu_run_parser(__doc__, 3, "schedule.json")
    parser.add_argument("--limit", type=float, help="seconds until the command is stopped: a plan estimated over them is "
                        f"refused (without --limit, over {COMMAND_LIMIT_S} s, a lent GPU's longest command); this project's "
                        "experiments (beyond, toolkit_on_tsra, iterative), after the plan, may use the time up to them (without --limit, up to the budget)")
    schedules_of = [name for name, make in PRESETS.items() if make().preset == "full"]
    parser.add_argument("--schedule-of", choices=schedules_of, help="the schedule of this preset instead of the budget's choice, "
                        "with --seed-ids: one session adds seeds to that run of the record (seeds add up, one file each)")
    parser.add_argument("--seed-ids", type=int, nargs="+", help="run these seeds of the full preset instead of 0 .. SEEDS-1")
    parser.add_argument("--only", nargs="+", choices=list(full_config().experiments), help="only these experiments, with "
                        "--schedule-of (e.g. beyond, on the models an earlier command trained in --runs, or unpruned beyond)")
    args = parser.parse_args()
    started, device = time.perf_counter(), "cuda" if torch.cuda.is_available() else "cpu"
    if args.schedule_of and not args.seed_ids:     # seed 0 of every run of the record is there already
        parser.error(f"--schedule-of {args.schedule_of} adds seeds to a run of the record: name them with --seed-ids "
                     f"(seed 0 is in the record; its file would be computed again).")
    if args.only and not args.schedule_of:
        parser.error(f"--only {' '.join(args.only)} runs part of a run of the record: give its schedule with --schedule-of and --seed-ids.")
    probe = json.loads(Path(args.probe).read_text())
    ladder = read_ladder(args.ladder)
    seeds = args.seed_ids or list(range(args.seeds))
    if not args.check and not set(seeds) <= set(full_config().seeds):     # the record shows the preset's seeds only
        parser.error(f"seeds {seeds}: the full preset's record shows seeds {full_config().seeds}; choose among them.")
    if not args.check and (why := timed_at_another_batch(probe, ladder, full_config())): parser.error(why)
    given = PRESETS[args.schedule_of]() if args.schedule_of else None
    fixed = (given.tsra_train.epochs, given.finetune.epochs) if given else None
    planned = args.only or PAPER_EXPERIMENTS         # this project's experiments, unless named, are fitted in after the plan (see the end)
    schedule = choose_engine_and_schedule(probe, args.budget, len(seeds), ladder, fixed, planned)
    engine = schedule["engine"]
    print(f"schedule: {schedule['epochs']} epochs per model, {schedule['finetune_epochs']} fine-tuning epochs, seeds {seeds}, "
          f"{'experiments ' + ' '.join(args.only) + ', ' if args.only else ''}"
          f"engine {engine['rung']}, estimated {schedule['estimated_s']:.0f} s of a {args.budget:.0f} s budget "
          f"(engines considered: {schedule['engines_considered']})", flush=True)
    if why := over_the_limit(schedule, args.limit if args.limit is not None else COMMAND_LIMIT_S): refuse(parser, args, why)
    config = full_config(epochs=schedule["epochs"], finetune_epochs=schedule["finetune_epochs"])
    if args.check: config = smoke_config()
    config = dataclasses.replace(config, seeds=seeds, settings=engine_settings(config, engine))
    out = Path(args.out)
    schedule.update({"seed_ids": seeds, "schedule_of": args.schedule_of, "only": args.only,
                     "digests": {n: config.digest(n) for n in config.experiments}, "probe": probe, **provenance(device)})
    write_json(out / "schedule.json", schedule)
    if schedule["estimated_s"] > args.budget:
        print(f"WARNING: {'the given' if fixed else 'even the shortest'} schedule is estimated at {schedule['estimated_s']:.0f} s, "
              f"over the {args.budget:.0f} s "
              "budget; the run goes seed by seed, so what finishes is kept.", flush=True)
    if args.dry_run: return
    workspace = Workspace(Path(args.runs), args.data, device)
    def finished(name, seed):
        export_results(workspace.results.root, out)
        print(f"== {name} seed {seed} done at {time.perf_counter() - started:.0f} s", flush=True)
    paper = [n for n in PAPER_EXPERIMENTS if n in config.experiments and (not args.only or n in args.only)]
    for seed in config.seeds:
        for name in paper:
            reproduce(workspace, dataclasses.replace(config, seeds=[seed]), only=[name]); finished(name, seed)
    extras = [n for n in config.experiments if n not in PAPER_EXPERIMENTS and (not args.only or n in args.only)]
    if extras:
        # a row's seconds: as the sweeps of this command took (training included: on the safe side), else as estimated
        ran = len(config.seeds) * sweep_row_count(config, paper)
        inputs = schedule["inputs"]
        per_row = ((time.perf_counter() - started) / ran if ran else
                   inputs["row_fixed_s"] + schedule["finetune_epochs"] * inputs["steps_per_epoch"] * inputs["finetune_step_s"])
        for name in extras:          # each experiment that fits, seed by seed: a smaller one may fit where a larger one did not
            for seed in config.seeds:
                left, needed = (args.limit or args.budget) - (time.perf_counter() - started), per_row * sweep_row_count(config, [name])
                if needed > left:
                    print(f"== {name} seed {seed}: not started, about {needed:.0f} s needed, {left:.0f} s left"); break
                reproduce(workspace, dataclasses.replace(config, seeds=[seed]), only=[name]); finished(name, seed)


if __name__ == "__main__":
    main()
