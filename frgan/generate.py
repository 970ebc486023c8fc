"""Animate a photo with a driver's expression using a trained model.

python -m frgan.generate ckpt=outputs/train/runs/<run> source=face.jpg driver=video.mp4
python -m frgan.generate ckpt=<run> source=<take>/img_0000.jpg driver=<other take> save_frames=true
python -m frgan.generate ckpt=<run> source=me.jpg driver=video.mp4 motion=expression+pose paste_back=true

Writes animation.mp4 and animation.gif with the columns source | driver | driver structure |
retargeted structure | generated, with paste_back=true photo.mp4 and photo.gif (the whole
source photo, animated), and generate.json (what was used, timings), into the run folder
outputs/generate/runs/<date>_<time>/ or `out=`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from frgan.data.crop import pixel_box
from frgan.data.datasets import to_image_tensor
from frgan.data.structure import StructureRenderer
from frgan.errors import ConfigError
from frgan.inference.animate import COLUMNS, MOTIONS, generate_clip, grid, structure_maps
from frgan.inference.faces import driver_take, source_face
from frgan.inference.frames import read_driver, read_image
from frgan.inference.model import load_trained_model
from frgan.inference.paste import paste_back
from frgan.utils.checks import check_choice, check_int, check_number
from frgan.utils.cli import report_user_errors, run_hydra_app
from frgan.utils.device import resolve_device
from frgan.utils.files import write_json_atomic
from frgan.utils.media import to_uint8, write_gif, write_image, write_mp4

log = logging.getLogger(__name__)

DEFAULT_FPS = 10.0


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Run the whole pipeline; returns what generate.json records (paths, sources, timings)."""
    for key in ("ckpt", "source", "driver"):
        if not cfg.get(key):
            raise ConfigError(
                f"{key}= is required: python -m frgan.generate ckpt=<checkpoint or run folder> "
                "source=<image> driver=<video | frame folder | take folder>"
            )
    for key in ("chunk", "max_frames"):
        if cfg.get(key) is not None:
            check_int(key, cfg.get(key))
    check_choice("motion", cfg.motion, MOTIONS)
    feather = check_number("paste_feather", cfg.paste_feather, least=0, most=0.5)
    out_dir = Path(cfg.out) if cfg.get("out") else Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # a file there or no permission: said up front
    device = resolve_device(cfg.device)

    trained = load_trained_model(cfg.ckpt, cfg.get("structure"))
    model = trained.model.to(device)
    size = trained.image_size
    source_path = Path(cfg.source)
    mesh = trained.structure_mesh
    photo = read_image(source_path, "source image")
    face = source_face(photo, source_path, size, cfg.landmarks, mesh=mesh)
    driver_frames = read_driver(cfg.driver, cfg.get("max_frames"))
    driver = driver_take(driver_frames, size, str(cfg.driver), cfg.landmarks, mesh=mesh)
    frames = len(driver.frames)
    print(
        f"Model: {trained.checkpoint} ({type(model).__name__}, {size} px, {trained.structure} maps)"
    )
    print(f"Source face: {source_path} (landmarks: {face.landmark_source})")
    print(
        f"Driver: {cfg.driver}: {frames} frames (landmarks: {driver.landmark_source}; "
        f"motion: {cfg.motion})"
    )
    if driver.frames_without_face:
        print(
            f"note: no face in {driver.frames_without_face} driver frame(s); they repeat the "
            "landmarks of the frame before"
        )
    if trained.data_name == "synthetic" and face.landmark_source != "ground_truth":
        print(
            "note: this model was trained on the synthetic faces (data=synthetic); it is not "
            "expected to paint a real face well. Train on real video (data=mug) for that."
        )

    started = time.perf_counter()
    render = StructureRenderer(trained.structure, size, mesh=mesh)
    maps = structure_maps(face, driver, render, cfg.motion)
    x0 = to_image_tensor(face.image)[None]
    with _progress(cfg.progress) as progress:
        task = progress.add_task("generating", total=frames)
        generated, clip_name = generate_clip(
            model,
            x0,
            maps,
            chunk=cfg.chunk,
            advance=lambda n: progress.advance(task, n),
        )
    seconds = time.perf_counter() - started

    fps = float(cfg.fps or driver_frames.fps or DEFAULT_FPS)
    video = grid(face, driver, maps, generated)
    written = {
        "mp4": write_mp4(out_dir / "animation.mp4", video, fps),
        "gif": write_gif(out_dir / "animation.gif", video, fps),
    }
    animated_photo = None
    if cfg.paste_back:
        animated_photo = paste_back(photo, to_uint8(generated), face.box, feather)
        written["photo_mp4"] = write_mp4(out_dir / "photo.mp4", animated_photo, fps)
        written["photo_gif"] = write_gif(out_dir / "photo.gif", animated_photo, fps)
    if cfg.save_frames:
        (out_dir / "frames").mkdir(exist_ok=True)
        for index, frame in enumerate(video):
            write_image(out_dir / "frames" / f"frame_{index:04d}.png", frame)
        for index, frame in enumerate(animated_photo if animated_photo is not None else ()):
            write_image(out_dir / "frames" / f"photo_{index:04d}.png", frame)
        written["frames"] = out_dir / "frames"
    record = {
        "checkpoint": str(trained.checkpoint),
        "model": type(model).__name__,
        "image_size": size,
        "structure": trained.structure,
        "structure_mesh": mesh,
        "trained_on": trained.data_name,
        "source": str(source_path),
        "source_landmarks": face.landmark_source,
        "driver": str(cfg.driver),
        "driver_landmarks": driver.landmark_source,
        "driver_frames_without_face": driver.frames_without_face,
        "frames": frames,
        "fps": fps,
        "motion": cfg.motion,
        "paste_back": bool(cfg.paste_back),
        # the face crop in the source photo: left column, top row, side (pixels)
        "source_crop_box": list(pixel_box(face.box)),
        "source_size": [photo.shape[1], photo.shape[0]],  # width, height
        "columns": list(COLUMNS),
        "generated_clip": clip_name,
        "device": str(device),
        "render_and_model_seconds_per_frame": seconds / frames,
        "outputs": {k: str(v) for k, v in written.items()},
    }
    write_json_atomic(out_dir / "generate.json", record, indent=2)
    return record


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate.yaml")
@report_user_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    """The command: generate, then say where the files are (user errors: one line, exit 2)."""
    record = generate(cfg)
    outputs = record["outputs"]
    print(
        f"Wrote {outputs['mp4']} and {outputs['gif']} ({record['frames']} frames of the "
        f"{record['generated_clip']} clip; columns: {' | '.join(COLUMNS)})"
    )
    if "photo_mp4" in outputs:
        width, height = record["source_size"]
        print(
            f"Wrote {outputs['photo_mp4']} and {outputs['photo_gif']} (the source photo, "
            f"{width}x{height}, animated)"
        )
    if "frames" in outputs:
        photos = " and photo_NNNN.png" if "photo_mp4" in outputs else ""
        print(f"Frames: {outputs['frames']}/frame_NNNN.png{photos}")
    return record


if __name__ == "__main__":
    run_hydra_app(main)
