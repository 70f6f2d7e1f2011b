"""The sampler every task's training loader shares, so that `--resume` replays a run exactly."""

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """Wraps a DistributedSampler and pairs each index with the epoch: for datasets that draw a whole epoch's
    augmentation at once from (run seed, epoch) (the forecasting task's EpochAugmented)."""

    def __init__(self, inner: DistributedSampler) -> None:
        self.inner = inner
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation ``__iter__`` yields."""
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((i, self.epoch) for i in self.inner)


class SeededSampler(EpochSampler):
    """Wraps a DistributedSampler and pairs each index with a seed drawn from (run seed, epoch).

    The permutation is DistributedSampler's (seeded with seed + epoch, disjoint shards per rank); the per-sample
    seeds make the augmentation a pure function of (seed, epoch, index), independent of worker processes.
    """

    def __init__(self, inner: DistributedSampler, dataset_size: int, seed: int) -> None:
        super().__init__(inner)
        self.dataset_size = dataset_size
        self.seed = seed

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        seeds = torch.randint(2**62, (self.dataset_size,), generator=g).tolist()
        for i in self.inner:
            yield i, seeds[i]
