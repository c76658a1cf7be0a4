//! Container logs on the data partition: `<data-dir>/logs/<name>/current`
//! and the rotated `current.1` (newest) to `current.N`. Flash wears, so a
//! file never grows past its cap, what the daemon reads from a container's
//! pipe is written with one `write` per read (no fsync per line), and the
//! oldest file is dropped when a new one starts.
//!
//! Each line starts with the UTC time the daemon read it, as
//! `2026-11-28T03:00:00Z ` ([`STAMP_LEN`] bytes, one clock read per pipe
//! read): `husk logs --since` filters on it, `--timestamps` keeps it, and
//! otherwise it is stripped ([`Filter`]). A line without one (written before
//! stamps, or the rest of a line a rotation cut) takes the time of the line
//! before it.
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
/// The bytes of the time stamp that starts each line: `YYYY-MM-DDTHH:MM:SSZ `.
pub const STAMP_LEN: usize = 21;
/// The most seconds `--since` may reach back (100 years).
pub const MAX_SINCE_SECS: u64 = 100 * 365 * 86_400;
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
    /// The next byte starts a line (gets a stamp).
    line_start: bool,
    /// The stamped copy of one read, reused.
    staged: Vec<u8>,
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
        // A line the last daemon left unfinished is finished without a stamp.
        let line_start = size == 0 || {
            let mut last = File::open(dir.join(CURRENT))?;
            last.seek(SeekFrom::Start(size - 1))?;
            let mut byte = [0];
            last.read_exact(&mut byte)?;
            byte[0] == b'\n'
        };
        Ok(Self {
            dir: dir.to_owned(),
            file,
            size,
            limits,
            line_start,
            staged: Vec::new(),
        })
    }

    /// Appends `data`, read at `wall` (seconds since the epoch), each line
    /// it starts stamped with that time, starting a new file whenever
    /// `current` is full.
    pub fn write(&mut self, data: &[u8], wall: u64) -> io::Result<()> {
        let stamp = crate::lifecycle::rfc3339(wall);
        let mut staged = std::mem::take(&mut self.staged);
        staged.clear();
        for line in data.split_inclusive(|&b| b == b'\n') {
            if self.line_start {
                staged.extend_from_slice(stamp.as_bytes());
                staged.push(b' ');
            }
            staged.extend_from_slice(line);
            self.line_start = line.ends_with(b"\n");
        }
        let written = self.write_raw(&staged);
        self.staged = staged;
        written
    }

    /// Appends `data` as it is, starting a new file whenever `current` is
    /// full, or when a whole line of `data` would not fit in it but would in
    /// a new one (so that a file starts with a line, and its stamp).
    fn write_raw(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.size >= self.limits.max_bytes {
                self.rotate()?;
            }
            let room = usize::try_from(self.limits.max_bytes - self.size).unwrap_or(usize::MAX);
            let take = match data.get(..room) {
                None => data.len(),
                Some(fits) => match fits.iter().rposition(|&b| b == b'\n') {
                    Some(newline) => newline + 1,
                    None => {
                        let line = data.iter().position(|&b| b == b'\n');
                        if self.size > 0 && line.is_some_and(|n| (n as u64) < self.limits.max_bytes)
                        {
                            self.rotate()?;
                            continue;
                        }
                        room
                    }
                },
            };
            let (now, later) = data.split_at(take);
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

/// Writes the logs of `dir` through `out` (which strips stamps, keeps lines
/// since a time), the last `tail` lines of what it keeps only if given.
/// Returns `current`, opened before anything was read and read to its end,
/// for [`Follower`].
pub fn print<W: Write>(dir: &Path, tail: Option<usize>, out: &mut Filter<W>) -> io::Result<File> {
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
        out.end()?;
        return Ok(current);
    };
    if out.since.is_some() {
        // Which lines are kept is known only once read: all of them, kept
        // ones gathered, then the last of those.
        let mut kept = Filter::new(Vec::new(), out.since, true);
        let current = print(dir, None, &mut kept)?;
        let kept = kept.into_inner();
        let mut strip = Filter::new(&mut out.out, None, out.stamps);
        strip.write_all(last_lines(&kept, tail))?;
        strip.end()?;
        return Ok(current);
    }
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
    out.end()?;
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

/// `husk logs --since T`: a time back from now or a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This many seconds before now (`10m`).
    Ago(u64),
    /// This moment, in seconds since the epoch (`2026-11-28T03:00:00Z`).
    At(u64),
}

