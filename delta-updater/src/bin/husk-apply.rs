//! `husk-apply`: the device side of updates alone, as `husk` will link it:
//! verify a repository's metadata from a trusted root, and apply a delta.
//! It exists to measure that code's size and the peak memory of applying
//! (`--rss` prints the process's peak resident set, VmHWM, at the end).
//!
//! ```text
//! husk-apply [--rss] verify ROOT REPO CLASS ARCH HARDWARE NOW
//! husk-apply [--rss] apply OLD DELTA DELTA_DIGEST DIFF_ID SIZE OUT
//! husk-apply [--rss] fetch REPO DIGEST SIZE DIR
//! ```
//!
//! `fetch` downloads blob DIGEST of SIZE bytes from REPO (`http://...` or a
//! directory) into `DIR/<hex>`, resuming a `DIR/<hex>.part` left by a cut.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

use delta_updater::delta::{self, DeltaError, Target};
use delta_updater::fetch::{self, DirSource, FetchError, HttpSource, Source, Timeouts};
use delta_updater::metadata::{MAX_RELEASE_LEN, MAX_ROOT_LEN, MAX_TIMESTAMP_LEN};
use delta_updater::verify::{Device, Seen, VerifyError};
use delta_updater::{Digest, DigestError, Verifier};

/// Why husk-apply failed.
enum Error {
    /// An argument is not a number.
    Number(&'static str, String),
    /// An argument is not a digest.
    Digest(&'static str, DigestError),
    /// A file could not be read.
    Read(String, io::Error),
    /// A metadata file was refused.
    Verify(String, Box<VerifyError>),
    /// The delta file is not the blob named.
    DeltaHash {
        path: String,
        found: Digest,
        expected: Digest,
    },
    /// The delta did not apply.
    Apply(DeltaError),
    /// A download failed.
    Fetch(FetchError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(what, value) => write!(f, "{what} {value:?} is not a number"),
            Self::Digest(what, e) => write!(f, "{what}: {e}"),
            Self::Read(path, e) => write!(f, "{path}: {e}"),
            Self::Verify(path, e) => write!(f, "{path}: {e}"),
            Self::DeltaHash {
                path,
                found,
                expected,
            } => write!(f, "{path}: is {found}, not {expected}"),
            Self::Apply(e) => e.fmt(f),
            Self::Fetch(e) => e.fmt(f),
        }
    }
}

const USAGE: &str = "usage: husk-apply [--rss] verify ROOT REPO CLASS ARCH HARDWARE NOW\n       husk-apply [--rss] apply OLD DELTA DELTA_DIGEST DIFF_ID SIZE OUT\n       husk-apply [--rss] fetch REPO DIGEST SIZE DIR";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let rss = args.first().is_some_and(|a| a == "--rss");
    if rss {
        args.remove(0);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["verify", root, repo, class, arch, hardware, now] => {
            verify(root, repo, class, arch, hardware, now)
        }
        ["apply", old, delta, delta_digest, diff_id, size, out] => {
            apply(old, delta, delta_digest, diff_id, size, out)
        }
        ["fetch", repo, digest, size, dir] => fetch(repo, digest, size, dir),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if rss {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            println!("{line}");
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("husk-apply: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &str, max: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    File::open(path)
        .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut out))
        .map_err(|e| Error::Read(path.to_owned(), e))?;
    Ok(out)
}

fn verify(
    root: &str,
    repo: &str,
    class: &str,
    arch: &str,
    hardware: &str,
    now: &str,
) -> Result<(), Error> {
    let now: u64 = now
        .parse()
        .map_err(|_| Error::Number("NOW", now.to_owned()))?;
    let device = Device {
        class: class.to_owned(),
        arch: arch.to_owned(),
        hardware: hardware.to_owned(),
    };
    let mut v = Verifier::new(&read(root, MAX_ROOT_LEN)?, device, Seen::default())
        .map_err(|e| Error::Verify(root.to_owned(), e.into()))?;
    loop {
        let next = format!("{repo}/root/{}.json", v.root().version + 1);
        if !Path::new(&next).exists() {
            break;
        }
        v.rotate_root(&read(&next, MAX_ROOT_LEN)?)
            .map_err(|e| Error::Verify(next.clone(), e.into()))?;
    }
    let ts = format!("{repo}/timestamp.json");
    let entry = v
        .timestamp(&read(&ts, MAX_TIMESTAMP_LEN)?, now)
        .map_err(|e| Error::Verify(ts.clone(), e.into()))?;
    let path = format!("{repo}/releases/{class}/{arch}/{}.json", entry.version);
    let release = v
        .release(&read(&path, MAX_RELEASE_LEN)?, now)
        .map_err(|e| Error::Verify(path.clone(), e.into()))?;
    println!(
        "release {} ({} layers)",
        release.version,
        release.layers.len()
    );
    for layer in &release.layers {
        println!(
            "  {} {} bytes, {} delta(s)",
            layer.diff_id,
            layer.size,
            layer.deltas.len()
        );
    }
    Ok(())
}

fn apply(
    old: &str,
    delta_path: &str,
    delta_digest: &str,
    diff_id: &str,
    size: &str,
    out: &str,
) -> Result<(), Error> {
    let delta_digest = Digest::parse(delta_digest).map_err(|e| Error::Digest("DELTA_DIGEST", e))?;
    let diff_id = Digest::parse(diff_id).map_err(|e| Error::Digest("DIFF_ID", e))?;
    let size: u64 = size
        .parse()
        .map_err(|_| Error::Number("SIZE", size.to_owned()))?;
    // The delta's hash is checked before its content is read as a delta.
    let found = File::open(delta_path)
        .and_then(Digest::of_reader)
        .map_err(|e| Error::Read(delta_path.to_owned(), e))?;
    if found != delta_digest {
        return Err(Error::DeltaHash {
            path: delta_path.to_owned(),
            found,
            expected: delta_digest,
        });
    }
    let file = File::open(delta_path).map_err(|e| Error::Read(delta_path.to_owned(), e))?;
    delta::apply(
        Path::new(old),
        BufReader::new(file),
        Target { diff_id, size },
        Path::new(out),
    )
    .map_err(Error::Apply)
}

fn fetch(repo: &str, digest: &str, size: &str, dir: &str) -> Result<(), Error> {
    let digest = Digest::parse(digest).map_err(|e| Error::Digest("DIGEST", e))?;
    let size: u64 = size
        .parse()
        .map_err(|_| Error::Number("SIZE", size.to_owned()))?;
    let mut source: Box<dyn Source> = if repo.starts_with("http") {
        Box::new(HttpSource::new(repo, Timeouts::default()).map_err(Error::Fetch)?)
    } else {
        Box::new(DirSource::new(Path::new(repo)))
    };
    let path = fetch::download_blob(source.as_mut(), &digest, size, Path::new(dir), &mut |_| {})
        .map_err(Error::Fetch)?;
    println!("{}", path.display());
    Ok(())
}
