#!/usr/bin/env bash
# Forward+backward images/s on CPU: sk-exp vs PyTorch eager on the same model, same libtorch, same thread
# count, alternating in one run (ROUNDS rounds each). Prints each measurement and the ratio of the medians.
# Usage: benchmarks/fwd_bwd.sh [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --quiet
threads="${1:-$(nproc)}"
rounds="${2:-3}"
# model batch iters
cases=("sknet50 8 3" "sknet29 32 3")
for case in "${cases[@]}"; do
    read -r model batch iters <<<"$case"
    ours=(); theirs=()
    for _ in $(seq "$rounds"); do
        line=$(./target/release/sk-exp bench fwd-bwd --model "$model" --batch "$batch" --iters "$iters" --threads "$threads")
        echo "$line"; ours+=("${line##*images_per_s=}")
        line=$(python benchmarks/torch_fwd_bwd.py --model "$model" --batch "$batch" --iters "$iters" --threads "$threads")
        echo "$line"; theirs+=("${line##*images_per_s=}")
    done
    python - "$model" "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
model, ours, theirs = sys.argv[1], [float(v) for v in sys.argv[2].split()], [float(v) for v in sys.argv[3].split()]
o, t = statistics.median(ours), statistics.median(theirs)
print(f"RESULT model={model} sk-exp={o:.2f} pytorch={t:.2f} images/s ratio={o / t:.3f}")
PY
done
