//! Whole files. Replacing one ([`replace`]): a reader sees the old contents
//! or the new ones, never half of either (written to a temporary file beside
//! it, then renamed over it); how much survives a power cut is the caller's
//! choice. Reading one of a bounded size ([`read_capped`]), never more.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What must be on disk when [`replace`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing: the file is replaced whole, but a power cut may undo it (for
    /// files rewritten often, where flash wear matters more).
    None,
    /// The new contents (`fsync` before the rename).
    Contents,
    /// The new contents and the rename (`fsync` of the directory too).
    Rename,
}

/// Replaces `path` with `data` through the temporary file `tmp` (in the same
/// directory), mode 0640 (the group: root's, or the one `husk daemon
/// --read-group` gave the directory). On error the temporary file is removed and `path`
/// is as it was.
pub fn replace(path: &Path, tmp: &Path, data: &[u8], durability: Durability) -> io::Result<()> {
    let write = || -> io::Result<()> {
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(tmp)?;
        file.write_all(data)?;
        if durability != Durability::None {
            file.sync_all()?;
        }
        fs::rename(tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    if durability == Durability::Rename {
        File::open(path.parent().unwrap_or(Path::new("/")))?.sync_all()?;
    }
    Ok(())
}

/// Everything `reader` yields if that is at most `max` bytes; `None` if it
/// is more (having read `max + 1` bytes, no more).
pub fn read_capped(reader: impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    reader.take(max as u64 + 1).read_to_end(&mut data)?;
    Ok((data.len() <= max).then_some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_capped() {
        assert_eq!(
            read_capped(&b"four"[..], 4).unwrap(),
            Some(b"four".to_vec())
        );
        assert_eq!(read_capped(&b"five!"[..], 4).unwrap(), None);
        assert_eq!(read_capped(&b""[..], 0).unwrap(), Some(Vec::new()));
    }

    #[test]
    fn a_file_is_replaced_whole_and_a_failure_leaves_it() {
        let dir = crate::testutil::TempDir::new("atomic");
        let path = dir.path().join("f.json");
        let tmp = dir.path().join("f.json.tmp");
        for durability in [Durability::None, Durability::Contents, Durability::Rename] {
            replace(&path, &tmp, b"new", durability).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"new");
            assert!(!tmp.exists());
            fs::write(&path, b"old").unwrap();
        }
        // A temporary file that cannot be made: the old contents stay.
        let error = replace(
            &path,
            &dir.path().join("no/such/dir"),
            b"x",
            Durability::Rename,
        );
        assert!(error.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }
}
