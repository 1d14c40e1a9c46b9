"""The data-parallel cases, computed the same way by one process (test_distributed.py) and by several (_ddp_worker.py)."""
import torch

from cob_paper.data import batches
from cob_paper.models import VGG, tsra_vgg_config
from cob_paper.stats import collect_statistics
from cob_paper.train import Execution, train, tsra_recipe


def case():
    "Images and labels for one global batch of 8, and a small TSRA VGG without dropout (whose masks are per process)."
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (8,), generator=g)
    torch.manual_seed(0)
    return images, labels, VGG(tsra_vgg_config(width_multiplier=1 / 16, dropout=0.0))


def one_step(data_parallel: bool):
    """One training step on the global batch, with SGD, whose update is linear in the gradient (Adam's first step is about
    lr * sign(gradient), so a gradient entry near zero could flip its update with the summation order alone)."""
    images, labels, model = case()
    train(model, images, labels, tsra_recipe(steps=1, batch_size=8, warmup_steps=0, optimizer="sgd", lr=0.1), seed=3,
          execution=Execution(progress=False), data_parallel=data_parallel)
    return model


def statistics(distributed: bool):
    "Calibration statistics of 128 images (as many rows as the classifier's subspaces have channels) in 8 batches."
    images, _, model = case()
    return collect_statistics(model, list(batches(images.repeat(16, 1, 1, 1), batch_size=16)), distributed=distributed)
