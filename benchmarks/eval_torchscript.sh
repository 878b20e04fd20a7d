#!/usr/bin/env bash
# Eval-mode images/s of one TorchScript file (SKNet-50: timm's skresnext50_32x4d traced by PyTorch) through
# sk-exp and through PyTorch, same libtorch, same thread count, alternating in one run (ROUNDS rounds each).
# Prints each measurement and the ratios (sk-exp / PyTorch) of the medians of the runs' mean images/s and
# of their fastest single iterations (on a shared machine, the ones least disturbed by other work).
# Usage: benchmarks/eval_torchscript.sh [THREADS] [ROUNDS] [BATCH] [ITERS] [SIZE]
. "$(dirname "$0")/lib.sh"
threads="${1:-$(nproc)}"
rounds="${2:-3}"
batch="${3:-4}"
iters="${4:-3}"
size="${5:-224}"
file="target/bench/sknet50_traced_${size}.pt"
mkdir -p target/bench
if [ ! -f "$file" ]; then
    python benchmarks/torch_bench.py eval --torchscript "$file" --make --size "$size"
fi
# Three warm-up runs: TorchScript's profiling executor optimises the graph during its first runs.
args=(--torchscript "$file" --batch "$batch" --size "$size" --iters "$iters" --warmup 3 --threads "$threads")
ours() { ./target/release/sk-exp bench eval "${args[@]}"; }
theirs() { python benchmarks/torch_bench.py eval "${args[@]}"; }
compare "torchscript sknet50 eval b$batch" "$rounds" images_per_s best_images_per_s
