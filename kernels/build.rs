//! Enables SIMD code only when the compiler can build it: F16C intrinsics became stable in Rust 1.68,
//! AVX-512 intrinsics and target features in 1.89, and the crate must still build with Debian's 1.63.

use std::env;
use std::process::Command;

fn rustc_minor() -> Option<u32> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = text.split_whitespace().nth(1)?;
    version.split('.').nth(1)?.parse().ok()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let minor = rustc_minor().unwrap_or(0);
    if minor >= 80 {
        println!("cargo:rustc-check-cfg=cfg(bk_avx512)");
        println!("cargo:rustc-check-cfg=cfg(bk_f16c)");
    }
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // F16C intrinsics are stable since 1.68; older compilers convert fp16 in software on the AVX2 path.
    if arch == "x86_64" && minor >= 68 {
        println!("cargo:rustc-cfg=bk_f16c");
    }
    if arch == "x86_64" && minor >= 89 {
        println!("cargo:rustc-cfg=bk_avx512");
    }
}
