#!/usr/bin/env bash
# One prepared check of a GPU machine, in under 5 minutes (make gpu-check):
#   1. one GPU: training steps of the paper preset in 16-mixed and bf16-mixed (scripts/bench_train.py),
#      samples/s and MFU (peak TFLOP/s from the GPU's name, or PEAK_TFLOPS=... to set it);
#   2. DDP over every visible GPU: a few steps of a real run (tiny synthetic set, bf16-mixed).
# Outputs under outputs/gpu_check/<date>_<time>/ (bench JSON and its results page
# train_forecast_refine_gpu.md, the DDP run folder, logs).
# Without a CUDA GPU it stops at once with `error: ...` and status 2.
#   scripts/gpu_check.sh                      # PYTHON=.venv/bin/python by default
#   PEAK_TFLOPS=989 BATCH=64 scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BATCH=${BATCH:-64}
OUT=${OUT:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}

if ! gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)'); then
    echo "error: $PYTHON cannot import torch; run make install first" >&2
    exit 2
fi
if [ "$gpus" -lt 1 ]; then
    echo "error: no CUDA GPU visible to torch ($("$PYTHON" -c 'import torch; print(torch.__version__)')):" \
        "run this on a GPU machine with the CUDA build of torch (see README, Install)" >&2
    exit 2
fi
name=$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))')
if [ -z "${PEAK_TFLOPS:-}" ]; then
    # dense 16-bit tensor-core peaks (the MFU reference); unknown GPUs: set PEAK_TFLOPS
    case "$name" in
        *H100*PCIe*) PEAK_TFLOPS=756 ;;
        *H100* | *H200* | *H800*) PEAK_TFLOPS=989 ;;
        *A100* | *A800*) PEAK_TFLOPS=312 ;;
        *L40S*) PEAK_TFLOPS=362 ;;
        *V100*) PEAK_TFLOPS=125 ;;
        *) PEAK_TFLOPS= ;;
    esac
fi
mkdir -p "$OUT"
echo "== $gpus x $name; peak ${PEAK_TFLOPS:-unknown (set PEAK_TFLOPS for MFU)} TFLOP/s; outputs in $OUT"
export WANDB_MODE=disabled

echo "== 1/2 one GPU: paper preset, batch $BATCH, 16-mixed and bf16-mixed"
timeout 180 "$PYTHON" scripts/bench_train.py --accelerator gpu --presets paper \
    --precisions 16-mixed bf16-mixed --batch-size "$BATCH" --warmup 2 --steps 5 \
    ${PEAK_TFLOPS:+--peak-tflops "$PEAK_TFLOPS"} --out "$OUT/bench_train.json" --docs "$OUT" \
    2>&1 | tee "$OUT/bench_train.log"

echo "== 2/2 DDP over $gpus GPU(s): a few steps of a real run (tiny synthetic set)"
timeout 240 "$PYTHON" -m frgan.train trainer=ddp trainer.devices="$gpus" trainer.precision=bf16-mixed \
    paths.data_dir="$OUT/data" hydra.run.dir="$OUT/ddp" \
    data.synth.subjects=4 data.synth.takes_per_expression=1 data.synth.image_size=64 \
    data.prepare.progress=false data.batch_size=$((4 * gpus)) data.num_workers=2 \
    model.preset=small trainer.max_epochs=1 trainer.limit_train_batches=8 \
    trainer.limit_val_batches=2 test=false logger=csv extras.print_config=false \
    callbacks.progress_bar.mode=lines callbacks.progress_bar.every_n_seconds=1 \
    2>&1 | tee "$OUT/ddp.log"
test -f "$OUT/ddp/checkpoints/last.ckpt" || {
    echo "error: the DDP run wrote no checkpoint; see $OUT/ddp.log" >&2
    exit 1
}
echo "== GPU check passed: 16-mixed and bf16 steps on one GPU, DDP on $gpus; figures in $OUT"
