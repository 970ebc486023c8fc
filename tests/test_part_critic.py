import pytest
import torch

from frgan.models.part_critic import PARTS, PartCritic, crop_size, part_crops
from frgan.render.face68 import mean_face68

SIZE = 64


def _landmarks(batch: int = 1) -> torch.Tensor:
    return torch.from_numpy(mean_face68(SIZE, SIZE)[:, :2]).float().expand(batch, 68, 2).clone()


def _coordinate_image() -> torch.Tensor:
    """[1,2,S,S]: each pixel holds its own centre (x, y) in pixels."""
    centres = torch.arange(SIZE, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x, y])[None]


@pytest.mark.parametrize("part", list(PARTS))
def test_a_crop_is_centred_on_its_part_and_sized_by_the_eye_distance(part):
    landmarks = _landmarks()
    crop = part_crops(_coordinate_image(), landmarks, part)[0]
    height, width = crop_size(part, SIZE)
    assert crop.shape == (2, height, width)
    centre = landmarks[0, list(PARTS[part].points)].mean(0)
    middle = crop[:, height // 2 - 1 : height // 2 + 1, width // 2 - 1 : width // 2 + 1]
    assert torch.allclose(middle.mean(dim=(1, 2)), centre, atol=1e-3)
    # the mean face's eye line is level: the crop spans width x height eye distances
    eyes = landmarks[0, 42:48].mean(0) - landmarks[0, 36:42].mean(0)
    span_x = float((crop[0, :, -1] - crop[0, :, 0]).mean()) * width / (width - 1)
    span_y = float((crop[1, -1] - crop[1, 0]).mean()) * height / (height - 1)
    assert span_x == pytest.approx(PARTS[part].width * float(eyes.norm()), rel=1e-3)
    assert span_y == pytest.approx(PARTS[part].height * float(eyes.norm()), rel=1e-3)


@pytest.mark.parametrize("part", list(PARTS))
def test_a_crop_follows_the_face_when_it_moves_and_turns(part):
    torch.manual_seed(0)
    image, landmarks = torch.rand(1, 3, SIZE, SIZE), _landmarks()
    reference = part_crops(image, landmarks, part)
    shifted = part_crops(
        torch.roll(image, (3, -5), dims=(-2, -1)), landmarks + torch.tensor([-5.0, 3.0]), part
    )
    assert torch.allclose(shifted, reference, atol=1e-5)
    # a quarter turn: the pixel at (x, y) goes to (y, S - x)
    turned_landmarks = torch.stack([landmarks[..., 1], SIZE - landmarks[..., 0]], dim=-1)
    turned = part_crops(torch.rot90(image, 1, dims=(-2, -1)), turned_landmarks, part)
    assert torch.allclose(turned, reference, atol=1e-5)


def test_crops_pass_gradients_to_the_frame_and_the_critic_scores_each_sample():
    images = torch.rand(2, 3, SIZE, SIZE, requires_grad=True)
    structure = torch.rand(2, 3, SIZE, SIZE)
    landmarks = _landmarks(2)
    critic = PartCritic(width=8, max_channels=32)
    scores = critic(
        part_crops(images, landmarks, "mouth"), part_crops(structure, landmarks, "mouth")
    )
    assert scores.shape == (2,)
    scores.sum().backward()
    touched = images.grad.abs().sum(dim=(0, 1)) > 0
    mouth_rows = landmarks[0, 48:68, 1]
    rows = touched.any(dim=1).nonzero().flatten().float() + 0.5
    assert touched.any()
    # only pixels around the mouth receive gradient
    assert rows.min() > mouth_rows.min() - 20 and rows.max() < mouth_rows.max() + 20
    assert not touched[:10].any()


def test_part_points_are_where_the_parts_landmarks_appear_in_its_crops():
    from frgan.models.part_critic import part_points

    torch.manual_seed(0)
    landmarks = torch.from_numpy(mean_face68(64, 64)[:, :2]).float()[None]
    landmarks = landmarks + 0.3 * torch.randn_like(landmarks)  # a turned, uneven face
    for part, frame in PARTS.items():
        points = part_points(landmarks, part)
        assert points.shape == (1, len(frame.points), 2) and points.abs().max() < 1
        for k in (0, len(frame.points) // 2):
            x, y = landmarks[0, frame.points[k]].long().tolist()
            dot = torch.zeros(1, 1, 64, 64)
            dot[..., y, x] = 1.0  # the pixel holding landmark k
            crop = part_crops(dot, landmarks, part)[0, 0]
            row, col = divmod(int(crop.argmax()), crop.shape[1])
            found = torch.tensor([(col + 0.5) / crop.shape[1], (row + 0.5) / crop.shape[0]])
            # 2.5 crop pixels: the landmark's offset inside its image pixel (~1.8 crop pixels
            # per image pixel here) and the crop's own pixel
            tolerance = 2.5 * 2 / torch.tensor([crop.shape[1], crop.shape[0]])
            assert ((found * 2 - 1 - points[0, k]).abs() < tolerance).all(), (part, k)


def test_refiner_windows_hold_the_parts_of_prepared_face_crops(tiny_data_dir):
    """The fixed windows of frgan/models/part_refiner.py hold the parts' landmarks, with their
    feathered border to spare, in every frame of the prepared synthetic takes."""
    import numpy as np
    from conftest import TINY_DATA, compose_config
    from hydra.utils import instantiate

    from frgan.models.part_refiner import FEATHER, window_slices

    cfg = compose_config("train.yaml", [f"paths.data_dir={tiny_data_dir}", *TINY_DATA])
    data = instantiate(cfg.data)
    data.setup("fit")
    size = cfg.data.image_size
    landmarks = np.concatenate(
        [
            take.landmarks[..., :2]
            for split in ("train", "val")
            for take in data.datasets[split].takes
        ]
    )
    margin = FEATHER * size
    for part in PARTS:
        points = landmarks[:, list(PARTS[part].points)]
        rows, cols = window_slices(part, size)
        assert (
            cols.start + margin <= points[..., 0].min()
            and points[..., 0].max() <= cols.stop - margin
        ), part
        assert rows.start + margin <= points[..., 1].min() or rows.start == 0, part
        assert points[..., 1].max() <= rows.stop - margin, part
