// Shared by the build.rs of every crate that links libtorch (included, not a crate).
//
// 1. Keep libtorch.so in the binary's NEEDED list. The linker's --as-needed drops it (no symbol
//    of ours comes from it directly), and with it libtorch_cuda.so, so CUDA would be reported
//    unavailable on a GPU machine. tch-rs issues 907 and 767 give the same advice.
// 2. An rpath to libtorch's lib/ so binaries and test executables start without
//    LD_LIBRARY_PATH. On another machine the loader still honours LD_LIBRARY_PATH first.
fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