impl Since {
    /// `30s`, `10m`, `2h`, `1d`, or an RFC 3339 UTC time
    /// `YYYY-MM-DDTHH:MM:SSZ`; the error says what was wrong in one line.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(at) = parse_rfc3339(text) {
            return Ok(Self::At(at));
        }
        let bad = || {
            format!(
                "--since takes a duration (30s, 10m, 2h, 1d) or a UTC time \
                 (2026-11-28T03:00:00Z), not {text:?}"
            )
        };
        let unit = match text.as_bytes().last() {
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3600,
            Some(b'd') => 86_400,
            _ => return Err(bad()),
        };
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let secs = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .filter(|&secs| secs <= MAX_SINCE_SECS)
            .ok_or_else(bad)?;
        Ok(Self::Ago(secs))
    }

    /// The moment meant, seen at `now` (seconds since the epoch).
    pub fn resolve(self, now: u64) -> u64 {
        match self {
            Self::Ago(secs) => now.saturating_sub(secs),
            Self::At(at) => at,
        }
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (as
/// [`crate::lifecycle::rfc3339`] writes), if `text` is one and a real date.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &b[range];
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        28 + i64::from(leap),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=month_days[month as usize - 1]).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

/// What `husk logs` writes of the stamped log text written to it: the
/// lines stamped at or after `since` (all without it), each with its stamp
/// or without. It keeps its place across writes, so a line may arrive in
/// pieces; [`Filter::end`] lets out a short last line held back.
#[derive(Debug)]
pub struct Filter<W> {
    out: W,
    since: Option<u64>,
    stamps: bool,
    /// The next byte starts a line.
    line_start: bool,
    /// The start of a line, until it is known whether it is a stamp.
    head: Vec<u8>,
    /// The line being written is kept.
    keep: bool,
    /// The time of the last stamped line.
    last: Option<u64>,
}

impl<W: Write> Filter<W> {
    /// Writes to `out` the lines since `since`, with their stamps if `stamps`.
    pub fn new(out: W, since: Option<u64>, stamps: bool) -> Self {
        Self {
            out,
            since,
            stamps,
            line_start: true,
            head: Vec::with_capacity(STAMP_LEN),
            keep: since.is_none(),
            last: None,
        }
    }

    /// The writer written to.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The end of the text: a line start held back is written as it is.
    pub fn end(&mut self) -> io::Result<()> {
        if !self.head.is_empty() {
            self.decide()?;
        }
        self.out.flush()
    }

    /// The line whose start is `head` is stamped or not; keeps it or not.
    fn decide(&mut self) -> io::Result<()> {
        let head = std::mem::take(&mut self.head);
        let stamp = head
            .strip_suffix(b" ")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(parse_rfc3339);
        if stamp.is_some() {
            self.last = stamp;
        }
        self.keep = match (self.since, self.last) {
            (None, _) => true,
            (Some(since), Some(last)) => last >= since,
            (Some(_), None) => false,
        };
        if self.keep && (stamp.is_none() || self.stamps) {
            self.out.write_all(&head)?;
        }
        self.line_start = false;
        self.head = head;
        self.head.clear();
        Ok(())
    }
}

impl<W: Write> Write for Filter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.line_start {
                let newline = rest.iter().position(|&b| b == b'\n');
                let want = STAMP_LEN - self.head.len();
                let take = newline.map_or(want, |n| n + 1).min(want).min(rest.len());
                self.head.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                let ended = self.head.last() == Some(&b'\n');
                if self.head.len() == STAMP_LEN || ended {
                    self.decide()?;
                    self.line_start = ended;
                }
                continue;
            }
            let (line, more) = match rest.iter().position(|&b| b == b'\n') {
                Some(n) => rest.split_at(n + 1),
                None => (rest, &[][..]),
            };
            if self.keep {
                self.out.write_all(line)?;
            }
            self.line_start = line.ends_with(b"\n");
            rest = more;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
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

    /// 2026-11-28T03:00:00Z.
    const T0: u64 = 1_795_834_800;

    fn filtered(text: &[u8], since: Option<u64>, stamps: bool, piece: usize) -> String {
        let mut filter = Filter::new(Vec::new(), since, stamps);
        for chunk in text.chunks(piece) {
            filter.write_all(chunk).unwrap();
        }
        filter.end().unwrap();
        String::from_utf8(filter.into_inner()).unwrap()
    }

    #[test]
    fn since_takes_durations_and_utc_times() {
        assert_eq!(Since::parse("30s"), Ok(Since::Ago(30)));
        assert_eq!(Since::parse("10m"), Ok(Since::Ago(600)));
        assert_eq!(Since::parse("2h"), Ok(Since::Ago(7200)));
        assert_eq!(Since::parse("1d"), Ok(Since::Ago(86_400)));
        assert_eq!(Since::parse("0s"), Ok(Since::Ago(0)));
        assert_eq!(Since::parse("2026-11-28T03:00:00Z"), Ok(Since::At(T0)));
        assert_eq!(Since::parse("1970-01-01T00:00:00Z"), Ok(Since::At(0)));
        assert_eq!(
            Since::parse("2024-02-29T23:59:59Z"),
            Ok(Since::At(1_709_251_199))
        );
        assert_eq!(Since::Ago(600).resolve(T0), T0 - 600);
        assert_eq!(Since::Ago(600).resolve(5), 0);
        assert_eq!(Since::At(7).resolve(T0), 7);
        for bad in [
            "",
            "10",
            "m",
            "-5m",
            "+5m",
            "1.5h",
            "10 m",
            "10M",
            "5w",
            "1h30m",
            "99999999999999999999d",
            "36501d",
            "2026-11-28",
            "2026-11-28T03:00:00",
            "2026-11-28T03:00:00+01:00",
            "2026-11-28 03:00:00Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T03:60:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-28t03:00:00z",
        ] {
            let error = Since::parse(bad).expect_err(bad);
            assert!(
                error.starts_with("--since takes") && !error.contains('\n'),
                "{error}"
            );
        }
        // Every second of a few years reads back as written.
        for secs in (0..4 * 366 * 86_400).step_by(86_400 - 1).map(|s| T0 + s) {
            let text = crate::lifecycle::rfc3339(secs);
            assert_eq!(parse_rfc3339(&text), Some(secs), "{text}");
        }
    }

    #[test]
    fn each_line_is_stamped_with_the_time_it_was_read() {
        let tmp = TempDir::new("logs-stamp");
        let mut log = LogWriter::open(tmp.path(), LogLimits::default()).unwrap();
        log.write(b"a\nb", T0).unwrap();
        log.write(b"c\n\nd\n", T0 + 1).unwrap();
        let stamp = |t| format!("{} ", crate::lifecycle::rfc3339(t));
        let expected = format!("{0}a\n{0}bc\n{1}\n{1}d\n", stamp(T0), stamp(T0 + 1));
        assert_eq!(read(&tmp.path().join("current")), expected);
        // A daemon started again finishes an unfinished line without a stamp.
        log.write(b"e", T0 + 2).unwrap();
        drop(log);
        let mut log = LogWriter::open(tmp.path(), LogLimits::default()).unwrap();
        log.write(b"f\ng\n", T0 + 3).unwrap();
        let expected = format!("{expected}{}ef\n{}g\n", stamp(T0 + 2), stamp(T0 + 3));
        assert_eq!(read(&tmp.path().join("current")), expected);
    }

    #[test]
    fn filter_strips_or_keeps_stamps_and_keeps_lines_since() {
        let stamp = |t| format!("{} ", crate::lifecycle::rfc3339(t));
        let text = format!(
            "old unstamped\n{}one\n{}two\ncontinued\n\n{}\n{}three\nshort",
            stamp(T0 - 60),
            stamp(T0),
            stamp(T0 + 5),
            stamp(T0 + 10),
        );
        // Any way the text is cut into writes, the same output.
        for piece in [1, 2, 7, STAMP_LEN, STAMP_LEN + 1, 1000] {
            assert_eq!(
                filtered(text.as_bytes(), None, false, piece),
                "old unstamped\none\ntwo\ncontinued\n\n\nthree\nshort"
            );
            assert_eq!(filtered(text.as_bytes(), None, true, piece), text);
            // Unstamped lines go with the line before; none before: too old.
            assert_eq!(
                filtered(text.as_bytes(), Some(T0), false, piece),
                "two\ncontinued\n\n\nthree\nshort"
            );
            assert_eq!(
                filtered(text.as_bytes(), Some(T0 + 6), true, piece),
                format!("{}three\nshort", stamp(T0 + 10))
            );
            assert_eq!(filtered(text.as_bytes(), Some(T0 + 11), false, piece), "");
        }
    }

    #[test]
    fn since_with_tail_counts_the_kept_lines() {
        let tmp = TempDir::new("logs-since-tail");
        let mut log = LogWriter::open(tmp.path(), limits(100, 5)).unwrap();
        for i in 0..12 {
            log.write(format!("l{i}\n").as_bytes(), T0 + i).unwrap();
        }
        assert!(tmp.path().join("current.2").exists());
        let output = |since, tail| {
            let mut out = Filter::new(Vec::new(), since, false);
            print(tmp.path(), tail, &mut out).unwrap();
            String::from_utf8(out.into_inner()).unwrap()
        };
        assert_eq!(output(Some(T0 + 9), None), "l9\nl10\nl11\n");
        assert_eq!(output(Some(T0 + 9), Some(2)), "l10\nl11\n");
        assert_eq!(output(Some(T0 + 9), Some(5)), "l9\nl10\nl11\n");
        assert_eq!(output(Some(T0 + 99), Some(5)), "");
        assert_eq!(output(None, Some(2)), "l10\nl11\n");
        let mut out = Filter::new(Vec::new(), Some(T0 + 10), true);
        print(tmp.path(), Some(1), &mut out).unwrap();
        let expected = format!("{} l11\n", crate::lifecycle::rfc3339(T0 + 11));
        assert_eq!(String::from_utf8(out.into_inner()).unwrap(), expected);
    }

    #[test]
    fn writes_rotate_at_the_cap_and_keep_n_files() {
        let tmp = TempDir::new("logs-rotate");
        let dir = tmp.path().join("logs/c");
        let mut log = LogWriter::open(&dir, limits(10, 2)).unwrap();
        log.write_raw(b"0123456789abc").unwrap();
        assert_eq!(read(&dir.join("current")), "abc");
        assert_eq!(read(&dir.join("current.1")), "0123456789");
        log.write_raw(b"defghijklmnopqrstuvwxyz").unwrap();
        assert_eq!(read(&dir.join("current.2")), "abcdefghij");
        assert_eq!(read(&dir.join("current.1")), "klmnopqrst");
        assert_eq!(read(&dir.join("current")), "uvwxyz");
        assert!(!dir.join("current.3").exists());
        // Reopening appends where the file ends, and keeps the cap.
        drop(log);
        let mut log = LogWriter::open(&dir, limits(10, 2)).unwrap();
        log.write_raw(b"ABCDE").unwrap();
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
    fn a_file_starts_with_a_line_unless_the_line_is_longer_than_a_file() {
        let tmp = TempDir::new("logs-lines");
        let mut log = LogWriter::open(tmp.path(), limits(10, 3)).unwrap();
        log.write_raw(b"abcd\nefgh\nij\n").unwrap();
        assert_eq!(read(&tmp.path().join("current.1")), "abcd\nefgh\n");
        assert_eq!(read(&tmp.path().join("current")), "ij\n");
        log.write_raw(b"klmnopqr\n").unwrap();
        assert_eq!(read(&tmp.path().join("current.1")), "ij\n");
        assert_eq!(read(&tmp.path().join("current")), "klmnopqr\n");
        // Longer than a file: cut where the file is full.
        log.write_raw(b"0123456789ABCDEF\nq").unwrap();
        assert_eq!(read(&tmp.path().join("current.2")), "klmnopqr\n0");
        assert_eq!(read(&tmp.path().join("current.1")), "123456789A");
        assert_eq!(read(&tmp.path().join("current")), "BCDEF\nq");
    }

    #[test]
    fn no_rotated_files_truncates() {
        let tmp = TempDir::new("logs-none");
        let mut log = LogWriter::open(tmp.path(), limits(4, 0)).unwrap();
        log.write_raw(b"abcdef").unwrap();
        assert_eq!(read(&tmp.path().join("current")), "ef");
        assert_eq!(files(tmp.path()).unwrap().len(), 1);
    }

    #[test]
    fn print_all_and_tail_across_files() {
        let tmp = TempDir::new("logs-print");
        let mut log = LogWriter::open(tmp.path(), limits(3 * (3 + STAMP_LEN as u64), 3)).unwrap();
        let text: String = (1..=9).map(|i| format!("l{i}\n")).collect();
        log.write(text.as_bytes(), T0).unwrap();
        let output = |tail| {
            let mut out = Filter::new(Vec::new(), None, false);
            print(tmp.path(), tail, &mut out).unwrap();
            String::from_utf8(out.into_inner()).unwrap()
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
        let cap = 8 + STAMP_LEN as u64;
        let mut log = LogWriter::open(tmp.path(), limits(cap, 1)).unwrap();
        log.write(b"one\n", T0).unwrap();
        let mut out = Filter::new(Vec::new(), None, false);
        let current = print(tmp.path(), None, &mut out).unwrap();
        let mut follower = Follower::new(tmp.path(), current);
        log.write(b"tw", T0).unwrap();
        follower.poll(&mut out).unwrap();
        let text = |out: &Filter<Vec<u8>>| String::from_utf8_lossy(&out.out).into_owned();
        assert_eq!(text(&out), "one\ntw");
        // "o\nthree\n" crosses the cap: the rest of the old file, then the new.
        log.write(b"o\nthree\n", T0).unwrap();
        follower.poll(&mut out).unwrap();
        assert_eq!(text(&out), "one\ntwo\nthree\n");
        log.write(b"4\n", T0).unwrap();
        follower.poll(&mut out).unwrap();
        assert_eq!(text(&out), "one\ntwo\nthree\n4\n");
    }
}
