#!/usr/bin/env bash
# Training-step images/s (forward, backward, SGD step): sk-exp vs PyTorch eager on the same architecture,
# same libtorch, same thread count, alternating in one run (ROUNDS rounds each). Checks that both sides
# have the same parameter count, prints each measurement and the ratio of the medians.
# Usage: benchmarks/train_step.sh [THREADS] [ROUNDS] [CASE...]   (a case is "model batch iters")
# Cases: "sknet29 64 3" (default) and "shufflenetv2_1.0x_sk 16 4".
# Both sides run one OpenMP team (sk-exp runs a lone replica in the calling thread); measure on an otherwise
# idle machine with the default wait policy. OMP_WAIT_POLICY=PASSIVE (inherited by both) makes every
# parallel region sleep and wake: both sides lose up to half their speed, so it is no fair setting either.
# DEVICE=cuda:0 runs both sides on that GPU instead.
. "$(dirname "$0")/lib.sh"
threads="${1:-$(nproc)}"
rounds="${2:-3}"
shift $(( $# < 2 ? $# : 2 ))
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=("sknet29 64 3")
fi
for case in "${cases[@]}"; do
    read -r model batch iters <<<"$case"
    args=(--model "$model" --batch "$batch" --iters "$iters" --warmup 1 --threads "$threads" --device "${DEVICE:-cpu}")
    ours() { ./target/release/sk-exp bench train "${args[@]}"; }
    theirs() { python benchmarks/torch_bench.py train "${args[@]}"; }
    compare "train-step $model b$batch" "$rounds" images_per_s
done
