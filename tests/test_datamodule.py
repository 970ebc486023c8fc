"""FRGANDataModule: config composition, memory and stream modes, workers, DDP, checksums."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from test_prepare import write_raw_dataset
from torch.utils.data import DistributedSampler

from frgan.data import FRGANDataModule
from frgan.data.errors import CorruptShard, DataError

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
REPO = Path(__file__).resolve().parents[1]


def data_overrides(tmp: Path, **extra) -> list[str]:
    options = {
        "raw_dir": tmp / "raw",
        "shard_dir": tmp / "shards",
        "batch_size": 4,
        "num_workers": 0,
        "prepare.takes_per_shard": 2,
        "prepare.progress": False,
        "prepare.split_fractions": "{train: 0.5, val: 0.25, test: 0.25}",
        **extra,
    }
    # a leading "+" adds a key the config does not have
    return [
        f"+data.{key[1:]}={value}" if key.startswith("+") else f"data.{key}={value}"
        for key, value in options.items()
    ]


def build_datamodule(tmp: Path, config: str = "prepare", **extra) -> FRGANDataModule:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name=config, overrides=["data=synthetic", *data_overrides(tmp, **extra)]
        )
    return hydra.utils.instantiate(cfg.data)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """8 subjects x 2 expressions x 1 take x 4 frames, prepared at 64 px (2 takes per shard)."""
    tmp = tmp_path_factory.mktemp("data")
    write_raw_dataset(tmp / "raw", subjects=8, takes=1, frames=4)
    build_datamodule(tmp).prepare_data()
    return tmp


def collect(loader) -> list[dict]:
    return list(loader)


def test_config_composes_for_both_datasets(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        mug = compose(config_name="prepare", overrides=["data=mug", "paths.root_dir=/r"])
        synthetic = compose(
            config_name="prepare", overrides=["data=synthetic", "paths.root_dir=/r"]
        )
    assert mug.data._target_ == synthetic.data._target_ == "frgan.data.FRGANDataModule"
    assert mug.data.shard_dir == "/r/data/mug/shards/64px"
    assert (
        mug.data.prepare.split_method == "paper" and mug.data.prepare.landmarks == "face_alignment"
    )
    assert synthetic.data.shard_dir == "/r/data/synthetic/shards/64px"
    with pytest.raises(InstantiationException, match="image_size must be one of"):
        build_datamodule(tmp_path, image_size=100)
    with pytest.raises(ValueError, match="Unknown key in data.prepare"):
        build_datamodule(tmp_path, **{"+prepare.crop_mode": "x"}).prepare_settings()


def test_memory_mode_batches(prepared):
    datamodule = build_datamodule(prepared, mode="memory")
    datamodule.prepare_data()  # shards exist: nothing to do
    datamodule.setup("fit")
    assert datamodule.resolved_mode == "memory" and datamodule.image_size == 64
    train = collect(datamodule.train_dataloader())
    batch = train[0]
    for key in ("x0", "s0", "xt", "st"):
        assert batch[key].shape == (4, 3, 64, 64) and batch[key].dtype == torch.float32
        assert -1.0 <= batch[key].min() and batch[key].max() <= 1.0
    assert batch["x0"].min() < -0.5 and batch["x0"].max() > 0.5  # images use the whole range
    face, background = batch["s0"] != 0, batch["s0"][:, :, 0, 0]
    assert face.any() and (background == 0).all()
    # exact epoch: every (take, t) pair once (drop_last leaves out at most a batch)
    total = datamodule.num_samples("train")
    seen = {(take, int(t)) for b in train for take, t in zip(b["take"], b["t"], strict=True)}
    assert total - 4 < len(seen) <= total == len(datamodule.datasets["train"])
    t0 = batch["t"] == 0
    assert torch.equal(batch["x0"][t0], batch["xt"][t0]) and torch.equal(
        batch["s0"][t0], batch["st"][t0]
    )

    split = datamodule.manifest["split"]
    val_takes = {take for b in datamodule.val_dataloader() for take in b["take"]}
    datamodule.setup("test")
    test_takes = {take for b in datamodule.test_dataloader() for take in b["take"]}
    subject = lambda key: key.split("__")[0]  # noqa: E731
    assert {subject(k) for k in val_takes} == set(split["val"])
    assert {subject(k) for k in test_takes} == set(split["test"])
    assert not set(split["train"]) & (set(split["val"]) | set(split["test"]))


def test_workers_and_stream_mode_match_memory(prepared):
    memory = build_datamodule(prepared, mode="memory", num_workers=2)
    memory.setup("fit")
    stream = build_datamodule(prepared, mode="stream", num_workers=2)
    stream.setup("fit")
    assert stream.resolved_mode == "stream"

    def pairs(loader):
        return sorted(
            (take, int(t)) for b in loader for take, t in zip(b["take"], b["t"], strict=True)
        )

    assert pairs(memory.val_dataloader()) == pairs(stream.val_dataloader())
    streamed = pairs(stream.train_dataloader())
    assert len(streamed) == stream.num_samples("train")  # with_epoch: the same count each epoch
    all_train_pairs = {
        (take.key, t) for take in memory.datasets["train"].takes for t in range(len(take.frames))
    }
    assert set(streamed) <= all_train_pairs
    assert len(set(streamed)) > len(streamed) // 2

    # mode=auto: memory when the decoded frames fit data.memory_limit_gb, else stream
    auto = build_datamodule(prepared)
    auto.setup("validate")
    tight = build_datamodule(prepared, memory_limit_gb=1e-6)
    tight.setup("validate")
    assert (auto.resolved_mode, tight.resolved_mode) == ("memory", "stream")

    # shards read through a `pipe:` command ({file} is replaced by each file name)
    piped = build_datamodule(
        prepared, mode="stream", shard_dir=f"'pipe:cat {prepared}/shards/{{file}}'"
    )
    piped.setup("validate")
    assert pairs(piped.val_dataloader()) == pairs(memory.val_dataloader())


def test_expression_sampling_draws_strong_expressions_more_often(prepared):
    from frgan.errors import ConfigError

    datamodule = build_datamodule(prepared, mode="memory", expression_sampling=1.0)
    datamodule.setup("fit")
    pairs = datamodule.datasets["train"]
    strengths = pairs.expression_strengths()
    takes, frames = pairs.locate(np.arange(len(pairs)))
    assert strengths.shape == (len(pairs),) and ((0 <= strengths) & (strengths <= 1)).all()
    assert (strengths[frames == 0] == 0).all()  # the source itself has no expression
    for take in np.unique(takes):  # each take's own apex is 1
        assert strengths[takes == take].max() == pytest.approx(1.0)
    drawn = []
    for _ in range(30):
        drawn += [
            (take, int(t))
            for b in datamodule.train_dataloader()
            for take, t in zip(b["take"], b["t"], strict=True)
        ]
    assert all(t > 0 for _, t in drawn), "frame 0 (strength 0) is never drawn at share 1"
    assert len(drawn) == 30 * (len(pairs) // 4) * 4  # an epoch keeps its length

    with pytest.raises(ConfigError, match="data.expression_sampling"):
        build_datamodule(prepared, mode="stream", expression_sampling=0.5).train_dataloader()
    with pytest.raises(InstantiationException, match="data.stage=forecast"):
        build_datamodule(prepared, stage="refine", expression_sampling=0.5)
    with pytest.raises(InstantiationException, match="data.expression_sampling"):
        build_datamodule(prepared, expression_sampling=1.5)


def test_refine_clips_and_retargeting(prepared):
    datamodule = build_datamodule(
        prepared, mode="memory", stage="refine", clip_length=3, clip_stride=1
    )
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["frames"].shape == batch["structures"].shape == (4, 3, 3, 64, 64)
    assert batch["x0"].shape == (4, 3, 64, 64)
    # 8 train takes of 4 frames give 2 clips of 3 frames each
    assert datamodule.num_samples("train") == len(datamodule.datasets["train"]) == 8 * 2

    plain = build_datamodule(prepared, mode="memory")
    plain.setup("fit")
    driven = build_datamodule(prepared, mode="memory", retarget_prob=1.0)
    driven.setup("fit")
    index = [5, 6, 7]
    a = plain.datasets["train"].__getitems__(index)
    b = driven.datasets["train"].__getitems__(index)
    assert all(s["retargeted"] for s in b) and not any(s["retargeted"] for s in a)
    assert all(
        torch.equal(x["xt"], y["xt"]) and torch.equal(x["s0"], y["s0"])
        for x, y in zip(a, b, strict=True)
    )
    assert not torch.equal(a[1]["st"], b[1]["st"])  # another subject's expression drives the target
    assert not any(s["retargeted"] for s in driven.datasets["val"].__getitems__([0, 1]))


def test_val_stride_validates_every_nth_sample_of_each_take(prepared):
    """The val loader reads samples 0, k, 2k, ... of every take, alike in memory and stream
    mode; the test split and the sample loader (whole takes for the sample videos) stay whole."""

    def samples(loader, key):
        return sorted(
            (take, int(t)) for b in loader for take, t in zip(b["take"], b[key], strict=True)
        )

    for mode in ("memory", "stream"):
        datamodule = build_datamodule(prepared, mode=mode, val_stride=3)
        datamodule.setup("fit")
        whole = samples(datamodule.sample_dataloader(), "t")
        assert len(whole) == datamodule.num_samples("val") == 4 * 4  # 4 takes of 4 frames
        assert samples(datamodule.val_dataloader(), "t") == [p for p in whole if p[1] % 3 == 0]
        datamodule.setup("test")
        assert len(samples(datamodule.test_dataloader(), "t")) == datamodule.num_samples("test")
    # refine clips (starts 0, 1 of each 4-frame take): every 2nd clip is the one at 0
    clips = build_datamodule(
        prepared, mode="memory", stage="refine", clip_length=3, clip_stride=1, val_stride=2
    )
    clips.setup("fit")
    starts = samples(clips.val_dataloader(), "start")
    assert starts == [(take, 0) for take, _ in starts] and len(starts) == 4
    with pytest.raises(InstantiationException, match="data.val_stride"):
        build_datamodule(prepared, val_stride=0)


def test_corrupt_shard_is_named(prepared, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared / "shards", copy / "shards")
    victim = sorted((copy / "shards").glob("val-*.tar"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(CorruptShard, match=victim.name):
        build_datamodule(copy, mode="memory").setup("fit")
    # without the checksum, reading fails naming it
    with pytest.raises(CorruptShard, match=victim.name):
        datamodule = build_datamodule(copy, mode="memory", verify_checksums=False)
        datamodule.setup("validate")
    with pytest.raises(DataError, match="other settings"):
        build_datamodule(prepared, **{"prepare.crop_follow": True}).prepare_data()


def _ddp_worker(rank: int, world: int, port: int, tmp: str, results: dict) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out = {}
        for mode in ("memory", "stream"):
            datamodule = build_datamodule(Path(tmp), mode=mode)
            datamodule.setup("fit")
            dataset = datamodule.datasets["train"]
            if mode == "memory":  # what Lightning does under DDP for a map-style dataset
                sampler = DistributedSampler(dataset, shuffle=True, seed=0)
                out[mode] = sorted(int(i) for i in sampler)
            else:
                out[mode] = sorted((s["take"], s["t"]) for s in dataset)
                assert len(out[mode]) == datamodule.num_samples("train") // world
        results[rank] = out
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_get_distinct_parts(prepared):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(2, port, str(prepared), results), nprocs=2, join=True)
        results = dict(results)
    memory = [set(results[r]["memory"]) for r in (0, 1)]
    assert memory[0].isdisjoint(memory[1]) and len(memory[0]) == len(memory[1]) > 0
    stream_takes = [{take for take, _ in results[r]["stream"]} for r in (0, 1)]
    assert stream_takes[0].isdisjoint(stream_takes[1]) and all(stream_takes)
    assert len(results[0]["stream"]) == len(results[1]["stream"])  # same number of steps per rank


def test_synthetic_set_generated_and_prepared_on_first_use(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a narrow log: messages must not break inside a path
    synth = {
        "subjects": 4,
        "takes_per_expression": 1,
        "image_size": 64,
        "min_frames": 3,
        "max_frames": 4,
        "workers": 0,
    }
    options = {f"synth.{key}": value for key, value in synth.items()}
    datamodule = build_datamodule(tmp_path, config="prepare", **options)
    datamodule.prepare_data()
    messages = capsys.readouterr().err
    assert f"no synthetic raw set in {tmp_path / 'raw'}: generating it" in messages
    assert "preparing shards" in messages
    card = json.loads((tmp_path / "raw" / "dataset_card.json").read_text())
    assert card

    datamodule.setup("fit")
    counts = datamodule.manifest["counts"]
    assert (
        sum(c["takes"] for c in counts.values()) == 4 * 6 and datamodule.manifest["skipped"] == []
    )
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["xt"].shape == (4, 3, 64, 64)
    # the ground-truth landmarks were carried into the crop: inner face points (brows to mouth)
    # land on face pixels, not on the plain background seen in the crop's corner
    for take in datamodule.datasets["train"].takes:
        xy = np.floor(take.landmarks[0, 17:, :2]).astype(int)
        assert ((0 <= xy) & (xy < 64)).all()
        frame = take.frames[0].astype(int)
        assert np.abs(frame[xy[:, 1], xy[:, 0]] - frame[1, 1]).sum(axis=1).mean() > 60
    datamodule.prepare_data()  # second time: nothing to do
    assert "generating" not in capsys.readouterr().err


def test_prepare_entry_point(tmp_path):
    write_raw_dataset(tmp_path / "raw", subjects=4, takes=1, frames=2)
    command = [
        sys.executable,
        "-m",
        "frgan.prepare",
        "data=synthetic",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    command += data_overrides(tmp_path)
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "shards" / "manifest.json").is_file()
    assert "Shards:" in result.stdout
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_datamodule(tmp_path / "nowhere", **{"name": "other"}).build_shards()
