//! `husk-publish`: the fleet operator's tool. It builds and signs update
//! repositories (see `delta_updater::repo` for the layout) and measures deltas.

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use argh::FromArgs;
use delta_updater::delta::Algorithm;
use delta_updater::image::ImageSpec;
use delta_updater::repo::{self, KeyChange, ReleaseInput, Repo};
use delta_updater::Digest;
use delta_updater::{push, serve};

mod bench;

/// Build, sign and publish husk update repositories.
#[derive(FromArgs)]
struct Cli {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Digest(DigestCmd),
    Init(InitCmd),
    Release(ReleaseCmd),
    Timestamp(TimestampCmd),
    Verify(VerifyCmd),
    Keys(KeysCmd),
    Bench(bench::BenchCmd),
    Serve(ServeCmd),
    Push(PushCmd),
}

/// Print the sha256 content address of each file, as blobs are named.
#[derive(FromArgs)]
#[argh(subcommand, name = "digest")]
struct DigestCmd {
    /// files to hash
    #[argh(positional)]
    files: Vec<String>,
}

/// Create a repository in DIR: keys in DIR/keys (mode 0600, never to be
/// served) and the served files in DIR/repo, starting with root version 1.
#[derive(FromArgs)]
#[argh(subcommand, name = "init")]
struct InitCmd {
    /// the directory
    #[argh(positional)]
    dir: PathBuf,
}

/// Publish the next release of a device class and architecture from
/// container images (or bare layer tars) and a desired-state JSON object,
/// with deltas from the layers of the previous releases, and re-sign the
/// timestamp. The desired state has the "containers"; each --image adds an
/// entry to its "images" member, and a container's "image" must name one.
/// Prints one line per image (its config blob), per layer (diff_id, size,
/// full zstd blob) and per delta kept.
#[derive(FromArgs)]
#[argh(subcommand, name = "release")]
struct ReleaseCmd {
    /// the repository directory (as made by init)
    #[argh(positional)]
    dir: PathBuf,
    /// device class
    #[argh(option)]
    class: String,
    /// architecture, as the device names it (aarch64, arm, riscv64, x86_64)
    #[argh(option)]
    arch: String,
    /// hardware the release runs on (at least one; repeat for more)
    #[argh(option)]
    hardware: Vec<String>,
    /// the desired state, a JSON object
    #[argh(option)]
    desired_state: PathBuf,
    /// NAME=PATH[:TAG]: the image NAME of the release, from an OCI layout
    /// directory, an OCI archive or a docker save tarball (the manifest for
    /// --arch out of a multi-arch index; :TAG picks one of several images)
    #[argh(option)]
    image: Vec<String>,
    /// an uncompressed layer tar, before the images' layers (repeat for more)
    #[argh(option)]
    layer: Vec<PathBuf>,
    /// days until the release expires (default 90)
    #[argh(option, default = "repo::RELEASE_EXPIRY / 86_400")]
    expires_days: u64,
    /// against how many previous releases' layers to compute deltas (default 3)
    #[argh(option, default = "repo::DELTA_HISTORY")]
    history: usize,
    /// a delta algorithm to try: tar-files, bsdiff, zstd-patch, zstd-ref
    /// (repeat for more; default all). Devices that predate one fetch
    /// layers whole where it was the smallest.
    #[argh(option)]
    delta: Vec<String>,
}

/// Re-sign the timestamp (the online freshness role).
#[derive(FromArgs)]
#[argh(subcommand, name = "timestamp")]
struct TimestampCmd {
    /// the repository directory
    #[argh(positional)]
    dir: PathBuf,
    /// hours until the timestamp expires (default 24)
    #[argh(option, default = "repo::TIMESTAMP_EXPIRY / 3600")]
    expires_hours: u64,
}

/// Check every signature, every release and every blob of a repository as
/// a device would.
#[derive(FromArgs)]
#[argh(subcommand, name = "verify")]
struct VerifyCmd {
    /// the repository directory
    #[argh(positional)]
    dir: PathBuf,
}

