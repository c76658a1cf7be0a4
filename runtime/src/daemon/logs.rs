//! Container logs on the data partition: `<data-dir>/logs/<name>/current`
//! and the rotated `current.1` (newest) to `current.N`. Flash wears, so a
//! file never grows past its cap, what the daemon reads from a container's
//! pipe is written with one `write` per read (no fsync per line), and the
//! oldest file is dropped when a new one starts.
//!
//! `husk logs` reads them in order, oldest first; with `--follow` it keeps
//! reading `current`, and when the file it reads is renamed away by a
//! rotation, finishes it and opens the new one.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The file a container's output is appended to.
pub const CURRENT: &str = "current";
/// The most bytes a log file holds, by default.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// Rotated files kept besides `current`, by default.
pub const DEFAULT_ROTATED: u32 = 3;
/// Most rotated files that may be configured.
pub const MAX_ROTATED: u32 = 99;
/// The smallest log file size that may be configured.
pub const MIN_MAX_BYTES: u64 = 1024;
/// How often `husk logs -f` looks for more.
pub const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// How big log files get and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// The most bytes of one file.
    pub max_bytes: u64,
    /// Rotated files kept besides `current`.
    pub rotated: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            rotated: DEFAULT_ROTATED,
        }
    }
}

/// The directory of container `name`'s logs.
pub fn dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("logs").join(name)
}

/// Appends a container's output to `current`, rotating at the cap.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    file: File,
    size: u64,
    limits: LogLimits,
}

