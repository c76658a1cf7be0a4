//! `husk-publish bench`: bytes on the wire for one pair of layers, by each
//! method, side by side with the reference tools when they are installed,
//! and the peak memory of applying husk's deltas with the device-side binary.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use argh::FromArgs;
use delta_updater::delta::{make, Algorithm};
use delta_updater::Digest;

/// Measure deltas between two layers: OLD and NEW are tar files or
/// directories (tarred in sorted order). Prints bytes for the full zstd
/// layer, whole-layer bsdiff+zstd, per-file delta, and bsdiff, xdelta3 -9
/// and zstd --patch-from --long (-19, and --ultra -22) when installed; and applies each husk delta
/// with husk-apply (found beside this binary) for its peak RSS.
#[derive(FromArgs)]
#[argh(subcommand, name = "bench")]
pub struct BenchCmd {
    /// the old layer (tar file or directory)
    #[argh(positional)]
    old: PathBuf,
    /// the new layer (tar file or directory)
    #[argh(positional)]
    new: PathBuf,
    /// where to keep the work files (default: a directory under /tmp, removed after)
    #[argh(option)]
    work: Option<PathBuf>,
}

/// Why the bench failed.
#[derive(Debug)]
enum BenchError {
    /// A file operation on a path failed.
    Io(PathBuf, io::Error),
    /// Computing a delta or compressing failed.
    Make(&'static str, io::Error),
    /// husk-apply failed; its message.
    Apply(String),
    /// husk-apply wrote another layer than the new one, or no VmHWM line.
    Result(&'static str),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(path, e) => write!(f, "{}: {e}", path.display()),
            Self::Make(what, e) => write!(f, "{what}: {e}"),
            Self::Apply(message) => write!(f, "husk-apply failed: {message}"),
            Self::Result(what) => write!(f, "husk-apply {what}"),
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BenchError + '_ {
    move |e| BenchError::Io(path.to_owned(), e)
}

struct Row {
    method: String,
    bytes: Option<u64>,
    seconds: f64,
    rss_kib: Option<u64>,
}

pub fn run(cmd: &BenchCmd) -> ExitCode {
    match bench(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("husk-publish: bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(cmd: &BenchCmd) -> Result<(), BenchError> {
    let temp = cmd.work.is_none();
    let work = cmd
        .work
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("husk-bench-{}", std::process::id())));
    fs::create_dir_all(&work).map_err(io_at(&work))?;
    let result = measure(cmd, &work);
    if temp {
        let _ = fs::remove_dir_all(&work);
    }
    result
}

fn measure(cmd: &BenchCmd, work: &Path) -> Result<(), BenchError> {
    let old = layer(&cmd.old)?;
    let new = layer(&cmd.new)?;
    let old_path = work.join("old.tar");
    let new_path = work.join("new.tar");
    fs::write(&old_path, &old).map_err(io_at(&old_path))?;
    fs::write(&new_path, &new).map_err(io_at(&new_path))?;
    println!(
        "old {} bytes ({}), new {} bytes ({})",
        old.len(),
        cmd.old.display(),
        new.len(),
        cmd.new.display()
    );
    let mut rows = Vec::new();
    let apply_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("husk-apply")))
        .filter(|p| p.exists());

