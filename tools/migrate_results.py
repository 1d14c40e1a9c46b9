"""Carry the format-1 results files (`results/<experiment>-<preset>-<hash>.json`, one seed, config hashed whole) into
the format-2 layout of `cob_paper.results` (`results/<preset>/<experiment>-<digest>-seed<k>.json`), without retraining.

Numbers are copied unchanged. What varied from run to run (images/s, wall times) moves from the numbers to `timing`; the
provenance of the run that made each file (commit, device, torch, python, time) is kept as it was, and `migrated_from`
names the old file and its SHA-256. The digest is the new code's hash of the old config, so a migrated result is found
by any config that asks for the same numbers; the script says whether the current preset of the same name is such a config.

    python tools/migrate_results.py results --presets full laptop          # writes the new files, then deletes the old ones
"""
import argparse, dataclasses, hashlib, json, sys
from pathlib import Path

from cob_paper.experiments import PRESETS, ReproductionConfig, RunSettings, paper_experiments
from cob_paper.results import Result, ResultStore, SweepRow
from cob_paper.train import Execution, TrainConfig

RECIPE_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
EXECUTION_FIELDS = {f.name for f in dataclasses.fields(Execution)}
RUN_BY_PRESET = {"laptop": ["unpruned", "importance", "fixed_ratio"]}      # the old PRESET_EXPERIMENTS; all four otherwise


def new_config(old: dict, experiments: list[str]) -> ReproductionConfig:
    "The format-2 config of an old one: same data, models, recipes and grids; seeds and settings split off."
    recipes = {k: TrainConfig(**{f: v for f, v in old[k].items() if f in RECIPE_FIELDS}) for k in ("tsra_train", "relu_train", "finetune")}
    specs = paper_experiments(old["ratios"], old["thresholds"])
    return ReproductionConfig(preset=old["preset"], experiments={k: specs[k] for k in experiments}, seeds=[old["seed"]],
                              cfg=old["cfg"], width_multiplier=old["width_multiplier"], train_size=old["train_size"],
                              test_size=old["test_size"], holdout=old["holdout"], calibration_size=old["calibration_size"],
                              settings=RunSettings(Execution(**{f: v for f, v in old["tsra_train"].items() if f in EXECUTION_FIELDS})),
                              **recipes)


def split(old: dict) -> tuple[dict, dict]:
    "Numbers and timing of an old results file."
    timing = {"wall_time_s": old["wall_time_s"]}
    if old["experiment"] == "unpruned":
        models = {name: {"test_accuracy": m["test_accuracy"], "parameters": m["parameters"], "macs": m["macs"],
                         "history": [{k: v for k, v in r.items() if k != "images_per_s"} for r in m["history"]["records"]],
                         "holdout": m["history"]["holdout"]} for name, m in old["models"].items()}
        timing.update({"train_wall_time_s": {n: m["train_wall_time_s"] for n, m in old["models"].items()},
                       "first_step_s": {n: None for n in old["models"]},
                       "images_per_s": {n: [r["images_per_s"] for r in m["history"]["records"]] for n, m in old["models"].items()}})
        return {"data": old["data"], "models": models}, timing
    if old["experiment"] == "importance": return {"profiles": old["profiles"]}, timing
    return {"rows": [dataclasses.asdict(SweepRow(**row)) for row in old["rows"]]}, timing


def migrate(results_dir: Path, presets: list[str]) -> list[Path]:
    store, written, old_files = ResultStore(results_dir), [], []
    for preset in presets:
        files = sorted(results_dir.glob(f"*-{preset}-*.json"))
        unpruned = {json.loads(p.read_text())["config_hash"]: json.loads(p.read_text()) for p in files if p.name.startswith("unpruned-")}
        for path in files:
            old = json.loads(path.read_text())
            experiments = RUN_BY_PRESET.get(preset, list(paper_experiments()))
            config = new_config(old["config"], experiments)
            if old["experiment"] in ("fixed_ratio", "threshold"):      # the sweeps' copy of the unpruned accuracies must agree
                models = unpruned[old["config_hash"]]["models"]
                assert old["unpruned_accuracy"] == {k: v["test_accuracy"] for k, v in models.items()}, path
            numbers, timing = split(old)
            result = Result(old["experiment"], preset, old["seed"], config.digest(old["experiment"]), config.to_dict(), numbers, timing,
                            {k: old[k] for k in ("git_commit", "device", "torch", "python", "written_at")},
                            {"file": f"{results_dir.name}/{path.name}", "format": 1, "config_hash": old["config_hash"],
                             "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
            written.append(store.write(result)); old_files.append(path)
            current = PRESETS[preset]()
            same = old["experiment"] in current.experiments and current.digest(old["experiment"]) == result.digest
            print(f"{path.name} -> {written[-1].relative_to(results_dir.parent)}"
                  f" ({'the current' if same else 'NOT the current'} {preset} preset's config)")
    for path in old_files: path.unlink()
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--presets", nargs="+", default=["full", "laptop"])
    args = parser.parse_args()
    migrate(args.results_dir, args.presets)
    sys.exit(0)
