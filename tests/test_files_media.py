"""Atomic writes and media writers: complete files or none, the formats people open."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from frgan.utils.files import atomic_path, is_temporary, write_json_atomic
from frgan.utils.media import side_by_side, to_uint8, write_gif, write_image, write_mp4


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError("No space left on device")
    assert target.read_text().strip().endswith("}") and '"version": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_temporaries_keep_the_suffix_and_are_recognised(tmp_path):
    with atomic_path(tmp_path / "grid.png") as tmp:
        assert tmp.suffix == ".png" and is_temporary(tmp)
        write_image(tmp.with_name("other.png"), np.zeros((4, 4, 3), np.uint8))
        tmp.write_bytes(b"x")
    assert not is_temporary(tmp_path / "grid.png")


def test_uint8_conversion_and_columns():
    images = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = to_uint8(images)
    assert out.shape == (2, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [0, 128, 255]
    grey = side_by_side([images, images[:, :1]])
    assert grey.shape == (2, 3, 2, 4)


def test_png_gif_mp4_round_trip(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (5, 15, 21, 3), dtype=np.uint8)
    assert iio.imread(write_image(tmp_path / "a.png", frames[0])).shape == (15, 21, 3)
    assert iio.imread(write_gif(tmp_path / "a.gif", frames), index=None).shape[:3] == (5, 15, 21)
    video = iio.imread(write_mp4(tmp_path / "a.mp4", frames), index=None, plugin="pyav")
    assert video.shape == (5, 16, 22, 3)  # padded to even sizes for yuv420p


def test_writers_refuse_wrong_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_gif(tmp_path / "a.gif", np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="0 frames"):
        write_mp4(tmp_path / "a.mp4", np.zeros((0, 4, 4, 3), np.uint8))
    assert not list(tmp_path.iterdir())
