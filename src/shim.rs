//! The signal-safety shim: an LD_PRELOAD library (built from `src/shim/sigsafety.c` by
//! build.rs and embedded in the grader) that wraps each signal handler the server installs and
//! records every call of a function that is not async-signal-safe made while a handler runs.
//! See `src/shim/README.md` for what it records and its log format.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

#[cfg(echograde_shim)]
const SHIM: Option<&[u8]> = Some(include_bytes!(concat!(
    env!("OUT_DIR"),
    "/libechograde_sigsafety.so"
)));
#[cfg(not(echograde_shim))]
const SHIM: Option<&[u8]> = None;

/// The shim written out to a private directory, removed when dropped.
pub struct ShimFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// Write the shim out; `Err` says why it is not available.
pub fn materialize() -> Result<ShimFile, String> {
    let bytes = SHIM
        .ok_or("the grader was built without a C compiler, so its signal-safety shim is missing")?;
    let dir = tempfile::Builder::new()
        .prefix("echograde-shim")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for the shim: {e}"))?;
    // Readable by a server running as another user.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let path = dir.path().join("libechograde_sigsafety.so");
    let mut f = std::fs::File::create(&path).map_err(|e| format!("cannot write the shim: {e}"))?;
    f.write_all(bytes)
        .map_err(|e| format!("cannot write the shim: {e}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(ShimFile { _dir: dir, path })
}
