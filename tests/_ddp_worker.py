"""One process of the data-parallel checks of tests/test_distributed.py (started by torchrun, gloo on CPU).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/_ddp_worker.py OUT
Rank 0 writes OUT/step.pt (the weights after one data-parallel training step) and OUT/statistics.pt (the calibration
statistics summed over the processes); the test compares them with one process's.
"""
import sys
from pathlib import Path

import torch

from cob_paper.distributed import is_main, join_from_environment, leave, world
from ddp_case import one_step, statistics


def main(out: Path):
    join_from_environment("cpu")
    try:
        assert world()[1] == 2, world()
        model = one_step(data_parallel=True)
        stats = statistics(distributed=True)
        if is_main():
            torch.save(model.state_dict(), out / "step.pt")
            torch.save([s.grams for s in stats], out / "statistics.pt")
    finally: leave()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
