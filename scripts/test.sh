#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs PyTorch 2.11.0 (libtorch + the reference
# models the oracle tests compare against) once per machine, then builds and tests in release mode
# (model forward passes are too slow unoptimised, and one profile compiles libtorch's wrapper once).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo test --release "$@"
