//! Builds the C++ shim (csrc/shim.cpp) against libtorch's c10d headers and Debian's Gloo
//! headers (the torch wheel ships no Gloo headers, which ProcessGroupGloo.hpp includes).

include!("../build-support/link_libtorch.rs");

use std::path::{Path, PathBuf};

fn main() {
    link_libtorch();
    println!("cargo:rerun-if-changed=../build-support/c_abi.h");
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=CUDA_INCLUDE");
    println!("cargo:rerun-if-env-changed=NCCL_INCLUDE");

    let libtorch = PathBuf::from(std::env::var("LIBTORCH").unwrap_or_else(|_| {
        fail("LIBTORCH is not set: run scripts/setup.sh (it writes .cargo/config.toml)")
    }));
    let gloo = std::env::var("GLOO_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/include"));
    if !gloo.join("gloo/config.h").exists() {
        fail(&format!(
            "the Gloo headers ({}/gloo/config.h) are missing: run `apt-get install libgloo-dev` \
             (scripts/setup.sh does), or set GLOO_INCLUDE to the folder that holds gloo/",
            gloo.display()
        ));
    }
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/shim.cpp")
        .include(libtorch.join("include"))
        .include("../build-support")
        .include(libtorch.join("include/torch/csrc/api/include"))
        .include(&gloo)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .define("USE_DISTRIBUTED", None)
        .define("USE_C10D_GLOO", None)
        .define("GLOG_USE_GLOG_EXPORT", None)
        .warnings(false);
    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        // The wheel's own dependencies (nvidia-cuda-runtime, nvidia-nccl) carry the headers
        // beside torch/ in site-packages.
        let nvidia = libtorch.join("../nvidia");
        let cuda = header_dirs(
            "CUDA_INCLUDE",
            &nvidia.join("cu13/include"),
            &["cuda_runtime_api.h", "crt/host_config.h"],
        );
        let nccl = header_dirs("NCCL_INCLUDE", &nvidia.join("nccl/include"), &["nccl.h"]);
        build
            .includes(cuda)
            .includes(nccl)
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None)
            .define("TRICKS_NCCL", None);
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    build.compile("tricks_c10d");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}

/// Header folders from `var` (a path list), else `default`; each of `headers` must be in one.
fn header_dirs(var: &str, default: &Path, headers: &[&str]) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = match std::env::var_os(var) {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![default.to_path_buf()],
    };
    for header in headers {
        if !dirs.iter().any(|d| d.join(header).exists()) {
            fail(&format!(
                "the `nccl` feature needs {header} in {} (set {var} to a list of folders; the \
                 headers come with the PyPI wheels nvidia-cuda-runtime, nvidia-cuda-crt, nvidia-cuda-cccl and \
                 nvidia-nccl-cu13 matching torch: see docs/distributed.md)",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ));
        }
    }
    dirs
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
