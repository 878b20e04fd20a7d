#!/usr/bin/env bash
# Data-parallel training steps on 2 ranks launched by torchrun: sk-exp (c10d Gloo, one flat all-reduce of
# the gradient per step) vs PyTorch DistributedDataParallel (Gloo, bucketed all-reduce overlapped with
# backward) on the same model, per-rank batch, threads per rank and random data, in ABBA order.
# Prints each measurement (images/s of both ranks together; sk-exp also its all-reduce ms per step) and the
# ratio of the medians.
# Usage: benchmarks/ddp_train.sh [THREADS_PER_RANK] [ROUNDS] [CASE...]   (a case is "model batch iters";
# default "sknet29 32 3"). RANKS=2 by default. DEVICE=cuda runs rank r on cuda:r with NCCL on both sides.
. "$(dirname "$0")/lib.sh"
threads="${1:-1}"
rounds="${2:-2}"
shift $(( $# < 2 ? $# : 2 ))
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=("sknet29 32 3")
fi
ranks="${RANKS:-2}"
torchrun_bin="$(dirname "$(command -v python)")/torchrun"
for case in "${cases[@]}"; do
    read -r model batch iters <<<"$case"
    device="${DEVICE:-cpu}"
    args=(--model "$model" --batch "$batch" --iters "$iters" --warmup 1 --threads "$threads" --device "$device")
    launch=("$torchrun_bin" --standalone --nproc-per-node "$ranks")
    ours() { "${launch[@]}" --no-python ./target/release/sk-exp bench train "${args[@]}" 2>/dev/null; }
    theirs() { "${launch[@]}" benchmarks/torch_bench.py train "${args[@]}" 2>/dev/null; }
    compare "ddp-train $model b$batch x$ranks ranks" "$rounds" images_per_s
done
