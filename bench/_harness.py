"""What every benchmark in bench/ shares: peak-memory counters, child processes, and writing a results file.

A benchmark writes `results/bench/<name>-<device>.json` with its config, rows, ratios, wall time and the provenance
of `cob_paper.files.provenance` (commit, device, torch, python, time); `cob_paper.reports` turns it into the README's
Performance tables. Peak memory: on CUDA the allocator's maximum since a reset; on a CPU the process's peak resident
set (VmHWM), which Linux lets a process reset (`/proc/self/clear_refs`).
"""
import json, subprocess, sys, time
from pathlib import Path

import torch

from cob_paper.files import provenance, write_json


def synchronize(device: torch.device):
    if device.type == "cuda": torch.cuda.synchronize(device)


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


def timed(device: torch.device, fn):
    "`(seconds, value)` of `fn()`, the device synchronised on both sides."
    synchronize(device); start = time.perf_counter()
    value = fn()
    synchronize(device)
    return time.perf_counter() - start, value


def run_child(script: str, args: list[str]) -> dict:
    "Run `script` in a fresh Python process (its memory is its own) and return the JSON of its last output line."
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode != 0: raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_bench(out_dir, name: str, device: torch.device, body: dict, started: float) -> Path:
    "Write the results file of benchmark `name` on `device`, with its wall time and provenance."
    result = {"benchmark": name, **body, "wall_time_s": time.perf_counter() - started, **provenance(device)}
    path = write_json(Path(out_dir) / f"{name}-{device.type}.json", result)
    print(f"wrote {path}")
    return path