    let t = Instant::now();
    let full = make::compress(&new).map_err(|e| BenchError::Make("zstd", e))?;
    rows.push(Row {
        method: "full layer, zstd -19".into(),
        bytes: Some(full.len() as u64),
        seconds: t.elapsed().as_secs_f64(),
        rss_kib: None,
    });
    type MakeDelta = fn(&[u8], &[u8]) -> std::io::Result<Option<Vec<u8>>>;
    fn zstd_ref(old: &[u8], new: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        make::zstd_ref(old, new).map(Some)
    }
    let husk: [(Algorithm, MakeDelta); 4] = [
        (Algorithm::Bsdiff, make::whole_layer),
        (Algorithm::TarFiles, make::tar_files),
        (Algorithm::ZstdRef, zstd_ref),
        (Algorithm::ZstdPatch, make::zstd_patch),
    ];
    let mut best: Option<u64> = None;
    for (algorithm, make_delta) in husk {
        let t = Instant::now();
        let delta = make_delta(&old, &new).map_err(|e| BenchError::Make(algorithm.name(), e))?;
        let seconds = t.elapsed().as_secs_f64();
        let rss_kib = match (&delta, &apply_bin) {
            (Some(d), Some(bin)) => Some(apply_rss(bin, work, &old_path, d, &new)?),
            _ => None,
        };
        if let Some(d) = &delta {
            best = Some(best.map_or(d.len() as u64, |b| b.min(d.len() as u64)));
        }
        rows.push(Row {
            method: match algorithm {
                Algorithm::Bsdiff => "husk whole-layer bsdiff + zstd".into(),
                Algorithm::TarFiles => "husk per-file (tar-files) + zstd".into(),
                Algorithm::ZstdRef => "husk zstd-ref (windowed patch-from)".into(),
                Algorithm::ZstdPatch => "husk zstd-patch (patch-from, window on disk)".into(),
            },
            bytes: delta.map(|d| d.len() as u64),
            seconds,
            rss_kib,
        });
    }
    let kept = best.filter(|b| b * 100 <= full.len() as u64 * make::MARGIN_PERCENT);
    rows.push(Row {
        method: format!(
            "husk chosen (smallest, if <= {} % of full)",
            make::MARGIN_PERCENT
        ),
        bytes: Some(kept.unwrap_or(full.len() as u64)),
        seconds: 0.0,
        rss_kib: None,
    });
    let out = work.join("out");
    let (o, n, p) = (
        &*old_path.to_string_lossy(),
        &*new_path.to_string_lossy(),
        &*out.to_string_lossy(),
    );
    let patch_from = format!("--patch-from={o}");
    let tools: [(&str, &str, Vec<&str>); 4] = [
        ("bsdiff (Debian, bzip2)", "bsdiff", vec![o, n, p]),
        (
            "xdelta3 -9",
            "xdelta3",
            vec!["-9", "-f", "-e", "-s", o, n, p],
        ),
        (
            "zstd -19 --long --patch-from",
            "zstd",
            vec!["-q", "-f", "-19", "--long=27", &patch_from, n, "-o", p],
        ),
        (
            "zstd --ultra -22 --long --patch-from",
            "zstd",
            vec![
                "-q",
                "-f",
                "--ultra",
                "-22",
                "--long=27",
                &patch_from,
                n,
                "-o",
                p,
            ],
        ),
    ];
    for (method, program, args) in tools {
        let t = Instant::now();
        let _ = fs::remove_file(&out);
        let status = Command::new(program).args(&args).output();
        let seconds = t.elapsed().as_secs_f64();
        let bytes = match status {
            Ok(o) if o.status.success() => fs::metadata(&out).ok().map(|m| m.len()),
            _ => None,
        };
        rows.push(Row {
            method: method.into(),
            bytes,
            seconds,
            rss_kib: None,
        });
    }
    let full_len = full.len() as f64;
    let bsdiff_len = rows[1].bytes.map(|b| b as f64);
    println!(
        "{:<46} {:>12} {:>8} {:>10} {:>8} {:>14}",
        "method", "bytes", "x full", "x bsdiff", "seconds", "apply peak RSS"
    );
    for row in &rows {
        let (bytes, x_full, x_bsdiff) = match row.bytes {
            Some(b) => (
                b.to_string(),
                format!("{:.3}", b as f64 / full_len),
                bsdiff_len.map_or("-".into(), |d| format!("{:.3}", b as f64 / d)),
            ),
            None => ("n/a".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<46} {:>12} {:>8} {:>10} {:>8.2} {:>14}",
            row.method,
            bytes,
            x_full,
            x_bsdiff,
            row.seconds,
            row.rss_kib.map_or("-".into(), |k| format!("{k} KiB")),
        );
    }
    if apply_bin.is_none() {
        println!("(husk-apply not found beside husk-publish: no apply RSS)");
    }
    Ok(())
}

/// Applies `delta` with the device-side binary; its peak RSS in KiB. Checks
/// the result is `new`.
fn apply_rss(
    bin: &Path,
    work: &Path,
    old: &Path,
    delta: &[u8],
    new: &[u8],
) -> Result<u64, BenchError> {
    let delta_path = work.join("delta");
    let out = work.join("applied.tar");
    fs::write(&delta_path, delta).map_err(io_at(&delta_path))?;
    let output = Command::new(bin)
        .arg("--rss")
        .arg("apply")
        .arg(old)
        .arg(&delta_path)
        .arg(Digest::of(delta).to_string())
        .arg(Digest::of(new).to_string())
        .arg(new.len().to_string())
        .arg(&out)
        .output()
        .map_err(io_at(bin))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BenchError::Apply(stderr.trim().to_owned()));
    }
    if fs::read(&out).map_err(io_at(&out))? != new {
        return Err(BenchError::Result("wrote another layer"));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(BenchError::Result("printed no VmHWM"))
}

/// A tar file's bytes, or a directory tarred (entries sorted, so the same
/// tree gives the same tar).
fn layer(path: &Path) -> Result<Vec<u8>, BenchError> {
    let meta = fs::metadata(path).map_err(io_at(path))?;
    if !meta.is_dir() {
        return fs::read(path).map_err(io_at(path));
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = path.join(&rel);
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(io_at(&dir))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        let mut subdirs = Vec::new();
        for name in entries {
            let rel_path = rel.join(&name);
            let full = path.join(&rel_path);
            builder
                .append_path_with_name(&full, &rel_path)
                .map_err(io_at(&full))?;
            if fs::symlink_metadata(&full)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                subdirs.push(rel_path);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    builder.into_inner().map_err(io_at(path))
}
