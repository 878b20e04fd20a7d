#!/usr/bin/env bash
# Forward+backward images/s on random data: sk-exp vs PyTorch eager (timm's skresnext50_32x4d for sknet50,
# scripts/torch_cifar_models.py for sknet29), same libtorch, same thread count, alternating in one run.
# Usage: benchmarks/fwd_bwd.sh [THREADS] [ROUNDS]   (on an idle machine: see train_step.sh)
. "$(dirname "$0")/lib.sh"
threads="${1:-$(nproc)}"
rounds="${2:-3}"
# model batch iters
for case in "sknet50 8 3" "sknet29 32 3"; do
    read -r model batch iters <<<"$case"
    args=(--model "$model" --batch "$batch" --iters "$iters" --threads "$threads")
    ours() { ./target/release/sk-exp bench fwd-bwd "${args[@]}"; }
    theirs() { python benchmarks/torch_bench.py fwd-bwd "${args[@]}"; }
    compare "fwd-bwd $model b$batch" "$rounds" images_per_s
done
