#!/usr/bin/env bash
# Eval-mode images/s of one TorchScript file (SKNet-50: timm's skresnext50_32x4d traced by PyTorch) through
# sk-exp and through PyTorch, same libtorch, same thread count, alternating in one run (ROUNDS rounds each).
# Prints each measurement, the ratio (sk-exp / PyTorch) of the medians of the runs' mean images/s, and of
# the fastest single iterations (on a shared machine, the ones least disturbed by other work).
# Usage: benchmarks/eval_torchscript.sh [THREADS] [ROUNDS] [BATCH] [ITERS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --quiet
threads="${1:-$(nproc)}"
rounds="${2:-3}"
batch="${3:-4}"
iters="${4:-3}"
size="${5:-224}"
file="target/bench/sknet50_traced_${size}.pt"
mkdir -p target/bench
if [ ! -f "$file" ]; then
    python benchmarks/torch_eval_torchscript.py --torchscript "$file" --make --size "$size"
fi
common=(--torchscript "$file" --batch "$batch" --size "$size" --iters "$iters" --threads "$threads")
ours=(); theirs=(); ours_best=(); theirs_best=()
best_of() { local rest="${1##*best_images_per_s=}"; echo "${rest%% *}"; }
run_ours() {
    line=$(./target/release/sk-exp bench eval "${common[@]}"); echo "$line"
    ours+=("${line##*images_per_s=}"); ours_best+=("$(best_of "$line")")
}
run_theirs() {
    line=$(python benchmarks/torch_eval_torchscript.py "${common[@]}"); echo "$line"
    theirs+=("${line##*images_per_s=}"); theirs_best+=("$(best_of "$line")")
}
# The order alternates too (ABBA), so that neither side always runs first after the other.
for round in $(seq "$rounds"); do
    if (( round % 2 )); then run_ours; run_theirs; else run_theirs; run_ours; fi
done
python - "${ours[*]}" "${theirs[*]}" "${ours_best[*]}" "${theirs_best[*]}" <<'PY'
import statistics, sys
ours, theirs, ours_best, theirs_best = ([float(v) for v in arg.split()] for arg in sys.argv[1:5])
o, t = statistics.median(ours), statistics.median(theirs)
print(f"RESULT torchscript sknet50 eval, median of runs: sk-exp={o:.2f} pytorch={t:.2f} images/s ratio={o / t:.3f}")
o, t = max(ours_best), max(theirs_best)
print(f"RESULT torchscript sknet50 eval, fastest iteration: sk-exp={o:.2f} pytorch={t:.2f} images/s ratio={o / t:.3f}")
PY
