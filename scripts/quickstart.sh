#!/usr/bin/env bash
# The quickstart on a fresh machine: set-up, release build, then the main job on built-in data.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release
./target/release/sk-exp models "$@"
