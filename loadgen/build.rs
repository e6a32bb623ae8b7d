//! Records the toolchain, the commit and the broker crate's version for summary.json.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for p in ["../.git/HEAD", "../Cargo.toml"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let ringmq_version = std::fs::read_to_string("../Cargo.toml")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("version")).and_then(|l| l.split('"').nth(1)).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LOADGEN_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=LOADGEN_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=LOADGEN_RINGMQ_VERSION={ringmq_version}");
    println!(
        "cargo:rustc-env=LOADGEN_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into())
    );
}
