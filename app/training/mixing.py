"""Mixup and CutMix (``trainer.mixup_alpha``, ``trainer.cutmix_alpha``): each training batch
mixed with a shifted copy of itself, its labels turned into the matching soft targets
(torchvision's ``transforms.v2.MixUp`` and ``CutMix``)."""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Mixing:
    """How a training batch is mixed. Each batch's draw (which of the two, the coefficient, the
    box) comes from its own seed, made of the run's seed, the epoch, the batch's number in it and
    the process's rank: a resumed epoch mixes its remaining batches as the uninterrupted one did.
    ``epoch`` is set by the loop before each training pass."""

    mixup_alpha: float
    cutmix_alpha: float
    mix_switch_prob: float  # with both on: the probability that a batch is cut-mixed, not mixed up (timm's name)
    classes: int
    seed: int
    rank: int = 0
    epoch: int = 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixed images, soft targets [batch, classes])`` for batch number ``batch`` of the epoch."""
        from torchvision.transforms import v2

        with torch.random.fork_rng(devices=[]):  # torchvision draws from torch's global generator
            key = np.random.SeedSequence([self.seed, self.epoch, batch, self.rank]).generate_state(1, np.uint64)[0]
            torch.manual_seed(int(key))
            cut = self.mixup_alpha == 0 or (self.cutmix_alpha > 0 and float(torch.rand(())) < self.mix_switch_prob)
            mix = (
                v2.CutMix(alpha=self.cutmix_alpha, num_classes=self.classes)
                if cut
                else v2.MixUp(alpha=self.mixup_alpha, num_classes=self.classes)
            )
            mixed, targets = mix(images, labels)
        return mixed, targets
