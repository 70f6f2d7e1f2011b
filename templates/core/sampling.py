"""The sampler every task's training loader shares, so that `--resume` replays a run exactly."""

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler


class SeededSampler(Sampler[tuple[int, int]]):
    """Wraps a DistributedSampler and pairs each index with a seed drawn from (run seed, epoch).

    The permutation is DistributedSampler's (seeded with seed + epoch, disjoint shards per rank); the per-sample
    seeds make the augmentation a pure function of (seed, epoch, index), independent of worker processes.
    """

    def __init__(self, inner: DistributedSampler, dataset_size: int, seed: int) -> None:
        self.inner = inner
        self.dataset_size = dataset_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and seeds ``__iter__`` yields."""
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        seeds = torch.randint(2**62, (self.dataset_size,), generator=g).tolist()
        for i in self.inner:
            yield i, seeds[i]
