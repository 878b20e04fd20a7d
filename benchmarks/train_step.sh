#!/usr/bin/env bash
# Training-step images/s on CPU (forward, backward, SGD step): sk-exp vs PyTorch eager on the same
# architecture, same libtorch, same thread count, alternating in one run (ROUNDS rounds each). Checks that
# both sides have the same parameter count, prints each measurement and the ratio of the medians.
# Usage: benchmarks/train_step.sh [THREADS] [ROUNDS] [CASE...]   (a case is "model batch iters")
# Cases: "sknet29 64 2" (default) and "shufflenetv2_1.0x_sk 16 4".
# On a machine whose cores are busy with other work, libgomp's default spin-waiting costs a process
# whose OpenMP team is the only one (PyTorch's main thread) far more than one with two teams (sk-exp's
# main thread and its replica thread, which libgomp then throttles): run with OMP_WAIT_POLICY=PASSIVE
# (inherited by both sides) to compare the frameworks rather than the wait policy.
# DEVICE=cuda:0 runs both sides on that GPU instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --quiet
threads="${1:-$(nproc)}"
device="${DEVICE:-cpu}"
rounds="${2:-3}"
shift $(( $# < 2 ? $# : 2 ))
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=("sknet29 64 3")
fi
for case in "${cases[@]}"; do
    read -r model batch iters <<<"$case"
    ours=(); theirs=()
    for _ in $(seq "$rounds"); do
        line=$(./target/release/sk-exp bench train --model "$model" --batch "$batch" --iters "$iters" --warmup 1 --threads "$threads" --device "$device")
        echo "$line"; ours+=("${line##*images_per_s=}"); our_params=$(sed 's/.*params=\([0-9]*\).*/\1/' <<<"$line")
        line=$(python benchmarks/train_step.py --model "$model" --batch "$batch" --iters "$iters" --warmup 1 --threads "$threads" --device "$device")
        echo "$line"; theirs+=("${line##*images_per_s=}"); their_params=$(sed 's/.*params=\([0-9]*\).*/\1/' <<<"$line")
        if [ "$our_params" != "$their_params" ]; then
            echo "error: $model has $our_params parameters in sk-exp but $their_params in the PyTorch definition" >&2
            exit 1
        fi
    done
    python - "$model" "${ours[*]}" "${theirs[*]}" <<'PY'
import os, statistics, sys
model, ours, theirs = sys.argv[1], [float(v) for v in sys.argv[2].split()], [float(v) for v in sys.argv[3].split()]
o, t = statistics.median(ours), statistics.median(theirs)
wait = os.environ.get("OMP_WAIT_POLICY", "default")
print(f"RESULT train-step model={model} sk-exp={o:.2f} pytorch={t:.2f} images/s ratio={o / t:.3f} omp_wait_policy={wait}")
PY
done
