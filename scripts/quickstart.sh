#!/usr/bin/env bash
# The quickstart on a fresh machine: set-up (PyTorch 2.11.0 into a shared venv, once per machine), a release
# build, the model zoo's complexity against the paper, then the quickstart experiment on the built-in
# synthetic data (CPU). A second run skips finished runs and only prints the summary again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release
./target/release/sk-exp models
./target/release/sk-exp run experiments/quickstart.yaml "$@"
