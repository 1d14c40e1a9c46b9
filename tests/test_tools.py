"""Tests of the lent-GPU tools in tools/gpu/: the lossless CIFAR-10 packing and the schedule rule."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "gpu"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pack = _load("pack_cifar10")
gpu_reproduce = _load("reproduce")


def test_packing_round_trips_random_and_real_images():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8), np.zeros((2, 32, 32, 3), np.uint8),
              np.full((2, 32, 32, 3), 255, np.uint8)]
    from cob_paper.data import find_cifar10
    shared = find_cifar10()
    if shared is not None:
        with np.load(Path(shared) / "test.npz") as z: images.append(z["x"][:64])
    for x in images:
        np.testing.assert_array_equal(pack.decode(pack.encode(x), len(x)), x)


def test_unpack_refuses_a_corrupted_part(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    part = tmp_path / "packed" / "a"; part.mkdir(parents=True)
    (part / "test.x.xz").write_bytes(pack.encode(x))
    np.save(part / "test.y.npy", np.arange(3))
    (part / "manifest.json").write_text('{"test": {"count": 3, "x_sha256": "0", "y_sha256": "0"}}')
    with pytest.raises(SystemExit, match="does not match"):
        pack.unpack(tmp_path / "packed", tmp_path / "out")
    assert not (tmp_path / "out" / "test.npz").exists()


def test_schedule_fits_the_budget_and_prefers_fine_tuning_when_it_can():
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.01, "row_fixed_s": 0.5}]}
    roomy, tight = gpu_reproduce.choose_schedule(probe, 2000), gpu_reproduce.choose_schedule(probe, 500)
    assert roomy["estimated_s"] <= 2000 and roomy["epochs"] % 5 == 0 and roomy["seeds"] == 3
    assert (tight["epochs"], tight["finetune_epochs"]) < (roomy["epochs"], roomy["finetune_epochs"])
    assert gpu_reproduce.choose_schedule(probe, 2000, seeds=1)["epochs"] >= roomy["epochs"]


def test_an_arm_in_steps_counts_as_a_row_per_step():
    from cob_paper.experiments import ARMS, full_config
    config = full_config()
    spec = config.experiments["iterative"]
    stepped = [a for a in spec["arms"] if ARMS[a].steps > 1]
    assert stepped and gpu_reproduce.sweep_row_count(config, ["iterative"]) == \
        len(spec["strategies"]) * (len(spec["arms"]) - len(stepped) + sum(ARMS[a].steps for a in stepped))
    assert gpu_reproduce.sweep_row_count(config, ["beyond"]) == len(config.experiments["beyond"]["arms"]) * len(config.experiments["beyond"]["strategies"])


def test_timings_at_another_batch_than_the_run_trains_are_refused():
    from cob_paper.experiments import full_config, tsra_study_config
    run_batch = full_config().tsra_train.batch_size
    probe, ladder = {"config": {"batch_size": run_batch}}, {"config": {"batch_size": run_batch}}
    assert gpu_reproduce.timed_at_another_batch(probe, ladder, full_config()) is None
    assert gpu_reproduce.timed_at_another_batch(probe, None, tsra_study_config()) is None
    why = gpu_reproduce.timed_at_another_batch({"config": {"batch_size": 64}}, ladder, full_config())
    assert why.startswith(f"the probe timed batches of 64, but the run trains batches of {run_batch}") and "--batch-size" in why
    why = gpu_reproduce.timed_at_another_batch(probe, {"config": {"batch_size": 128}}, full_config())
    assert why.startswith("the ladder timed batches of 128")
    # the estimate takes one batch size for every recipe: a run whose recipes differ is refused, whatever was timed
    import dataclasses
    uneven = full_config()
    uneven = dataclasses.replace(uneven, relu_train=dataclasses.replace(uneven.relu_train, batch_size=run_batch // 2))
    why = gpu_reproduce.timed_at_another_batch(probe, ladder, uneven)
    assert why.startswith(f"the run's recipes train batches of different sizes (tsra_train {run_batch}, relu_train {run_batch // 2}")


def test_unpack_writes_a_cache_that_load_cifar10_reads(tmp_path):
    from cob_paper.data import load_cifar10, write_cache
    rng = np.random.default_rng(2)
    train_x, test_x = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    write_cache(tmp_path / "src", train_x, np.arange(10) % 10, test_x, np.arange(3))
    pack.pack(tmp_path / "src", tmp_path / "packed")
    pack.unpack(tmp_path / "packed", tmp_path / "dest")
    data = load_cifar10(tmp_path / "dest", download=False)
    np.testing.assert_array_equal(data.train_images.permute(0, 2, 3, 1).numpy(), train_x)
    np.testing.assert_array_equal(data.test_images.permute(0, 2, 3, 1).numpy(), test_x)


def test_study_epochs_fit_the_budget_and_grow_with_it():
    study = _load("study")
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.01, "row_fixed_s": 0.5}]}
    small, large = study.choose_epochs(probe, 300), study.choose_epochs(probe, 900)
    assert large["epochs"] > small["epochs"] >= 1 and large["estimated_s"] <= 900 and small["estimated_s"] <= 300
    from cob_paper.experiments import (FIXED_RATIO_TARGETS, TSRA_STUDY_CONTROLS, TSRA_STUDY_VARIANTS, tsra_study_config,
                                       tsra_study_experiments)
    assert large["inputs"]["models_per_seed"] == 1 + len(TSRA_STUDY_VARIANTS) + 1 + len(TSRA_STUDY_CONTROLS)
    # each ReLU control costs an epoch at the ReLU control's step time (the preset has at least one)
    assert TSRA_STUDY_CONTROLS
    uncontrolled = tsra_study_config(experiments=tsra_study_experiments([0], FIXED_RATIO_TARGETS, controls={}))
    without = study.choose_epochs(probe, 900, template=uncontrolled)["inputs"]
    assert abs(large["inputs"]["train_epoch_s"] - without["train_epoch_s"]
               - len(TSRA_STUDY_CONTROLS) * without["steps_per_epoch"] * probe["relu"]["step_s"]) < 1e-9
    assert study.choose_epochs(probe, 900, seeds=3)["epochs"] < large["epochs"]


def _ladder(fused_difference=0.0, compiled_first_step=60.0):
    row = lambda model, rung, rate, first=0.1, difference=0.0: {"model": model, "rung": rung, "train_images_per_s": rate,
                                                                 "first_step_s": first, "max_abs_logit_difference": difference}
    return {"config": {"batch_size": 1024}, "rows": [
        row("tsra", "eager", 22_000), row("relu", "eager", 80_000), row("tsra", "fused", 44_000, difference=fused_difference),
        row("tsra", "compiled", 70_000, compiled_first_step), row("relu", "compiled", 100_000, compiled_first_step),
        {"model": "tsra", "rung": "compiled+fused", "error": "RuntimeError: no compiler"}]}


def test_engine_is_the_usable_rung_that_trains_longest():
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.02, "row_fixed_s": 0.5}], "fused_check": {"ok": True}}
    choose = gpu_reproduce.choose_engine_and_schedule
    assert choose(probe, 500, 3)["engine"]["rung"] == "eager (probe)"                  # no ladder: the probe's engine
    chosen = choose(probe, 500, 3, _ladder())
    assert chosen["engine"]["rung"] == "fused" and chosen["estimated_s"] <= 500          # compiling 6 models does not pay here
    assert set(chosen["engines_considered"]) == {"eager", "fused", "compiled"}          # the failed rung is not considered
    assert chosen["epochs"] > choose(probe, 500, 3)["epochs"]
    assert choose(probe, 5000, 1, _ladder(compiled_first_step=1.0))["engine"]["rung"] == "compiled"   # a long run repays it
    # a rung that computes another function, or a fused unit whose gradients the probe found wrong here, is never used
    assert choose(probe, 500, 3, _ladder(fused_difference=0.1))["engine"]["rung"] != "fused"
    assert choose({**probe, "fused_check": {"ok": False}}, 500, 3, _ladder())["engine"]["rung"] != "fused"


def test_results_leave_in_one_archive_replaced_whole(tmp_path):
    import tarfile
    root = tmp_path / "runs" / "results"; (root / "full").mkdir(parents=True)
    (root / "full" / "unpruned-abc-seed0.json").write_text("{}")
    out = tmp_path / "out"; out.mkdir()
    gpu_reproduce.export_results(root, out)
    (root / "full" / "importance-def-seed0.json").write_text("{}")
    archive = gpu_reproduce.export_results(root, out)
    with tarfile.open(archive) as tar: names = sorted(n for n in tar.getnames() if n.endswith(".json"))
    assert names == ["results/full/importance-def-seed0.json", "results/full/unpruned-abc-seed0.json"]
    assert sorted(p.name for p in out.iterdir()) == ["results.tar"]


def test_study_trains_with_the_fused_unit_where_it_can():
    study = _load("study")
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.02, "row_fixed_s": 0.5}], "fused_check": {"ok": True}}
    engines = gpu_reproduce.usable_engines(probe, _ladder())
    chosen = gpu_reproduce.longest([study.choose_epochs(probe, 900, 1, engine=e) for e in engines])
    assert chosen["engine"]["rung"] == "fused" and chosen["estimated_s"] <= 900
    assert chosen["inputs"]["fused_models_per_seed"] == 10      # of the 12 TSRA models, the two norm-mode variants train unfused
    assert chosen["epochs"] > study.choose_epochs(probe, 900, 1)["epochs"]


def test_without_a_ladder_the_probe_offers_the_fused_unit_it_checked_and_timed():
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.02, "row_fixed_s": 0.5}], "tsra_fused": {"step_s": 0.02}, "fused_check": {"ok": True}}
    assert [e["rung"] for e in gpu_reproduce.usable_engines(probe, None)] == ["eager (probe)", "fused (probe)"]
    assert gpu_reproduce.choose_engine_and_schedule(probe, 500, 3)["engine"]["rung"] == "fused (probe)"
    refused = {**probe, "fused_check": {"ok": False}}
    assert [e["rung"] for e in gpu_reproduce.usable_engines(refused, None)] == ["eager (probe)"]
    # a schedule given (a run of the record) is estimated as given, not chosen
    given = gpu_reproduce.choose_engine_and_schedule(probe, 100, 1, fixed=(100, 3))
    assert (given["epochs"], given["finetune_epochs"]) == (100, 3) and given["estimated_s"] > 100


def test_a_seed_added_at_a_presets_schedule_lands_in_that_run_of_the_record(tmp_path):
    import json, subprocess
    from cob_paper.experiments import full_config
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.02, "row_fixed_s": 0.5}], "config": {"batch_size": full_config().tsra_train.batch_size}}
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    run = lambda *extra: subprocess.run([sys.executable, str(TOOLS / "reproduce.py"), "--probe", str(tmp_path / "probe.json"),
                                         "--budget", "500", "--out", str(tmp_path), "--dry-run", *extra], capture_output=True, text=True)
    assert run("--schedule-of", "full", "--seed-ids", "1").returncode == 0
    schedule = json.loads((tmp_path / "schedule.json").read_text())
    assert schedule["digests"]["unpruned"] == full_config().digest("unpruned") and schedule["seed_ids"] == [1]
    refused = run("--seed-ids", "7")
    assert refused.returncode == 2 and "seeds [0, 1, 2]" in refused.stderr
    (tmp_path / "probe.json").write_text(json.dumps({**probe, "config": {"batch_size": 64}}))       # timed at another batch
    refused = run("--schedule-of", "full", "--seed-ids", "1")
    assert refused.returncode == 2 and "the probe timed batches of 64" in refused.stderr


def test_the_probes_fused_unit_check_passes_here_and_catches_another_function(monkeypatch):
    import torch
    from cob_paper.fused import FusedRMSNormTSRA
    probe = _load("probe")
    assert probe.fused_unit_check(torch.device("cpu"))["ok"]
    monkeypatch.setattr(probe, "FusedRMSNormTSRA", lambda split: FusedRMSNormTSRA(split, a_U=2.0))   # other gains: another function
    assert not probe.fused_unit_check(torch.device("cpu"))["ok"]


def _plan(tmp_path, *extra, script="reproduce.py", probe_overrides=None):
    "Run a lent-GPU script on a small probe, with no data (anything that would train fails fast)."
    import json, subprocess
    from cob_paper.experiments import full_config
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.02, "row_fixed_s": 0.5}], "config": {"batch_size": full_config().tsra_train.batch_size},
             **(probe_overrides or {})}
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    return subprocess.run([sys.executable, str(TOOLS / script), "--probe", str(tmp_path / "probe.json"), "--out", str(tmp_path),
                           "--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "no-data"), *extra],
                          capture_output=True, text=True, timeout=300)


def test_a_plan_estimated_over_the_commands_limit_is_refused_before_training(tmp_path):
    refused = _plan(tmp_path, "--budget", "100", "--limit", "100", "--schedule-of", "full", "--seed-ids", "1")
    assert refused.returncode == 2 and "over the 100 s the command has" in refused.stderr, refused.stderr[-2000:]
    assert "--schedule-of full_seeds" in refused.stderr and not (tmp_path / "schedule.json").exists()
    said = _plan(tmp_path, "--budget", "100", "--limit", "100", "--schedule-of", "full", "--seed-ids", "1", "--dry-run")
    assert said.returncode == 0 and "--dry-run: refused outside it: the plan" in said.stdout
    schedule = {"epochs": 100, "finetune_epochs": 3, "seeds": 1, "estimated_s": 549.0, "engine": {"rung": "fused"}}
    assert gpu_reproduce.over_the_limit(schedule, 570) is None
    assert "estimated at 549 s, over the 540 s" in gpu_reproduce.over_the_limit(schedule, 540)


def test_a_presets_schedule_needs_the_seeds_it_adds_and_only_runs_part_of_it(tmp_path):
    import json
    refused = _plan(tmp_path, "--budget", "500", "--schedule-of", "full", "--dry-run")      # seed 0 is in the record
    assert refused.returncode == 2 and "name them with --seed-ids" in refused.stderr
    refused = _plan(tmp_path, "--budget", "500", "--only", "beyond", "--dry-run")
    assert refused.returncode == 2 and "give its schedule with --schedule-of" in refused.stderr
    assert _plan(tmp_path, "--budget", "500", "--schedule-of", "full", "--seed-ids", "1", "--dry-run").returncode == 0
    whole = json.loads((tmp_path / "schedule.json").read_text())
    assert _plan(tmp_path, "--budget", "500", "--schedule-of", "full", "--seed-ids", "1", "--only", "beyond", "--dry-run").returncode == 0
    beyond = json.loads((tmp_path / "schedule.json").read_text())
    from cob_paper.experiments import full_config
    # beyond alone, on models trained earlier: its rows, nothing trained, the models' schedule and digests unchanged
    assert beyond["only"] == ["beyond"] and beyond["inputs"]["rows_per_seed"] == gpu_reproduce.sweep_row_count(full_config(), ["beyond"])
    assert beyond["inputs"]["train_epoch_s"] == 0 and (beyond["epochs"], beyond["finetune_epochs"]) == (whole["epochs"], whole["finetune_epochs"])
    assert beyond["digests"] == whole["digests"] and beyond["estimated_s"] < whole["estimated_s"]


def test_a_study_shorter_than_worth_running_is_refused(tmp_path):
    study = _load("study")
    probe = {"tsra": {"step_s": 0.045}, "relu": {"step_s": 0.012}, "merge_check": {"statistics_s_per_image": 1e-4},
             "finetune_rows": [{"finetune_step_s": 0.02, "row_fixed_s": 0.5}]}
    assert study.too_short(study.choose_epochs(probe, 5000), False) is None
    short = study.choose_epochs(probe, 250)
    assert short["epochs"] < study.MIN_STUDY_EPOCHS and f"{short['epochs']} epoch(s) per model" in study.too_short(short, False)
    refused = _plan(tmp_path, "--budget", "250", script="study.py")
    assert refused.returncode == 2 and f"is under the {study.MIN_STUDY_EPOCHS} worth a study" in refused.stderr, refused.stderr[-2000:]
    assert not (tmp_path / "study_schedule.json").exists()
    refused = _plan(tmp_path, "--budget", "5000", "--epochs", "2", script="study.py")
    assert refused.returncode == 2 and "--epochs, 2 epoch(s) per model" in refused.stderr


def test_the_ladder_refuses_rungs_it_does_not_have_and_checks_in_true_float32():
    import subprocess, torch
    bench = Path(__file__).resolve().parents[1] / "bench" / "train_throughput.py"
    refused = subprocess.run([sys.executable, str(bench), "--rungs", "eager,author"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "unknown ['author']; choose among eager, fused" in refused.stderr
    spec = importlib.util.spec_from_file_location("train_throughput", bench)
    ladder = importlib.util.module_from_spec(spec); spec.loader.exec_module(ladder)
    from cob_paper.stats import full_precision_matmul
    assert ladder.full_precision_matmul is full_precision_matmul     # the library's switch (tested in nbs/03_stats), not a copy
    assert "with torch.no_grad(), full_precision_matmul():" in bench.read_text()       # around the logit check


def _repo(tmp_path):
    "A git repository with one commit, in tmp_path / 'repo'."
    import subprocess
    repo = tmp_path / "repo"; repo.mkdir()
    git = lambda *a: subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *a], check=True, capture_output=True, text=True).stdout.strip()
    (repo / "code.py").write_text("x = 1\n"); (repo / ".gitignore").write_text(".data/\n.whl/\n")
    git("init", "-q"); git("add", "."); git("commit", "-qm", "one")
    return repo, git


def test_stage_refuses_a_label_that_is_not_the_code_that_runs(tmp_path):
    import subprocess
    repo, git = _repo(tmp_path)
    stage = lambda commit: subprocess.run(["bash", str(TOOLS / "stage.sh"), "nothing"], cwd=repo, capture_output=True, text=True,
                                          env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "COB_PAPER_GIT_COMMIT": commit})
    head = git("rev-parse", "HEAD")
    assert "is not this checkout's HEAD" in stage("abc123").stdout
    assert "usage:" in stage(head[:7]).stdout                   # the label checked, the (unknown) call refused after it
    (repo / "code.py").write_text("x = 2\n")
    assert "tracked files differ from HEAD" in stage(head).stdout


def test_preflight_refuses_uncommitted_code_and_a_call_over_64_mib(tmp_path):
    import os, subprocess
    repo, git = _repo(tmp_path)
    preflight = lambda: subprocess.run(["bash", str(TOOLS / "preflight.sh")], cwd=repo, capture_output=True, text=True)
    for part in "ab": (repo / ".data" / "packed" / part).mkdir(parents=True); (repo / ".data" / "packed" / part / "manifest.json").write_text("{}")
    (repo / ".whl").mkdir(); (repo / ".whl" / "torch_pruning-1.6.1-py3-none-any.whl").write_bytes(b"0" * 1000)
    fits = preflight()
    assert fits.returncode == 0 and f"COB_PAPER_GIT_COMMIT={git('rev-parse', 'HEAD')}" in fits.stdout and "call 2 carries .data/packed/b .whl" in fits.stdout
    with open(repo / ".data" / "packed" / "b" / "b.xz", "wb") as f: f.truncate(65 * 2**20)     # sparse: counted at its size
    over = preflight()
    assert over.returncode == 1 and "a call is over 64 MiB" in over.stdout and "call 1 carries .data/packed/a" in over.stdout
    (repo / "code.py").write_text("x = 2\n")
    assert "tracked files differ from HEAD" in preflight().stdout
