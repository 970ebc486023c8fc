#!/usr/bin/env bash
# The README's install for real on the oldest and the newest Python that frgan supports: for
# each one this machine has (python3.X on the PATH or installed by pyenv), a fresh clone runs
# `make test` with it on a few test files (install, configs, landmarks). A Python that is not
# installed is skipped with a message. By hand, not in CI: PyPI's torch for Pythons other than
# the machine's own is its CUDA build (.venv about 6 GB, about 7 minutes per Python here).
# usage: scripts/check_install.sh [minor ...]   (default: 10 13)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tests="tests/test_install.py tests/test_configs.py tests/test_landmarks.py"

# pyenv's shims are on the PATH for every version but fail for one that is not selected: run it
find_python() {
    local root candidate
    root=$(pyenv root 2>/dev/null || true)
    for candidate in "$(command -v "python3.$1" 2>/dev/null || true)" \
        $(ls -d "$root"/versions/3."$1".*/bin/python3."$1" 2>/dev/null | sort -rV); do
        if [ -n "$candidate" ] &&
            [ "$("$candidate" -c 'import sys; print(sys.version_info[1])' 2>/dev/null)" = "$1" ]; then
            echo "$candidate"
            return
        fi
    done
}

minors=("$@")
[ ${#minors[@]} -gt 0 ] || minors=(10 13)
for minor in "${minors[@]}"; do
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