/// Show or change the keys of the roles (root, timestamp, release):
/// `keys DIR list`; `keys DIR add ROLE` (a new key, threshold unchanged);
/// `keys DIR revoke ROLE KEYID` (an id or a unique prefix of 4 or more hex
/// digits; never below the threshold); `keys DIR threshold ROLE K`;
/// `keys DIR --rotate ROLE` (a role's only key replaced). Each change
/// publishes the next root, signed by a threshold of the old and of the new
/// root keys, re-publishes a release whose signers were revoked (as the
/// next version, same content) and re-signs the timestamp.
#[derive(FromArgs)]
#[argh(subcommand, name = "keys")]
struct KeysCmd {
    /// the repository directory
    #[argh(positional)]
    dir: PathBuf,
    /// list, add ROLE, revoke ROLE KEYID, threshold ROLE K
    #[argh(positional)]
    action: Vec<String>,
    /// replace the only key of this role
    #[argh(option)]
    rotate: Option<String>,
}

/// Serve DIR/repo read-only over HTTP/1.1, or HTTPS with --tls-cert and
/// --tls-key (for development): GET and HEAD
/// with ETag, If-None-Match and Range, nothing outside the directory.
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
struct ServeCmd {
    /// the repository directory (as made by init)
    #[argh(positional)]
    dir: PathBuf,
    /// address and port to listen on (default 127.0.0.1:8080)
    #[argh(option, default = "String::from(\"127.0.0.1:8080\")")]
    listen: String,
    /// serve HTTPS with this certificate chain (PEM; needs --tls-key)
    #[argh(option)]
    tls_cert: Option<PathBuf>,
    /// the private key of --tls-cert (PEM)
    #[argh(option)]
    tls_key: Option<PathBuf>,
}