impl LogWriter {
    /// Opens (or creates) `dir/current` to append to.
    pub fn open(dir: &Path, limits: LogLimits) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let file = File::options()
            .append(true)
            .create(true)
            .open(dir.join(CURRENT))?;
        let size = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_owned(),
            file,
            size,
            limits,
        })
    }

    /// Appends `data`, starting a new file whenever `current` is full.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.size >= self.limits.max_bytes {
                self.rotate()?;
            }
            let room = usize::try_from(self.limits.max_bytes - self.size).unwrap_or(usize::MAX);
            let (now, later) = data.split_at(room.min(data.len()));
            if let Err(e) = self.file.write_all(now) {
                // Part of it may be written (a full disk): count what is.
                self.size = self.file.metadata().map_or(self.size, |m| m.len());
                return Err(e);
            }
            self.size += now.len() as u64;
            data = later;
        }
        Ok(())
    }

    /// `current` becomes `current.1`, each `current.i` becomes `current.i+1`,
    /// the last is dropped, and a new `current` starts.
    fn rotate(&mut self) -> io::Result<()> {
        let name = |i: u32| self.dir.join(format!("{CURRENT}.{i}"));
        for i in (1..self.limits.rotated).rev() {
            match fs::rename(name(i), name(i + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let current = self.dir.join(CURRENT);
        if self.limits.rotated > 0 {
            fs::rename(&current, name(1))?;
        }
        self.file = File::options()
            .append(true)
            .create(true)
            .truncate(false)
            .open(&current)?;
        if self.limits.rotated == 0 {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// The log files of `dir` that exist, oldest first.
pub fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut rotated = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let number = name.to_str().and_then(|n| {
            n.strip_prefix(CURRENT)?
                .strip_prefix('.')?
                .parse::<u32>()
                .ok()
        });
        if let Some(number) = number {
            rotated.push(number);
        }
    }
    rotated.sort_unstable_by(|a, b| b.cmp(a));
    let mut files: Vec<PathBuf> = rotated
        .into_iter()
        .map(|i| dir.join(format!("{CURRENT}.{i}")))
        .collect();
    files.push(dir.join(CURRENT));
    Ok(files)
}

/// Writes the logs of `dir` to `out`, the last `tail` lines only if given.
/// Returns `current`, opened before anything was read and read to its end,
/// for [`Follower`].
pub fn print(dir: &Path, tail: Option<usize>, out: &mut impl Write) -> io::Result<File> {
    let mut current = File::open(dir.join(CURRENT))?;
    let mut files = files(dir)?;
    files.pop();
    let Some(tail) = tail else {
        for path in files {
            match File::open(&path) {
                Ok(mut file) => {
                    io::copy(&mut file, out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        io::copy(&mut current, out)?;
        return Ok(current);
    };
    // Newest first, until `tail` lines are in hand.
    let mut chunks = Vec::new();
    let mut text = Vec::new();
    current.read_to_end(&mut text)?;
    let mut lines = count_lines(&text);
    chunks.push(text);
    for path in files.iter().rev() {
        if lines > tail {
            break;
        }
        let mut text = Vec::new();
        match File::open(path) {
            Ok(mut file) => file.read_to_end(&mut text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        lines += count_lines(&text);
        chunks.push(text);
    }
    chunks.reverse();
    let all = chunks.concat();
    out.write_all(last_lines(&all, tail))?;
    Ok(current)
}

/// Lines in `text`, a last one without a newline included.
fn count_lines(text: &[u8]) -> usize {
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(text.last().is_some_and(|&b| b != b'\n'))
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// Follows `current` across rotations (`husk logs -f`).
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    file: File,
}

impl Follower {
    /// Follows `dir/current` from where `file` (opened from it) is.
    pub fn new(dir: &Path, file: File) -> Self {
        Self {
            dir: dir.to_owned(),
            file,
        }
    }

    /// Writes to `out` what was appended since the last call; when
    /// `current` is another file now (rotated), finishes the old one and
    /// goes on with the new one from its start.
    pub fn poll(&mut self, out: &mut impl Write) -> io::Result<()> {
        io::copy(&mut self.file, out)?;
        let ours = self.file.metadata()?;
        match fs::metadata(self.dir.join(CURRENT)) {
            Ok(now) if now.ino() != ours.ino() || now.dev() != ours.dev() => {
                let mut file = File::open(self.dir.join(CURRENT))?;
                io::copy(&mut self.file, out)?;
                io::copy(&mut file, out)?;
                self.file = file;
            }
            Ok(now) if now.len() < self.file.stream_position()? => {
                // Truncated in place (no rotated files kept): start over.
                self.file.seek(SeekFrom::Start(0))?;
                io::copy(&mut self.file, out)?;
            }
            _ => {}
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    fn limits(max_bytes: u64, rotated: u32) -> LogLimits {
        LogLimits { max_bytes, rotated }
    }

    #[test]
    fn writes_rotate_at_the_cap_and_keep_n_files() {
        let tmp = TempDir::new("logs-rotate");
        let dir = tmp.path().join("logs/c");
        let mut log = LogWriter::open(&dir, limits(10, 2)).unwrap();
        log.write(b"0123456789abc").unwrap();
        assert_eq!(read(&dir.join("current")), "abc");
        assert_eq!(read(&dir.join("current.1")), "0123456789");
        log.write(b"defghijklmnopqrstuvwxyz").unwrap();
        assert_eq!(read(&dir.join("current.2")), "abcdefghij");
        assert_eq!(read(&dir.join("current.1")), "klmnopqrst");
        assert_eq!(read(&dir.join("current")), "uvwxyz");
        assert!(!dir.join("current.3").exists());
        // Reopening appends where the file ends, and keeps the cap.
        drop(log);
        let mut log = LogWriter::open(&dir, limits(10, 2)).unwrap();
        log.write(b"ABCDE").unwrap();
        assert_eq!(read(&dir.join("current.1")), "uvwxyzABCD");
        assert_eq!(read(&dir.join("current")), "E");
        let files = files(&dir).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["current.2", "current.1", "current"]);
        for file in files {
            assert!(fs::metadata(file).unwrap().len() <= 10);
        }
    }

    #[test]
    fn no_rotated_files_truncates() {
        let tmp = TempDir::new("logs-none");
        let mut log = LogWriter::open(tmp.path(), limits(4, 0)).unwrap();
        log.write(b"abcdef").unwrap();
        assert_eq!(read(&tmp.path().join("current")), "ef");
        assert_eq!(files(tmp.path()).unwrap().len(), 1);
    }

    #[test]
    fn print_all_and_tail_across_files() {
        let tmp = TempDir::new("logs-print");
        let mut log = LogWriter::open(tmp.path(), limits(8, 3)).unwrap();
        let text: String = (1..=9).map(|i| format!("l{i}\n")).collect();
        log.write(text.as_bytes()).unwrap();
        let output = |tail| {
            let mut out = Vec::new();
            print(tmp.path(), tail, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(output(None), text);
        assert_eq!(output(Some(2)), "l8\nl9\n");
        assert_eq!(output(Some(5)), "l5\nl6\nl7\nl8\nl9\n");
        assert_eq!(output(Some(100)), text);
        assert_eq!(output(Some(0)), "");
        assert_eq!(last_lines(b"a\nb", 1), b"b");
        assert_eq!(last_lines(b"a\nb\n", 1), b"b\n");
    }

    #[test]
    fn follow_continues_across_rotation() {
        let tmp = TempDir::new("logs-follow");
        let mut log = LogWriter::open(tmp.path(), limits(8, 1)).unwrap();
        log.write(b"one\n").unwrap();
        let mut out = Vec::new();
        let current = print(tmp.path(), None, &mut out).unwrap();
        let mut follower = Follower::new(tmp.path(), current);
        log.write(b"tw").unwrap();
        follower.poll(&mut out).unwrap();
        assert_eq!(out, b"one\ntw");
        // "o\nthree\n" crosses the cap: the rest of the old file, then the new.
        log.write(b"o\nthree\n").unwrap();
        follower.poll(&mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nthree\n");
        log.write(b"4\n").unwrap();
        follower.poll(&mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nthree\n4\n");
    }
}
