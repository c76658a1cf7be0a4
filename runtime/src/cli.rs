//! Command-line arguments: argh parses the raw arguments, [`parse`] turns them
//! into a [`Command`].

use std::ffi::OsString;
use std::path::PathBuf;

use argh::FromArgs;

use crate::container::ContainerId;

/// What husk was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the version.
    Version,
    /// Run a container in the foreground.
    Run(RunArgs),
}

/// How parsing ended early.
#[derive(Debug, PartialEq, Eq)]
pub enum EarlyExit {
    /// Help was asked for: print this text and exit successfully.
    Help(String),
    /// The arguments are wrong: this one-line message says why.
    Usage(String),
}

/// husk: a minimal OCI container runtime for small devices.
#[derive(FromArgs, Debug)]
struct Husk {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Subcommand>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Subcommand {
    Run(RunArgs),
}

/// Run a container in the foreground and exit with its status.
#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// the OCI bundle directory holding config.json (default: .)
    #[argh(option, short = 'b', default = "PathBuf::from(\".\")")]
    pub bundle: PathBuf,
    /// container id: 1 to 64 of A-Z a-z 0-9 _ . -, not starting with '.'
    #[argh(positional)]
    pub id: ContainerId,
}

/// Parses the process arguments, program name first.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, EarlyExit> {
    let args = args
        .into_iter()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| usage(&format!("argument {arg:?} is not valid UTF-8")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let husk = Husk::from_args(&["husk"], &args).map_err(|exit| match exit.status {
        Ok(()) => EarlyExit::Help(exit.output),
        Err(()) => usage(&exit.output),
    })?;
    match husk {
        Husk { version: true, .. } => Ok(Command::Version),
        Husk {
            command: Some(Subcommand::Run(run)),
            ..
        } => Ok(Command::Run(run)),
        Husk { command: None, .. } => Err(usage("no command given")),
    }
}

/// `husk <version> (<arch>)`.
pub fn version() -> String {
    format!(
        "husk {} ({})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// argh's messages can span lines; husk reports every error on one.
fn usage(message: &str) -> EarlyExit {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    EarlyExit::Usage(format!("{message} (see 'husk --help')"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, EarlyExit> {
        parse(["husk"].iter().chain(args).map(OsString::from))
    }

    fn usage_message(args: &[&str]) -> String {
        match parse_args(args) {
            Err(EarlyExit::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn version() {
        assert_eq!(parse_args(&["--version"]), Ok(Command::Version));
        let expected = format!(
            "husk {} ({})",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        );
        assert_eq!(super::version(), expected);
    }

    #[test]
    fn run() {
        let Ok(Command::Run(run)) = parse_args(&["run", "web-1"]) else {
            panic!("run should parse");
        };
        assert_eq!(run.bundle, PathBuf::from("."));
        assert_eq!(run.id, "web-1".parse().unwrap());
        let Ok(Command::Run(run)) = parse_args(&["run", "--bundle", "/b", "x"]) else {
            panic!("run --bundle should parse");
        };
        assert_eq!(run.bundle, PathBuf::from("/b"));
    }

    #[test]
    fn usage_errors_are_one_line() {
        for args in [
            &[][..],
            &["run"],
            &["run", ".x"],
            &["run", "a", "b"],
            &["frob"],
            &["--frob"],
        ] {
            let message = usage_message(args);
            assert!(!message.contains('\n'), "{args:?}: {message:?}");
            assert!(
                message.ends_with("(see 'husk --help')"),
                "{args:?}: {message:?}"
            );
        }
        assert!(usage_message(&["run", ".x"]).contains("a container id is 1 to 64"));
    }

    #[test]
    fn help_fits_80_columns() {
        for args in [&["--help"][..], &["help"], &["run", "--help"]] {
            let Err(EarlyExit::Help(text)) = parse_args(args) else {
                panic!("{args:?} should print help");
            };
            assert!(
                text.contains("run") && text.contains("--bundle") == (args[0] == "run"),
                "{text}"
            );
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "too wide: {line:?}");
            }
        }
    }
}
