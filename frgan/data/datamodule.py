"""FRGANDataModule: prepared shards -> forecast pairs or refine clips, for one GPU or many.

Two ways to read the shards:
- memory: every take of a split decoded into RAM once (uint8), map-style datasets, exact
  epochs; under DDP Lightning wraps them in a DistributedSampler.
- stream: webdataset pipelines reading shards one take at a time (local paths, URLs or
  `pipe:` commands), split between ranks and DataLoader workers, shuffled through a buffer.
mode=auto picks memory when the decoded frames fit in `memory_limit_gb`.
"""

from __future__ import annotations

import copy
import itertools
from functools import partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import LightningDataModule
from pytorch_lightning.utilities.combined_loader import _shutdown_workers_and_reset_iterator
from rich.console import Console
from torch.utils.data import DataLoader, IterableDataset, Subset, get_worker_info

from frgan.data.datasets import DriverBank, clip_starts, make_samples
from frgan.data.errors import DataError
from frgan.data.prepare import (
    PrepareSettings,
    check_image_size,
    check_same_settings,
    prepare_dataset,
)
from frgan.data.resumable import ResumableLoader, ResumableSampler
from frgan.data.shards import (
    is_remote,
    load_manifest,
    manifest_path,
    shard_location,
    take_stream,
    verify_shards,
)
from frgan.data.structure import StructureRenderer
from frgan.data.topology import check_source
from frgan.data.topology import structure_mesh as structure_mesh_named
from frgan.errors import ConfigError
from frgan.utils.checks import check_choice, check_int, check_number
from frgan.utils.files import reporting_unwritable
from frgan.utils.stops import ignore_stop_signals

STAGES = ("forecast", "refine")
MODES = ("auto", "memory", "stream")
# prepare options that tune the run but do not change the shards' content
RUN_OPTIONS = ("workers", "overwrite", "progress")


def _plain(value):
    return (
        OmegaConf.to_container(value, resolve=True)
        if isinstance(value, DictConfig)
        else (value or {})
    )


class StreamingSamples(IterableDataset):
    """Samples expanded take by take from a webdataset take stream, shuffled through a buffer."""

    def __init__(
        self,
        urls,
        make_samples,
        *,
        records: dict[str, dict],
        tolerate_short: bool,
        train: bool,
        rank: int,
        world_size: int,
        shuffle_buffer: int,
        samples_per_worker: int | None,
        seed: int,
        retarget: bool,
        driver_capacity: int = 64,
    ):
        self.urls, self.make_samples, self.train = urls, make_samples, train
        self.records, self.tolerate_short = records, tolerate_short
        self.rank, self.world_size = rank, world_size
        self.shuffle_buffer, self.samples_per_worker, self.seed = (
            shuffle_buffer,
            samples_per_worker,
            seed,
        )
        self.retarget, self.driver_capacity = retarget, driver_capacity
        self.stride = 1  # every stride-th sample of each take (see `strided`)
        self.passes = 0  # iterations started (epochs); each worker counts its own
        self.resume_at: tuple[int, int] | None = None  # see `resume`

    def resume(self, epoch: int, batches: int, batch_size: int) -> None:
        """Start the next iteration at epoch `epoch` after its first `batches` batches of
        `batch_size`, as the DataLoader delivered them (from the same number of workers)."""
        self.passes = epoch
        self.resume_at = (batches, batch_size)

    def strided(self, stride: int) -> StreamingSamples:
        """A copy that yields every stride-th sample of each take (from its first)."""
        strided = copy.copy(self)
        strided.stride = stride
        return strided

    def _expand(self, takes, seed: int):
        drivers = DriverBank()  # recent takes of other subjects drive the retargeting augmentation
        seeds = torch.Generator().manual_seed(seed)
        for take in takes:
            dataset = self.make_samples([take], drivers=drivers)
            draws = torch.randint(2**62, (len(dataset),), generator=seeds).tolist()
            keys = list(zip(range(len(dataset)), draws, strict=True))[:: self.stride]
            yield from dataset.__getitems__(keys)
            if self.retarget:
                drivers.add(take, self.driver_capacity)

    def __iter__(self):
        # Training: every rank reads its own shards, round and round, and stops after the same
        # number of samples, so that DDP ranks run the same number of steps; the shuffles and
        # draws are seeded by (seed, epoch, rank, worker), so epochs differ yet runs repeat.
        # Validation and test: every rank reads every shard (uneven splits would stall DDP).
        epoch, self.passes = self.passes, self.passes + 1
        rank, world_size = (self.rank, self.world_size) if self.train else (0, 1)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        skip_samples = 0
        if self.resume_at is not None:
            # The DataLoader takes batches from its workers in turn, starting with worker 0;
            # batch b of the epoch came from worker b % workers. After `batches` batches the
            # next one is the turn of worker `batches % workers`, so this worker plays that
            # part (reads its shards, draws its seeds) and skips what it had delivered.
            batches, batch_size = self.resume_at
            worker = (worker + batches) % workers
            skip_samples = len(range(worker, batches, workers)) * batch_size
            self.resume_at = None
        seed = hash((self.seed, epoch + 1, rank, worker))
        pipeline = take_stream(
            self.urls,
            records=self.records,
            tolerate_short=self.tolerate_short,
            rank=rank,
            world_size=world_size,
            worker=worker,
            workers=workers,
            shuffle_shards=self.train,
            seed=seed,
        )
        pipeline = pipeline.compose(partial(self._expand, seed=seed))
        if self.train:
            import webdataset as wds

            pipeline = pipeline.compose(wds.filters.shuffle(self.shuffle_buffer, seed=seed))
            pipeline = pipeline.with_epoch(self.samples_per_worker)
        return itertools.islice(iter(pipeline), skip_samples, None)


