//! `husk update apply --from FILE.tar`: a repository in an (uncompressed)
//! tarball, e.g. on a USB stick, read in place.
//!
//! Opening indexes the tar once, skipping over the data (`tar` seeks), into
//! a list of regular files: repository path, offset of the data, size. The
//! repository's root is where `timestamp.json` is, so `tar -cf repo.tar -C
//! repo .` and `tar -cf repo.tar repo` both work. Everything read from it is
//! then checked exactly as a download is (signatures, hashes, sizes); the
//! tarball is never trusted. Compressed tarballs are refused: the blobs in a
//! repository are compressed already, and a compressed tar cannot be read
//! at an offset.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use delta_updater::fetch::{self, FetchError, Fetched, Source};

/// The most files indexed: a repository of a year of releases has a few
/// thousand; the index costs ~100 bytes per file.
pub const MAX_FILES: usize = 100_000;

/// A repository in a tar file.
pub struct TarSource {
    path: PathBuf,
    file: File,
    /// (repository path, data offset, size), sorted by path.
    files: Vec<(String, u64, u64)>,
}

impl TarSource {
    /// Indexes the tarball at `path`.
    pub fn open(path: &Path) -> Result<Self, FetchError> {
        let io = |op| {
            move |error| FetchError::Io {
                op,
                path: path.to_owned(),
                error,
            }
        };
        let invalid =
            |what: &str| io("read")(io::Error::new(io::ErrorKind::InvalidData, what.to_owned()));
        let mut file = File::open(path).map_err(io("open"))?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(io("read"))?;
        if magic[..n].starts_with(&[0x1f, 0x8b]) || magic[..n] == [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(invalid(
                "a compressed tarball: give the uncompressed tar (its blobs are compressed already)",
            ));
        }
        file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
        let mut all = Vec::new();
        {
            let mut archive = tar::Archive::new(&file);
            let entries = archive
                .entries_with_seek()
                .map_err(|e| invalid(&format!("not a tar archive: {e}")))?;
            for entry in entries {
                let entry = entry.map_err(|e| invalid(&format!("not a tar archive: {e}")))?;
                if entry.header().entry_type() != tar::EntryType::Regular {
                    continue;
                }
                let name = entry
                    .path()
                    .map_err(|e| invalid(&format!("an entry's name: {e}")))?;
                let Some(name) = name.to_str().map(normalize) else {
                    continue;
                };
                if all.len() == MAX_FILES {
                    return Err(invalid(&format!("more than {MAX_FILES} files")));
                }
                all.push((name, entry.raw_file_position(), entry.size()));
            }
        }
        // The repository's root: the shallowest directory with a timestamp.json.
        let prefix = all
            .iter()
            .filter_map(|(name, _, _)| name.strip_suffix("timestamp.json"))
            .filter(|p| p.is_empty() || p.ends_with('/'))
            .min_by_key(|p| p.len())
            .map(str::to_owned)
            .ok_or_else(|| invalid("no timestamp.json in it: not an update repository"))?;
        let mut files: Vec<(String, u64, u64)> = all
            .into_iter()
            .filter_map(|(name, at, size)| {
                name.strip_prefix(&prefix)
                    .map(|rest| (rest.to_owned(), at, size))
            })
            .collect();
        files.sort();
        // A later entry of the same name wins, as when the tar is extracted.
        files.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                *earlier = later.clone();
                true
            } else {
                false
            }
        });
        Ok(Self {
            path: path.to_owned(),
            file,
            files,
        })
    }

    fn find(&self, path: &str) -> Result<(u64, u64), FetchError> {
        fetch::check_path(path)?;
        let at = self
            .files
            .binary_search_by(|(name, _, _)| name.as_str().cmp(path))
            .map_err(|_| FetchError::Io {
                op: "find",
                path: self.path.join(path),
                error: io::ErrorKind::NotFound.into(),
            })?;
        let (_, offset, size) = &self.files[at];
        Ok((*offset, *size))
    }

    fn url(&self, path: &str) -> String {
        format!("{}:{path}", self.path.display())
    }
}

/// A tar entry's name as a repository path: no leading `./` or `/`.
fn normalize(name: &str) -> String {
    let mut name = name;
    loop {
        if let Some(rest) = name.strip_prefix("./") {
            name = rest;
        } else if let Some(rest) = name.strip_prefix('/') {
            name = rest;
        } else {
            return name.to_owned();
        }
    }
}

