#!/usr/bin/env bash
# The training engine's CUDA checks in one go, for a GPU machine with PyTorch 2.11 but no Rust toolchain.
#   here (cargo):  scripts/cuda_check.sh prepare
#                  builds target/release/sk-exp and the data-parallel test binary (target/release/data_parallel_test)
#   GPU machine:   PYTHON=/opt/torch/.venv/bin/python scripts/cuda_check.sh run cuda:0 LOG_DIR
#                  (the device tool: carry both binaries; LOG_DIR=$OUT brings the logs back)
# `run` checks, in order: that sk-exp's libtorch sees the device (sk-exp refuses a CUDA device libtorch does
# not have, in one line); the data-parallel tests with their replicas on the device (2 replicas on one GPU:
# the same weights as 1 replica, the averaged gradient = the mean of the shards'); a short training of
# MODEL on CIFAR-shaped synthetic data with 1 and with 2 replicas (images/s from metrics.csv); the
# train-step benchmark against PyTorch on the device. Every step's log is LOG_DIR/<step>.log; a summary
# of what passed and the measured images/s goes to LOG_DIR/summary.txt.
# Smaller settings for a dry run on the CPU: MODEL, TRAIN_SIZE, BATCH, BENCH_BATCH, BENCH_ITERS.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    . scripts/setup.sh
    cargo build --release --quiet
    binary=$(cargo test --release --test data_parallel --no-run --message-format=json 2>/dev/null |
        python -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "data_parallel" and m.get("executable"):
        print(m["executable"])')
    cp "$binary" target/release/data_parallel_test
    echo "carry: target/release/sk-exp target/release/data_parallel_test"
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
    step data_parallel env SK_EXP_TEST_DEVICE="$device" ./target/release/data_parallel_test --test-threads 1
    for replicas in 1 2; do
        devices=$device; [ "$replicas" = 2 ] && devices="$device,$device"
        rm -rf "$logs/train_$replicas"
        step "train_$replicas" ./target/release/sk-exp train --model "$model" --data synthetic --devices "$devices" \
            --epochs 1 --batch-size "$batch" --quiet --out "$logs/train_$replicas" \
            --set data.train_size="$train_size" --set data.eval_size=1000
        if [ -f "$logs/train_$replicas/metrics.csv" ]; then
            echo "train $model $replicas replica(s) on $devices: images/s $(tail -1 "$logs/train_$replicas/metrics.csv" | cut -d, -f8)" | tee -a "$summary"
        fi
    done
    step train_step env DEVICE="$device" benchmarks/train_step.sh 1 3 "$model ${BENCH_BATCH:-64} ${BENCH_ITERS:-20}"
    grep RESULT "$logs/train_step.log" | tee -a "$summary" || true
    ! grep -q FAIL "$summary"
    ;;
*)
    sed -n 2,13p "$0"
    exit 2
    ;;
esac
