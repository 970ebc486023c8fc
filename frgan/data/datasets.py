"""Training samples built from prepared takes: forecast pairs and refine clips.

Both are map-style datasets over takes held in memory, with a batched `__getitems__` (the
DataLoader calls it with a whole batch of indices) so that the structure maps of a batch are
rendered in one renderer call. The streaming pipeline reuses them on one take at a time.

Forecast sample (as in the paper): for every frame t of a take, t = 0 included,
  x0, s0: the take's first frame and its structure map; xt, st: frame t and its map;
  l0, lt: the 68-point landmarks [68,2] (x, y in pixels) that s0 and st were drawn from
  (frgan.metrics.regions turns them into mouth / eyes / face masks);
  t: the frame index; take: the take's key; retargeted: True when st was driven by another
  subject's expression (then xt is NOT the picture of st: use it for adversarial terms only,
  not for L1; always False unless data.retarget_prob > 0).
Refine sample: x0, s0, l0, frames [T,3,H,W], structures [T,3,H,W], landmarks [T,68,2],
start, take, retargeted.
Images are float32 in [-1, 1], channels first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from frgan.data.retarget import retarget
from frgan.data.shards import TakeSample
from frgan.data.structure import StructureRenderer
from frgan.data.topology import mesh_of
from frgan.metrics.expression import expression_distance


def face68_points(landmarks: np.ndarray) -> torch.Tensor:
    """float32 [..., 68, 2]: the (x, y) of the 68-point subset of landmarks [..., N, 3]."""
    return torch.from_numpy(np.ascontiguousarray(mesh_of(landmarks).face68(landmarks)[..., :2]))


def to_image_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1]."""
    # made contiguous while still uint8 (cheap), so that batching the floats is a plain copy
    channels_first = np.ascontiguousarray(rearrange(frames, "... h w c -> ... c h w"))
    return torch.from_numpy(channels_first).float().div_(127.5).sub_(1.0)


class DriverBank:
    """Landmarks of takes that may drive another subject's face (retargeting augmentation)."""

    def __init__(self, takes: Sequence[TakeSample] = ()):
        self.subjects = [take.meta["subject"] for take in takes]
        self.landmarks = [take.landmarks for take in takes]

    def add(self, take: TakeSample, capacity: int) -> None:
        self.subjects.append(take.meta["subject"])
        self.landmarks.append(take.landmarks)
        if len(self.landmarks) > capacity:
            del self.subjects[0], self.landmarks[0]

    def drive(
        self,
        target_neutral: np.ndarray,
        subject: str,
        length: int,
        generator: torch.Generator | None = None,
    ) -> np.ndarray | None:
        """`length` consecutive frames of a random other subject's take retargeted onto the
        target's first-frame landmarks, or None when no other subject is available."""
        candidates = [i for i, s in enumerate(self.subjects) if s != subject]
        if not candidates:
            return None
        pick = torch.randint(len(candidates), (), generator=generator)
        driver = self.landmarks[candidates[int(pick)]]
        start = int(torch.randint(max(1, len(driver) - length + 1), (), generator=generator))
        frames = np.minimum(np.arange(start, start + length), len(driver) - 1)
        return retarget(driver[np.concatenate([[0], frames])], target_neutral)[1:]


class _TakeDataset(Dataset):
    def __init__(
        self,
        takes: Sequence[TakeSample],
        render: StructureRenderer,
        retarget_prob: float = 0.0,
        drivers: DriverBank | None = None,
    ):
        self.takes, self.render, self.retarget_prob = list(takes), render, float(retarget_prob)
        self.drivers = (
            drivers if drivers is not None else DriverBank(self.takes if retarget_prob > 0 else ())
        )

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        return self.__getitems__([index])[0]

    def _driven(self, take: TakeSample, length: int, seed: int | None) -> np.ndarray | None:
        """A retargeted target (see DriverBank.drive) with probability retarget_prob, else None.
        The draws come from the sample's seed when it has one (a resumed run draws again what
        the interrupted one drew), else from torch's global generator."""
        if self.retarget_prob == 0.0:
            return None
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        if float(torch.rand((), generator=generator)) >= self.retarget_prob:
            return None
        return self.drivers.drive(take.landmarks[0], take.meta["subject"], length, generator)


def split_keys(keys: Sequence[int | tuple[int, int]]) -> tuple[list[int], list[int | None]]:
    """(indices, seeds) of sample keys: an index, or (index, seed of its random draws) as
    ResumableSampler yields them."""
    pairs = [key if isinstance(key, tuple) else (key, None) for key in keys]
    return [int(index) for index, _ in pairs], [seed for _, seed in pairs]


