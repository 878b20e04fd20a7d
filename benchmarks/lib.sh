# Sourced by the benchmark scripts: builds sk-exp once, and `compare` sets sk-exp beside PyTorch.
# The caller defines two functions, `ours` and `theirs`, each running one measurement and printing one
# key=value line (sk-exp bench ... / benchmarks/torch_bench.py ...).
# SK_EXP_PREBUILT=1 uses the binary already in target/release and the `python` on PATH (a GPU machine
# without a Rust toolchain or network, see scripts/cuda_check.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${SK_EXP_PREBUILT:-}" ]; then
    . scripts/setup.sh
    cargo build --release --quiet
fi

# The value of KEY in a key=value line.
field() {
    local rest="${2##*" $1="}"
    echo "${rest%% *}"
}

# compare LABEL ROUNDS KEY...: runs `ours` and `theirs` ROUNDS times each, alternating which goes first
# (ABBA, so neither always follows the other), prints every line, refuses to compare models whose
# parameter counts differ, and prints one RESULT line per KEY with the medians and their ratio.
compare() {
    local label=$1 rounds=$2 round line
    shift 2
    local ours_lines=() theirs_lines=()
    for round in $(seq "$rounds"); do
        if (( round % 2 )); then
            line=$(ours); echo "$line"; ours_lines+=("$line")
            line=$(theirs); echo "$line"; theirs_lines+=("$line")
        else
            line=$(theirs); echo "$line"; theirs_lines+=("$line")
            line=$(ours); echo "$line"; ours_lines+=("$line")
        fi
    done
    if [[ "${ours_lines[0]}" == *" params="* && "${theirs_lines[0]}" == *" params="* ]]; then
        local a b
        a=$(field params "${ours_lines[0]}"); b=$(field params "${theirs_lines[0]}")
        if [ "$a" != "$b" ]; then
            echo "error: $label has $a parameters in sk-exp but $b in the PyTorch definition" >&2
            return 1
        fi
    fi
    local key ours_values theirs_values
    for key in "$@"; do
        ours_values=(); theirs_values=()
        for line in "${ours_lines[@]}"; do ours_values+=("$(field "$key" "$line")"); done
        for line in "${theirs_lines[@]}"; do theirs_values+=("$(field "$key" "$line")"); done
        python - "$label" "$key" "${ours_values[*]}" "${theirs_values[*]}" <<'PY'
import os, statistics, sys
label, key = sys.argv[1], sys.argv[2]
o, t = (statistics.median(float(v) for v in arg.split()) for arg in sys.argv[3:5])
wait = os.environ.get("OMP_WAIT_POLICY", "default")
print(f"RESULT {label} median {key}: sk-exp={o:.2f} pytorch={t:.2f} ratio={o / t:.3f} omp_wait_policy={wait}")
PY
    done
}
