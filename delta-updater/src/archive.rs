//! (`device`) An image archive (an OCI layout or `docker save` tarball)
//! read in place: one pass over its tar headers indexes the members, then
//! each member is read by positioned reads of the archive file, never
//! extracted. Shared by the publisher (`image`) and husk's image import,
//! which differ only in their [`Limits`].
//!
//! Member names are clean relative paths ([`member_name`]); links are kept
//! as the member they point to (a symbolic link resolved against its
//! directory, a hard link against the root) and followed at most
//! [`Limits::links`] times; a link that climbs above the root is dropped,
//! as are other kinds of entries (directories, devices).

use core::fmt;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// What an archive may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most members (entries kept in the index).
    pub members: usize,
    /// Longest member name in bytes; longer ones are left out.
    pub name_bytes: usize,
    /// Most links followed from one name.
    pub links: usize,
}

/// Why an archive or one of its members could not be read.
#[derive(Debug)]
pub enum ArchiveError {
    /// Reading the tar headers failed.
    Index(io::Error),
    /// The archive has more members than [`Limits::members`].
    Members(usize),
    /// The name is not a clean relative path inside the archive.
    Name,
    /// No member has that name (or a link points nowhere).
    Missing,
    /// More than [`Limits::links`] links in a row.
    Links,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Index(e) => write!(f, "not a tar archive: {e}"),
            Self::Members(max) => write!(f, "has more than {max} members"),
            Self::Name => f.write_str("is not a relative path inside the image"),
            Self::Missing => f.write_str("is missing"),
            Self::Links => f.write_str("is a chain of too many links"),
        }
    }
}

impl std::error::Error for ArchiveError {}

/// A member of an archive.
#[derive(Debug, PartialEq, Eq)]
enum Member {
    /// A regular file: where its bytes start, and how many.
    File(u64, u64),
    /// A symbolic or hard link, to this member.
    Link(String),
}

/// An indexed archive.
pub struct Archive {
    file: File,
    members: BTreeMap<String, Member>,
    limits: Limits,
}

impl Archive {
    /// Indexes the tar `file`.
    pub fn index(file: File, limits: Limits) -> Result<Self, ArchiveError> {
        let mut members = BTreeMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            for entry in archive.entries_with_seek().map_err(ArchiveError::Index)? {
                let entry = entry.map_err(ArchiveError::Index)?;
                if members.len() >= limits.members {
                    return Err(ArchiveError::Members(limits.members));
                }
                let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let Some(name) = member_name(&path, limits.name_bytes) else {
                    continue;
                };
                let kind = entry.header().entry_type();
                let member = if kind.is_file() {
                    Member::File(entry.raw_file_position(), entry.size())
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    // A symbolic link is relative to its directory; a hard link to the root.
                    let joined = match (kind.is_symlink(), name.rsplit_once('/')) {
                        (true, Some((dir, _))) if !target.starts_with('/') => {
                            format!("{dir}/{target}")
                        }
                        _ => target,
                    };
                    match resolve_dots(&joined) {
                        Some(target) => Member::Link(target),
                        None => continue,
                    }
                } else {
                    continue;
                };
                members.insert(name, member);
            }
        }
        Ok(Self {
            file,
            members,
            limits,
        })
    }

    /// Whether a member (of any kind) is named `name` (a clean name).
    pub fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// The bytes of the member `name`, links followed, and their count.
    pub fn open(&self, name: &str) -> Result<(At<'_>, u64), ArchiveError> {
        let mut current = member_name(name, self.limits.name_bytes).ok_or(ArchiveError::Name)?;
        for _ in 0..=self.limits.links {
            match self.members.get(&current).ok_or(ArchiveError::Missing)? {
                Member::File(offset, len) => {
                    let reader = At {
                        file: &self.file,
                        offset: *offset,
                        end: offset + len,
                    };
                    return Ok((reader, *len));
                }
                Member::Link(target) => current.clone_from(target),
            }
        }
        Err(ArchiveError::Links)
    }
}

