//! Who is in the class: one submission per command-line path, its name, a file name that is
//! safe to write, the hash of its files, and which shard grades it.
//!
//! A student names their own folder (or the platform derives it from their name), so a name is
//! attacker-controlled text: it may hold spaces, quotes, `<script>`, a newline, or be `index`
//! or `class` (which would overwrite the class outputs). Names are shown escaped; files are
//! written under `students/` with a [`safe_stem`] that keeps only `[A-Za-z0-9_.-]` (never a
//! leading dot) and adds a hash of the real name whenever anything was changed, so two names
//! never share a file and no name reaches outside the output folder.

use crate::error::GradeError;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What a command-line path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A submission folder: built with `make`, then graded (`grade --build`).
    Folder,
    /// A server executable: graded as it is.
    Executable,
}

/// One submission of the class.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The folder's or executable's file name, as the student made it.
    pub name: String,
    /// The file-name stem of its outputs in `students/` (see [`safe_stem`]).
    pub stem: String,
    pub path: PathBuf,
    pub kind: Kind,
}

/// The submissions named on the command line, sorted by name. Every path must be a folder or
/// every path an executable; two with the same name are refused (their outputs would clash).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Entry>, GradeError> {
    let mut entries = Vec::with_capacity(paths.len());
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| {
            GradeError::Usage(format!("submission `{}` cannot be read: {e}", p.display()))
        })?;
        let kind = if meta.is_dir() {
            Kind::Folder
        } else if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            Kind::Executable
        } else {
            return Err(GradeError::Usage(format!(
                "submission `{}` is neither a folder (a submission to build) nor an executable \
                 (a server to grade)",
                p.display()
            )));
        };
        // The name as given (a link in an export keeps the student's name); `.` or `..`
        // take the folder's real name.
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| {
                p.canonicalize()
                    .ok()
                    .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            })
            .ok_or_else(|| GradeError::Usage(format!("`{}` names no submission", p.display())))?;
        entries.push(Entry {
            stem: safe_stem(&name),
            name,
            path: p.clone(),
            kind,
        });
    }
    if let (Some(f), Some(e)) = (
        entries.iter().find(|e| e.kind == Kind::Folder),
        entries.iter().find(|e| e.kind == Kind::Executable),
    ) {
        return Err(GradeError::Usage(format!(
            "`{}` is a folder but `{}` is an executable: grade a class of submission folders \
             or a class of server executables, not both at once",
            f.path.display(),
            e.path.display()
        )));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for w in entries.windows(2) {
        if w[0].name == w[1].name {
            return Err(GradeError::Usage(format!(
                "`{}` and `{}` have the same name: each submission needs its own",
                w[0].path.display(),
                w[1].path.display()
            )));
        }
    }
    Ok(entries)
}

/// A file-name stem for `name` that is safe in any folder and any URL: `[A-Za-z0-9_.-]` only,
/// no leading dot, at most 64 characters, and, when anything had to change, a suffix of the
/// real name's hash so that distinct names keep distinct files.
pub fn safe_stem(name: &str) -> String {
    let mut stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if stem.starts_with('.') || stem.is_empty() {
        stem.insert(0, '_');
    }
    if stem != name {
        stem.push('-');
        stem.push_str(&hex(&Sha256::digest(name.as_bytes()))[..10]);
    }
    stem
}

/// Whether shard `k` of `n` (1-based) grades `name`: by a hash of the name, so the split does
/// not depend on which other names a shard's job happens to list.
pub fn in_shard(name: &str, k: u32, n: u32) -> bool {
    let d = Sha256::digest(name.as_bytes());
    let x = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    x % u64::from(n) == u64::from(k - 1)
}

/// Parse `K/N` (1 <= K <= N).
pub fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not K/N (e.g. 2/4)"))?;
    let k: u32 = k
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: K is not a number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: N is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("`{s}`: need 1 <= K <= N"));
    }
    Ok((k, n))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash a submission's content into `h`: for a folder, every entry under it in sorted order
/// (relative path, kind, and a file's mode and bytes or a link's target; links are not
/// followed), for an executable its bytes.
pub fn hash_content(entry: &Entry, h: &mut Sha256) -> std::io::Result<()> {
    match entry.kind {
        Kind::Executable => hash_file(&entry.path, h),
        Kind::Folder => hash_tree(&entry.path, Path::new(""), h),
    }
}

fn hash_file(path: &Path, h: &mut Sha256) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

fn hash_tree(root: &Path, rel: &Path, h: &mut Sha256) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        let tag = rel.as_os_str().as_encoded_bytes();
        h.update((tag.len() as u64).to_le_bytes());
        h.update(tag);
        if meta.is_dir() {
            h.update(b"d");
            hash_tree(root, &rel, h)?;
        } else if meta.file_type().is_symlink() {
            h.update(b"l");
            h.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            h.update(b"f");
            h.update((meta.permissions().mode() & 0o777).to_le_bytes());
            h.update(meta.len().to_le_bytes());
            hash_file(&path, h)?;
        } else {
            h.update(b"o");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_and_distinct() {
        assert_eq!(safe_stem("alice"), "alice");
        for hostile in [
            "../x", ".hidden", "a b", "<script>", "=cmd|x", "a\nb", "", "index",
        ] {
            let s = safe_stem(hostile);
            assert!(!s.starts_with('.'), "{s}");
            assert!(s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)));
        }
        assert_ne!(safe_stem("a b"), safe_stem("a_b"));
        assert_ne!(safe_stem("a b"), safe_stem("a?b"));
    }

    #[test]
    fn shards_partition() {
        let names: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
        for n in 1..5 {
            for name in &names {
                let hits = (1..=n).filter(|&k| in_shard(name, k, n)).count();
                assert_eq!(hits, 1);
            }
        }
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
    }
}
