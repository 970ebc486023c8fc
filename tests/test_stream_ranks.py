"""Streamed shards across DDP ranks and DataLoader workers: disjoint, complete, no rank starves."""

from __future__ import annotations

import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_datamodule import build_datamodule, prepared  # noqa: F401 - the prepared fixture

from frgan.data.errors import DataError


def _shard_of_take(shard_dir: Path) -> dict[str, str]:
    """take key -> the train shard holding it, from the tar members (<key>.<ext>)."""
    owner = {}
    for shard in sorted(shard_dir.glob("train-*.tar")):
        with tarfile.open(shard) as tar:
            for name in tar.getnames():
                owner[name.split(".")[0]] = shard.name
    return owner


def _as_rank(datamodule, rank: int, world: int):
    """The datamodule as rank `rank` of `world` DDP processes sees it."""
    datamodule.trainer = SimpleNamespace(world_size=world, global_rank=rank)
    datamodule.setup("fit")
    return datamodule


def _shards_by_worker(loader, owner: dict[str, str], workers: int) -> list[set[str]]:
    """Shards read by each DataLoader worker (batch i comes from worker i % workers)."""
    read = [set() for _ in range(max(workers, 1))]
    for index, batch in enumerate(loader):
        read[index % max(workers, 1)] |= {owner[take] for take in batch["take"]}
    return read


@pytest.mark.parametrize("shard_dir_kind", ["path", "pipe"])
def test_two_ranks_with_two_workers_read_disjoint_shards_covering_all(prepared, shard_dir_kind):  # noqa: F811
    owner = _shard_of_take(prepared / "shards")
    shards = set(owner.values())
    assert len(shards) == 4
    shard_dir = (
        prepared / "shards"
        if shard_dir_kind == "path"
        else f"'pipe:cat {prepared}/shards/{{file}}'"  # e.g. an object store's copy command
    )
    readers, batches = [], []
    for rank in (0, 1):
        datamodule = _as_rank(
            build_datamodule(prepared, mode="stream", num_workers=2, shard_dir=shard_dir), rank, 2
        )
        loader = datamodule.train_dataloader()
        assert loader.batch_size == 2, "the global batch of 4 is split between the 2 ranks"
        readers += _shards_by_worker(loader, owner, workers=2)
        batches.append(sum(1 for _ in loader))
    assert all(len(r) == 1 for r in readers), readers  # 4 readers, one shard each
    assert set.union(*readers) == shards, "together the readers cover every shard"
    assert len(set.union(*readers)) == sum(len(r) for r in readers), "and no shard twice"
    assert batches[0] == batches[1], "every rank runs the same number of steps"


def test_uneven_shards_no_rank_starves_or_runs_longer(prepared):  # noqa: F811
    owner = _shard_of_take(prepared / "shards")
    # 4 shards over 3 ranks: rank 0 reads two shards, ranks 1 and 2 one each
    counts, shards_read = [], []
    for rank in range(3):
        datamodule = _as_rank(
            build_datamodule(prepared, mode="stream", num_workers=0, batch_size=6, val_stride=1),
            rank,
            3,
        )
        loader = datamodule.train_dataloader()
        epochs = [[len(batch["take"]) for batch in loader] for _ in range(2)]
        assert epochs[0] == epochs[1], "the same steps every epoch"
        samples = sum(epochs[0])
        assert samples == datamodule.num_samples("train") // 3, "no rank starves"
        counts.append(epochs[0])
        shards_read.append({owner[t] for batch in loader for t in batch["take"]})
        # validation: every rank reads every shard, so the ranks stop together
        assert sum(len(b["take"]) for b in datamodule.val_dataloader()) == datamodule.num_samples(
            "val"
        )
    assert counts[0] == counts[1] == counts[2], "equal batches per rank: no hang at the epoch end"
    assert [len(s) for s in shards_read] == [2, 1, 1]
    assert set.union(*shards_read) == set(owner.values())


def test_more_readers_than_shards_is_refused_with_the_way_out(prepared):  # noqa: F811
    datamodule = build_datamodule(prepared, mode="stream", num_workers=2, batch_size=6)
    datamodule.trainer = SimpleNamespace(world_size=3, global_rank=0)
    with pytest.raises(DataError, match="at least one train shard per rank and worker"):
        datamodule.setup("fit")
