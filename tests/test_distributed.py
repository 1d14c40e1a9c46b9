"""Data-parallel training, statistics and sweeps under torchrun, on CPU (gloo, 2 processes), against one process.

Each multi-process run is started with `python -m torch.distributed.run` in a subprocess with a timeout; the workers
leave their process group in a `finally`, and a run that hangs is killed by the timeout rather than the test suite.
"""
import os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp_case import one_step, statistics
from cob_paper.data import find_cifar10
from cob_paper.experiments import Workspace, smoke_config

TESTS, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def one_thread(tmp: Path) -> dict:
    """The environment of every process these tests start: one CPU thread each, so that comparing a sweep's processes
    is not also comparing thread counts (torch 2.11 fine-tunes to another accuracy with one thread than with two; the
    first test's reference runs in this process, with its threads, and is compared to a tolerance); temporary folders,
    torchrun's among them, under `tmp` (pytest removes it), not /tmp."""
    (tmp / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1",
            "TMPDIR": str(tmp / "tmp")}


def torchrun(*args, tmp: Path, cwd=ROOT):
    "Two processes under PyTorch's launcher, one thread each."
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args],
                         cwd=cwd, env=one_thread(tmp), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_one_data_parallel_step_and_the_statistics_equal_one_process(tmp_path):
    torchrun(str(TESTS / "_ddp_worker.py"), str(tmp_path), tmp=tmp_path)
    alone = one_step(data_parallel=False).state_dict()
    together = torch.load(tmp_path / "step.pt", weights_only=True)
    for name, value in alone.items():
        if torch.is_tensor(value): torch.testing.assert_close(together[name], value, rtol=1e-5, atol=1e-6, msg=name)
    for mine, theirs in zip((g for s in statistics(distributed=False) for g in s.grams),
                            (g for grams in torch.load(tmp_path / "statistics.pt", weights_only=True) for g in grams)):
        assert torch.allclose(theirs, mine, rtol=1e-12, atol=0), (theirs - mine).abs().max()


def _sweep(workspace: Path):
    "The smoke preset's fixed-ratio result for seed 0 in a workspace."
    config = smoke_config(seeds=[0])
    return Workspace(workspace).results.read(config.preset, "fixed_ratio", config.digest("fixed_ratio"), 0)


def test_a_two_process_sweep_writes_the_rows_of_a_one_process_sweep(tmp_path):
    data = find_cifar10(ROOT)
    if data is None: pytest.skip("no CIFAR-10 copy found; set COB_PAPER_DATA")
    common = ["reproduce", "--preset", "smoke", "--seeds", "0", "--data", str(data), "--device", "cpu", "--no-figures",
              "--record-dir", str(tmp_path / "no-record")]
    alone = subprocess.run([sys.executable, "-m", "cob_paper.cli", *common, "--only", "unpruned", "fixed_ratio", "--out",
                            str(tmp_path / "one")], cwd=ROOT, env=one_thread(tmp_path), capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    assert alone.returncode == 0, alone.stderr[-3000:]
    shutil.copytree(tmp_path / "one", tmp_path / "two")        # the same trained models and statistics
    config = smoke_config(seeds=[0])
    Workspace(tmp_path / "two").results.path(config.preset, "fixed_ratio", config.digest("fixed_ratio"), 0).unlink()
    log = torchrun("-m", "cob_paper.cli", *common, "--only", "fixed_ratio", "--out", str(tmp_path / "two"), tmp=tmp_path)
    assert "fixed_ratio, seed 0: computing" in log
    one, two = _sweep(tmp_path / "one"), _sweep(tmp_path / "two")
    assert two.numbers == one.numbers and one.numbers["rows"]
    assert (one.provenance["processes"], two.provenance["processes"]) == (1, 2)
    assert (one.provenance["cpu_threads"], two.provenance["cpu_threads"]) == (1, 1)
