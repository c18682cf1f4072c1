//! Writing a report file whole or not at all.

use crate::error::GradeError;
use std::io::Write;
use std::path::Path;

/// Write `content` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over the target. A reader never sees half a report.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<(), GradeError> {
    let err = |source| GradeError::Output {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".echograde-report")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(content).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Check before grading that a report can be written there, so a run of many seconds does not
/// end in "cannot write". Nothing is left behind.
pub fn probe_writable(path: &Path) -> Result<(), GradeError> {
    if path.is_dir() {
        return Err(GradeError::Output {
            path: path.to_path_buf(),
            source: std::io::Error::other("it is a directory"),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".echograde-probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|source| GradeError::Output {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.yaml");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new report").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new report");
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_directory_is_an_output_error() {
        let e = probe_writable(Path::new("/nonexistent-dir/r.yaml")).unwrap_err();
        assert!(matches!(e, GradeError::Output { .. }));
    }
}
