//! Links libtorch and builds the C++ shims against its headers: csrc/fused_sgd.cpp (ATen's
//! fused SGD step), csrc/autocast.cpp (autocast for any device and type) and
//! csrc/denormals.cpp (flush-to-zero, as `torch.set_flush_denormal`), which tch does not bind.

include!("../build-support/link_libtorch.rs");

use std::path::PathBuf;

fn main() {
    link_libtorch();
    println!("cargo:rerun-if-changed=../build-support/c_abi.h");
    println!("cargo:rerun-if-changed=csrc/fused_sgd.cpp");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/denormals.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        eprintln!(
            "error: LIBTORCH is not set: run scripts/setup.sh (it writes .cargo/config.toml)"
        );
        std::process::exit(1);
    };
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("csrc/fused_sgd.cpp")
        .file("csrc/autocast.cpp")
        .file("csrc/denormals.cpp")
        .include(libtorch.join("include"))
        .include("../build-support")
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .warnings(false)
        .compile("tricks_fused_sgd");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