/// `name` as a clean relative path (`./` and empty components dropped), or
/// `None` if it is absolute, climbs with `..`, is empty or is longer than
/// `max_bytes`.
pub fn member_name(name: &str, max_bytes: usize) -> Option<String> {
    if name.starts_with('/') || name.len() > max_bytes {
        return None;
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            _ => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// `path` with `..` applied, or `None` if it climbs above the archive's root.
fn resolve_dots(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The bytes `offset..end` of the archive file, read in place.
pub struct At<'a> {
    file: &'a File,
    offset: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.offset;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a member",
            ));
        }
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const LIMITS: Limits = Limits {
        members: 4,
        name_bytes: 64,
        links: 2,
    };

    struct Temp(PathBuf);

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A tar of `entries`: (name, Ok(data)) a file, (name, Err(target)) a symbolic link.
    fn archive(name: &str, entries: &[(&str, Result<&[u8], &str>)]) -> (Temp, File) {
        let path = std::env::temp_dir().join(format!("husk-archive-{}-{name}", std::process::id()));
        let mut builder = tar::Builder::new(Vec::new());
        for (member, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Ok(data) => {
                    header.set_size(data.len() as u64);
                    header.set_entry_type(tar::EntryType::Regular);
                    builder.append_data(&mut header, member, *data).unwrap();
                }
                Err(target) => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Symlink);
                    builder.append_link(&mut header, member, target).unwrap();
                }
            }
        }
        std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
        let file = File::open(&path).unwrap();
        (Temp(path), file)
    }

    fn read(archive: &Archive, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let (mut at, len) = archive.open(name)?;
        let mut data = Vec::new();
        at.read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, len);
        Ok(data)
    }

    #[test]
    fn members_are_read_in_place_through_links() {
        let (_temp, file) = archive(
            "links",
            &[
                ("./blobs/sha256/a", Ok(b"alpha")),
                ("index.json", Err("blobs/sha256/a")),
                ("blobs/up", Err("../blobs/sha256/a")),
                ("escape", Err("../../etc/passwd")),
            ],
        );
        let a = Archive::index(file, LIMITS).unwrap();
        assert_eq!(read(&a, "blobs//sha256/a").unwrap(), b"alpha");
        assert_eq!(read(&a, "index.json").unwrap(), b"alpha");
        assert_eq!(read(&a, "blobs/up").unwrap(), b"alpha");
        // A link above the root is left out.
        assert!(!a.contains("escape"));
        assert!(matches!(read(&a, "escape"), Err(ArchiveError::Missing)));
        assert!(matches!(read(&a, "../x"), Err(ArchiveError::Name)));
    }

    #[test]
    fn limits_are_enforced() {
        let (_temp, file) = archive(
            "chain",
            &[
                ("a", Err("b")),
                ("b", Err("c")),
                ("c", Err("d")),
                ("d", Ok(b"x")),
            ],
        );
        let a = Archive::index(file, LIMITS).unwrap();
        assert_eq!(read(&a, "b").unwrap(), b"x");
        let e = read(&a, "a").unwrap_err();
        assert_eq!(e.to_string(), "is a chain of too many links");
        let long = "n".repeat(65);
        let entries: Vec<(&str, Result<&[u8], &str>)> =
            vec![("a", Ok(b"1")), (long.as_str(), Ok(b"2"))];
        let (_temp, file) = archive("long", &entries);
        let a = Archive::index(file, LIMITS).unwrap();
        assert!(a.contains("a") && !a.contains(&long));
        let five: Vec<(&str, Result<&[u8], &str>)> = ["1", "2", "3", "4", "5"]
            .iter()
            .map(|n| (*n, Ok(&b""[..])))
            .collect();
        let (_temp, file) = archive("many", &five);
        let e = Archive::index(file, LIMITS).map(|_| ()).unwrap_err();
        assert_eq!(e.to_string(), "has more than 4 members");
    }

    #[test]
    fn a_member_cut_short_is_an_error_not_a_short_read() {
        let (temp, file) = archive("cut", &[("a", Ok(&[7u8; 2000][..]))]);
        let a = Archive::index(file, LIMITS).unwrap();
        let len = std::fs::metadata(&temp.0).unwrap().len();
        // The archive's file loses everything after the member's first bytes.
        File::options()
            .write(true)
            .open(&temp.0)
            .unwrap()
            .set_len(len.min(512 + 100))
            .unwrap();
        let (mut at, _) = a.open("a").unwrap();
        let e = at.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // Not a tar at all.
        let (garbage, _) = archive("garbage", &[]);
        std::fs::write(&garbage.0, [1u8; 1024]).unwrap();
        let e = Archive::index(File::open(&garbage.0).unwrap(), LIMITS)
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().starts_with("not a tar archive"), "{e}");
    }

    #[test]
    fn member_names_stay_inside_the_archive() {
        assert_eq!(member_name("./a//b", 64).as_deref(), Some("a/b"));
        for bad in ["../a", "a/../../b", "/etc/passwd", "./", "."] {
            assert_eq!(member_name(bad, 64), None, "{bad}");
        }
        assert_eq!(member_name("abc", 2), None);
        assert_eq!(resolve_dots("a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(resolve_dots("a/../../c"), None);
    }
}