/// Copy DIR/repo to DEST, a directory or an http(s):// URL that accepts PUT
/// (nginx WebDAV): blobs first, then releases, then root, timestamp.json
/// last, so a device never sees metadata naming a file not yet there.
#[derive(FromArgs)]
#[argh(subcommand, name = "push")]
struct PushCmd {
    /// the repository directory (as made by init)
    #[argh(positional)]
    dir: PathBuf,
    /// where to: a directory, or an http:// or https:// URL (host, optional
    /// port and path)
    #[argh(positional)]
    dest: String,
    /// for https://: the CA certificates (PEM) the server's certificate must
    /// chain to (default: /etc/ssl/certs/ca-certificates.crt)
    #[argh(option)]
    ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    if cli.version {
        println!(
            "husk-publish {} ({})",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        );
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("husk-publish: no command given (try --help)");
        return ExitCode::from(2);
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match command {
        Command::Digest(cmd) => digest(&cmd.files),
        Command::Init(cmd) => report(
            "init",
            Repo::new(&cmd.dir).init(now).map(|()| {
                println!(
                    "repository in {}: serve {}",
                    cmd.dir.display(),
                    cmd.dir.join("repo").display()
                );
            }),
        ),
        Command::Release(cmd) => {
            if cmd.hardware.is_empty() {
                eprintln!("husk-publish: release: at least one --hardware is needed");
                return ExitCode::from(2);
            }
            let mut images = Vec::new();
            for text in &cmd.image {
                match ImageSpec::parse(text) {
                    Ok(spec) => images.push(spec),
                    Err(e) => {
                        eprintln!("husk-publish: release: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let mut algorithms = Vec::new();
            for name in &cmd.delta {
                match Algorithm::from_name(name) {
                    Some(a) if !algorithms.contains(&a) => algorithms.push(a),
                    Some(_) => {}
                    None => {
                        eprintln!(
                            "husk-publish: release: unknown delta algorithm {name:?} \
                             (tar-files, bsdiff, zstd-patch, zstd-ref)"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            if algorithms.is_empty() {
                algorithms = Algorithm::ALL.to_vec();
            }
            let input = ReleaseInput {
                class: &cmd.class,
                arch: &cmd.arch,
                hardware: &cmd.hardware,
                desired_state: &cmd.desired_state,
                layers: &cmd.layer,
                images: &images,
                expires_in: cmd.expires_days * 86_400,
                history: cmd.history,
                algorithms: &algorithms,
            };
            report(
                "release",
                Repo::new(&cmd.dir)
                    .release(&input, now)
                    .map(|p| print!("{}", repo::describe(&p))),
            )
        }
        Command::Timestamp(cmd) => report(
            "timestamp",
            Repo::new(&cmd.dir)
                .timestamp(now, cmd.expires_hours * 3600)
                .map(|v| println!("timestamp {v}")),
        ),
        Command::Verify(cmd) => match Repo::new(&cmd.dir).verify(now) {
            Ok(s) => {
                println!(
                    "ok: root version {}, {} release(s), {} blob reference(s)",
                    s.root_version, s.releases, s.blobs
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in problems {
                    eprintln!("husk-publish: verify: {p}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Keys(cmd) => keys(&cmd, now),
        Command::Bench(cmd) => bench::run(&cmd),
        Command::Serve(cmd) => serve(&cmd),
        Command::Push(cmd) => match push::push(&cmd.dir.join("repo"), &cmd.dest, cmd.ca.as_deref())
        {
            Ok(p) => {
                for file in &p.sent {
                    println!("pushed {file}");
                }
                println!("{} pushed, {} already there", p.sent.len(), p.skipped);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("husk-publish: push: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn report(what: &str, result: Result<(), repo::RepoError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("husk-publish: {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keys(cmd: &KeysCmd, now: u64) -> ExitCode {
    let action: Vec<&str> = cmd.action.iter().map(String::as_str).collect();
    let repo = Repo::new(&cmd.dir);
    let change = match (&cmd.rotate, &action[..]) {
        (None, ["list"]) => {
            return report("keys", repo.list_keys().map(|text| print!("{text}")));
        }
        (Some(role), []) => KeyChange::Rotate(role.clone()),
        (None, ["add", role]) => KeyChange::Add((*role).to_owned()),
        (None, ["revoke", role, id]) => KeyChange::Revoke((*role).to_owned(), (*id).to_owned()),
        (None, ["threshold", role, k]) => match k.parse() {
            Ok(k) => KeyChange::Threshold((*role).to_owned(), k),
            Err(_) => {
                eprintln!("husk-publish: keys: threshold {k:?} is not a number");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!(
                "husk-publish: keys: give list, add ROLE, revoke ROLE KEYID, \
                 threshold ROLE K or --rotate ROLE"
            );
            return ExitCode::from(2);
        }
    };
    report(
        "keys",
        repo.change_keys(&change, now)
            .and_then(|_| repo.list_keys().map(|text| print!("{text}"))),
    )
}

fn digest(files: &[String]) -> ExitCode {
    if files.is_empty() {
        eprintln!("husk-publish: digest: no files given");
        return ExitCode::from(2);
    }
    for path in files {
        match File::open(path).and_then(Digest::of_reader) {
            Ok(d) => println!("{d}  {path}"),
            Err(e) => {
                eprintln!("husk-publish: digest: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn serve(cmd: &ServeCmd) -> ExitCode {
    let root = cmd.dir.join("repo");
    if !root.is_dir() {
        eprintln!(
            "husk-publish: serve: {}: not a repository (no repo/ directory)",
            cmd.dir.display()
        );
        return ExitCode::FAILURE;
    }
    let tls = match (&cmd.tls_cert, &cmd.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => match serve::tls_config(cert, key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("husk-publish: serve: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("husk-publish: serve: --tls-cert and --tls-key go together");
            return ExitCode::from(2);
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = match std::net::TcpListener::bind(&cmd.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("husk-publish: serve: listen on {}: {e}", cmd.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("serving {} on {scheme}://{addr}/", root.display()),
        Err(_) => println!("serving {} on {}", root.display(), cmd.listen),
    }
    match serve::serve(listener, &root, tls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("husk-publish: serve: {e}");
            ExitCode::FAILURE
        }
    }
}