class FRGANDataModule(LightningDataModule):
    """Shards of one dataset at one image size -> DataLoaders of forecast pairs or refine clips.

    Batches: forecast dict(x0, s0, xt, st [B,3,H,W] float32 in [-1,1], t, retargeted);
    refine dict(x0, s0 [B,3,H,W], frames, structures [B,T,3,H,W], start, retargeted).
    """

    def __init__(
        self,
        name: str,
        raw_dir: str | None,
        shard_dir: str,
        image_size: int = 64,
        stage: str = "forecast",
        clip_length: int = 16,
        clip_stride: int = 8,
        batch_size: int = 64,
        num_workers: int = 2,
        mode: str = "auto",
        memory_limit_gb: float = 8.0,
        structure: str = "normal",
        structure_mesh: str = "face68",
        retarget_prob: float = 0.0,
        expression_sampling: float = 0.0,
        val_stride: int = 1,
        shuffle_buffer: int = 2000,
        verify_checksums: bool = True,
        tolerate_short_shards: bool = False,
        pin_memory: bool = False,
        seed: int = 0,
        prepare: dict | None = None,
        synth: dict | None = None,
    ):
        super().__init__()
        check_choice("data.stage", stage, STAGES)
        check_choice("data.mode", mode, MODES)
        for key, value, least in (
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("clip_length", clip_length, 1),
            ("clip_stride", clip_stride, 1),
            ("val_stride", val_stride, 1),
        ):
            check_int(f"data.{key}", value, least)
        check_number("data.retarget_prob", retarget_prob, least=0.0, most=1.0)
        check_number("data.expression_sampling", expression_sampling, least=0.0, most=1.0)
        if expression_sampling > 0 and stage != "forecast":
            raise ConfigError(
                "data.expression_sampling weighs forecast pairs (data.stage=forecast); "
                "set it to 0 for the refine stage"
            )
        self.name, self.raw_dir, self.shard_dir = name, raw_dir, str(shard_dir)
        self.image_size = check_image_size(image_size)
        self.stage = stage
        self.clip_length, self.clip_stride = clip_length, clip_stride
        self.batch_size, self.num_workers = batch_size, num_workers
        self.mode, self.memory_limit_gb = mode, float(memory_limit_gb)
        self.retarget_prob = float(retarget_prob)
        self.expression_sampling = float(expression_sampling)
        self.val_stride = val_stride
        self.shuffle_buffer = int(shuffle_buffer)
        self.verify_checksums, self.pin_memory = bool(verify_checksums), bool(pin_memory)
        self.tolerate_short_shards = bool(tolerate_short_shards)
        self.seed = int(seed)
        self.prepare_options, self.synth_options = _plain(prepare), _plain(synth)
        self.structure_mesh = structure_mesh_named(structure_mesh).name
        check_source(self.structure_mesh, self.prepare_options.get("landmarks", "ground_truth"))
        self.render = StructureRenderer(structure, self.image_size, mesh=self.structure_mesh)
        self.structure_channels = StructureRenderer.channels
        self.manifest: dict | None = None
        self.resolved_mode: str | None = None
        self.datasets: dict = {}
        self._train_loader: ResumableLoader | None = None
        self._evaluation_loaders: list[DataLoader] = []
        self._train_loader_state: dict | None = None  # from a checkpoint, for the next loader

    # ---------------------------------------------------------------- preparation

    def prepare_settings(self) -> PrepareSettings:
        options = {k: v for k, v in self.prepare_options.items() if k not in RUN_OPTIONS}
        if options.get("expressions"):
            options["expressions"] = tuple(options["expressions"])
        try:
            return PrepareSettings(
                image_size=self.image_size, structure_mesh=self.structure_mesh, **options
            )
        except TypeError as error:
            known = sorted(PrepareSettings.__dataclass_fields__) + list(RUN_OPTIONS)
            raise ValueError(
                f"Unknown key in data.prepare ({error}); known keys: {known}"
            ) from error

    def prepare_data(self) -> None:
        """Build what is missing (Lightning calls this once per node before setup)."""
        if is_remote(self.shard_dir):
            return
        overwrite = self.prepare_options.get("overwrite", False)
        if manifest_path(self.shard_dir).is_file() and not overwrite:
            manifest = load_manifest(self.shard_dir)
            check_same_settings(manifest, self.prepare_settings(), self.shard_dir)
            return
        self.build_shards()

    def build_shards(self) -> dict:
        """Generate the raw synthetic set if it is missing (data=synthetic), then prepare or
        resume the shards; returns the manifest."""
        if is_remote(self.shard_dir):
            raise ValueError(
                f"Cannot prepare into a remote data.shard_dir ({self.shard_dir}); prepare locally and upload."
            )
        if self.raw_dir is None:
            raise ValueError(f"No data.raw_dir to prepare {self.shard_dir} from.")
        console = Console(stderr=True, soft_wrap=True)
        if self.name == "synthetic" and not (Path(self.raw_dir) / "dataset_card.json").is_file():
            from frgan.synthetic import generate_dataset

            console.print(f"[bold]data[/] no synthetic raw set in {self.raw_dir}: generating it")
            with reporting_unwritable(self.raw_dir, "data.raw_dir"):
                generate_dataset(self.raw_dir, **self.synth_options)
        console.print(f"[bold]data[/] preparing shards in {self.shard_dir} from {self.raw_dir}")
        return prepare_dataset(
            self.raw_dir,
            self.shard_dir,
            self.prepare_settings(),
            dataset=self.name,
            workers=int(self.prepare_options.get("workers") or 0),
            overwrite=bool(self.prepare_options.get("overwrite", False)),
            progress=bool(self.prepare_options.get("progress", True)),
            console=console,
        )

    # ---------------------------------------------------------------- datasets

    def _world(self) -> tuple[int, int]:
        """(world size, rank): from the trainer, else from torch.distributed, else (1, 0)."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.world_size, trainer.global_rank
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    def _decoded_gb(self) -> float:
        frames = sum(record["frames"] for record in self.manifest["shards"])
        return frames * self.image_size**2 * 3 / 1e9

    def _resolve_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "memory" if self._decoded_gb() <= self.memory_limit_gb else "stream"

    def _records(self, split: str) -> dict[str, dict]:
        """Manifest records of a split's shards, by the location they are read from."""
        return {
            shard_location(self.shard_dir, r["file"]): r
            for r in self.manifest["shards"]
            if r["split"] == split
        }

    def _make_samples(self, retarget_prob: float):
        return partial(
            make_samples,
            stage=self.stage,
            render=self.render,
            clip_length=self.clip_length,
            clip_stride=self.clip_stride,
            retarget_prob=retarget_prob,
        )

    def num_samples(self, split: str) -> int:
        """Samples (pairs or clips) of a split, from the manifest's per-take frame counts."""
        lengths = [
            n for r in self.manifest["shards"] if r["split"] == split for n in r["take_frames"]
        ]
        if self.stage == "forecast":
            return int(sum(lengths))
        return sum(len(clip_starts(n, self.clip_length, self.clip_stride)) for n in lengths)

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is None:
            self.manifest = load_manifest(self.shard_dir)
            if self.manifest["image_size"] != self.image_size:
                raise DataError(
                    f"Shards in {self.shard_dir} are {self.manifest['image_size']} px but data.image_size is "
                    f"{self.image_size}; point data.shard_dir at the {self.image_size} px shards."
                )
            prepared_mesh = self.manifest.get("structure_mesh", "face68")
            if prepared_mesh != self.structure_mesh:
                raise DataError(
                    f"Shards in {self.shard_dir} hold {prepared_mesh} landmarks "
                    f"({self.manifest.get('landmark_points', 68)} points) but "
                    f"data.structure_mesh={self.structure_mesh}; prepare the {self.structure_mesh} "
                    "shards into another data.shard_dir (the default shard_dir differs per mesh: "
                    "leave it unset) with python -m frgan.prepare "
                    f"data.structure_mesh={self.structure_mesh}"
                )
            if self.verify_checksums and not is_remote(self.shard_dir):
                verify_shards(self.shard_dir, self.manifest["shards"])
            self.resolved_mode = self._resolve_mode()
        splits = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
        }
        for split in splits.get(stage, ("train", "val", "test")):
            if split not in self.datasets:
                self.datasets[split] = self._build(split)

    def _build(self, split: str):
        train = split == "train"
        records = self._records(split)
        urls = list(records)
        if not urls:
            raise DataError(
                f"The {split} split of {self.shard_dir} has no shards (see manifest.json 'counts')."
            )
        retarget_prob = self.retarget_prob if train else 0.0
        if self.resolved_mode == "memory":
            takes = take_stream(urls, records=records, tolerate_short=self.tolerate_short_shards)
            return self._make_samples(retarget_prob)(list(takes))
        world, rank = self._world()
        readers = world * max(1, self.num_workers)
        if train and len(urls) < readers:
            raise DataError(
                f"Streaming needs at least one train shard per rank and worker ({readers}), found {len(urls)}; "
                f"prepare with a smaller data.prepare.takes_per_shard, use fewer workers, or data.mode=memory."
            )
        per_worker = self.num_samples(split) // readers if train else None
        return StreamingSamples(
            urls,
            self._make_samples(retarget_prob),
            records=records,
            tolerate_short=self.tolerate_short_shards,
            train=train,
            rank=rank,
            world_size=world,
            shuffle_buffer=self.shuffle_buffer,
            samples_per_worker=per_worker,
            seed=self.seed,
            retarget=retarget_prob > 0,
        )

    # ---------------------------------------------------------------- loaders

    def _loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        dataset = self.datasets[split]
        map_style = not isinstance(dataset, IterableDataset)
        options = dict(
            batch_size=self.per_process_batch_size(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            worker_init_fn=ignore_stop_signals,
            # the loader's own generator: making an iterator draws no number from torch's global
            # one, which the model's random draws use (a resumed run draws them again)
            generator=torch.Generator().manual_seed(self.seed),
        )
        if split == "val" and self.val_stride > 1:
            dataset = (
                Subset(
                    dataset,
                    np.flatnonzero(dataset.take_positions() % self.val_stride == 0).tolist(),
                )
                if map_style
                else dataset.strided(self.val_stride)
            )
        if split != "train":
            loader = DataLoader(dataset, **options)
            self._evaluation_loaders.append(loader)
            return loader
        if self.expression_sampling > 0 and not map_style:
            raise ConfigError(
                "data.expression_sampling draws pairs from takes held in memory, but the data "
                f"is streamed (data.mode={self.mode}); set data.mode=memory or "
                "data.expression_sampling=0"
            )
        world, rank = self._world()
        sampler = (
            ResumableSampler(
                dataset,
                num_replicas=world,
                rank=rank,
                seed=self.seed,
                weights=self._sampling_weights(dataset),
            )
            if map_style
            else None
        )
        loader = ResumableLoader(
            dataset,
            sampler=sampler,
            drop_last=map_style and len(dataset) >= self.batch_size,
            progress=self._epoch_progress,
            **options,
        )
        if self._train_loader_state is not None:
            loader.load_state_dict(self._train_loader_state)
            self._train_loader_state = None
        self._train_loader = loader
        return loader

    # Lightning keeps the training loader's position in checkpoints through these, as it
    # restores them before it makes the loader (its own loader-state path runs too late when
    # the model asks for the number of training steps while it is built, e.g. lr_schedule=cosine)
    def _sampling_weights(self, dataset):
        """Per-pair draw weights of the training sampler: a share `expression_sampling` of the
        draws in proportion to the pair's expression strength, the rest uniform; None when
        the share is 0 (a plain shuffle)."""
        if self.expression_sampling == 0:
            return None
        strengths = dataset.expression_strengths()
        share = self.expression_sampling
        uniform = np.full(len(strengths), 1.0 / max(len(strengths), 1))
        if strengths.sum() <= 0:
            return uniform
        return (1 - share) * uniform + share * strengths / strengths.sum()

    def state_dict(self) -> dict:
        return (
            {} if self._train_loader is None else {"train_loader": self._train_loader.state_dict()}
        )

    def load_state_dict(self, state: dict) -> None:
        self._train_loader_state = state.get("train_loader")

    def on_exception(self, exception: BaseException) -> None:
        """End the workers of every loader (they ignore stop signals): Lightning shuts down
        only the loader of the loop that was stopped, and an interpreter exiting with workers
        that ignore SIGTERM would wait for them forever."""
        for loader in [self._train_loader, *self._evaluation_loaders]:
            if loader is not None:
                _shutdown_workers_and_reset_iterator(loader)

    def _epoch_progress(self) -> tuple[int, int | float]:
        """(training batches done in this epoch, batches in an epoch), Lightning's count."""
        loop = self.trainer.fit_loop
        return loop.epoch_loop.batch_progress.current.processed, self.trainer.num_training_batches

    def per_process_batch_size(self) -> int:
        """data.batch_size is the global batch: under DDP each of N processes gets batch_size / N."""
        world, _ = self._world()
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size={self.batch_size} is not divisible by the {world} DDP processes."
            )
        return self.batch_size // world

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def sample_dataloader(self) -> DataLoader:
        """The val split's samples in order, every one of them (val_stride does not apply), read
        in this process: what a callback that shows whole held-out takes reads its first from."""
        if "val" not in self.datasets:
            self.setup("validate")
        return DataLoader(self.datasets["val"], batch_size=self.per_process_batch_size())

    def summary(self) -> dict:
        """Counts per split and the reading mode, for logs."""
        return {
            "mode": self.resolved_mode,
            "image_size": self.image_size,
            "stage": self.stage,
            **{split: self.num_samples(split) for split in ("train", "val", "test")},
            "val_stride": self.val_stride,
            "decoded_gb": round(self._decoded_gb(), 3),
            "skipped_takes": len(self.manifest["skipped"]),
        }

    def takes(self, split: str):
        """The decoded takes (TakeSample) of a split, one at a time in shard order (after setup):
        whole takes, for protocols that pick their own frames (frgan.evaluate's expression
        analysis)."""
        if self.manifest is None:
            raise RuntimeError("call setup() before takes()")
        records = self._records(split)
        return take_stream(
            list(records), records=records, tolerate_short=self.tolerate_short_shards
        )
