// 1. Makes CUDA usable when a GPU is present. torch-sys links libtorch_cuda, but the linker drops it as
//    "unneeded" (nothing references its symbols directly), so tch would report no CUDA even on a GPU machine.
//    Linking it with --no-as-needed keeps it; the rpath lets the binary find libtorch without LD_LIBRARY_PATH.
// 2. Compiles src/dist/shim.cpp, our C ABI over PyTorch's c10d (store, Gloo/NCCL process group), with the
//    flags torch-sys uses for its own wrapper. Gloo's headers (not shipped in the wheel) come from Debian's
//    libgloo-dev, which scripts/setup.sh installs; GLOO_INCLUDE overrides where to find them. NCCL is built in
//    when libtorch_cuda.so and the NCCL and CUDA headers are present (the venv's nvidia packages).
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/dist/shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE");
    let lib_dir = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"));
    println!("cargo:rustc-link-arg=-Wl,-rpath={}", lib_dir.display());
    let cuda = lib_dir.join("libtorch_cuda.so").exists();
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    build_shim(&lib_dir, cuda);
}

fn build_shim(lib_dir: &Path, cuda: bool) {
    let include = lib_dir.join("../include");
    let gloo = std::env::var("GLOO_INCLUDE").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("/usr/include"));
    if !gloo.join("gloo/config.h").exists() {
        panic!(
            "gloo's headers are missing ({}): install Debian's libgloo-dev (scripts/setup.sh does) or set GLOO_INCLUDE",
            gloo.join("gloo/config.h").display()
        );
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .std("c++17")
        .warnings(false)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .define("USE_C10D_GLOO", None)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo)
        .file("src/dist/shim.cpp");
    // The wheel's nvidia packages sit beside torch/ in site-packages.
    let nvidia = lib_dir.join("../../nvidia");
    let nccl_headers = [nvidia.join("nccl/include"), nvidia.join("cu13/include")];
    if cuda && nccl_headers[0].join("nccl.h").exists() && nccl_headers[1].join("crt/host_config.h").exists() {
        build.define("SK_EXP_NCCL", None).define("USE_C10D_NCCL", None).define("USE_CUDA", None);
        for dir in &nccl_headers {
            build.include(dir);
        }
    }
    build.compile("skdist");
}
