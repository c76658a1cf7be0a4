//! husk: a minimal OCI container runtime for ARM and RISC-V IoT devices.
//!
//! [`spec`] turns `config.json` into a [`spec::ContainerSpec`], [`container`]
//! runs it, and [`sys`] holds every system call and all `unsafe` code.

#![deny(unsafe_code)]

pub mod cli;
pub mod container;
pub mod spec;
#[allow(unsafe_code)]
pub mod sys;

use std::fmt;
use std::path::PathBuf;

/// Why `husk` failed.
#[derive(Debug)]
pub enum Error {
    /// The bundle directory cannot be resolved.
    Bundle {
        /// The bundle path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `config.json` was rejected.
    Spec(spec::SpecError),
    /// The container could not be run.
    Container(container::ContainerError),
}

/// Runs the container of `args` in the foreground and returns its exit status.
pub fn run(args: &cli::RunArgs) -> Result<u8, Error> {
    let bundle = std::fs::canonicalize(&args.bundle).map_err(|source| Error::Bundle {
        path: args.bundle.clone(),
        source,
    })?;
    let spec = spec::load(&bundle).map_err(Error::Spec)?;
    container::run(&spec).map_err(Error::Container)
}

/// `error` and its sources joined by ": ", on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(": ");
        text.push_str(&error.to_string());
        source = error.source();
    }
    text.replace('\n', " ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundle { path, .. } => write!(f, "bundle {}", path.display()),
            Self::Spec(e) => e.fmt(f),
            Self::Container(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bundle { source, .. } => Some(source),
            Self::Spec(e) => e.source(),
            Self::Container(e) => e.source(),
        }
    }
}
