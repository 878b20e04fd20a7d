#!/usr/bin/env bash
# The training engine's CUDA checks in one go, for a GPU machine with PyTorch 2.11 but no Rust toolchain.
#   here (cargo):  scripts/cuda_check.sh prepare        builds target/release/sk-exp (carry it)
#   GPU machine:   PYTHON=/opt/torch/.venv/bin/python scripts/cuda_check.sh run cuda:0 LOG_DIR
#                  (the device tool: carry target/release/sk-exp; LOG_DIR=$OUT brings the logs back)
# `run` checks, in order: that sk-exp's libtorch sees the device (sk-exp refuses a CUDA device libtorch does
# not have, in one line); a short training of MODEL on CIFAR-shaped synthetic data in one process; one with
# 8-bit input batches and one with float ones, whose first batches on the device must be equal bytes; the same
# as 1 NCCL rank under torchrun; as 2 ranks on the one GPU over Gloo with CUDA tensors (NCCL refuses two
# ranks on one GPU); as 2 NCCL ranks on cuda:0 and cuda:1 where the machine has two GPUs (images/s from
# metrics.csv); the train-step benchmark against PyTorch on the device. Every step's log is
# LOG_DIR/<step>.log; a summary of what passed and the measured images/s goes to LOG_DIR/summary.txt.
# Smaller settings for a dry run on the CPU: MODEL, TRAIN_SIZE, BATCH, BENCH_BATCH, BENCH_ITERS.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    . scripts/setup.sh
    cargo build --release --quiet
    echo "carry: target/release/sk-exp"
    ;;
run)
    device="${2:?usage: scripts/cuda_check.sh run DEVICE LOG_DIR}"
    logs="${3:?usage: scripts/cuda_check.sh run DEVICE LOG_DIR}"
    python="${PYTHON:-python}"
    model="${MODEL:-sknet29}" train_size="${TRAIN_SIZE:-10000}" batch="${BATCH:-128}"
    mkdir -p "$logs"
    export PATH="$(dirname "$(command -v "$python")"):$PATH" SK_EXP_PYTHON="$python" SK_EXP_PREBUILT=1
    LD_LIBRARY_PATH="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'):${LD_LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH
    summary="$logs/summary.txt"
    : >"$summary"
    step() {  # step NAME COMMAND...: runs it into NAME.log and notes pass/fail; the later steps still run
        local name=$1; shift
        if "$@" >"$logs/$name.log" 2>&1; then echo "PASS $name" | tee -a "$summary"; else echo "FAIL $name (see $name.log)" | tee -a "$summary"; fi
    }
    step device ./target/release/sk-exp bench train --model "$model" --batch 2 --iters 1 --warmup 0 --device "$device"
    torchrun="$(dirname "$(command -v "$python")")/torchrun"
    train() {  # train NAME DEVICES [launcher...]: one epoch of MODEL into LOG_DIR/NAME, images/s into the summary
        local name=$1 devices=$2; shift 2
        rm -rf "${logs:?}/$name"
        step "$name" "$@" ./target/release/sk-exp train --model "$model" --data synthetic --devices "$devices" \
            --epochs 1 --batch-size "$batch" --quiet --out "$logs/$name" \
            --set data.train_size="$train_size" --set data.eval_size=1000
        if [ -f "$logs/$name/metrics.csv" ]; then
            echo "$name: $model on $devices, images/s $(tail -1 "$logs/$name/metrics.csv" | cut -d, -f8)" | tee -a "$summary"
        fi
    }
    train one_process "$device"
    # The 8-bit input path (the default on CUDA) against the float one: the first batch as the model gets
    # it must be the same bits (the device's normalisation is the host's arithmetic).
    for input in uint8 float; do
        SK_EXP_INPUT=$input SK_EXP_DUMP_INPUT="$logs/first_batch_$input.f32" train "input_$input" "$device"
    done
    step input_same_bits cmp "$logs/first_batch_uint8.f32" "$logs/first_batch_float.f32"
    train nccl_1rank cuda "$torchrun" --standalone --nproc-per-node 1 --no-python
    train gloo_cuda_2ranks "$device,$device" env SK_EXP_DIST_BACKEND=gloo
    if [ "$("$python" -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
        train nccl_2ranks cuda:0,cuda:1
    fi
    step train_step env DEVICE="$device" benchmarks/train_step.sh 1 3 "$model ${BENCH_BATCH:-64} ${BENCH_ITERS:-20}"
    grep RESULT "$logs/train_step.log" | tee -a "$summary" || true
    ! grep -q FAIL "$summary"
    ;;
*)
    sed -n 2,13p "$0"
    exit 2
    ;;
esac