impl Source for TarSource {
    /// Reads the file; `etag` is ignored (a tarball always answers with the body).
    fn get(&mut self, path: &str, max: u64, _etag: Option<&str>) -> Result<Fetched, FetchError> {
        let (offset, size) = self.find(path)?;
        if size > max {
            return Err(FetchError::TooLong {
                url: self.url(path),
                max,
            });
        }
        let mut bytes = vec![0u8; size as usize];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|error| match error.kind() {
                io::ErrorKind::UnexpectedEof => FetchError::Truncated {
                    url: self.url(path),
                },
                _ => FetchError::Io {
                    op: "read",
                    path: self.path.clone(),
                    error,
                },
            })?;
        Ok(Fetched::Body { bytes, etag: None })
    }

    /// Copies bytes `from..size` of the entry; it must be exactly `size` bytes long.
    fn fetch_range(
        &mut self,
        path: &str,
        from: u64,
        size: u64,
        out: &mut File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchError> {
        let (offset, len) = self.find(path)?;
        if len != size {
            return Err(FetchError::WrongLength {
                url: self.url(path),
                expected: size,
                found: len,
            });
        }
        self.file
            .seek(SeekFrom::Start(offset + from))
            .map_err(|error| FetchError::Io {
                op: "seek",
                path: self.path.clone(),
                error,
            })?;
        let url = self.url(path);
        let mut entry = (&self.file).take(len - from);
        fetch::copy_range(&mut entry, &self.path, url, path, from, size, out, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tarball(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        let path = dir.join("repo.tar");
        std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
        path
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("husk-tarball-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn body(f: Fetched) -> Vec<u8> {
        match f {
            Fetched::Body { bytes, .. } => bytes,
            Fetched::NotModified => panic!("not modified"),
        }
    }

    #[test]
    fn files_are_read_from_the_root_that_holds_the_timestamp() {
        let dir = temp("root");
        let long = format!("repo/blobs/sha256/{}", "a".repeat(64));
        let path = tarball(
            &dir,
            &[
                ("notes.txt", b"not the repository"),
                ("./repo/timestamp.json", b"{\"ts\":1}"),
                ("repo/root/2.json", b"{}"),
                (&long, b"0123456789"),
                ("repo/timestamp.json", b"{\"ts\":2}"),
            ],
        );
        let mut source = TarSource::open(&path).unwrap();
        // The later of two entries of one name wins, as tar extracts them.
        assert_eq!(
            body(source.get("timestamp.json", 100, None).unwrap()),
            b"{\"ts\":2}"
        );
        let blob = format!("blobs/sha256/{}", "a".repeat(64));
        let out_path = dir.join("part");
        let mut out = File::create(&out_path).unwrap();
        out.write_all(b"0123").unwrap();
        let mut seen = 0;
        source
            .fetch_range(&blob, 4, 10, &mut out, &mut |n| seen = n)
            .unwrap();
        assert_eq!(std::fs::read(&out_path).unwrap(), b"0123456789");
        assert_eq!(seen, 10);
        // Probing the next root finds nothing, as a 404 would.
        let missing = source.get("root/3.json", 100, None).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert!(source
            .get("notes.txt", 100, None)
            .unwrap_err()
            .is_not_found());
        // Caps and sizes hold as for a download.
        let long = source.get("timestamp.json", 3, None).unwrap_err();
        assert!(matches!(long, FetchError::TooLong { .. }), "{long}");
        let wrong = source
            .fetch_range(&blob, 0, 11, &mut out, &mut |_| {})
            .unwrap_err();
        assert!(matches!(wrong, FetchError::WrongLength { .. }), "{wrong}");
        assert!(matches!(
            source.get("../etc/passwd", 100, None),
            Err(FetchError::Path(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_is_not_a_repository_tarball_is_refused_naming_it() {
        let dir = temp("bad");
        let no_ts = tarball(&dir, &[("blobs/x", b"1")]);
        let e = TarSource::open(&no_ts).err().unwrap().to_string();
        assert!(e.contains("no timestamp.json"), "{e}");
        assert!(e.contains("repo.tar"), "{e}");
        let gz = dir.join("repo.tar.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        let e = TarSource::open(&gz).err().unwrap().to_string();
        assert!(e.contains("compressed"), "{e}");
        let junk = dir.join("junk.tar");
        std::fs::write(&junk, vec![7u8; 1024]).unwrap();
        let e = TarSource::open(&junk).err().unwrap().to_string();
        assert!(e.contains("junk.tar"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
