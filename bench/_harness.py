"""What every benchmark in bench/ shares: peak-memory counters, child processes, and writing a results file.

A benchmark writes `<out>/<name>-<device>.json` (default `runs/bench/`; a maintainer passes `--out results/bench` to
change the record) with its config, rows, ratios, wall time and the provenance of `cob_paper.files.provenance` (commit,
device, torch, python, time); `cob_paper.reports` turns the record's into the README's Performance tables. Peak memory: on CUDA the allocator's maximum since a reset; on a CPU the process's peak resident
set (VmHWM), which Linux lets a process reset (`/proc/self/clear_refs`).
"""
import json, subprocess, sys, time
from pathlib import Path

import torch

from cob_paper.files import provenance, write_json
from cob_paper.results import bench_file
from cob_paper.speed import synchronize, timed


def reset_peak(device: torch.device):
    "Start counting peak memory from now."
    synchronize(device)
    if device.type == "cuda": torch.cuda.reset_peak_memory_stats(device)
    else: Path("/proc/self/clear_refs").write_text("5")


def peak_bytes(device: torch.device) -> int:
    "Peak memory since `reset_peak`: CUDA max allocated, or the process's peak resident set on a CPU."
    if device.type == "cuda": return torch.cuda.max_memory_allocated(device)
    status = Path("/proc/self/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) * 1024


def run_child(script: str, args: list[str]) -> dict:
    "Run `script` in a fresh Python process (its memory is its own) and return the JSON of its last output line."
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode != 0: raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_bench(out_dir, name: str, device: torch.device, body: dict, started: float, quiet: bool = False) -> Path:
    "Write the results file of benchmark `name` on `device`, with its wall time and provenance (atomically, so often)."
    result = {"benchmark": name, **body, "wall_time_s": time.perf_counter() - started, **provenance(device)}
    path = write_json(bench_file(out_dir, name, device.type), result)
    if not quiet: print(f"wrote {path}")
    return path
