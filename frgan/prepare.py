"""Prepare a raw MUG-layout folder, or a folder of videos, into shards (and, for
data=synthetic, generate it first).

    python -m frgan.prepare data=synthetic
    python -m frgan.prepare data=mug data.raw_dir=/datasets/MUG data.image_size=64 data.prepare.workers=4
    python -m frgan.prepare data=videos data.raw_dir=/data/my_videos data.prepare.videos.label_level=1

Shards and manifest.json land in data.shard_dir (default data/<name>/shards/<size>px).
Re-running resumes: finished shards are kept, missing or damaged ones are rebuilt.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from frgan.utils.cli import report_user_errors, run_hydra_app


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare.yaml")
@report_user_errors(stop_hint="run the same command again to resume: finished shards are kept")
def main(cfg: DictConfig) -> None:
    datamodule = hydra.utils.instantiate(cfg.data)
    manifest = datamodule.build_shards()
    print(
        f"Shards: {datamodule.shard_dir} ({len(manifest['shards'])} shards, manifest.json beside them)"
    )


if __name__ == "__main__":
    run_hydra_app(main)
