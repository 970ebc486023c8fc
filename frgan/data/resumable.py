"""A training DataLoader that a resumed run continues exactly where the stopped one was.

What a training batch holds depends only on (data seed, epoch, rank, position in the epoch),
never on the process that draws it: the shuffle is seeded per epoch, every sample carries the
seed of its random draws (retargeting), the streamed pipeline is seeded per epoch, rank and
worker. So the loader's whole state is (epoch, batches already trained on), which Lightning
saves in every checkpoint (`state_dict`) and gives back when resuming (`load_state_dict`);
the resumed loader skips those batches (by index in memory mode, by reading past them in
stream mode) and yields the very batches the stopped run would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler


def mixed_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers, the same in every process."""
    entropy = [int(part) % 2**64 for part in parts]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


def sample_seeds(count: int, *parts: int) -> list[int]:
    """`count` seeds for the random draws of the samples of one epoch (see mixed_seed)."""
    generator = torch.Generator().manual_seed(mixed_seed(*parts))
    return torch.randint(2**62, (count,), generator=generator).tolist()


class ResumableSampler(DistributedSampler):
    """Shuffled indices of one rank's share of an epoch, each with the seed of its sample's
    random draws: yields (index, seed). Under DDP it is the distributed sampler itself, so
    Lightning keeps it.

    With `weights` [len(dataset)] an epoch draws its indices with replacement in proportion to
    them (as many as a plain epoch has), from a generator seeded by (seed, epoch); the ranks
    take every world-th draw.

    The epoch comes from `ResumableLoader` when it starts a pass (`start_pass`), not from
    Lightning's set_epoch: a resumed run's first pass starts before Lightning calls that.
    """

    def __init__(
        self, dataset, *, num_replicas: int, rank: int, seed: int, weights: np.ndarray | None = None
    ):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0
        self.weights = None
        if weights is not None:
            weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
            if weights.shape != (len(dataset),) or not torch.isfinite(weights).all():
                raise ValueError(
                    f"need {len(dataset)} finite sampling weights, got {tuple(weights.shape)}"
                )
            if (weights < 0).any() or weights.sum() <= 0:
                raise ValueError("sampling weights must be >= 0 with a positive sum")
            self.weights = weights

    def set_epoch(self, epoch: int) -> None:
        """Ignored: ResumableLoader sets the epoch of each pass (see the class docstring)."""

    def start_pass(self, epoch: int, skip: int) -> None:
        """The next iteration is epoch `epoch`, less its first `skip` samples."""
        self.epoch, self.skip = epoch, skip

    def _weighted_indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(mixed_seed(self.seed, self.epoch))
        draws = torch.multinomial(
            self.weights, self.total_size, replacement=True, generator=generator
        )
        return draws[self.rank : self.total_size : self.num_replicas].tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__()) if self.weights is None else self._weighted_indices()
        seeds = sample_seeds(len(indices), self.seed, self.epoch, self.rank)
        skip, self.skip = self.skip, 0
        yield from zip(indices[skip:], seeds[skip:], strict=True)


class ResumableLoader(DataLoader):
    """The training DataLoader: counts its passes (epochs) and saves its position.

    `progress()` -> (batches trained on in this epoch, batches in an epoch): Lightning's own
    count of the batches it consumed, which the loader cannot know (Lightning reads ahead).
    The dataset is either map-style with a ResumableSampler, or a `StreamingSamples`.
    """

    def __init__(self, *args, progress: Callable[[], tuple[int, int]], **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress
        self.passes = 0
        self.skip_batches = 0

    def __iter__(self):
        epoch, skip = self.passes, self.skip_batches
        self.passes, self.skip_batches = epoch + 1, 0
        if isinstance(self.sampler, ResumableSampler):
            self.sampler.start_pass(epoch, skip * self.batch_size)
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        done, per_epoch = self.progress()
        epoch = max(self.passes - 1, 0)
        if done >= per_epoch:
            epoch, done = epoch + 1, 0
        return {"epoch": epoch, "batches": done, "readers": max(1, self.num_workers)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        self.passes, self.skip_batches = epoch, batches
        resume_stream = getattr(self.dataset, "resume", None)
        if resume_stream is None:
            return
        readers = max(1, self.num_workers)
        if batches and state.get("readers", readers) != readers:
            raise ValueError(
                f"the checkpoint stopped mid-epoch in a stream read by {state['readers']} "
                f"DataLoader readers; resume it with data.num_workers="
                f"{state['readers'] if state['readers'] > 1 else 0} (now {self.num_workers})"
            )
        # the stream runs in the workers: they take its position when they start
        resume_stream(epoch, batches, self.batch_size)
