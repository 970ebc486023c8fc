#!/usr/bin/env bash
# The README's install on the oldest and the newest Python that frgan supports (3.10, 3.13):
# for each one this machine has (python3.X on the PATH or installed by pyenv), a fresh clone
# runs `make test` with it on a few test files (install, configs, landmarks). A Python that is
# not installed is skipped with a message. Used by .ci/run; by hand: scripts/check_install.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tests="tests/test_install.py tests/test_configs.py tests/test_landmarks.py"

find_python() {
    command -v "python3.$1" 2>/dev/null && return
    local root
    root=$(pyenv root 2>/dev/null) || return 0
    ls -d "$root"/versions/3."$1".*/bin/python3."$1" 2>/dev/null | tail -n 1
}

for minor in 10 13; do
    python=$(find_python "$minor")
    if [ -z "$python" ]; then
        echo "check_install: skipped Python 3.$minor (not installed on this machine)"
        continue
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    git clone -q "$repo" "$work/frgan"
    echo "check_install: make test with $python"
    WANDB_MODE=offline make -C "$work/frgan" test PYTHON="$python" ARGS="-q $tests"
    rm -rf "$work"
done
