"""Serving batches from tensors in memory: a seeded, resumable batch sampler and a whole-batch dataset.

Batches are served by indexing the split's tensors with one index tensor per batch: no per-sample PIL
conversion, no per-sample collate, no worker processes needed. The training order is torch's
``DistributedSampler``'s; evaluation shards (which that sampler pads, counting some samples twice) are cut by rank
without padding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, Dataset, DistributedSampler, SequentialSampler


class EpochBatchSampler(BatchSampler):
    """Training batches as index tensors, in the order of torch's ``DistributedSampler``: a pure function of
    ``(seed, epoch)``; under DDP each rank takes every ``world_size``-th index, shards cut to equal length (a
    different handful of samples rests each epoch).

    Lightning calls :meth:`set_epoch` before every training epoch, so a resumed run sees exactly the
    batches an uninterrupted run would; ``resume_at`` skips batches already trained in a resumed epoch, which
    neither torch's samplers nor Lightning do for a map-style dataset.

    >>> sampler = EpochBatchSampler(5, batch_size=2, seed=0)
    >>> sorted(i for batch in sampler for i in batch.tolist()), len(sampler)
    ([0, 1, 2, 3, 4], 3)
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        order = DistributedSampler(range(num_samples), world_size, rank, shuffle=True, seed=seed, drop_last=True)
        super().__init__(order, batch_size, drop_last=False)
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Skip the first ``batches_done`` batches the next time ``epoch`` is iterated."""
        self._resume = (epoch, batches_done)

    def __iter__(self) -> Iterator[torch.Tensor]:
        start = 0
        if self._resume is not None and self._resume[0] == self.sampler.epoch:  # kept until that epoch is iterated:
            start = self._resume[1]  # worker processes start iterating before Lightning sets the epoch
            self._resume = None
        for batch in itertools.islice(super().__iter__(), start, None):
            yield torch.tensor(batch)


class OrderedBatchSampler(SequentialSampler):
    """Evaluation batches as index tensors in file order; under DDP each rank takes every ``world_size``-th
    index, so every sample is evaluated exactly once.

    A ``SequentialSampler``: with ``overfit_batches`` Lightning replaces every loader's sampler that is not one
    with a per-sample one, which a whole-batch dataset cannot serve.

    >>> [batch.tolist() for batch in OrderedBatchSampler(5, batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = torch.arange(rank, num_samples, world_size)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.indices.split(self.batch_size))


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
