#!/bin/sh
# Print the path of a Python that frgan supports (3.10-3.13) for `make` to build .venv with.
# usage: scripts/pick_python.sh [python]   (default: python3)
# The given interpreter when it is supported; else the newest supported python3.X on PATH or
# installed by pyenv, with a note on stderr; else one line saying what to install, exit 1.
set -u
OLDEST=10
NEWEST=13
wanted="${1:-python3}"

supported() {
    "$1" -c "import sys; sys.exit(not (3, $OLDEST) <= sys.version_info[:2] <= (3, $NEWEST))" \
        >/dev/null 2>&1
}

if supported "$wanted"; then
    command -v "$wanted" 2>/dev/null || echo "$wanted"
    exit 0
fi
found=$("$wanted" -c "import sys; print('is Python %d.%d,' % sys.version_info[:2])" 2>/dev/null \
    || echo "was not found,")
pyenv_root=$(pyenv root 2>/dev/null || true)
minor=$NEWEST
while [ "$minor" -ge "$OLDEST" ]; do
    for candidate in "python3.$minor" ${pyenv_root:+"$pyenv_root"/versions/3.$minor.*/bin/python3.$minor}; do
        if supported "$candidate"; then
            path=$(command -v "$candidate" 2>/dev/null || echo "$candidate")
            echo "note: $wanted $found frgan needs Python 3.$OLDEST-3.$NEWEST: using $path (Python 3.$minor)" >&2
            echo "$path"
            exit 0
        fi
    done
    minor=$((minor - 1))
done
echo "error: $wanted $found and no Python 3.$OLDEST-3.$NEWEST was found; install one (e.g. apt install python3.11-venv, or pyenv install 3.12) and run: make PYTHON=python3.12" >&2
exit 1
