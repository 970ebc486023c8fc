"""Exact resumption: a run killed at any step and resumed from its last checkpoint ends with
the same weights and logs the same metrics as the run that was never stopped, bit for bit on
a CPU, in memory and stream modes, with and without DataLoader workers."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_DATA, TINY_RUN, compose_config
from pytorch_lightning import Callback

import frgan.train as train_module
from frgan.train import train
from frgan.utils.checkpoint_io import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
# 2 epochs of 5 batches, a checkpoint after every step, retargeting on (random draws per
# sample), validation every epoch (the best and last checkpoints at the epoch's end)
RUN = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "test=false",
    "callbacks.periodic_checkpoint.every_n_train_steps=1",
    "callbacks.sample_media=null",
    "data.retarget_prob=0.5",
]


class Killed(Exception):
    """Stands for a SIGKILL (the subprocess test below sends a real one)."""


class KillAt(Callback):
    """Kills the run as batch `at` (counted over the whole fit) starts: the last checkpoint is
    the one written after the batch before."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.at:
            raise Killed


@pytest.fixture(scope="module")
def stream_data_dir(tiny_data_dir, tmp_path_factory) -> Path:
    """The tiny set prepared again with 2 takes per shard: enough train shards for 2 workers."""
    import hydra

    data_dir = tmp_path_factory.mktemp("stream_data")
    raw = tiny_data_dir / "synthetic" / "raw"
    overrides = [f"paths.data_dir={data_dir}", *TINY_DATA, f"data.raw_dir={raw}"]
    cfg = compose_config("train.yaml", [*overrides, "data.prepare.takes_per_shard=2"])
    hydra.utils.instantiate(cfg.data).prepare_data()
    return data_dir


def data_overrides(mode: str, workers: int, tiny_data_dir: Path, stream_data_dir) -> list[str]:
    if mode == "memory":
        return [
            f"paths.data_dir={tiny_data_dir}",
            "data.mode=memory",
            f"data.num_workers={workers}",
        ]
    raw = tiny_data_dir / "synthetic" / "raw"
    return [
        f"paths.data_dir={stream_data_dir}", f"data.raw_dir={raw}", "data.mode=stream",
        "data.prepare.takes_per_shard=2", f"data.num_workers={workers}",
    ]  # fmt: skip


def fit(run_dir: Path, overrides: list[str], monkeypatch, kill_at: int | None = None):
    cfg = compose_config("train.yaml", [*TINY_DATA, *TINY_RUN, *RUN, *overrides], run_dir)
    if kill_at is not None:
        build = train_module.instantiate_callbacks
        monkeypatch.setattr(
            train_module, "instantiate_callbacks", lambda c: [*build(c), KillAt(kill_at)]
        )
        with pytest.raises(Killed):
            train(cfg)
        monkeypatch.undo()
        return None
    _, objects = train(cfg)
    return objects["model"].state_dict()


def logged(run_dir: Path) -> dict[tuple[str, str], str]:
    """metrics.csv as {(step, column): value}, the last value written for each."""
    values = {}
    with open(run_dir / "csv" / "metrics.csv") as rows:
        for row in csv.DictReader(rows):
            values.update({(row["step"], k): v for k, v in row.items() if v not in ("", None)})
    return values


def assert_same_weights(resumed: dict, uninterrupted: dict) -> None:
    assert resumed.keys() == uninterrupted.keys()
    differing = [name for name in resumed if not torch.equal(resumed[name], uninterrupted[name])]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"


@pytest.mark.parametrize(
    ("mode", "workers"),
    [
        ("memory", 0),
        pytest.param("memory", 2, marks=pytest.mark.slow),
        pytest.param("stream", 0, marks=pytest.mark.slow),
        pytest.param("stream", 2, marks=pytest.mark.slow),
    ],
)
def test_a_killed_and_resumed_run_ends_as_the_uninterrupted_one(
    tiny_data_dir, request, tmp_path, monkeypatch, mode, workers
):
    stream_data = request.getfixturevalue("stream_data_dir") if mode == "stream" else None
    overrides = data_overrides(mode, workers, tiny_data_dir, stream_data)
    uninterrupted = fit(tmp_path / "whole", overrides, monkeypatch)
    expected = logged(tmp_path / "whole")
    # killed mid-epoch (batch 3 of epoch 0), and as epoch 1 starts (the checkpoint was written
    # at the end of epoch 0, after its validation)
    for kill_at in (3, 5):
        run_dir = tmp_path / f"killed_at_{kill_at}"
        fit(run_dir, overrides, monkeypatch, kill_at=kill_at)
        resumed = fit(run_dir, [*overrides, "ckpt_path=last"], monkeypatch)
        assert_same_weights(resumed, uninterrupted)
        assert logged(run_dir) == expected, f"killed at batch {kill_at}"


