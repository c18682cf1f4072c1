//! Builds the signal-safety shim (`src/shim/sigsafety.c`), an LD_PRELOAD library the grader
//! embeds and writes out at run time. It is C because it must live inside the student's
//! process and interpose libc's own symbols. Without a C compiler the grader still builds; the
//! `signal.safety` check then reports itself skipped with the reason.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/shim/sigsafety.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo::rustc-check-cfg=cfg(echograde_shim)");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("libechograde_sigsafety.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&out)
        .arg(src)
        .args(["-ldl", "-pthread"])
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo:rustc-cfg=echograde_shim"),
        Ok(s) => println!("cargo:warning=building the signal-safety shim failed ({s}); signal.safety will be skipped"),
        Err(e) => println!("cargo:warning=no C compiler `{cc}` ({e}); signal.safety will be skipped"),
    }
}
