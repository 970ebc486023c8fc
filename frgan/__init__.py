"""frgan: structure-driven image-to-video generation (FRGAN) with PyTorch Lightning and Hydra."""

import os
import sys

from frgan.utils.threads import ThreadPolicyError, apply_thread_policy

__version__ = "0.1.0"

# before torch loads its OpenMP runtime, which reads the policy once (frgan/utils/threads.py)
try:
    apply_thread_policy(os.environ)
except ThreadPolicyError as error:
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2) from None
