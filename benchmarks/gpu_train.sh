#!/usr/bin/env bash
# GPU training throughput, sk-exp against PyTorch eager with the same settings, in one call on a GPU machine
# that has PyTorch 2.11 but no Rust toolchain (as scripts/cuda_check.sh):
#   here (cargo):  scripts/cuda_check.sh prepare          builds target/release/sk-exp (carry it)
#   GPU machine:   PYTHON=/opt/torch/.venv/bin/python benchmarks/gpu_train.sh run cuda:0 LOG_DIR [ROUNDS]
#   CPU dry run:   benchmarks/gpu_train.sh dry cpu LOG_DIR   (tiny batches and sizes: checks the script only)
# Cases: sknet29 batch 128 at 32x32, sknet50 batch 256 at 224, shufflenetv2_1.0x_sk batch 512 at 224; each
# in fp32, then bf16 autocast + channels_last (cudnn.benchmark on, both sides). Every case runs ROUNDS
# (default 2) rounds of sk-exp and PyTorch in ABBA order (benchmarks/lib.sh `compare`); the medians' ratio
# is sk-exp / PyTorch. Achieved TFLOP/s counts a training step as 3 forward passes (2 FLOPs per
# multiply-add, MACs from `sk-exp models`) against the GPU's dense bf16 peak (H100/H200: 989 TFLOP/s;
# PEAK_TFLOPS=... for another GPU). Logs: LOG_DIR/<model>_<mode>.log; the table: LOG_DIR/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
case "$mode" in run | dry) ;; *) sed -n 2,12p "$0"; exit 2 ;; esac
device="${2:?usage: benchmarks/gpu_train.sh run|dry DEVICE LOG_DIR [ROUNDS]}"
logs="${3:?usage: benchmarks/gpu_train.sh run|dry DEVICE LOG_DIR [ROUNDS]}"
rounds="${4:-2}"
python="${PYTHON:-python}"
mkdir -p "$logs"
export PATH="$(dirname "$(command -v "$python")"):$PATH" SK_EXP_PREBUILT=1
LD_LIBRARY_PATH="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'):${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH
. benchmarks/lib.sh
sk=./target/release/sk-exp
if [ "$mode" = dry ]; then
    cases=("sknet29 4 32" "sknet50 2 64" "shufflenetv2_1.0x_sk 2 64")
    iters="${ITERS:-1}" warmup="${WARMUP:-1}"
else
    cases=("sknet29 128 32" "sknet50 256 224" "shufflenetv2_1.0x_sk 512 224")
    iters="${ITERS:-20}" warmup="${WARMUP:-5}"
fi
peak="${PEAK_TFLOPS:-}"
if [ -z "$peak" ] && command -v nvidia-smi >/dev/null; then
    gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader -i "${device#cuda:}" 2>/dev/null || true)"
    case "$gpu" in *H100* | *H200* | *H800* | *GH200*) peak=989 ;; esac
    echo "GPU: ${gpu:-unknown}" >>"$logs/summary.txt"
fi
summary="$logs/summary.txt"
printf '%-22s %-5s %10s %10s %7s %9s %9s\n' case mode sk-exp pytorch ratio "sk TF/s" "% peak" | tee -a "$summary"
# bf16 needs `sk-exp bench train --precision/--channels-last`; a binary without them measures fp32 only.
modes=(fp32)
if "$sk" bench train --help | grep -q -- --channels-last; then
    modes+=(bf16)
else
    echo "note: $sk bench train has no --precision/--channels-last: bf16 cases skipped" | tee -a "$summary"
fi
failed=0
for case in "${cases[@]}"; do
    read -r model batch size <<<"$case"
    gmacs="$("$sk" models --format csv "$model" | "$python" -c '
import csv, sys
row = next(csv.DictReader(sys.stdin))
native = int(row["input"].split("x")[0])
print(int(row["macs"]) * ('"$size"' / native) ** 2 / 1e9)')"
    for m in "${modes[@]}"; do
        flags=(); [ "$m" = bf16 ] && flags=(--precision bf16 --channels-last)
        args=(--model "$model" --batch "$batch" --size "$size" --iters "$iters" --warmup "$warmup" --device "$device")
        ours() { "$sk" bench train "${args[@]}" "${flags[@]}"; }
        theirs() { "$python" benchmarks/torch_gpu_train.py "${args[@]}" "${flags[@]}"; }
        log="$logs/${model}_$m.log"
        if ! compare "$model b$batch ${size}px $m" "$rounds" images_per_s >"$log" 2>&1; then
            echo "FAIL $model $m (see $log)" | tee -a "$summary"; failed=1; continue
        fi
        result="$(grep '^RESULT' "$log")"
        "$python" - "$model b$batch" "$m" "$result" "$gmacs" "${peak:-0}" <<'PY' | tee -a "$summary"
import re, sys
label, mode, result, gmacs, peak = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
v = dict(re.findall(r"(sk-exp|pytorch|ratio)=([0-9.]+)", result))
ours = float(v["sk-exp"])
tflops = ours * 6 * gmacs / 1e3
share = f"{100 * tflops / peak:9.1f}" if peak else f"{'-':>9}"
print(f"{label:<22} {mode:<5} {ours:10.1f} {float(v['pytorch']):10.1f} {float(v['ratio']):7.3f} {tflops:9.1f} {share}")
PY
    done
done
exit "$failed"
