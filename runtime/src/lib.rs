//! husk: a minimal OCI container runtime for ARM and RISC-V IoT devices.
//!
//! [`cli`] parses the command line, [`lifecycle`] carries out the OCI commands
//! over the [`state`] directory, [`spec`] turns `config.json` into a
//! [`spec::ContainerSpec`], [`container`] sets a container up and runs it,
//! [`check`] reports what the running kernel offers, and [`sys`] holds every
//! system call and all `unsafe` code. [`daemon`] is the device supervisor,
//! `husk daemon`, built on the lifecycle.

#![deny(unsafe_code)]

pub mod cgroup;
pub mod check;
pub mod cli;
pub mod container;
pub mod daemon;
pub mod field;
pub mod file;
pub mod gzip;
pub mod hooks;
pub mod image;
pub mod lifecycle;
pub mod progress;
pub mod seccomp;
pub mod spec;
pub mod state;
#[allow(unsafe_code)]
pub mod sys;
pub mod template;
#[cfg(test)]
mod testutil;
pub mod update;
pub mod userns;
pub mod wire;

use std::fmt;
use std::path::PathBuf;

/// Why `husk` failed.
#[derive(Debug)]
pub enum Error {
    /// A file named on the command line cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bundle directory cannot be resolved.
    Bundle {
        /// The bundle path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `config.json` was rejected.
    Spec(spec::SpecError),
    /// The container could not be set up or run.
    Container(container::ContainerError),
    /// The state directory could not be used.
    State(state::StateError),
    /// A lifecycle command refused or failed.
    Lifecycle(lifecycle::LifecycleError),
    /// An image command refused or failed.
    Image(image::ImageError),
    /// The supervisor refused to start or failed.
    Daemon(daemon::DaemonError),
    /// `husk check` could not read what it checks.
    Check(check::CheckError),
    /// An update command refused or failed.
    Update(Box<update::UpdateError>),
    /// A field view (`ps`, `inspect`, `stats`) could not be given.
    Field(field::FieldError),
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
            Self::Read { path, .. } => write!(f, "reading {}", path.display()),
            Self::Bundle { path, .. } => write!(f, "bundle {}", path.display()),
            Self::Spec(e) => e.fmt(f),
            Self::Container(e) => e.fmt(f),
            Self::State(e) => e.fmt(f),
            Self::Lifecycle(e) => e.fmt(f),
            Self::Image(e) => e.fmt(f),
            Self::Daemon(e) => e.fmt(f),
            Self::Check(e) => e.fmt(f),
            Self::Update(e) => e.fmt(f),
            Self::Field(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bundle { source, .. } | Self::Read { source, .. } => Some(source),
            Self::Spec(e) => e.source(),
            Self::Container(e) => e.source(),
            Self::State(e) => e.source(),
            Self::Lifecycle(e) => e.source(),
            Self::Image(e) => e.source(),
            Self::Daemon(e) => e.source(),
            Self::Check(e) => e.source(),
            Self::Update(e) => e.source(),
            Self::Field(e) => e.source(),
        }
    }
}

impl From<spec::SpecError> for Error {
    fn from(e: spec::SpecError) -> Self {
        Self::Spec(e)
    }
}

impl From<container::ContainerError> for Error {
    fn from(e: container::ContainerError) -> Self {
        Self::Container(e)
    }
}

impl From<state::StateError> for Error {
    fn from(e: state::StateError) -> Self {
        Self::State(e)
    }
}

impl From<lifecycle::LifecycleError> for Error {
    fn from(e: lifecycle::LifecycleError) -> Self {
        Self::Lifecycle(e)
    }
}

impl From<image::ImageError> for Error {
    fn from(e: image::ImageError) -> Self {
        Self::Image(e)
    }
}

impl From<daemon::DaemonError> for Error {
    fn from(e: daemon::DaemonError) -> Self {
        Self::Daemon(e)
    }
}

impl From<update::UpdateError> for Error {
    fn from(e: update::UpdateError) -> Self {
        Self::Update(Box::new(e))
    }
}

impl From<check::CheckError> for Error {
    fn from(e: check::CheckError) -> Self {
        Self::Check(e)
    }
}

impl From<field::FieldError> for Error {
    fn from(e: field::FieldError) -> Self {
        Self::Field(e)
    }
}
