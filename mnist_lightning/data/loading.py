"""Serving batches from tensors in memory: a seeded, resumable batch sampler and a whole-batch dataset.

Batches are served by indexing the split's tensors with one index tensor per batch: no per-sample PIL
conversion, no per-sample collate, no worker processes needed. Lightning's own ``DistributedSampler`` pads
evaluation shards (counting some samples twice); this sampler shards by rank without padding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, SequentialSampler


class EpochBatchSampler:
    """Yields one index tensor per batch; the order is a pure function of ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every training epoch, so a resumed run sees exactly the
    batches an uninterrupted run would. ``resume_at`` skips batches already trained in a resumed epoch.
    Under DDP each rank takes every ``world_size``-th index; training shards are cut to equal length
    (a different handful of samples rests each epoch) while evaluation shards keep every sample once.

    >>> sampler = EpochBatchSampler(5, batch_size=2, shuffle=False, seed=0)
    >>> [batch.tolist() for batch in sampler]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = False,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.equal_shards = equal_shards
        self.epoch = 0
        self.batches_done = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Skip the first ``batches_done`` batches the next time ``epoch`` is iterated."""
        self._resume = (epoch, batches_done)

    def _shard_size(self) -> int:
        if self.equal_shards:
            return self.num_samples // self.world_size
        return len(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        return math.ceil(self._shard_size() / self.batch_size)

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        return order[self.rank :: self.world_size][: self._shard_size()]

    def __iter__(self) -> Iterator[torch.Tensor]:
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:  # kept until that epoch is iterated:
            start = self._resume[1]  # worker processes start iterating before Lightning sets the epoch
            self._resume = None
        indices = self._indices()
        self.batches_done = start
        for first in range(start * self.batch_size, len(indices), self.batch_size):
            self.batches_done += 1  # counted when handed out: a checkpoint taken after this step includes it
            yield indices[first : first + self.batch_size]


class TensorBatches(Dataset):
    """Equal-length tensors indexed a whole batch at a time; uint8 tensors (images) come out as float pixels
    in [0, 1], divided by 255 as ``transforms.ToTensor()`` divides.

    ``torch.index_select`` gathers a batch several times faster than ``tensor[index]`` (which
    ``TensorDataset`` uses), and the gather is most of the data path's cost; gathering bytes and converting
    the batch moves a quarter of the memory that gathering stored float pixels would.

    >>> images = torch.tensor([[0, 255], [51, 102], [255, 0]], dtype=torch.uint8)
    >>> batch_images, batch_labels = TensorBatches(images, torch.tensor([7, 1, 4]))[torch.tensor([2, 0])]
    >>> batch_images.tolist(), batch_labels.tolist()
    ([[1.0, 0.0], [0.0, 1.0]], [4, 7])
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        index = index.to(self.tensors[0].device, non_blocking=True)
        return tuple(_as_pixels(torch.index_select(tensor, 0, index)) for tensor in self.tensors)


def _as_pixels(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float().div_(255) if tensor.dtype == torch.uint8 else tensor


class OrderedBatchSampler(EpochBatchSampler, SequentialSampler):
    """An :class:`EpochBatchSampler` in file order that Lightning recognizes as sequential.

    With ``overfit_batches`` Lightning replaces every loader's sampler that is not a ``SequentialSampler``
    with a per-sample one, which a whole-batch dataset cannot serve; evaluation loaders are ordered anyway.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(num_samples, batch_size, shuffle=False, seed=0, rank=rank, world_size=world_size)
