"""The synthetic expression-video generator: layout, determinism, ground truth, errors, resume."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from frgan.errors import ConfigError
from frgan.synthetic import (
    ACTION_UNITS,
    EXPRESSIONS,
    IDENTITY_NAMES,
    build_head,
    generate_dataset,
    render_take,
)
from frgan.synthetic import writer as synth_writer
from frgan.synthetic.appearance import LABEL
from frgan.synthetic.preview import write_preview
from frgan.utils.media import CAPTION_HEIGHT

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
TINY = dict(
    subjects=4,
    takes_per_expression=1,
    image_size=64,
    min_frames=6,
    max_frames=9,
    seed=3,
    progress=False,
)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "raw"
    summary = generate_dataset(root, workers=0, **TINY)
    return root, summary


def take_files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("s*/*/take*/*"))}


def test_head_model_is_dense_with_enough_parameters():
    head = build_head()
    assert head.num_vertices >= 2000
    assert len(IDENTITY_NAMES) >= 10 and head.identity_basis.shape[0] == len(IDENTITY_NAMES)
    assert len(ACTION_UNITS) >= 10
    assert len(set(head.landmark_ids.tolist())) == 68


def test_layout_matches_mug(tiny_set):
    root, summary = tiny_set
    subjects = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert subjects == ["s001", "s002", "s003", "s004"]
    for subject in subjects:
        assert sorted(p.name for p in (root / subject).iterdir()) == sorted(EXPRESSIONS)
        for expression in EXPRESSIONS:
            takes = sorted(p.name for p in (root / subject / expression).iterdir())
            assert takes == ["take000"]
            take = root / subject / expression / "take000"
            frames = sorted(take.glob("img_*.jpg"))
            assert [f.name for f in frames] == [f"img_{i:04d}.jpg" for i in range(len(frames))]
            assert TINY["min_frames"] <= len(frames) <= TINY["max_frames"]
            with np.load(take / "ground_truth.npz") as truth:
                assert truth["landmarks"].dtype == np.float32
                assert truth["landmarks"].shape == (len(frames), 68, 3)
                assert truth["expression"].shape == (len(frames), len(ACTION_UNITS))
                assert truth["pose"].shape == (len(frames), 6)
                assert truth["identity"].shape == (len(IDENTITY_NAMES),)
                assert str(truth["expression_label"]) == expression
                assert "vertices" not in truth
    card = (root / "dataset_card.json").read_text()
    assert '"generator_version"' in card and '"seed": 3' in card
    assert summary["takes"] == 24 and summary["frames"] == sum(
        1 for _ in root.glob("s*/*/take*/img_*.jpg")
    )


def test_same_seed_same_data_whatever_the_worker_count(tiny_set, tmp_path):
    root, _ = tiny_set
    parallel = tmp_path / "parallel"
    generate_dataset(parallel, workers=2, **TINY)
    assert take_files(parallel) == take_files(root)
    other_seed = tmp_path / "other"
    generate_dataset(
        other_seed, workers=0, **{**TINY, "seed": 4, "subjects": 1, "expressions": ["fear"]}
    )
    with (
        np.load(root / "s001/fear/take000/ground_truth.npz") as a,
        np.load(other_seed / "s001/fear/take000/ground_truth.npz") as b,
    ):
        assert not np.array_equal(a["identity"], b["identity"])


def test_expression_subset_renders_the_same_takes(tiny_set, tmp_path):
    root, _ = tiny_set
    subset = tmp_path / "subset"
    generate_dataset(subset, workers=0, **{**TINY, "subjects": 1, "expressions": ["surprise"]})
    ours = take_files(subset)
    assert ours and all(take_files(root)[name] == data for name, data in ours.items())


def test_save_vertices_writes_the_dense_mesh(tmp_path):
    generate_dataset(
        tmp_path / "v",
        workers=0,
        save_vertices=True,
        **{**TINY, "subjects": 1, "expressions": ["anger"]},
    )
    with np.load(tmp_path / "v/s001/anger/take000/ground_truth.npz") as truth:
        vertices, landmarks = truth["vertices"], truth["landmarks"]
        assert vertices.shape[1] >= 2000 and truth["faces"].shape[1] == 3
        np.testing.assert_array_equal(vertices[:, build_head().landmark_ids], landmarks)


def test_preview_sheet_and_gifs(tiny_set):
    root, _ = tiny_set
    written = write_preview(root)
    assert sorted(p.name for p in written) == sorted(
        ["contact_sheet.png"] + [f"{e}.gif" for e in EXPRESSIONS]
    )
    sheet = np.asarray(Image.open(root / "preview/contact_sheet.png"))
    size = TINY["image_size"]
    assert sheet.shape[:2] == (CAPTION_HEIGHT + 4 * size, 7 * size)  # header + subjects x (1 + 6)
    with Image.open(root / "preview/happiness.gif") as gif:
        longest = max(
            len(list(root.glob(f"s00{s}/happiness/take000/img_*.jpg"))) for s in range(1, 5)
        )
        assert gif.n_frames == longest and gif.size == (2 * size, 2 * size)


# Which rendered regions each landmark group may fall on.
LANDMARK_REGIONS = {
    "jaw": (range(0, 17), {"skin"}),
    "brows": (range(17, 27), {"brow", "skin"}),
    "nose": (range(27, 36), {"skin", "nostril"}),
    "eyes": (range(36, 48), {"eyelid", "eyeball"}),
    "mouth": (range(48, 68), {"lip", "mouth_interior", "teeth"}),
}


def test_landmarks_lie_on_their_face_regions():
    hits = {group: [] for group in LANDMARK_REGIONS}
    for subject in range(2):
        for expression in EXPRESSIONS:
            take = render_take(
                5,
                subject,
                expression,
                0,
                image_size=128,
                min_frames=8,
                max_frames=10,
                with_labels=True,
            )
            columns = np.floor(take.landmarks[..., 0]).astype(int)
            rows = np.floor(take.landmarks[..., 1]).astype(int)
            frames = np.arange(len(take.labels))[:, None]
            found = take.labels[frames, rows, columns]  # [T,68] region under each landmark
            for group, (ids, regions) in LANDMARK_REGIONS.items():
                allowed = [LABEL[name] for name in regions]
                hits[group].append(np.isin(found[:, list(ids)], allowed).ravel())
    rates = {group: float(np.concatenate(h).mean()) for group, h in hits.items()}
    assert min(rates.values()) >= 0.97, rates
    # The eyes really are eyes: most eye-landmark pixels are on the lid margin or eyeball.
    assert rates["eyes"] >= 0.99 and rates["jaw"] == 1.0, rates


def align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Similarity (rotation, scale, translation) alignment of point sets [P,D] (Procrustes)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(s.T @ t)
    d = np.ones(len(sigma))
    d[-1] = np.sign(np.linalg.det(u @ vt))
    rotation = (u * d) @ vt
    scale = (sigma * d).sum() / (s**2).sum()
    return scale * s @ rotation + mu_t


def apex_and_neutral(seed: int, subjects: range) -> dict:
    out = {}
    for subject in subjects:
        for expression in EXPRESSIONS:
            take = render_take(
                seed, subject, expression, 0, image_size=64, min_frames=12, max_frames=16
            )
            out[subject, expression] = (take.landmarks[take.apex_frame], take.landmarks[0])
    return out


@pytest.fixture(scope="module")
def landmark_takes():
    return apex_and_neutral(11, range(10))


def test_expression_recoverable_from_apex_displacement(landmark_takes):
    def feature(apex, neutral):
        aligned = align(apex[:, :2], neutral[:, :2])
        spread = np.linalg.norm(neutral[36, :2] - neutral[45, :2])  # outer eye corners
        return ((aligned - neutral[:, :2]) / spread).ravel()

    train, test = range(0, 6), range(6, 10)
    centroids = np.stack(
        [np.mean([feature(*landmark_takes[s, e]) for s in train], 0) for e in EXPRESSIONS]
    )
    correct = [
        np.argmin(np.linalg.norm(centroids - feature(*landmark_takes[s, e]), axis=1)) == k
        for s in test
        for k, e in enumerate(EXPRESSIONS)
    ]
    assert np.mean(correct) >= 0.9


def test_subject_recoverable_from_neutral_frame(landmark_takes):
    subjects = range(10)
    gallery = {s: landmark_takes[s, "anger"][1] for s in subjects}
    correct = []
    for s in subjects:
        for expression in EXPRESSIONS[1:]:
            probe = landmark_takes[s, expression][1]
            distances = [np.linalg.norm(align(probe, gallery[g]) - gallery[g]) for g in subjects]
            correct.append(int(np.argmin(distances)) == s)
    assert np.mean(correct) >= 0.9


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"subjects": -1}, "subjects"),
        ({"subjects": 0}, "subjects"),
        ({"takes_per_expression": 0}, "takes_per_expression"),
        ({"image_size": 16}, "too small"),
        ({"min_frames": 10, "max_frames": 5}, "min_frames"),
        ({"expressions": ["happiness", "boredom"]}, "boredom"),
        ({"seed": -3}, "seed"),
        ({"workers": -1}, "workers"),
        ({"subjects": 2.5}, "subjects"),
    ],
)
def test_bad_config_fails_before_any_work(tmp_path, bad, message):
    root = tmp_path / "never"
    with pytest.raises(ConfigError, match=message):
        generate_dataset(root, **{**TINY, **bad})
    assert not root.exists()


def test_non_empty_folder_refused_unless_overwrite(tmp_path):
    root = tmp_path / "busy"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    options = {**TINY, "subjects": 1, "expressions": ["sadness"]}
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_dataset(root, workers=0, **options)
    summary = generate_dataset(root, workers=0, overwrite=True, **options)
    assert summary["takes_generated"] == 1 and not (root / "notes.txt").exists()
    with pytest.raises(FileExistsError, match="different config"):
        generate_dataset(root, workers=0, **{**options, "seed": 99})
    assert (
        generate_dataset(root, workers=0, **options)["takes_generated"] == 0
    )  # same config: complete


def test_interrupted_run_resumes(tiny_set, tmp_path, monkeypatch):
    reference, _ = tiny_set
    root = tmp_path / "resumed"
    real_write_take = synth_writer.write_take
    calls = []

    def write_then_die(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the sixth take
        calls.append(args)
        return real_write_take(*args)

    monkeypatch.setattr(synth_writer, "write_take", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(root, workers=0, **TINY)
    monkeypatch.setattr(synth_writer, "write_take", real_write_take)
    assert not (root / "dataset_card.json").exists()
    # A half-written take from the crash, and a take folder whose ground truth never landed.
    (root / "s001/anger/.take000.partial999").mkdir()
    broken = root / "s004/surprise/take000"
    broken.mkdir(parents=True)
    (broken / "img_0000.jpg").write_bytes(b"half")

    summary = generate_dataset(root, workers=0, **TINY)
    assert summary["state"] == "resume" and summary["takes_generated"] == 24 - 5
    assert take_files(root) == take_files(reference)
    assert not list(root.glob("*/*/.take*"))


def test_hydra_config_matches_the_python_api():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="synth", overrides=["subjects=2", "paths.root_dir=/tmp/x"])
    assert cfg.subjects == 2 and cfg.root == "/tmp/x/data/synthetic/raw"
    import inspect

    from frgan.synth import OPTIONS

    parameters = set(inspect.signature(generate_dataset).parameters) - {"root"}
    assert set(OPTIONS) == parameters
