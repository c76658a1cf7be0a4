//! `husk-publish`: the fleet operator's tool. It builds, signs and publishes
//! update repositories; today it names blobs by their content address.

use argh::FromArgs;
use delta_updater::Digest;
use std::fs::File;
use std::process::ExitCode;

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
}

/// Print the sha256 content address of each file, as blobs are named.
#[derive(FromArgs)]
#[argh(subcommand, name = "digest")]
struct DigestCmd {
    /// files to hash
    #[argh(positional)]
    files: Vec<String>,
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
    match cli.command {
        Some(Command::Digest(cmd)) => digest(&cmd.files),
        None => {
            eprintln!("husk-publish: no command given (try --help)");
            ExitCode::from(2)
        }
    }
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
