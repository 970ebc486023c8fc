"""How torch's CPU threads wait for work: a fair share of a machine shared with other jobs.

torch runs its CPU kernels on an OpenMP thread pool (GNU libgomp in the Linux wheels). By
default a thread that finishes its part of a kernel spins (libgomp: GOMP_SPINCOUNT=300,000
iterations) before it sleeps. Alone on the machine that saves a wake-up per kernel; beside
another CPU-bound job the spinning thread burns the core that the thread it waits for needs,
and a run slows far more than its share (scripts/bench_train.py --stages contention measures
it). The `passive` policy makes waiting threads sleep at once (OMP_WAIT_POLICY=PASSIVE).

The OpenMP runtime reads its variables once, when it is loaded (at `import torch`), so the
policy is applied by `frgan/__init__.py`, before any entry point imports torch. Set
FRGAN_THREAD_POLICY=torch to keep the runtime's defaults; an OpenMP waiting variable that the
user set (OMP_WAIT_POLICY, GOMP_SPINCOUNT, KMP_BLOCKTIME) is always left as it is. Thread
counts stay torch's (one per core; OMP_NUM_THREADS is respected), DataLoader workers use one.
This module must not import torch (nor anything that does).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from frgan.errors import ConfigError

POLICY_VARIABLE = "FRGAN_THREAD_POLICY"
DEFAULT_POLICY = "passive"
# the variables each policy sets (unless the user set any OpenMP waiting variable)
POLICIES: dict[str, dict[str, str]] = {
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "torch": {},
}
OPENMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


class ThreadPolicyError(ConfigError):
    """FRGAN_THREAD_POLICY names no policy."""


def thread_policy_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The OpenMP variables to add to `environ` for the policy it names (FRGAN_THREAD_POLICY,
    default passive): none when it already sets how OpenMP threads wait."""
    policy = environ.get(POLICY_VARIABLE, DEFAULT_POLICY).strip().lower()
    if policy not in POLICIES:
        raise ThreadPolicyError(
            f"{POLICY_VARIABLE}={environ[POLICY_VARIABLE]!r} is invalid: one of "
            f"{', '.join(POLICIES)} (default {DEFAULT_POLICY})"
        )
    if any(name in environ for name in OPENMP_WAIT_VARIABLES):
        return {}
    return dict(POLICIES[policy])


def apply_thread_policy(environ: MutableMapping[str, str]) -> None:
    """Add the policy's variables to `environ` (os.environ, before torch is imported)."""
    environ.update(thread_policy_variables(environ))