@pytest.mark.slow
def test_a_run_killed_by_sigkill_resumes_exactly(tiny_data_dir, tmp_path):
    """A real SIGKILL to the process group, workers included, whenever a checkpoint exists."""
    env = {**os.environ, "WANDB_MODE": "offline"}

    def command(run_dir: Path, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "frgan.train", f"paths.data_dir={tiny_data_dir}",
            f"hydra.run.dir={run_dir}", *TINY_DATA, *TINY_RUN, *RUN, "trainer.max_epochs=3",
            "data.num_workers=2", *extra,
        ]  # fmt: skip

    whole = subprocess.run(command(tmp_path / "whole"), cwd=REPO, env=env, capture_output=True)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed_dir = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(
            command(killed_dir), cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
        )
    last = killed_dir / "checkpoints" / "last.ckpt"
    try:
        while not last.exists():
            assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.05)
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    resumed = subprocess.run(
        command(killed_dir, "ckpt_path=last"), cwd=REPO, env=env, capture_output=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def final(run_dir: Path) -> dict:
        return read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]

    assert_same_weights(final(killed_dir), final(tmp_path / "whole"))
    assert logged(killed_dir) == logged(tmp_path / "whole")


def test_the_sampler_skips_by_index_and_keeps_every_samples_seed():
    from frgan.data.resumable import ResumableSampler

    sampler = ResumableSampler(range(10), num_replicas=1, rank=0, seed=3)
    sampler.start_pass(epoch=2, skip=0)
    whole = list(sampler)
    sampler.start_pass(epoch=2, skip=4)
    assert list(sampler) == whole[4:]
    sampler.start_pass(epoch=3, skip=0)
    assert list(sampler) != whole, "each epoch has its own order and draws"
    sampler.set_epoch(7)  # Lightning's call: the loader decides the epoch
    assert sampler.epoch == 3


def test_a_weighted_sampler_draws_in_proportion_splits_ranks_and_resumes():
    from frgan.data.resumable import ResumableSampler

    weights = np.array([0.0, 1.0, 3.0, 0.0])
    sampler = ResumableSampler(range(4), num_replicas=1, rank=0, seed=1, weights=weights)
    draws = []
    for epoch in range(1000):
        sampler.start_pass(epoch=epoch, skip=0)
        draws += [index for index, _ in sampler]
    counts = np.bincount(draws, minlength=4)
    assert len(draws) == 4000 and counts[0] == counts[3] == 0
    assert counts[2] / len(draws) == pytest.approx(0.75, abs=0.03)

    sampler.start_pass(epoch=5, skip=0)
    whole = list(sampler)
    sampler.start_pass(epoch=5, skip=3)
    assert list(sampler) == whole[3:]
    ranks = [
        ResumableSampler(range(4), num_replicas=2, rank=r, seed=1, weights=weights) for r in (0, 1)
    ]
    for rank in ranks:
        rank.start_pass(epoch=5, skip=0)
    single = ResumableSampler(range(4), num_replicas=1, rank=0, seed=1, weights=weights)
    single.start_pass(epoch=5, skip=0)
    shares = [[index for index, _ in rank] for rank in ranks]
    assert [i for pair in zip(*shares, strict=True) for i in pair] == [i for i, _ in single]
    with pytest.raises(ValueError, match="4 finite"):
        ResumableSampler(range(4), num_replicas=1, rank=0, seed=1, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="positive sum"):
        ResumableSampler(range(4), num_replicas=1, rank=0, seed=1, weights=[0.0] * 4)


def test_a_stream_stopped_mid_epoch_resumes_only_with_as_many_workers():
    from torch.utils.data import IterableDataset

    from frgan.data.resumable import ResumableLoader

    class Stream(IterableDataset):
        def resume(self, epoch, batches, batch_size):
            self.position = (epoch, batches, batch_size)

        def __iter__(self):
            return iter([])

    loader = ResumableLoader(Stream(), batch_size=2, progress=lambda: (0, 1))
    with pytest.raises(ValueError, match="data.num_workers=2"):
        loader.load_state_dict({"epoch": 1, "batches": 3, "readers": 2})
    loader.load_state_dict({"epoch": 1, "batches": 3, "readers": 1})
    assert loader.dataset.position == (1, 3, 2)


def test_random_states_survive_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    from frgan.utils.random_state import random_states, set_random_states

    torch.save({"states": random_states()}, tmp_path / "states.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    set_random_states(torch.load(tmp_path / "states.pt", weights_only=True)["states"])
    drawn = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(drawn[0], expected[0])
    assert np.array_equal(drawn[1], expected[1]) and drawn[2] == expected[2]
