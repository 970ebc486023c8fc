"""Write the synthetic expression-video dataset (MUG layout + ground truth).

python -m frgan.synth                                  # default set into data/synthetic/raw
python -m frgan.synth root=/tmp/synth subjects=4 takes_per_expression=1 image_size=64 preview=true
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig, OmegaConf

from frgan.utils.cli import report_user_errors, run_hydra_app

OPTIONS = (
    "subjects",
    "takes_per_expression",
    "image_size",
    "min_frames",
    "max_frames",
    "expressions",
    "seed",
    "workers",
    "overwrite",
    "preview",
    "save_vertices",
    "progress",
)


@hydra.main(version_base="1.3", config_path="../conf", config_name="synth.yaml")
@report_user_errors(stop_hint="run the same command again to resume: finished takes are kept")
def main(cfg: DictConfig) -> dict:
    from frgan.synthetic import generate_dataset

    options = OmegaConf.to_container(cfg, resolve=True)
    summary = generate_dataset(options["root"], **{key: options[key] for key in OPTIONS})
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    run_hydra_app(main)