class ForecastPairs(_TakeDataset):
    """(x0, s0, xt, st) for every frame t of every take."""

    def __init__(self, takes, render, retarget_prob=0.0, drivers=None):
        super().__init__(takes, render, retarget_prob, drivers)
        self.offsets = np.cumsum([0] + [len(take.frames) for take in self.takes])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def expression_strengths(self) -> np.ndarray:
        """float [len(self)] in [0, 1]: how far each pair's target is in expression from its
        source, as a fraction of its take's apex — the mean distance of the 68 landmarks from
        frame 0's once head pose is removed (frgan.metrics.expression.expression_distance) over
        the take's largest. Every take then weighs the same whatever its expression's size (a
        smile moves fewer points than a dropped jaw)."""
        strengths = []
        for take in self.takes:
            points = mesh_of(take.landmarks).face68(take.landmarks)[..., :2]
            distance = np.nan_to_num(expression_distance(points), nan=0.0)
            distance[0] = 0.0  # the source itself (its self-alignment leaves rounding noise)
            strengths.append(distance / distance.max() if distance.max() > 0 else distance)
        return np.concatenate(strengths) if strengths else np.zeros(0)

    def take_positions(self) -> np.ndarray:
        """Each pair's place among its take's pairs: its target frame."""
        return self.locate(np.arange(len(self)))[1]

    def locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(take index, frame index) of each flat pair index."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"pair index out of range 0..{len(self) - 1}")
        take_ids = np.searchsorted(self.offsets, indices, side="right") - 1
        return take_ids, indices - self.offsets[take_ids]

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list[dict]:
        indices, seeds = split_keys(keys)
        take_ids, frame_ids = self.locate(indices)
        takes = [self.takes[i] for i in take_ids]
        target_landmarks = np.stack(
            [take.landmarks[t] for take, t in zip(takes, frame_ids, strict=True)]
        )
        retargeted = np.zeros(len(takes), dtype=bool)
        for b, take in enumerate(takes):
            driven = self._driven(take, 1, seeds[b])
            if driven is not None:
                target_landmarks[b], retargeted[b] = driven[0], True
        # One source map per distinct take: a streamed take's pairs all share it.
        unique_takes, source_of = np.unique(take_ids, return_inverse=True)
        source_landmarks = np.stack([self.takes[i].landmarks[0] for i in unique_takes])
        maps = torch.from_numpy(self.render(np.concatenate([source_landmarks, target_landmarks])))
        source_maps, target_maps = maps[: len(unique_takes)], maps[len(unique_takes) :]
        source_points, target_points = (
            face68_points(source_landmarks),
            face68_points(target_landmarks),
        )
        x0 = to_image_tensor(np.stack([self.takes[i].frames[0] for i in unique_takes]))
        xt = to_image_tensor(
            np.stack([take.frames[t] for take, t in zip(takes, frame_ids, strict=True)])
        )
        return [
            {
                "x0": x0[source_of[b]],
                "s0": source_maps[source_of[b]],
                "xt": xt[b],
                "st": target_maps[b],
                "l0": source_points[source_of[b]],
                "lt": target_points[b],
                "t": int(frame_ids[b]),
                "take": takes[b].key,
                "retargeted": bool(retargeted[b]),
            }
            for b in range(len(takes))
        ]


def clip_starts(num_frames: int, clip_length: int, stride: int) -> list[int]:
    """Start frames of the clips of a take: every `stride` frames while a whole clip fits,
    one clip at 0 for takes shorter than a clip (padded with their last frame)."""
    return list(range(0, max(1, num_frames - clip_length + 1), stride))


class RefineClips(_TakeDataset):
    """Clips of `clip_length` consecutive frames with the take's first frame and the maps."""

    def __init__(
        self, takes, render, clip_length: int, clip_stride: int, retarget_prob=0.0, drivers=None
    ):
        super().__init__(takes, render, retarget_prob, drivers)
        self.clip_length, self.clip_stride = int(clip_length), int(clip_stride)
        self.clips = [
            (take_id, start)
            for take_id, take in enumerate(self.takes)
            for start in clip_starts(len(take.frames), clip_length, clip_stride)
        ]

    def __len__(self) -> int:
        return len(self.clips)

    def take_positions(self) -> np.ndarray:
        """Each clip's place among its take's clips."""
        return np.array([start for _, start in self.clips], dtype=np.int64) // self.clip_stride

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list[dict]:
        samples = []
        for index, seed in zip(*split_keys(keys), strict=True):
            take_id, start = self.clips[index]
            take = self.takes[take_id]
            frames = np.minimum(np.arange(start, start + self.clip_length), len(take.frames) - 1)
            landmarks = take.landmarks[frames]
            driven = self._driven(take, self.clip_length, seed)
            if driven is not None:
                landmarks = driven
            maps = torch.from_numpy(self.render(np.concatenate([take.landmarks[:1], landmarks])))
            samples.append(
                {
                    "x0": to_image_tensor(take.frames[0]),
                    "s0": maps[0],
                    "l0": face68_points(take.landmarks[0]),
                    "frames": to_image_tensor(take.frames[frames]),
                    "structures": maps[1:],
                    "landmarks": face68_points(landmarks),
                    "start": start,
                    "take": take.key,
                    "retargeted": driven is not None,
                }
            )
        return samples


def make_samples(
    takes: Sequence[TakeSample],
    *,
    stage: str,
    render: StructureRenderer,
    clip_length: int,
    clip_stride: int,
    retarget_prob: float = 0.0,
    drivers: DriverBank | None = None,
) -> ForecastPairs | RefineClips:
    """The dataset of a training stage ('forecast' pairs or 'refine' clips) over `takes`."""
    if stage == "forecast":
        return ForecastPairs(takes, render, retarget_prob, drivers)
    if stage == "refine":
        return RefineClips(takes, render, clip_length, clip_stride, retarget_prob, drivers)
    raise ValueError(f"stage must be 'forecast' or 'refine', got '{stage}'")
