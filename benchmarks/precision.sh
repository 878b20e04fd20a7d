#!/usr/bin/env bash
# Training-step images/s at each precision and memory format, sk-exp vs PyTorch doing the same
# (torch.autocast at bf16, model and batch in channels_last), same libtorch and thread count, ABBA order
# (ROUNDS rounds each). Prints each measurement and, per setting, the medians and their ratio; the
# setting-vs-fp32 ratios of each side (does bf16 / channels_last help here?) follow from the RESULT lines.
# Usage: benchmarks/precision.sh [THREADS] [ROUNDS] [MODEL BATCH ITERS]   (default: nproc, 3, sknet29 8 3)
# Settings: SETTINGS="fp32 bf16 fp32+cl bf16+cl" (the default; `+cl` adds --channels-last).
# DEVICE=cuda:0 runs both sides on that GPU instead.
. "$(dirname "$0")/lib.sh"
threads="${1:-$(nproc)}"
rounds="${2:-3}"
read -r model batch iters <<<"${3:-sknet29 8 3}"
for setting in ${SETTINGS:-fp32 bf16 fp32+cl bf16+cl}; do
    args=(--model "$model" --batch "$batch" --iters "$iters" --warmup 1 --threads "$threads" --device "${DEVICE:-cpu}")
    args+=(--precision "${setting%+cl}")
    if [[ "$setting" == *+cl ]]; then args+=(--channels-last); fi
    ours() { ./target/release/sk-exp bench train "${args[@]}"; }
    theirs() { python benchmarks/torch_bench.py train "${args[@]}"; }
    compare "train-step $model b$batch $setting" "$rounds" images_per_s
done
