//! Link options of the host binary.
//!
//! On Linux the binary is linked with packed relative relocations (`DT_RELR`,
//! `-z pack-relative-relocs`): a position-independent Rust binary carries ~1 MB of
//! `R_X86_64_RELATIVE` entries (every vtable and static pointer) that the loader reads at
//! every start; packed, they are ~10 KB. Measured on the native host at idle: RSS
//! 12.5 -> 10.4 MB (glibc), 10.1 -> 9.2 MB (static musl). ASLR is kept.
//!
//! glibc loads such a binary from 2.36 on (an older one refuses it: the binary requires the
//! symbol version `GLIBC_ABI_DT_RELR`), so a glibc build packs only when it is built natively
//! on glibc >= 2.36, whose toolchains all know the option (binutils >= 2.38). The static musl
//! build always packs (Rust's self-contained musl is >= 1.2.4). `AWS_CUSTOM_RUNTIME_NO_RELR=1`
//! at build time leaves it out (a binary built on a new system to run on an older glibc).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AWS_CUSTOM_RUNTIME_NO_RELR");
    let cfg = |key: &str| env::var(key).unwrap_or_default();
    let opted_out = env::var_os("AWS_CUSTOM_RUNTIME_NO_RELR").is_some_and(|v| v != "0");
    let linux = cfg("CARGO_CFG_TARGET_OS") == "linux"
        && matches!(cfg("CARGO_CFG_TARGET_ARCH").as_str(), "x86_64" | "aarch64");
    let loader_knows_relr = match cfg("CARGO_CFG_TARGET_ENV").as_str() {
        "musl" => true,
        "gnu" => cfg("TARGET") == cfg("HOST") && build_glibc_at_least(2, 36),
        _ => false,
    };
    if linux && loader_knows_relr && !opted_out {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the glibc this build script runs on (the one a native build links against) is at
/// least `major.minor`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn build_glibc_at_least(major: u32, minor: u32) -> bool {
    unsafe extern "C" {
        fn gnu_get_libc_version() -> *const std::ffi::c_char;
    }
    // SAFETY: glibc returns a pointer to a static, NUL-terminated version string.
    let version = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
    let mut parts = version.to_str().unwrap_or("").split('.');
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    (next(), next()) >= (major, minor)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn build_glibc_at_least(_major: u32, _minor: u32) -> bool {
    false
}
