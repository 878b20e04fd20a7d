#!/usr/bin/env bash
# Data pipeline throughput, ours vs torchvision + PIL on the same files and the same thread count, run
# alternately (ROUNDS times each) so that machine noise hits both alike. Prints the median images/s (wall)
# and images per CPU-second (all threads and worker processes), and the ratios ours / torchvision.
#
# usage: benchmarks/data_pipeline.sh [THREADS...]    default: 1 and the number of cores
#   1 thread = everything on the calling thread (ours --threads 0, DataLoader num_workers=0);
#   N > 1    = N decoding workers (ours --threads N, DataLoader num_workers=N).
# env: ROUNDS (3), SK_EXP_BENCH_DATA (target/bench-data; generated on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
ROUNDS="${ROUNDS:-3}"
DATA="${SK_EXP_BENCH_DATA:-target/bench-data}"
if [ ! -d "$DATA/folder" ]; then
    echo "generating benchmark data in $DATA" >&2
    python benchmarks/data_pipeline.py --make "$DATA"
fi
cargo build --release --quiet --example data_pipeline
ours=target/release/examples/data_pipeline
threads_list=("$@")
[ ${#threads_list[@]} -gt 0 ] || threads_list=(1 "$(nproc)")

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "... X images/s, Y images per CPU-second ..." -> "X Y"
rates() { sed -E 's/.* ([0-9.]+) images\/s, ([0-9.]+) images per CPU-second.*/\1 \2/'; }

printf '%-7s %7s | %12s %12s %6s | %12s %12s %6s\n' workload threads "ours img/s" "tv img/s" ratio \
    "ours /CPU-s" "tv /CPU-s" ratio
for threads in "${threads_list[@]}"; do
    workers=$([ "$threads" -le 1 ] && echo 0 || echo "$threads")
    for kind in cifar folder; do
        if [ "$kind" = cifar ]; then root="$DATA/cifar-10-batches-py"; epochs=3; else root="$DATA/folder"; epochs=2; fi
        : > /tmp/sk_bench_ours.$$; : > /tmp/sk_bench_tv.$$
        for _ in $(seq "$ROUNDS"); do
            "$ours" --kind "$kind" --root "$root" --threads "$workers" --epochs "$epochs" | rates >> /tmp/sk_bench_ours.$$
            python benchmarks/data_pipeline.py --kind "$kind" --root "$root" --threads "$workers" --epochs "$epochs" \
                | rates >> /tmp/sk_bench_tv.$$
        done
        ow=$(cut -d' ' -f1 /tmp/sk_bench_ours.$$ | median); oc=$(cut -d' ' -f2 /tmp/sk_bench_ours.$$ | median)
        tw=$(cut -d' ' -f1 /tmp/sk_bench_tv.$$ | median); tc=$(cut -d' ' -f2 /tmp/sk_bench_tv.$$ | median)
        awk -v k="$kind" -v t="$threads" -v ow="$ow" -v tw="$tw" -v oc="$oc" -v tc="$tc" 'BEGIN {
            printf "%-7s %7s | %12.1f %12.1f %6.2f | %12.1f %12.1f %6.2f\n", k, t, ow, tw, ow / tw, oc, tc, oc / tc }'
    done
done
rm -f /tmp/sk_bench_ours.$$ /tmp/sk_bench_tv.$$
