#!/usr/bin/env bash
# Installs what sk-exp needs, idempotently: a Python venv holding PyTorch 2.11.0 (its libtorch is what
# tch/torch-sys =0.24.0 link against) plus the reference libraries the tests use as oracles.
# The venv lives outside the checkout so that every clone on this machine (CI's included) reuses it.
# Source this file (`. scripts/setup.sh`) to get LIBTORCH_USE_PYTORCH and the venv on PATH.


SK_EXP_HOME="${SK_EXP_HOME:-$HOME/.cache/sk-exp}"
SK_EXP_VENV="${SK_EXP_VENV:-$SK_EXP_HOME/venv-torch-2.11.0}"
# Bump when the package list below changes, so existing venvs get the new packages.
SK_EXP_VENV_STAMP_VERSION=3
# nvidia-cuda-crt and -cccl: header-only, they complete the wheel's CUDA headers so that src/dist/shim.cpp builds NCCL in.
# tensorboard: its own event-file reader is the oracle for the event files training writes (tests/tensorboard.rs).
SK_EXP_PACKAGES=(torch==2.11.0 torchvision==0.26.0 timm==1.0.31 safetensors numpy pillow "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*"
    tensorboard==2.21.0)

sk_exp_install_venv() {
    local stamp="$SK_EXP_VENV/.sk-exp-ready-$SK_EXP_VENV_STAMP_VERSION"
    if [ -f "$stamp" ]; then
        return 0
    fi
    mkdir -p "$SK_EXP_HOME"
    # One installer at a time: a second clone waits instead of installing 4.6 GB twice.
    (
        flock 9
        if [ -f "$stamp" ]; then exit 0; fi
        echo "sk-exp setup: installing PyTorch 2.11.0 into $SK_EXP_VENV (once per machine, a few minutes)" >&2
        if [ ! -x "$SK_EXP_VENV/bin/python" ]; then
            python3 -m venv "$SK_EXP_VENV"
        fi
        "$SK_EXP_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${SK_EXP_PACKAGES[@]}"
        touch "$stamp"
    ) 9>"$SK_EXP_HOME/.install.lock"
}

# Gloo's headers, for src/dist/shim.cpp (the wheel has gloo compiled into libtorch_cpu, not its headers):
# Debian's libgloo-dev. GLOO_INCLUDE points elsewhere when they are installed another way.
sk_exp_install_gloo_headers() {
    if [ -f "${GLOO_INCLUDE:-/usr/include}/gloo/config.h" ]; then
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "sk-exp setup: installing Debian's libgloo-dev (gloo's headers, for data parallel on c10d)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq libgloo-dev >/dev/null 2>&1 ||
        { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq libgloo-dev >/dev/null; } ||
        echo "sk-exp setup: could not install libgloo-dev; install it (or set GLOO_INCLUDE) before building" >&2
}

sk_exp_install_venv
sk_exp_install_gloo_headers
export VIRTUAL_ENV="$SK_EXP_VENV"
export PATH="$SK_EXP_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
# libtorch's OpenMP pool and MKL honour these; keep runs reproducible in thread count.
export SK_EXP_PYTHON="$SK_EXP_VENV/bin/python"
