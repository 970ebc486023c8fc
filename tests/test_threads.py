"""The OpenMP thread policy (frgan/utils/threads.py): chosen from the environment, applied
before torch loads its OpenMP runtime in every entry point, the user's own settings kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from frgan.utils.threads import (
    OPENMP_WAIT_VARIABLES,
    POLICY_VARIABLE,
    ThreadPolicyError,
    apply_thread_policy,
    thread_policy_variables,
)

REPO = Path(__file__).resolve().parents[1]


def test_passive_by_default_and_the_torch_policy_sets_nothing():
    assert thread_policy_variables({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_policy_variables({POLICY_VARIABLE: "Passive "}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_policy_variables({POLICY_VARIABLE: "torch"}) == {}


@pytest.mark.parametrize("name", OPENMP_WAIT_VARIABLES)
def test_a_waiting_variable_the_user_set_is_kept(name):
    environ = {name: "ACTIVE" if name == "OMP_WAIT_POLICY" else "1000"}
    apply_thread_policy(environ)
    assert environ == {name: environ[name]}


def test_an_unknown_policy_names_the_choices():
    with pytest.raises(ThreadPolicyError, match=rf"^{POLICY_VARIABLE}='spin' is invalid: one of"):
        thread_policy_variables({POLICY_VARIABLE: "spin"})


def _openmp_settings(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` with libgomp printing the settings it read when torch loaded it."""
    clean = {
        k: v for k, v in os.environ.items() if k not in (*OPENMP_WAIT_VARIABLES, POLICY_VARIABLE)
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _spin_count(result: subprocess.CompletedProcess) -> str:
    if "OPENMP DISPLAY ENVIRONMENT" not in result.stderr + result.stdout:
        pytest.skip("torch's OpenMP runtime does not print its settings (not libgomp)")
    for line in (result.stderr + result.stdout).splitlines():
        if line.strip().startswith("GOMP_SPINCOUNT"):
            return line.split("=")[1].strip().strip("'")
    pytest.skip("torch's OpenMP runtime is not libgomp")


def test_entry_points_load_torch_with_threads_that_sleep_when_waiting():
    # `python -m frgan.train` imports the frgan package, then frgan.train, then torch
    result = _openmp_settings("import frgan.train, torch; torch.ones(1)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _spin_count(result) == "0", "libgomp still spins: the policy came after torch loaded"


def test_the_torch_policy_keeps_the_runtimes_spinning():
    result = _openmp_settings("import frgan, torch; torch.ones(1)", **{POLICY_VARIABLE: "torch"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(_spin_count(result)) > 0


def test_an_unknown_policy_is_one_line_and_exit_2():
    result = _openmp_settings("import frgan.train", **{POLICY_VARIABLE: "spin"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {POLICY_VARIABLE}='spin' is invalid: one of passive, torch (default passive)"
    ]
