//! Running a container in the foreground.
//!
//! # Process model
//!
//! `husk run` is a single process that never starts a thread, so every `fork`
//! copies a single-threaded process. Three processes take part:
//!
//! 1. **husk** blocks SIGINT, SIGTERM and SIGCHLD, makes itself a child
//!    subreaper and forks the intermediate. Its own namespaces never change.
//! 2. The **intermediate** joins the namespaces given by path (`setns`, the user
//!    namespace first). A new user namespace it creates alone, then waits
//!    while husk writes its maps ([`crate::userns`]; sync point 0), and
//!    becomes its root. It creates the other new namespaces with one
//!    `unshare` (a new PID namespace takes effect for its children), forks the
//!    container init, sends the init's pid to husk over a pipe and exits. The
//!    init is reparented to husk.
//! 3. The **container init** (PID 1 if the config asks for a new PID namespace)
//!    sets the container up ([`init`]) and `execve`s the container process. A setup error is written to a
//!    close-on-exec pipe that husk reads to its end: end of file without a message
//!    means the exec succeeded.
//!
//! husk then takes its blocked signals one by one with `sigwait`: SIGINT and
//! SIGTERM are forwarded to the container, SIGCHLD reaps it, and husk returns its
//! exit status (128 + the signal if it was killed).
//!
//! `husk exec` ([`spawn_exec`], [`exec`]) has the same shape: husk opens the
//! init's namespaces and root ([`ExecTarget`]) and forks the exec intermediate
//! into the container's cgroup, which makes itself non-dumpable and joins the
//! namespaces ([`exec_join`]) and forks the exec init, which enters the init's
//! root and starts the process as the container init would ([`exec_init`]).

use std::convert::Infallible;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

use crate::seccomp::Filter;
use crate::spec::{
    CapSet, Capabilities, ConsoleSize, ContainerPath, ContainerSpec, DeviceNode, Hook, IdMappings,
    Mount, MountKind, NamespaceKind, NamespaceSet, NodeKind, Process, Rlimit, User,
};
use crate::sys::{self, SysError};
use crate::userns;

/// Searched for the container's program when its environment has no `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Most symbolic links followed while resolving one mount destination.
pub const MAX_SYMLINKS: usize = 40;

/// A container id: 1 to 64 of `A-Z a-z 0-9 _ . -`, not starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerId(String);

/// A string that is not a valid [`ContainerId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

/// The kernel calls the container init makes. [`sys::Linux`] is the real one;
/// tests pass a recording fake to check the order of setup without root.
pub trait Syscalls {
    /// Marks every file descriptor above 2 close-on-exec.
    fn mark_fds_cloexec(&self) -> Result<(), SysError>;
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), SysError>;
    /// `umount2(2)` with `MNT_DETACH`.
    fn umount_detach(&self, target: &Path) -> Result<(), SysError>;
    /// The flags of the mount at `path` that a bind remount must repeat
    /// (`statvfs(2)`: ro, nosuid, nodev, noexec and the atime flags).
    fn mount_flags(&self, path: &Path) -> Result<MsFlags, SysError>;
    /// Runs an OCI hook from inside the container's namespaces
    /// ([`crate::hooks`]): `createContainer` before `pivot_root`,
    /// `startContainer` just before the container process.
    fn run_hook(&self, kind: &'static str, hook: &Hook, state: &str) -> Result<(), ContainerError>;
    /// The calling process's pid in its own PID namespace (the pid in the
    /// state in-container hooks get, as runc gives it).
    fn own_pid(&self) -> i32;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), SysError>;
    /// `chdir(2)`.
    fn chdir(&self, dir: &Path) -> Result<(), SysError>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> Result<(), SysError>;
    /// Brings the loopback interface of the network namespace up
    /// (`SIOCSIFFLAGS` with `IFF_UP` on `lo`), as Docker and podman do: a new
    /// network namespace starts with it down.
    fn loopback_up(&self) -> Result<(), SysError>;
    /// Creates a directory and its missing parents.
    fn mkdir_all(&self, dir: &Path) -> Result<(), SysError>;
    /// Creates an empty file and its missing parents, unless the file exists.
    fn create_file(&self, file: &Path) -> Result<(), SysError>;
    /// Writes `contents` to the existing file `file` (a `/proc` file).
    fn write_file(&self, file: &Path, contents: &str) -> Result<(), SysError>;
    /// The kernel's last capability, from `/proc/sys/kernel/cap_last_cap`.
    fn cap_last_cap(&self) -> Result<u8, SysError>;
    /// `mknod(2)` of a device node or fifo with exactly the permissions `mode`.
    fn mknod(
        &self,
        node: &Path,
        kind: NodeKind,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> Result<(), SysError>;
    /// `lchown(2)`.
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), SysError>;
    /// `symlink(2)`: makes `link` point to `target`.
    fn symlink(&self, target: &Path, link: &Path) -> Result<(), SysError>;
    /// `setrlimit(2)`.
    fn set_rlimit(&self, rlimit: &Rlimit) -> Result<(), SysError>;
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    fn set_no_new_privs(&self) -> Result<(), SysError>;
    /// Installs a seccomp filter on the calling thread.
    fn install_seccomp(&self, filter: &Filter) -> Result<(), SysError>;
    /// `prctl(PR_CAPBSET_DROP)` of every capability up to `last_cap` not in `keep`.
    fn drop_bounding(&self, keep: CapSet, last_cap: u8) -> Result<(), SysError>;
    /// `prctl(PR_SET_KEEPCAPS, 1)`: keep the permitted set across a uid change.
    fn set_keep_caps(&self) -> Result<(), SysError>;
    /// `capset(2)` of the effective, permitted and inheritable sets.
    fn set_capabilities(&self, caps: &Capabilities) -> Result<(), SysError>;
    /// Clears the ambient set, then raises each capability of `ambient`.
    fn set_ambient(&self, ambient: CapSet) -> Result<(), SysError>;
    /// Sets the umask, supplementary groups, gid and uid.
    fn set_user(&self, user: &User) -> Result<(), SysError>;
    /// Restores what a fresh process expects and husk changed: an empty
    /// signal mask and the default SIGPIPE action (Rust ignores SIGPIPE).
    fn reset_signals(&self) -> Result<(), SysError>;
    /// `--init`: forks. The parent stays PID 1 of the container as a small
    /// init: non-dumpable, it reaps every child and forwards every signal to
    /// the one it forked, and exits with that one's status. Returns in the child.
    fn become_reaper(&self) -> Result<(), SysError>;
    /// `prctl(PR_SET_DUMPABLE, 0)`: no core dumps, and no other process
    /// without `CAP_SYS_PTRACE` may ptrace this one or open its `/proc/<pid>`
    /// files such as `exe`; `execve` of a readable binary makes it dumpable again.
    fn set_non_dumpable(&self) -> Result<(), SysError>;
    /// `setns(2)`: joins the namespace of kind `kind` that `namespace`, opened
    /// from `path`, refers to.
    fn setns(&self, namespace: &File, kind: CloneFlags, path: &Path) -> Result<(), SysError>;
    /// `fchdir(2)` to `root` (the directory opened from `path`), then
    /// `chroot(".")`: makes it both the working and the root directory.
    fn enter_root(&self, root: &File, path: &Path) -> Result<(), SysError>;
    /// Opens a new pseudo-terminal from `/dev/ptmx` of the current root
    /// (close-on-exec, not the controlling terminal), unlocks it, sets its size
    /// if given, and returns the master and the path of its peer.
    fn open_pty(&self, size: Option<ConsoleSize>) -> Result<(OwnedFd, PathBuf), SysError>;
    /// `setsid(2)`, opens `peer`, makes it the controlling terminal
    /// (`TIOCSCTTY`) and `dup2`s it onto descriptors 0, 1 and 2.
    fn set_controlling_terminal(&self, peer: &Path) -> Result<(), SysError>;
    /// `sendmsg(2)` of `fd` with `SCM_RIGHTS` over the connected unix socket
    /// `socket`, which was connected to `path`.
    fn send_fd(&self, socket: &OwnedFd, fd: &OwnedFd, path: &Path) -> Result<(), SysError>;
    /// `execve(2)`: returns only on failure.
    fn exec(
        &self,
        program: &CStr,
        args: &[CString],
        env: &[CString],
    ) -> Result<Infallible, SysError>;
}

/// Why a container could not be run.
#[derive(Debug)]
pub enum ContainerError {
    /// A system call failed.
    Sys(SysError),
    /// Opening a namespace file to join failed.
    OpenNamespace {
        /// The namespace file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Opening a container init's root directory (`/proc/<pid>/root`) failed.
    OpenRoot {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Resolving a mount destination inside the root failed.
    ResolveDestination {
        /// The destination, as in `config.json`.
        destination: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A mount destination leads out of the root through a symbolic link.
    DestinationEscapes {
        /// The destination, as in `config.json`.
        destination: PathBuf,
    },
    /// The source of a bind mount cannot be inspected.
    BindSource {
        /// The source path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The container's program is not in its `PATH`.
    ProgramNotFound {
        /// `process.args[0]`.
        program: String,
    },
    /// Connecting to the `--console-socket` failed.
    ConsoleSocket {
        /// The socket.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Reading from (or writing to) the container's setup processes failed.
    ReadReport(io::Error),
    /// Opening the fifo `start` writes to failed.
    OpenExecFifo {
        /// The fifo.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Waiting for `start` failed.
    WaitStart(io::Error),
    /// Moving into the container's cgroup failed.
    JoinCgroup {
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing the maps of the container's new user namespace failed.
    MapIds(crate::userns::MapError),
    /// The intermediate's user namespace got no maps: husk failed to write them.
    NotMapped,
    /// A `createContainer` or `startContainer` hook failed.
    Hook(crate::hooks::HookError),
    /// A setup process reported this error (already formatted, as one line).
    Reported(String),
    /// A setup process exited with this status without reporting an error.
    SetupExited(u8),
}

/// The `--console-socket` of a process whose `process.terminal` is true,
/// connected by husk before it forks (the path is the host's), and inherited,
/// close-on-exec, by the process that sends the terminal's master over it.
#[derive(Debug)]
pub struct ConsoleSocket {
    socket: OwnedFd,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Connects to the unix stream socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ContainerError> {
        let stream = std::os::unix::net::UnixStream::connect(path).map_err(|source| {
            ContainerError::ConsoleSocket {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(Self {
            socket: stream.into(),
            path: path.to_owned(),
        })
    }
}

/// Where the container init binds the terminal's peer when `/dev` is the
/// minimal tmpfs, as runc does.
const DEV_CONSOLE: &str = "/dev/console";

/// The report the container init sends when its setup is done.
const READY: u8 = b'R';
/// The report a setup process sends before an error message.
const FAILED: u8 = b'E';

/// A container init whose setup is done.
#[derive(Debug)]
pub struct Spawned {
    /// The init's pid in husk's PID namespace.
    pub pid: Pid,
    report: File,
}

/// Sets the container of `spec` up and returns once its init is ready.
///
/// With `cgroup` (a cgroup v2 directory), the intermediate moves itself into
/// that cgroup before it creates namespaces, so the init and everything it
/// forks are in it from their first instruction, and a new cgroup namespace is
/// rooted there. With `exec_fifo`, the init then waits until a byte is written to that fifo
/// (`husk start`) before it executes the container process; without, it
/// executes it at once. With `console`, the init sends its terminal's master
/// there. The caller must be single-threaded. A caller that wants
/// to wait for the container must be a child subreaper, since the init's parent
/// (the intermediate) exits.
pub fn spawn(
    spec: &ContainerSpec,
    hook_state: &HookState<'_>,
    cgroup: Option<&Path>,
    exec_fifo: Option<&Path>,
    console: Option<&ConsoleSocket>,
) -> Result<Spawned, ContainerError> {
    let (pid_read, pid_write) = sys::pipe()?;
    let (report_read, report_write) = sys::pipe()?;
    let userns = spec
        .id_mappings
        .as_ref()
        .map(|_| UsernsSync::new())
        .transpose()?;
    let (forked, to_join) = fork_intermediate(cgroup)?;
    let intermediate = match forked {
        ForkResult::Child => {
            drop((pid_read, report_read));
            let userns = userns.map(UsernsSync::intermediate_side);
            let context = (hook_state, console);
            intermediate(
                spec,
                to_join,
                exec_fifo,
                context,
                userns,
                pid_write,
                report_write,
            )
        }
        ForkResult::Parent { child } => child,
    };
    drop((pid_write, report_write));
    if let (Some(sync), Some(maps)) = (userns, &spec.id_mappings) {
        if let Err(error) = sync.map(intermediate, maps) {
            // The intermediate reads end of file and exits; its report is ours.
            let _ = sys::wait(intermediate);
            return Err(error);
        }
    }
    await_ready(intermediate, pid_read, report_read)
}

/// The two pipes of sync point 0, between husk and the intermediate: the
/// intermediate says it has made the user namespace, husk answers once it has
/// written the maps.
struct UsernsSync {
    made: (File, File),
    mapped: (File, File),
}

/// The intermediate's ends of [`UsernsSync`].
struct UsernsSyncChild {
    made: File,
    mapped: File,
}

impl UsernsSync {
    fn new() -> Result<Self, ContainerError> {
        Ok(Self {
            made: sys::pipe()?,
            mapped: sys::pipe()?,
        })
    }

    fn intermediate_side(self) -> UsernsSyncChild {
        UsernsSyncChild {
            made: self.made.1,
            mapped: self.mapped.0,
        }
    }

    /// Waits for the intermediate's user namespace and writes its maps. If
    /// the intermediate exits first, returns without error: its report says why.
    fn map(self, intermediate: Pid, maps: &IdMappings) -> Result<(), ContainerError> {
        let (mut made, _) = self.made;
        let (_, mut mapped) = self.mapped;
        let mut byte = [0; 1];
        if made.read(&mut byte).map_err(ContainerError::ReadReport)? == 0 {
            return Ok(());
        }
        let writer = userns::Writer::choose(maps, sys::effective_uid(), sys::effective_gid());
        userns::write(Path::new("/proc"), intermediate, maps, writer)
            .map_err(ContainerError::MapIds)?;
        mapped
            .write_all(&[READY])
            .map_err(ContainerError::ReadReport)
    }
}

impl UsernsSyncChild {
    /// In the intermediate: makes the user namespace, waits for its maps, and
    /// becomes the namespace's root where root is mapped, so that what the
    /// init creates has an owner inside.
    fn enter(mut self, maps: &IdMappings) -> Result<(), ContainerError> {
        sys::unshare(CloneFlags::CLONE_NEWUSER)?;
        self.made
            .write_all(&[READY])
            .map_err(ContainerError::ReadReport)?;
        let mut byte = [0; 1];
        if self
            .mapped
            .read(&mut byte)
            .map_err(ContainerError::ReadReport)?
            == 0
        {
            return Err(ContainerError::NotMapped);
        }
        if maps.host_uid(0).is_some() && maps.host_gid(0).is_some() {
            sys::become_root()?;
        }
        Ok(())
    }
}

/// Starts `process` in the container whose init `target` was opened from,
/// with the container's seccomp filter `seccomp`, and returns once it is
/// ready to `execve` (see [`exec_join`] and [`exec_init`]). With `cgroup`,
/// the exec intermediate is forked into that cgroup, as in [`spawn`]; with
/// `console`, the exec init sends its terminal's master there. The
/// caller must be single-threaded, and a child subreaper to wait for the process.
pub fn spawn_exec(
    target: &ExecTarget,
    process: &Process,
    seccomp: Option<&Filter>,
    cgroup: Option<&Path>,
    console: Option<&ConsoleSocket>,
) -> Result<Spawned, ContainerError> {
    let (pid_read, pid_write) = sys::pipe()?;
    let (report_read, report_write) = sys::pipe()?;
    let (forked, to_join) = fork_intermediate(cgroup)?;
    let intermediate = match forked {
        ForkResult::Child => {
            drop((pid_read, report_read));
            exec_intermediate(
                target,
                process,
                seccomp,
                to_join,
                console,
                pid_write,
                report_write,
            )
        }
        ForkResult::Parent { child } => child,
    };
    drop((pid_write, report_write));
    await_ready(intermediate, pid_read, report_read)
}

/// Forks an intermediate, straight into the cgroup `cgroup` where the kernel
/// can; else plainly, and returns the cgroup the child must join itself.
fn fork_intermediate(cgroup: Option<&Path>) -> Result<(ForkResult, Option<&Path>), ContainerError> {
    let cgroup_dir = cgroup
        .map(|dir| {
            File::open(dir).map_err(|source| ContainerError::JoinCgroup {
                path: dir.to_owned(),
                source,
            })
        })
        .transpose()?;
    // The directory closes in both processes when this returns.
    Ok(match cgroup_dir.as_ref().map(sys::fork_into_cgroup) {
        Some(Ok(Some(forked))) => (forked, None),
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(None)) | None => (sys::fork()?, cgroup),
    })
}

/// Waits for the intermediate to exit and the process it forked to report
/// ready (sync points 1 and 2 of the process model).
fn await_ready(
    intermediate: Pid,
    mut pid_read: File,
    mut report_read: File,
) -> Result<Spawned, ContainerError> {
    let status = sys::wait(intermediate)?;
    if status != 0 {
        let report = read_report(&mut report_read)?;
        return Err(report.unwrap_or(ContainerError::SetupExited(status)));
    }
    let mut pid = [0; 4];
    pid_read
        .read_exact(&mut pid)
        .map_err(ContainerError::ReadReport)?;
    let pid = Pid::from_raw(i32::from_ne_bytes(pid));
    let mut first = [0; 1];
    let ready = report_read
        .read(&mut first)
        .map_err(ContainerError::ReadReport)?;
    if ready == 1 && first[0] == READY {
        return Ok(Spawned {
            pid,
            report: report_read,
        });
    }
    let error = if ready == 0 {
        ContainerError::SetupExited(1)
    } else {
        read_report(&mut report_read)?.unwrap_or(ContainerError::SetupExited(1))
    };
    // The process exits right after reporting; reap it if it is ours to reap.
    sys::reap(pid)?;
    Err(error)
}

impl Spawned {
    /// Waits for the container init's `exec`: an error if it failed.
    pub fn exec_result(mut self) -> Result<Pid, ContainerError> {
        match read_report(&mut self.report)? {
            None => Ok(self.pid),
            Some(error) => {
                sys::reap(self.pid)?;
                Err(error)
            }
        }
    }
}

/// Runs a container in the foreground and returns its exit status (128 + the
/// signal if it was killed): `spawn` sets it up (see [`spawn`]; it may also
/// record and start it), and `started` is told the pid once the container
/// process runs. The caller must be single-threaded.
pub fn run<E: From<ContainerError>>(
    spawn: impl FnOnce() -> Result<Spawned, E>,
    started: impl FnOnce(Pid) -> Result<(), E>,
) -> Result<u8, E> {
    foreground(spawn, started)
}

/// Runs `process` in a running container in the foreground, as [`run`] runs
/// a container: see [`spawn_exec`] for the arguments.
pub fn exec<E: From<ContainerError>>(
    target: &ExecTarget,
    process: &Process,
    seccomp: Option<&Filter>,
    cgroup: Option<&Path>,
    console: Option<&ConsoleSocket>,
    started: impl FnOnce(Pid) -> Result<(), E>,
) -> Result<u8, E> {
    foreground(
        || Ok(spawn_exec(target, process, seccomp, cgroup, console)?),
        started,
    )
}

/// As a child subreaper with SIGINT, SIGTERM and SIGCHLD blocked, calls
/// `spawn`, waits for the exec of the process it started, tells `started` its
/// pid, forwards SIGINT and SIGTERM to it and returns its exit status.
fn foreground<E: From<ContainerError>>(
    spawn: impl FnOnce() -> Result<Spawned, E>,
    started: impl FnOnce(Pid) -> Result<(), E>,
) -> Result<u8, E> {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        signals.add(signal);
    }
    sys::block_signals(&signals).map_err(ContainerError::from)?;
    sys::set_child_subreaper().map_err(ContainerError::from)?;
    let process = spawn()?.exec_result()?;
    if let Err(error) = started(process) {
        let _ = sys::forward_signal(process, Signal::SIGKILL);
        sys::reap(process).map_err(ContainerError::from)?;
        return Err(error);
    }
    loop {
        match sys::wait_signal(&signals).map_err(ContainerError::from)? {
            Signal::SIGCHLD => {
                if let Some(status) = sys::try_wait(process).map_err(ContainerError::from)? {
                    return Ok(status);
                }
            }
            signal => sys::forward_signal(process, signal).map_err(ContainerError::from)?,
        }
    }
}

/// What `husk exec` joins, opened from husk's side before anything changes:
/// the namespaces of a container's init that are not husk's own, and the
/// init's root directory.
#[derive(Debug)]
pub struct ExecTarget {
    /// In the order they are joined, the user namespace first.
    namespaces: Vec<(NamespaceKind, File, PathBuf)>,
    root: File,
    root_path: PathBuf,
}

/// The namespaces `husk exec` may join, in the order it joins them, and their
/// names under `/proc/<pid>/ns`.
const EXEC_NAMESPACES: [(NamespaceKind, &str); 7] = [
    (NamespaceKind::User, "user"),
    (NamespaceKind::Mount, "mnt"),
    (NamespaceKind::Pid, "pid"),
    (NamespaceKind::Uts, "uts"),
    (NamespaceKind::Ipc, "ipc"),
    (NamespaceKind::Net, "net"),
    (NamespaceKind::Cgroup, "cgroup"),
];

impl ExecTarget {
    /// Opens `<proc_root>/<init>/ns/*` of every namespace that differs from
    /// this process's own (`<proc_root>/self/ns/*`; a kind this kernel lacks
    /// is skipped) and `<proc_root>/<init>/root`.
    pub fn open(proc_root: &Path, init: Pid) -> Result<Self, ContainerError> {
        use std::os::unix::fs::MetadataExt;
        let init_dir = proc_root.join(init.as_raw().to_string());
        let open_error = |path: &Path| {
            let path = path.to_owned();
            move |source| ContainerError::OpenNamespace { path, source }
        };
        let mut namespaces = Vec::new();
        for (kind, name) in EXEC_NAMESPACES {
            let ours = proc_root.join("self/ns").join(name);
            let path = init_dir.join("ns").join(name);
            let ours = match fs::metadata(&ours) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(open_error(&ours)(e)),
            };
            let file = File::open(&path).map_err(open_error(&path))?;
            let theirs = file.metadata().map_err(open_error(&path))?;
            if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
                namespaces.push((kind, file, path));
            }
        }
        let root_path = init_dir.join("root");
        let root = File::open(&root_path).map_err(|source| ContainerError::OpenRoot {
            path: root_path.clone(),
            source,
        })?;
        Ok(Self {
            namespaces,
            root,
            root_path,
        })
    }

    /// The kinds of namespace that will be joined, in order.
    pub fn kinds(&self) -> impl Iterator<Item = NamespaceKind> + '_ {
        self.namespaces.iter().map(|(kind, ..)| *kind)
    }
}

/// The container init: sets the container up from inside its new namespaces,
/// calls `ready` (which tells husk and, for `create`, waits for `start`), and
/// executes its process. Returns only on failure.
///
/// The order, and why:
///
/// 1. Descriptors above 2 are marked close-on-exec, so none of husk's leaks in.
/// 2. While the host's `/proc` is still at `/proc`: `process.oomScoreAdj` is
///    written to `/proc/self/oom_score_adj` (lowering it needs
///    `CAP_SYS_RESOURCE`, so before any privilege is dropped; the container
///    may have no `/proc`), and, if `process.capabilities` is set, the kernel's
///    last capability is read.
/// 3. Mounts, below the rootfs: `/` private (`linux.rootfsPropagation`), the rootfs bound onto itself,
///    `mounts` in order, the minimal `/dev` if `mounts` put a tmpfs there,
///    the `linux.devices` nodes (the init is already in the container's
///    cgroup, so its device filter decides which it may `mknod`: the runtime
///    allows `m` for exactly these), then `linux.maskedPaths` (after `mounts`, so `/proc/kcore` and the like
///    exist; before `pivot_root`, so the host's `/dev/null` can be bound over
///    files even when the container has none).
/// 4. `pivot_root` into the rootfs, the old root detached; the root remounted
///    read-only if asked; the hostname; `lo` up in a new network namespace.
/// 5. `linux.sysctl` through the container's own `/proc/sys` (its namespaces),
///    then `linux.readonlyPaths` (after the sysctls, since `/proc/sys` is
///    usually one of them); with a console socket, the terminal (see
///    [`attach_terminal`]: a pty of the container's own `/dev/ptmx`, so of its
///    devpts instance, with the peer bound over `/dev/console` when `/dev` is
///    the minimal tmpfs); then the working directory.
/// 6. Still privileged: `process.rlimits` (raising a hard limit needs
///    `CAP_SYS_RESOURCE`), no_new_privs, and the seccomp filter if
///    `noNewPrivileges` is false (without no_new_privs, installing it needs
///    `CAP_SYS_ADMIN`; like runc, the profile must then allow the calls below).
/// 7. Capabilities around the user change: the bounding set dropped (needs
///    `CAP_SETPCAP`) and `PR_SET_KEEPCAPS` set, then the user set, then
///    `capset` and the ambient set (cleared, then raised).
/// 8. The program looked up, `ready` (the start handshake: a read of the exec
///    fifo that a filter must not see), the signal mask and SIGPIPE reset, and,
///    if `noNewPrivileges` is true, the seccomp filter as late as possible: only
///    `execve` follows it (after nix allocates its argument arrays, which may
///    call `brk` or `mmap`; if it fails, `write` of the report and `exit_group`).
pub fn init(
    sys: &impl Syscalls,
    spec: &ContainerSpec,
    hook_state: &HookState<'_>,
    console: Option<&ConsoleSocket>,
    ready: impl FnOnce() -> Result<(), ContainerError>,
) -> Result<Infallible, ContainerError> {
    let root = spec.root.as_path();
    let capabilities = prepare(sys, &spec.process)?;
    // By default (rprivate) nothing below propagates to the mount namespace
    // husk came from, nor from it.
    sys.mount(None, Path::new("/"), None, spec.rootfs_propagation, None)?;
    // pivot_root needs the new root to be a mount point.
    sys.mount(
        Some(root),
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    for mount in &spec.mounts {
        mount_below(sys, root, mount)?;
    }
    if let Some(dev) = spec.dev_tmpfs() {
        populate_dev(sys, &resolve_in_root(root, dev)?, &spec.devices)?;
    }
    for node in &spec.devices {
        make_device(sys, root, node)?;
    }
    for path in &spec.masked_paths {
        mask(sys, root, path)?;
    }
    if !spec.hooks.create_container.is_empty() {
        let state = hook_state("creating", sys.own_pid());
        for hook in &spec.hooks.create_container {
            sys.run_hook("createContainer", hook, &state)?;
        }
    }
    // The old root ends up stacked on the new one at "."; detaching it leaves
    // the new root alone, with no directory needed for the old one.
    sys.chdir(root)?;
    sys.pivot_root(Path::new("."), Path::new("."))?;
    sys.umount_detach(Path::new("."))?;
    if spec.root_readonly {
        remount(sys, Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    if let Some(hostname) = &spec.hostname {
        sys.sethostname(hostname)?;
    }
    if matches!(
        spec.namespaces.get(NamespaceKind::Net),
        Some(crate::spec::Namespace { path: None, .. })
    ) {
        sys.loopback_up()?;
    }
    for sysctl in &spec.sysctl {
        sys.write_file(&sysctl.path, &sysctl.value)?;
    }
    for path in &spec.readonly_paths {
        make_readonly(sys, path)?;
    }
    if let Some(socket) = console {
        let dev_console = spec.dev_tmpfs().map(|_| Path::new(DEV_CONSOLE));
        attach_terminal(sys, &spec.process, socket, dev_console)?;
    }
    let start_hooks = &spec.hooks.start_container;
    start_process(
        sys,
        &spec.process,
        spec.seccomp.as_ref(),
        capabilities.as_ref(),
        spec.reaper,
        || {
            ready()?;
            if !start_hooks.is_empty() {
                let state = hook_state("created", sys.own_pid());
                for hook in start_hooks {
                    sys.run_hook("startContainer", hook, &state)?;
                }
            }
            Ok(())
        },
    )
}

/// The container's OCI state as in-container hooks get it, from the status
/// (`creating` for `createContainer`, `created` for `startContainer`) and the
/// pid of the process that runs them, in the container's PID namespace.
pub type HookState<'a> = dyn Fn(&'static str, i32) -> String + 'a;

/// The capability sets to apply, limited to the kernel's last capability,
/// which is read while the host's `/proc` is still at `/proc`.
type KernelCapabilities = (Capabilities, u8);

/// What every process husk starts does first, while the host's `/proc` is
/// still at `/proc` (steps 1 and 2 of [`init`]): marks descriptors above 2
/// close-on-exec, writes `oomScoreAdj`, and reads the kernel's last capability
/// if `process` sets capabilities.
fn prepare(
    sys: &impl Syscalls,
    process: &Process,
) -> Result<Option<KernelCapabilities>, ContainerError> {
    sys.mark_fds_cloexec()?;
    if let Some(adj) = process.oom_score_adj {
        sys.write_file(Path::new("/proc/self/oom_score_adj"), &adj.to_string())?;
    }
    match process.capabilities {
        Some(caps) => {
            let last_cap = sys.cap_last_cap()?;
            Ok(Some((caps.limited_to(last_cap), last_cap)))
        }
        None => Ok(None),
    }
}

/// What every process husk starts does last, with `/` the container's root
/// (the end of step 5 and steps 6 to 9 of [`init`]): changes to its working
/// directory, drops privileges, and executes it. Returns only on failure.
fn start_process(
    sys: &impl Syscalls,
    process: &Process,
    seccomp: Option<&Filter>,
    capabilities: Option<&KernelCapabilities>,
    reaper: bool,
    ready: impl FnOnce() -> Result<(), ContainerError>,
) -> Result<Infallible, ContainerError> {
    sys.chdir(process.cwd.as_path())?;
    for rlimit in &process.rlimits {
        sys.set_rlimit(rlimit)?;
    }
    if process.no_new_privileges {
        sys.set_no_new_privs()?;
    }
    let (early_filter, late_filter) = match seccomp {
        Some(filter) if process.no_new_privileges => (None, Some(filter)),
        filter => (filter, None),
    };
    if let Some(filter) = early_filter {
        sys.install_seccomp(filter)?;
    }
    if let Some((caps, last_cap)) = capabilities {
        sys.drop_bounding(caps.bounding, *last_cap)?;
        sys.set_keep_caps()?;
    }
    sys.set_user(&process.user)?;
    if let Some((caps, _)) = capabilities {
        sys.set_capabilities(caps)?;
        sys.set_ambient(caps.ambient)?;
    }
    let program = &process.args[0];
    let path = find_program(Path::new("/"), program, &process.env).ok_or_else(|| {
        ContainerError::ProgramNotFound {
            program: program.to_string_lossy().into_owned(),
        }
    })?;
    ready()?;
    if reaper {
        sys.become_reaper()?;
    }
    sys.reset_signals()?;
    if let Some(filter) = late_filter {
        sys.install_seccomp(filter)?;
    }
    Ok(sys.exec(&path, &process.args, &process.env)?)
}

/// Gives the process a new pseudo-terminal, made after the mounts and
/// `pivot_root` so that `/dev/ptmx` is the container's (with runc's mounts,
/// `pts/ptmx` of its own `newinstance` devpts; there is no fallback to the
/// host's `/dev/ptmx`, whose peers a container without that devpts could not
/// see): opens and unlocks it with `process.consoleSize`, makes the peer the
/// controlling terminal and descriptors 0, 1 and 2, binds the peer over
/// `dev_console` if given, sends the master over the console socket and
/// closes it, so the container keeps no master open.
fn attach_terminal(
    sys: &impl Syscalls,
    process: &Process,
    console: &ConsoleSocket,
    dev_console: Option<&Path>,
) -> Result<(), ContainerError> {
    let (master, peer) = sys.open_pty(process.console_size)?;
    sys.set_controlling_terminal(&peer)?;
    if let Some(target) = dev_console {
        sys.create_file(target)?;
        sys.mount(Some(&peer), target, None, MsFlags::MS_BIND, None)?;
    }
    sys.send_fd(&console.socket, &master, &console.path)?;
    drop(master);
    Ok(())
}

/// The first half of `husk exec`'s setup, in the exec intermediate, while it
/// is still in husk's namespaces: makes itself non-dumpable (before anything
/// else, so that once it is visible in the container's PID namespace no
/// container process can open its `/proc/<pid>/exe`, the host's husk, or
/// ptrace it), does what [`prepare`] does, and joins the init's namespaces,
/// the user namespace first. Its children are then in the container's PID
/// namespace.
pub fn exec_join(
    sys: &impl Syscalls,
    process: &Process,
    target: &ExecTarget,
) -> Result<Option<KernelCapabilities>, ContainerError> {
    sys.set_non_dumpable()?;
    let capabilities = prepare(sys, process)?;
    for (kind, file, path) in &target.namespaces {
        sys.setns(file, clone_flag(*kind), path)?;
    }
    Ok(capabilities)
}

/// The second half of `husk exec`'s setup, in the exec init (forked after
/// [`exec_join`], so in the container's PID namespace): makes the init's root
/// its own (`fchdir` to the directory opened from `/proc/<init>/root`, then
/// `chroot(".")`, as `nsenter --root` does: `setns` into the mount namespace
/// sets the root to whatever is stacked on the namespace's root mount, the
/// init's root is exact), then does what [`start_process`] does. Returns only
/// on failure.
pub fn exec_init(
    sys: &impl Syscalls,
    process: &Process,
    seccomp: Option<&Filter>,
    capabilities: Option<&KernelCapabilities>,
    target: &ExecTarget,
    console: Option<&ConsoleSocket>,
    ready: impl FnOnce() -> Result<(), ContainerError>,
) -> Result<Infallible, ContainerError> {
    sys.enter_root(&target.root, &target.root_path)?;
    if let Some(socket) = console {
        attach_terminal(sys, process, socket, None)?;
    }
    start_process(sys, process, seccomp, capabilities, false, ready)
}

/// The device nodes of a minimal `/dev`: name, major, minor (as runc makes them).
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The symbolic links of a minimal `/dev`: name, target.
const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Fills the fresh tmpfs `dev` (the host path of the container's `/dev`) as
/// runc does: the device nodes (or, where `mknod` is not permitted, as in a
/// user namespace, the host's nodes bound over empty files), the links, and
/// `shm`. What `mounts` already put there is left alone, and so are the nodes
/// `linux.devices` lists (`devices`), which are made after with their own mode
/// and owner. The names are joined without resolving: the tmpfs holds no
/// symbolic links, only what `mounts` created.
fn populate_dev(
    sys: &impl Syscalls,
    dev: &Path,
    devices: &[DeviceNode],
) -> Result<(), ContainerError> {
    for (name, major, minor) in DEVICES {
        if devices
            .iter()
            .any(|d| d.path.as_path() == Path::new("/dev").join(name))
        {
            continue;
        }
        let node = dev.join(name);
        match sys.mknod(&node, NodeKind::Char, major, minor, 0o666) {
            Err(e) if e.errno() == Errno::EEXIST => {}
            Err(e) if e.errno() == Errno::EPERM => {
                sys.create_file(&node)?;
                let host = Path::new("/dev").join(name);
                sys.mount(Some(&host), &node, None, MsFlags::MS_BIND, None)?;
            }
            result => result?,
        }
    }
    for (name, target) in DEV_LINKS {
        match sys.symlink(Path::new(target), &dev.join(name)) {
            Err(e) if e.errno() == Errno::EEXIST => {}
            result => result?,
        }
    }
    Ok(sys.mkdir_all(&dev.join("shm"))?)
}

/// Makes the `linux.devices` entry `node` below `root`, as runc does: its
/// path resolved like a mount destination, missing directories made, then
/// `mknod` with the mode and `chown` to the owner; where `mknod` is refused
/// (`EPERM`, as in a user namespace), the host's node of the same path bound
/// over an empty file. A node that exists already is left as it is.
fn make_device(sys: &impl Syscalls, root: &Path, node: &DeviceNode) -> Result<(), ContainerError> {
    let target = resolve_in_root(root, &node.path)?;
    if let Some(parent) = target.parent() {
        sys.mkdir_all(parent)?;
    }
    match sys.mknod(&target, node.kind, node.major, node.minor, node.mode) {
        Ok(()) => Ok(sys.chown(&target, node.uid, node.gid)?),
        Err(e) if e.errno() == Errno::EEXIST => Ok(()),
        Err(e) if e.errno() == Errno::EPERM => {
            sys.create_file(&target)?;
            let host = node.path.as_path();
            Ok(sys.mount(Some(host), &target, None, MsFlags::MS_BIND, None)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Hides `path` (a `linux.maskedPaths` entry) below `root`: the host's
/// `/dev/null` over a file, an empty read-only tmpfs over a directory. A path
/// that does not exist is skipped. As in runc, the kind of file is learnt from
/// the bind mount failing with `ENOTDIR`.
fn mask(sys: &impl Syscalls, root: &Path, path: &ContainerPath) -> Result<(), ContainerError> {
    let target = resolve_in_root(root, path)?;
    let null = Path::new("/dev/null");
    match sys.mount(Some(null), &target, None, MsFlags::MS_BIND, None) {
        Err(e) if e.errno() == Errno::ENOENT => Ok(()),
        Err(e) if e.errno() == Errno::ENOTDIR => {
            let tmpfs = Path::new("tmpfs");
            let flags = MsFlags::MS_RDONLY;
            Ok(sys.mount(Some(tmpfs), &target, Some("tmpfs"), flags, None)?)
        }
        result => Ok(result?),
    }
}

/// Makes `path` (a `linux.readonlyPaths` entry, after `pivot_root`) read-only
/// by binding it onto itself, with what is mounted below it, and remounting
/// the bind read-only. A path that does not exist is skipped.
fn make_readonly(sys: &impl Syscalls, path: &ContainerPath) -> Result<(), ContainerError> {
    let path = path.as_path();
    let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
    match sys.mount(Some(path), path, None, rbind, None) {
        Err(e) if e.errno() == Errno::ENOENT => return Ok(()),
        result => result?,
    }
    let readonly = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    remount(sys, path, readonly)
}

/// Remounts the bind mount at `path` with `flags` added to the ones it has.
/// The kernel refuses, in a user namespace, a remount that would drop a flag
/// locked by the mount namespace's owner (such as nosuid on a host mount, or
/// its atime flag), so they are repeated.
fn remount(sys: &impl Syscalls, path: &Path, flags: MsFlags) -> Result<(), ContainerError> {
    let kept = sys.mount_flags(path)?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | kept;
    Ok(sys.mount(None, path, None, flags, None)?)
}

/// Where `execve` should find `program`: `program` itself if it contains a `/`,
/// otherwise the first executable regular file named `program` in the
/// directories of the `PATH` in `env` (or [`DEFAULT_PATH`]), looked up below
/// `root`. Relative and empty `PATH` entries are skipped.
pub fn find_program(root: &Path, program: &CStr, env: &[CString]) -> Option<CString> {
    let name = program.to_bytes();
    if name.contains(&b'/') {
        return Some(program.to_owned());
    }
    let path_var = env
        .iter()
        .find_map(|entry| entry.to_bytes().strip_prefix(b"PATH="))
        .unwrap_or(DEFAULT_PATH.as_bytes());
    path_var
        .split(|&b| b == b':')
        .filter_map(|dir| Path::new(OsStr::from_bytes(dir)).strip_prefix("/").ok())
        .map(|dir| dir.join(OsStr::from_bytes(name)))
        .find(|candidate| {
            fs::metadata(root.join(candidate))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
        .and_then(|candidate| {
            CString::new(Path::new("/").join(candidate).into_os_string().into_vec()).ok()
        })
}

/// The host path of `destination` in the container whose root is `root`.
/// Symbolic links are followed as the container would see them (absolute
/// targets start again at `root`); a link that climbs above `root` is refused.
/// Components that do not exist yet are kept as they are.
pub fn resolve_in_root(
    root: &Path,
    destination: &ContainerPath,
) -> Result<PathBuf, ContainerError> {
    enum Step {
        Down(OsString),
        Up,
    }
    let steps = |path: &Path| -> Vec<Step> {
        let mut steps: Vec<Step> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(Step::Down(name.to_owned())),
                Component::ParentDir => Some(Step::Up),
                _ => None,
            })
            .collect();
        steps.reverse();
        steps
    };
    let error = |source| ContainerError::ResolveDestination {
        destination: destination.as_path().to_owned(),
        source,
    };

    let mut resolved = PathBuf::new();
    let mut pending = steps(destination.as_path());
    let mut links = 0;
    while let Some(step) = pending.pop() {
        let Step::Down(name) = step else {
            if !resolved.pop() {
                return Err(ContainerError::DestinationEscapes {
                    destination: destination.as_path().to_owned(),
                });
            }
            continue;
        };
        let host = root.join(&resolved).join(&name);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(error(Errno::ELOOP.into()));
                }
                let target = fs::read_link(&host).map_err(error)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(steps(&target));
            }
            Ok(_) => resolved.push(name),
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(name),
            Err(e) => return Err(error(e)),
        }
    }
    Ok(root.join(resolved))
}

impl ContainerId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerId {
    type Err = InvalidId;

    fn from_str(id: &str) -> Result<Self, InvalidId> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        if (1..=64).contains(&id.len()) && !id.starts_with('.') && id.chars().all(valid_char) {
            Ok(Self(id.to_owned()))
        } else {
            Err(InvalidId)
        }
    }
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a container id is 1 to 64 of A-Z a-z 0-9 _ . - and does not start with '.'")
    }
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sys(e) => e.fmt(f),
            Self::OpenNamespace { path, .. } => write!(f, "opening namespace {}", path.display()),
            Self::OpenRoot { path, .. } => write!(f, "opening {}", path.display()),
            Self::ResolveDestination { destination, .. } => {
                write!(f, "resolving mount destination {}", destination.display())
            }
            Self::DestinationEscapes { destination } => write!(
                f,
                "mount destination {} leads out of the container root",
                destination.display()
            ),
            Self::BindSource { path, .. } => write!(f, "bind mount source {}", path.display()),
            Self::ProgramNotFound { program } => {
                write!(f, "exec: {program}: executable file not found in $PATH")
            }
            Self::ConsoleSocket { path, .. } => {
                write!(f, "connecting to console socket {}", path.display())
            }
            Self::ReadReport(_) => f.write_str("reading the container setup report"),
            Self::OpenExecFifo { path, .. } => write!(f, "opening {}", path.display()),
            Self::WaitStart(_) => f.write_str("waiting for start"),
            Self::JoinCgroup { path, .. } => write!(f, "joining cgroup: {}", path.display()),
            Self::MapIds(_) => f.write_str("mapping the user namespace's ids"),
            Self::NotMapped => f.write_str("the new user namespace was not given its id maps"),
            Self::Hook(e) => e.fmt(f),
            Self::Reported(message) => f.write_str(message),
            Self::SetupExited(status) => {
                write!(f, "container setup exited with status {status}")
            }
        }
    }
}

impl std::error::Error for ContainerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sys(e) => e.source(),
            Self::OpenNamespace { source, .. }
            | Self::OpenRoot { source, .. }
            | Self::ConsoleSocket { source, .. }
            | Self::ResolveDestination { source, .. }
            | Self::BindSource { source, .. }
            | Self::OpenExecFifo { source, .. }
            | Self::JoinCgroup { source, .. }
            | Self::WaitStart(source)
            | Self::ReadReport(source) => Some(source),
            Self::MapIds(e) => Some(e),
            Self::Hook(e) => e.source(),
            Self::DestinationEscapes { .. }
            | Self::NotMapped
            | Self::ProgramNotFound { .. }
            | Self::Reported(_)
            | Self::SetupExited(_) => None,
        }
    }
}

impl From<SysError> for ContainerError {
    fn from(e: SysError) -> Self {
        Self::Sys(e)
    }
}

/// The intermediate process (see the module docs). Never returns.
fn intermediate(
    spec: &ContainerSpec,
    cgroup: Option<&Path>,
    exec_fifo: Option<&Path>,
    (hook_state, console): (&HookState<'_>, Option<&ConsoleSocket>),
    userns: Option<UsernsSyncChild>,
    mut pid_write: File,
    mut report_write: File,
) -> ! {
    // The fifo is opened here, while its path is still visible. Read and write,
    // so the open does not block, and `start` can write while the init lives.
    let fifo = exec_fifo
        .map(|path| {
            File::options()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|source| ContainerError::OpenExecFifo {
                    path: path.to_owned(),
                    source,
                })
        })
        .transpose();
    let forked = fifo.and_then(|fifo| {
        if let Some(dir) = cgroup {
            join_cgroup(dir)?;
        }
        enter_namespaces(&spec.namespaces, userns, spec.id_mappings.as_ref())?;
        Ok((fifo, sys::fork()?))
    });
    match forked {
        Ok((fifo, ForkResult::Child)) => {
            drop(pid_write);
            let ready = || handshake(&mut report_write, fifo);
            let Err(error) = init(&sys::Linux, spec, hook_state, console, ready);
            exit_reporting(&mut report_write, &error)
        }
        Ok((_, ForkResult::Parent { child })) => {
            // If this fails, husk finds no pid to read and says so.
            let _ = pid_write.write_all(&child.as_raw().to_ne_bytes());
            sys::exit_now(0)
        }
        Err(error) => exit_reporting(&mut report_write, &error),
    }
}

/// The exec intermediate: joins the container (see [`exec_join`]), forks the
/// exec init, sends its pid to husk and exits. Never returns.
fn exec_intermediate(
    target: &ExecTarget,
    process: &Process,
    seccomp: Option<&Filter>,
    cgroup: Option<&Path>,
    console: Option<&ConsoleSocket>,
    mut pid_write: File,
    mut report_write: File,
) -> ! {
    let forked = (|| {
        if let Some(dir) = cgroup {
            join_cgroup(dir)?;
        }
        let capabilities = exec_join(&sys::Linux, process, target)?;
        Ok((capabilities, sys::fork()?))
    })();
    match forked {
        Ok((capabilities, ForkResult::Child)) => {
            drop(pid_write);
            let ready = || handshake(&mut report_write, None);
            let Err(error) = exec_init(
                &sys::Linux,
                process,
                seccomp,
                capabilities.as_ref(),
                target,
                console,
                ready,
            );
            exit_reporting(&mut report_write, &error)
        }
        Ok((_, ForkResult::Parent { child })) => {
            // If this fails, husk finds no pid to read and says so.
            let _ = pid_write.write_all(&child.as_raw().to_ne_bytes());
            sys::exit_now(0)
        }
        Err(error) => exit_reporting(&mut report_write, &error),
    }
}

/// Moves the calling process into the cgroup `dir` ("0" means the writer).
fn join_cgroup(dir: &Path) -> Result<(), ContainerError> {
    let procs = dir.join("cgroup.procs");
    File::options()
        .write(true)
        .open(&procs)
        .and_then(|mut file| file.write_all(b"0"))
        .map_err(|source| ContainerError::JoinCgroup {
            path: procs,
            source,
        })
}

/// Tells husk the setup is done, then waits for `start` if there is a fifo.
fn handshake(report: &mut File, fifo: Option<File>) -> Result<(), ContainerError> {
    report
        .write_all(&[READY])
        .map_err(ContainerError::ReadReport)?;
    if let Some(mut fifo) = fifo {
        let mut byte = [0; 1];
        fifo.read_exact(&mut byte)
            .map_err(ContainerError::WaitStart)?;
    }
    Ok(())
}

/// Joins the namespaces given by path, user namespace first (it governs what
/// the others allow), then creates the new ones: a new user namespace first,
/// with its maps (sync point 0), so that it owns the others. Every namespace
/// file is opened before the first `setns` changes what may be opened.
fn enter_namespaces(
    namespaces: &NamespaceSet,
    userns: Option<UsernsSyncChild>,
    maps: Option<&IdMappings>,
) -> Result<(), ContainerError> {
    let mut joins = Vec::new();
    let mut new = CloneFlags::empty();
    for ns in namespaces.iter() {
        match &ns.path {
            Some(path) => {
                let file = File::open(path).map_err(|source| ContainerError::OpenNamespace {
                    path: path.clone(),
                    source,
                })?;
                joins.push((ns.kind, file, path));
            }
            None => new |= clone_flag(ns.kind),
        }
    }
    joins.sort_by_key(|(kind, ..)| *kind != NamespaceKind::User);
    for (kind, file, path) in &joins {
        sys::setns(file, clone_flag(*kind), path)?;
    }
    if let (Some(sync), Some(maps)) = (userns, maps) {
        sync.enter(maps)?;
        new.remove(CloneFlags::CLONE_NEWUSER);
    }
    // As in `exec_join`: the init runs husk's code in the container's PID
    // namespace until its exec; non-dumpable, no process there without
    // CAP_SYS_PTRACE in husk's user namespace may open its /proc/<pid>/exe
    // (the host's husk) or ptrace it. The flag passes to the init and ends at
    // its exec. Only for root: an unprivileged husk maps the namespace first
    // (its /proc files must stay its own), and its containers cannot write a
    // binary of root's anyway.
    if sys::effective_uid() == 0 {
        sys::Linux.set_non_dumpable()?;
    }
    Ok(sys::unshare(new)?)
}

fn clone_flag(kind: NamespaceKind) -> CloneFlags {
    match kind {
        NamespaceKind::Mount => CloneFlags::CLONE_NEWNS,
        NamespaceKind::Pid => CloneFlags::CLONE_NEWPID,
        NamespaceKind::Uts => CloneFlags::CLONE_NEWUTS,
        NamespaceKind::Ipc => CloneFlags::CLONE_NEWIPC,
        NamespaceKind::Net => CloneFlags::CLONE_NEWNET,
        NamespaceKind::User => CloneFlags::CLONE_NEWUSER,
        NamespaceKind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
    }
}

/// Sends `error` to husk as one line and exits with status 1.
fn exit_reporting(report: &mut File, error: &ContainerError) -> ! {
    // If this fails, nobody is left to tell; husk still sees the exit status.
    let mut message = vec![FAILED];
    message.extend_from_slice(crate::error_chain(error).as_bytes());
    let _ = report.write_all(&message);
    sys::exit_now(1)
}

/// Reads a setup report to its end: `None` if there was none.
fn read_report(report: &mut File) -> Result<Option<ContainerError>, ContainerError> {
    let mut message = Vec::new();
    report
        .read_to_end(&mut message)
        .map_err(ContainerError::ReadReport)?;
    let text = match message.split_first() {
        None => return Ok(None),
        Some((&FAILED, text)) => text,
        Some(_) => &message,
    };
    Ok(Some(ContainerError::Reported(
        String::from_utf8_lossy(text).into_owned(),
    )))
}

/// Performs one entry of `mounts` below `root`, creating its mount point.
fn mount_below(sys: &impl Syscalls, root: &Path, mount: &Mount) -> Result<(), ContainerError> {
    let target = resolve_in_root(root, &mount.destination)?;
    match &mount.kind {
        MountKind::Bind { source, recursive } => {
            let meta = fs::metadata(source).map_err(|e| ContainerError::BindSource {
                path: source.clone(),
                source: e,
            })?;
            if meta.is_dir() {
                sys.mkdir_all(&target)?;
            } else {
                sys.create_file(&target)?;
            }
            let recursive = if *recursive {
                MsFlags::MS_REC
            } else {
                MsFlags::empty()
            };
            sys.mount(
                Some(source),
                &target,
                None,
                MsFlags::MS_BIND | recursive,
                None,
            )?;
            // A bind mount takes flags such as ro or nosuid only when remounted.
            if !mount.flags.is_empty() {
                remount(sys, &target, mount.flags)?;
            }
        }
        MountKind::Fs { fstype, source } => {
            sys.mkdir_all(&target)?;
            let data = Some(mount.data.as_str()).filter(|d| !d.is_empty());
            let source = Path::new(source);
            sys.mount(
                Some(source),
                &target,
                Some(fstype.name()),
                mount.flags,
                data,
            )?;
        }
    }
    if !mount.propagation.is_empty() {
        sys.mount(None, &target, None, mount.propagation, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::spec;
    use crate::testutil::TempDir;

    /// The hook state of tests without in-container hooks.
    fn no_hook_state(_: &'static str, _: i32) -> String {
        unreachable!("no in-container hooks")
    }

    /// Records every call as a line of text; fails the call named `fail`
    /// with EPERM, and a call whose line starts with a prefix in `errnos`
    /// with its errno.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<String>>,
        fail: Option<&'static str>,
        errnos: Vec<(String, Errno)>,
        /// What `cap_last_cap` returns; 40 (Linux 5.9 and later) if `None`.
        last_cap: Option<u8>,
        /// What `mount_flags` returns; none if `None`.
        mount_flags: Option<MsFlags>,
    }

    impl Recorder {
        fn record(&self, op: &'static str, args: String) -> Result<(), SysError> {
            let line = format!("{op} {args}").trim_end().to_owned();
            let errno = self
                .errnos
                .iter()
                .find(|(prefix, _)| line.starts_with(prefix.as_str()))
                .map(|&(_, errno)| errno);
            self.calls.borrow_mut().push(line);
            match (self.fail, errno) {
                (Some(fail), _) if fail == op => Err(SysError::new(op, None, Errno::EPERM)),
                (_, Some(errno)) => Err(SysError::new(op, None, errno)),
                _ => Ok(()),
            }
        }
    }

    fn flag_names(flags: MsFlags) -> String {
        flags
            .iter_names()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
            .join("|")
    }

    impl Syscalls for Recorder {
        fn mark_fds_cloexec(&self) -> Result<(), SysError> {
            self.record("mark_fds_cloexec", String::new())
        }

        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: MsFlags,
            data: Option<&str>,
        ) -> Result<(), SysError> {
            let source = source.map_or("-".into(), |s| s.display().to_string());
            let args = format!(
                "{source} {} {} {} {}",
                target.display(),
                fstype.unwrap_or("-"),
                flag_names(flags),
                data.unwrap_or("-")
            );
            self.record("mount", args)
        }

        fn umount_detach(&self, target: &Path) -> Result<(), SysError> {
            self.record("umount_detach", target.display().to_string())
        }

        fn run_hook(
            &self,
            kind: &'static str,
            hook: &Hook,
            state: &str,
        ) -> Result<(), ContainerError> {
            Ok(self.record("hook", format!("{kind} {} {state}", hook.path.display()))?)
        }

        fn own_pid(&self) -> i32 {
            1
        }

        fn mount_flags(&self, path: &Path) -> Result<MsFlags, SysError> {
            self.record("statvfs", path.display().to_string())?;
            Ok(self.mount_flags.unwrap_or(MsFlags::empty()))
        }

        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), SysError> {
            self.record(
                "pivot_root",
                format!("{} {}", new_root.display(), put_old.display()),
            )
        }

        fn chdir(&self, dir: &Path) -> Result<(), SysError> {
            self.record("chdir", dir.display().to_string())
        }

        fn sethostname(&self, name: &str) -> Result<(), SysError> {
            self.record("sethostname", name.into())
        }

        fn loopback_up(&self) -> Result<(), SysError> {
            self.record("loopback_up", String::new())
        }

        fn mkdir_all(&self, dir: &Path) -> Result<(), SysError> {
            self.record("mkdir_all", dir.display().to_string())
        }

        fn create_file(&self, file: &Path) -> Result<(), SysError> {
            self.record("create_file", file.display().to_string())
        }

        fn write_file(&self, file: &Path, contents: &str) -> Result<(), SysError> {
            self.record("write_file", format!("{} {contents}", file.display()))
        }

        fn cap_last_cap(&self) -> Result<u8, SysError> {
            self.record("cap_last_cap", String::new())?;
            Ok(self.last_cap.unwrap_or(40))
        }

        fn mknod(
            &self,
            node: &Path,
            kind: NodeKind,
            major: u32,
            minor: u32,
            mode: u32,
        ) -> Result<(), SysError> {
            let kind = match kind {
                NodeKind::Char => 'c',
                NodeKind::Block => 'b',
                NodeKind::Fifo => 'p',
            };
            let args = format!("{} {kind} {major}:{minor} {mode:o}", node.display());
            self.record("mknod", args)
        }

        fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), SysError> {
            self.record("chown", format!("{} {uid}:{gid}", path.display()))
        }

        fn symlink(&self, target: &Path, link: &Path) -> Result<(), SysError> {
            let args = format!("{} -> {}", link.display(), target.display());
            self.record("symlink", args)
        }

        fn set_rlimit(&self, rlimit: &Rlimit) -> Result<(), SysError> {
            let args = format!("{} {} {}", rlimit.name, rlimit.soft, rlimit.hard);
            self.record("set_rlimit", args)
        }

        fn set_no_new_privs(&self) -> Result<(), SysError> {
            self.record("set_no_new_privs", String::new())
        }

        fn install_seccomp(&self, filter: &Filter) -> Result<(), SysError> {
            let args = format!("{} instructions", filter.program().len());
            self.record("install_seccomp", args)
        }

        fn drop_bounding(&self, keep: CapSet, last_cap: u8) -> Result<(), SysError> {
            self.record("drop_bounding", format!("keep {keep} up to {last_cap}"))
        }

        fn set_keep_caps(&self) -> Result<(), SysError> {
            self.record("set_keep_caps", String::new())
        }

        fn set_capabilities(&self, caps: &Capabilities) -> Result<(), SysError> {
            let args = format!(
                "effective {} permitted {} inheritable {}",
                caps.effective, caps.permitted, caps.inheritable
            );
            self.record("set_capabilities", args)
        }

        fn set_ambient(&self, ambient: CapSet) -> Result<(), SysError> {
            self.record("set_ambient", ambient.to_string())
        }

        fn set_user(&self, user: &User) -> Result<(), SysError> {
            let args = format!("{}:{} {:?}", user.uid, user.gid, user.additional_gids);
            self.record("set_user", args)
        }

        fn reset_signals(&self) -> Result<(), SysError> {
            self.record("reset_signals", String::new())
        }

        fn become_reaper(&self) -> Result<(), SysError> {
            self.record("become_reaper", String::new())
        }

        fn set_non_dumpable(&self) -> Result<(), SysError> {
            self.record("set_non_dumpable", String::new())
        }

        fn setns(&self, _: &File, kind: CloneFlags, path: &Path) -> Result<(), SysError> {
            let kind: Vec<&str> = kind.iter_names().map(|(name, _)| name).collect();
            self.record("setns", format!("{} {}", kind.join("|"), path.display()))
        }

        fn enter_root(&self, _: &File, path: &Path) -> Result<(), SysError> {
            self.record("enter_root", path.display().to_string())
        }

        fn open_pty(&self, size: Option<ConsoleSize>) -> Result<(OwnedFd, PathBuf), SysError> {
            let size = size.map_or("-".into(), |s| format!("{}x{}", s.height, s.width));
            self.record("open_pty", size)?;
            let master = File::open("/dev/null").expect("/dev/null opens");
            Ok((master.into(), PathBuf::from("/dev/pts/0")))
        }

        fn set_controlling_terminal(&self, peer: &Path) -> Result<(), SysError> {
            self.record("set_controlling_terminal", peer.display().to_string())
        }

        fn send_fd(&self, _: &OwnedFd, _: &OwnedFd, path: &Path) -> Result<(), SysError> {
            self.record("send_fd", path.display().to_string())
        }

        fn exec(
            &self,
            program: &CStr,
            args: &[CString],
            env: &[CString],
        ) -> Result<Infallible, SysError> {
            self.record("exec", format!("{program:?} {args:?} {env:?}"))?;
            Err(SysError::new("exec", None, Errno::ENOSYS))
        }
    }

    const CONFIG: &str = r#"{
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/app", "x"], "env": ["A=1"], "cwd": "/srv",
                    "user": {"uid": 1000, "gid": 100, "additionalGids": [5]}},
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "box",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/data", "source": "data", "options": ["rbind", "ro"]},
            {"destination": "/etc/conf", "source": "conf", "options": ["bind"]}
        ],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "pid"}]}
    }"#;

    #[test]
    fn setup_order() {
        let bundle = TempDir::new("order");
        fs::create_dir(bundle.path().join("data")).unwrap();
        fs::write(bundle.path().join("conf"), "").unwrap();
        let spec = spec::parse(CONFIG.as_bytes(), bundle.path()).unwrap();
        let sys = Recorder::default();

        let error = init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        assert_eq!(error.to_string(), "exec");
        let b = bundle.path().display();
        let r = format!("{b}/rootfs");
        let expected = [
            "mark_fds_cloexec".to_owned(),
            "mount - / - MS_REC|MS_PRIVATE -".into(),
            format!("mount {r} {r} - MS_BIND|MS_REC -"),
            format!("mkdir_all {r}/proc"),
            format!("mount proc {r}/proc proc  -"),
            format!("mkdir_all {r}/dev"),
            format!("mount tmpfs {r}/dev tmpfs MS_NOSUID mode=755"),
            format!("mkdir_all {r}/data"),
            format!("mount {b}/data {r}/data - MS_BIND|MS_REC -"),
            format!("statvfs {r}/data"),
            format!("mount - {r}/data - MS_RDONLY|MS_REMOUNT|MS_BIND -"),
            format!("create_file {r}/etc/conf"),
            format!("mount {b}/conf {r}/etc/conf - MS_BIND -"),
            // A tmpfs at /dev gets the minimal set of nodes and links.
            format!("mknod {r}/dev/null c 1:3 666"),
            format!("mknod {r}/dev/zero c 1:5 666"),
            format!("mknod {r}/dev/full c 1:7 666"),
            format!("mknod {r}/dev/random c 1:8 666"),
            format!("mknod {r}/dev/urandom c 1:9 666"),
            format!("mknod {r}/dev/tty c 5:0 666"),
            format!("symlink {r}/dev/fd -> /proc/self/fd"),
            format!("symlink {r}/dev/stdin -> /proc/self/fd/0"),
            format!("symlink {r}/dev/stdout -> /proc/self/fd/1"),
            format!("symlink {r}/dev/stderr -> /proc/self/fd/2"),
            format!("symlink {r}/dev/ptmx -> pts/ptmx"),
            format!("mkdir_all {r}/dev/shm"),
            format!("chdir {r}"),
            "pivot_root . .".into(),
            "umount_detach .".into(),
            "statvfs /".into(),
            "mount - / - MS_RDONLY|MS_REMOUNT|MS_BIND -".into(),
            "sethostname box".into(),
            "chdir /srv".into(),
            "set_user 1000:100 [5]".into(),
            "ready".into(),
            "reset_signals".into(),
            r#"exec "/bin/app" ["/bin/app", "x"] ["A=1"]"#.into(),
        ];
        assert_eq!(*sys.calls.borrow(), expected);
    }

    /// Every process and linux property husk applies in the init.
    const FULL_CONFIG: &str = r#"{
        "ociVersion": "1.0.2",
        "process": {
            "args": ["/bin/app"], "cwd": "/",
            "user": {"uid": 1000, "gid": 1000},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
                        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
            "oomScoreAdj": 500,
            "noNewPrivileges": true,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "inheritable": ["CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_NET_BIND_SERVICE"]
            }
        },
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}
        ],
        "linux": {
            "namespaces": [{"type": "mount"}, {"type": "ipc"}, {"type": "network"}],
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "gid": 5},
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 384},
                {"path": "/dev/disk/sda", "type": "b", "major": 8, "minor": 0}
            ],
            "sysctl": {"kernel.shmmax": "65536", "net.ipv4.ip_forward": "1"},
            "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]},
            "maskedPaths": ["/proc/kcore", "/proc/acpi", "/proc/missing"],
            "readonlyPaths": ["/proc/sys", "/proc/nope"]
        }
    }"#;

    #[test]
    fn setup_order_with_every_process_property() {
        let bundle = TempDir::new("full-order");
        let spec = spec::parse(FULL_CONFIG.as_bytes(), bundle.path()).unwrap();
        let r = format!("{}/rootfs", bundle.path().display());
        let sys = Recorder {
            errnos: vec![
                (format!("mount /dev/null {r}/proc/acpi "), Errno::ENOTDIR),
                (format!("mount /dev/null {r}/proc/missing "), Errno::ENOENT),
                ("mount /proc/nope ".into(), Errno::ENOENT),
            ],
            ..Recorder::default()
        };

        let error = init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        assert_eq!(error.to_string(), "exec");
        let filter = spec.seccomp.as_ref().unwrap().program().len();
        let expected = [
            "mark_fds_cloexec".to_owned(),
            "write_file /proc/self/oom_score_adj 500".into(),
            "cap_last_cap".into(),
            "mount - / - MS_REC|MS_PRIVATE -".into(),
            format!("mount {r} {r} - MS_BIND|MS_REC -"),
            format!("mkdir_all {r}/proc"),
            format!("mount proc {r}/proc proc  -"),
            format!("mkdir_all {r}/dev"),
            format!("mount tmpfs {r}/dev tmpfs  mode=755"),
            // linux.devices lists /dev/null: its own mode, after the links.
            format!("mknod {r}/dev/zero c 1:5 666"),
            format!("mknod {r}/dev/full c 1:7 666"),
            format!("mknod {r}/dev/random c 1:8 666"),
            format!("mknod {r}/dev/urandom c 1:9 666"),
            format!("mknod {r}/dev/tty c 5:0 666"),
            format!("symlink {r}/dev/fd -> /proc/self/fd"),
            format!("symlink {r}/dev/stdin -> /proc/self/fd/0"),
            format!("symlink {r}/dev/stdout -> /proc/self/fd/1"),
            format!("symlink {r}/dev/stderr -> /proc/self/fd/2"),
            format!("symlink {r}/dev/ptmx -> pts/ptmx"),
            format!("mkdir_all {r}/dev/shm"),
            // linux.devices after the minimal /dev, before the masks.
            format!("mkdir_all {r}/dev"),
            format!("mknod {r}/dev/fuse c 10:229 666"),
            format!("chown {r}/dev/fuse 0:5"),
            format!("mkdir_all {r}/dev"),
            format!("mknod {r}/dev/null c 1:3 600"),
            format!("chown {r}/dev/null 0:0"),
            format!("mkdir_all {r}/dev/disk"),
            format!("mknod {r}/dev/disk/sda b 8:0 666"),
            format!("chown {r}/dev/disk/sda 0:0"),
            format!("mount /dev/null {r}/proc/kcore - MS_BIND -"),
            format!("mount /dev/null {r}/proc/acpi - MS_BIND -"),
            format!("mount tmpfs {r}/proc/acpi tmpfs MS_RDONLY -"),
            format!("mount /dev/null {r}/proc/missing - MS_BIND -"),
            format!("chdir {r}"),
            "pivot_root . .".into(),
            "umount_detach .".into(),
            // A new network namespace: its loopback up.
            "loopback_up".into(),
            "write_file /proc/sys/kernel/shmmax 65536".into(),
            "write_file /proc/sys/net/ipv4/ip_forward 1".into(),
            "mount /proc/sys /proc/sys - MS_BIND|MS_REC -".into(),
            "statvfs /proc/sys".into(),
            "mount - /proc/sys - MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_BIND -"
                .into(),
            "mount /proc/nope /proc/nope - MS_BIND|MS_REC -".into(),
            "chdir /".into(),
            "set_rlimit RLIMIT_NOFILE 1024 2048".into(),
            "set_rlimit RLIMIT_CORE 0 0".into(),
            "set_no_new_privs".into(),
            "drop_bounding keep CAP_CHOWN|CAP_KILL|CAP_NET_BIND_SERVICE up to 40".into(),
            "set_keep_caps".into(),
            "set_user 1000:1000 []".into(),
            "set_capabilities effective CAP_KILL permitted CAP_KILL|CAP_NET_BIND_SERVICE \
             inheritable CAP_NET_BIND_SERVICE"
                .into(),
            "set_ambient CAP_NET_BIND_SERVICE".into(),
            "ready".into(),
            "reset_signals".into(),
            format!("install_seccomp {filter} instructions"),
            r#"exec "/bin/app" ["/bin/app"] []"#.into(),
        ];
        assert_eq!(*sys.calls.borrow(), expected);
    }

    /// A console socket for the recorder, which sends nothing over it.
    fn console_socket() -> ConsoleSocket {
        ConsoleSocket {
            socket: File::open("/dev/null").unwrap().into(),
            path: PathBuf::from("/run/console.sock"),
        }
    }

    #[test]
    fn setup_order_with_a_terminal() {
        let bundle = TempDir::new("terminal-order");
        let json = r#"{"ociVersion": "1.0.0",
            "process": {"args": ["/bin/sh"], "cwd": "/", "terminal": true,
                        "consoleSize": {"height": 24, "width": 80}},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}],
                                                  "readonlyPaths": ["/proc/sys"]},
            "mounts": [{"destination": "/dev", "type": "tmpfs"},
                       {"destination": "/dev/pts", "type": "devpts",
                        "options": ["newinstance", "ptmxmode=0666"]}]}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let r = format!("{}/rootfs", bundle.path().display());
        let sys = Recorder::default();
        let console = console_socket();

        let error = init(&sys, &spec, &no_hook_state, Some(&console), || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        assert_eq!(error.to_string(), "exec");
        let calls = sys.calls.borrow();
        let tail: Vec<&str> = calls
            .iter()
            .map(String::as_str)
            .skip_while(|c| !c.starts_with("mount - /proc/sys "))
            .collect();
        assert_eq!(
            tail,
            [
                "mount - /proc/sys - MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_BIND -",
                // After every mount and pivot_root: the container's devpts.
                "open_pty 24x80",
                "set_controlling_terminal /dev/pts/0",
                "create_file /dev/console",
                "mount /dev/pts/0 /dev/console - MS_BIND -",
                "send_fd /run/console.sock",
                "chdir /",
                "set_user 0:0 []",
                "ready",
                "reset_signals",
                r#"exec "/bin/sh" ["/bin/sh"] []"#,
            ]
        );
        assert!(calls.contains(&format!(
            "mount devpts {r}/dev/pts devpts  newinstance,ptmxmode=0666"
        )));
        let pivot = calls.iter().position(|c| c == "pivot_root . .").unwrap();
        let pty = calls
            .iter()
            .position(|c| c.starts_with("open_pty"))
            .unwrap();
        assert!(pivot < pty);
    }

    #[test]
    fn exec_with_a_terminal_binds_no_console() {
        let bundle = TempDir::new("exec-terminal");
        let json = r#"{"ociVersion": "1.0.0",
            "process": {"args": ["/bin/sh"], "cwd": "/", "terminal": true},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]},
            "mounts": [{"destination": "/dev", "type": "tmpfs"}]}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let target = exec_target(&bundle, &[NamespaceKind::Mount]);
        let sys = Recorder::default();
        let console = console_socket();

        let capabilities = exec_join(&sys, &spec.process, &target).unwrap();
        exec_init(
            &sys,
            &spec.process,
            None,
            capabilities.as_ref(),
            &target,
            Some(&console),
            || Ok(sys.record("ready", String::new())?),
        )
        .unwrap_err();

        let calls = sys.calls.borrow();
        let tail: Vec<&str> = calls
            .iter()
            .map(String::as_str)
            .skip_while(|c| !c.starts_with("enter_root"))
            .take(5)
            .collect();
        assert_eq!(
            tail,
            [
                "enter_root /proc/42/root",
                "open_pty -",
                "set_controlling_terminal /dev/pts/0",
                "send_fd /run/console.sock",
                "chdir /",
            ]
        );
    }

    #[test]
    fn seccomp_without_no_new_privs_is_installed_while_privileged() {
        let bundle = TempDir::new("early-seccomp");
        let json = FULL_CONFIG.replace(r#""noNewPrivileges": true"#, r#""noNewPrivileges": false"#);
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let sys = Recorder::default();

        init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        let calls = sys.calls.borrow();
        let tail: Vec<&str> = calls
            .iter()
            .skip_while(|c| !c.starts_with("set_rlimit RLIMIT_CORE"))
            .map(|c| c.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            tail,
            [
                "set_rlimit",
                "install_seccomp",
                "drop_bounding",
                "set_keep_caps",
                "set_user",
                "set_capabilities",
                "set_ambient",
                "ready",
                "reset_signals",
                "exec"
            ]
        );
    }

    #[test]
    fn capabilities_above_the_kernels_last_are_dropped() {
        let bundle = TempDir::new("last-cap");
        let json = FULL_CONFIG.replace(
            r#""CAP_CHOWN", "CAP_KILL""#,
            r#""CAP_CHOWN", "CAP_BPF", "CAP_KILL""#,
        );
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let sys = Recorder {
            last_cap: Some(37),
            ..Recorder::default()
        };

        init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        assert!(sys.calls.borrow().contains(
            &"drop_bounding keep CAP_CHOWN|CAP_KILL|CAP_NET_BIND_SERVICE up to 37".into()
        ));
    }

    #[test]
    fn remounts_repeat_the_flags_the_mount_has() {
        // In a user namespace, nosuid, nodev and the atime flag of a host
        // mount are locked: a remount must repeat them or fail with EPERM.
        let bundle = TempDir::new("remount-kept");
        fs::create_dir(bundle.path().join("data")).unwrap();
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": true},
            "linux": {"namespaces": [{"type": "mount"}]},
            "mounts": [{"destination": "/data", "source": "data", "options": ["bind", "ro"]}]}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let r = format!("{}/rootfs", bundle.path().display());
        let sys = Recorder {
            mount_flags: Some(MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RELATIME),
            ..Recorder::default()
        };
        init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();
        let calls = sys.calls.borrow();
        let remounts: Vec<&str> = calls
            .iter()
            .map(String::as_str)
            .filter(|c| c.contains("MS_REMOUNT"))
            .collect();
        assert_eq!(
            remounts,
            [
                format!(
                    "mount - {r}/data - MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND|MS_RELATIME -"
                ),
                "mount - / - MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND|MS_RELATIME -".into(),
            ]
        );
    }

    #[test]
    fn dev_nodes_are_bound_from_the_host_when_mknod_is_refused() {
        let bundle = TempDir::new("dev-bind");
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]},
            "mounts": [{"destination": "/dev", "type": "tmpfs"},
                       {"destination": "/dev/null", "source": "/dev/null", "options": ["bind"]}]}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let r = format!("{}/rootfs", bundle.path().display());
        let sys = Recorder {
            errnos: vec![
                (format!("mknod {r}/dev/null "), Errno::EEXIST),
                ("mknod ".into(), Errno::EPERM),
                (format!("symlink {r}/dev/fd "), Errno::EEXIST),
            ],
            ..Recorder::default()
        };

        init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        let calls = sys.calls.borrow();
        let dev: Vec<&str> = calls
            .iter()
            .map(String::as_str)
            .skip_while(|c| !c.starts_with("mknod "))
            .take(8)
            .collect();
        assert_eq!(
            dev,
            [
                format!("mknod {r}/dev/null c 1:3 666"),
                format!("mknod {r}/dev/zero c 1:5 666"),
                format!("create_file {r}/dev/zero"),
                format!("mount /dev/zero {r}/dev/zero - MS_BIND -"),
                format!("mknod {r}/dev/full c 1:7 666"),
                format!("create_file {r}/dev/full"),
                format!("mount /dev/full {r}/dev/full - MS_BIND -"),
                format!("mknod {r}/dev/random c 1:8 666"),
            ]
        );
        assert!(calls.contains(&format!("symlink {r}/dev/stdin -> /proc/self/fd/0")));
        assert!(calls.contains(&format!("mkdir_all {r}/dev/shm")));
    }

    #[test]
    fn linux_devices_are_bound_from_the_host_when_mknod_is_refused() {
        let bundle = TempDir::new("devices-bind");
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}],
            "devices": [{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
                        {"path": "/dev/kept", "type": "c", "major": 1, "minor": 11}]}}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let r = format!("{}/rootfs", bundle.path().display());
        let sys = Recorder {
            errnos: vec![
                (format!("mknod {r}/dev/net/tun "), Errno::EPERM),
                // A node that is there already is left as it is.
                (format!("mknod {r}/dev/kept "), Errno::EEXIST),
            ],
            ..Recorder::default()
        };

        init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        let calls = sys.calls.borrow();
        let dev: Vec<&str> = calls
            .iter()
            .map(String::as_str)
            .skip_while(|c| !c.starts_with("mkdir_all"))
            .take_while(|c| !c.starts_with("chdir"))
            .collect();
        assert_eq!(
            dev,
            [
                format!("mkdir_all {r}/dev/net"),
                format!("mknod {r}/dev/net/tun c 10:200 666"),
                format!("create_file {r}/dev/net/tun"),
                format!("mount /dev/net/tun {r}/dev/net/tun - MS_BIND -"),
                format!("mkdir_all {r}/dev"),
                format!("mknod {r}/dev/kept c 1:11 666"),
            ]
        );
    }

    #[test]
    fn linux_devices_do_not_escape_the_rootfs() {
        let bundle = TempDir::new("devices-escape");
        let rootfs = bundle.path().join("rootfs");
        fs::create_dir_all(rootfs.join("dev")).unwrap();
        std::os::unix::fs::symlink("../../..", rootfs.join("dev/up")).unwrap();
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}],
            "devices": [{"path": "/dev/up/x", "type": "c", "major": 1, "minor": 3}]}}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let sys = Recorder::default();
        let error = init(&sys, &spec, &no_hook_state, None, || Ok(())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "mount destination /dev/up/x leads out of the container root"
        );
        assert!(!sys.calls.borrow().iter().any(|c| c.starts_with("mknod")));
    }

    #[test]
    fn dev_is_left_alone_without_a_tmpfs_there() {
        let bundle = TempDir::new("dev-alone");
        fs::create_dir(bundle.path().join("dev")).unwrap();
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]},
            "mounts": [{"destination": "/dev", "type": "tmpfs"},
                       {"destination": "/dev", "source": "dev", "options": ["rbind"]}]}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let sys = Recorder::default();

        init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        let calls = sys.calls.borrow();
        assert!(!calls
            .iter()
            .any(|c| c.starts_with("mknod ") || c.starts_with("symlink")));
    }

    #[test]
    fn with_init_the_reaper_forks_after_start_and_before_exec() {
        let bundle = TempDir::new("reaper");
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}}"#;
        let mut spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        spec.reaper = true;
        let sys = Recorder::default();

        let error = init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        assert_eq!(error.to_string(), "exec");
        let calls = sys.calls.borrow();
        let tail: Vec<&str> = calls[calls.len() - 4..]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            [
                "ready",
                "become_reaper",
                "reset_signals",
                r#"exec "/bin/sh" ["/bin/sh"] []"#
            ]
        );
    }

    #[test]
    fn in_container_hooks_run_before_pivot_and_after_start() {
        let bundle = TempDir::new("in-container-hooks");
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]},
            "hooks": {"createContainer": [{"path": "/host/net-setup"}],
                      "startContainer": [{"path": "/bin/a"}, {"path": "/bin/b"}]}}"#;
        let mut spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        spec.reaper = true;
        let sys = Recorder::default();
        let state = |status: &'static str, pid: i32| format!("{status}@{pid}");

        init(&sys, &spec, &state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        let calls = sys.calls.borrow();
        let at = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
        let create = at("hook createContainer");
        assert_eq!(
            calls[create],
            "hook createContainer /host/net-setup creating@1"
        );
        // After every mount, before the old root (where its path is) goes.
        assert!(
            create > at("mount /") && create < at("pivot_root"),
            "{calls:?}"
        );
        let tail: Vec<&str> = calls[at("set_user")..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "set_user 0:0 []",
                "ready",
                "hook startContainer /bin/a created@1",
                "hook startContainer /bin/b created@1",
                "become_reaper",
                "reset_signals",
                r#"exec "/bin/sh" ["/bin/sh"] []"#
            ]
        );
    }

    #[test]
    fn setup_stops_at_first_failure() {
        let bundle = TempDir::new("failure");
        let json = r#"{"ociVersion": "1.0.0", "process": {"args": ["/bin/sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}}"#;
        let spec = spec::parse(json.as_bytes(), bundle.path()).unwrap();
        let sys = Recorder {
            fail: Some("pivot_root"),
            ..Recorder::default()
        };

        let error = init(&sys, &spec, &no_hook_state, None, || {
            Ok(sys.record("ready", String::new())?)
        })
        .unwrap_err();

        assert_eq!(
            crate::error_chain(&error),
            "pivot_root: EPERM: Operation not permitted"
        );
        assert_eq!(sys.calls.borrow().last().unwrap(), "pivot_root . .");
    }

    /// An [`ExecTarget`] of the init 42 that joins `kinds`; every file is `dir`.
    fn exec_target(dir: &TempDir, kinds: &[NamespaceKind]) -> ExecTarget {
        let open = || File::open(dir.path()).unwrap();
        let namespaces = EXEC_NAMESPACES
            .iter()
            .filter(|(kind, _)| kinds.contains(kind))
            .map(|&(kind, name)| (kind, open(), PathBuf::from(format!("/proc/42/ns/{name}"))))
            .collect();
        ExecTarget {
            namespaces,
            root: open(),
            root_path: PathBuf::from("/proc/42/root"),
        }
    }

    #[test]
    fn exec_setup_order() {
        let bundle = TempDir::new("exec-order");
        let spec = spec::parse(FULL_CONFIG.as_bytes(), bundle.path()).unwrap();
        let target = exec_target(
            &bundle,
            &[
                NamespaceKind::User,
                NamespaceKind::Mount,
                NamespaceKind::Pid,
            ],
        );
        let sys = Recorder::default();

        let capabilities = exec_join(&sys, &spec.process, &target).unwrap();
        sys.record("fork", String::new()).unwrap();
        let ready = || Ok(sys.record("ready", String::new())?);
        let error = exec_init(
            &sys,
            &spec.process,
            spec.seccomp.as_ref(),
            capabilities.as_ref(),
            &target,
            None,
            ready,
        )
        .unwrap_err();

        assert_eq!(error.to_string(), "exec");
        let filter = spec.seccomp.as_ref().unwrap().program().len();
        let expected = [
            // The exec intermediate, still in husk's namespaces.
            "set_non_dumpable".to_owned(),
            "mark_fds_cloexec".into(),
            "write_file /proc/self/oom_score_adj 500".into(),
            "cap_last_cap".into(),
            "setns CLONE_NEWUSER /proc/42/ns/user".into(),
            "setns CLONE_NEWNS /proc/42/ns/mnt".into(),
            "setns CLONE_NEWPID /proc/42/ns/pid".into(),
            "fork".into(),
            // The exec init, in the container's PID namespace: what the
            // container init does from its working directory on.
            "enter_root /proc/42/root".into(),
            "chdir /".into(),
            "set_rlimit RLIMIT_NOFILE 1024 2048".into(),
            "set_rlimit RLIMIT_CORE 0 0".into(),
            "set_no_new_privs".into(),
            "drop_bounding keep CAP_CHOWN|CAP_KILL|CAP_NET_BIND_SERVICE up to 40".into(),
            "set_keep_caps".into(),
            "set_user 1000:1000 []".into(),
            "set_capabilities effective CAP_KILL permitted CAP_KILL|CAP_NET_BIND_SERVICE \
             inheritable CAP_NET_BIND_SERVICE"
                .into(),
            "set_ambient CAP_NET_BIND_SERVICE".into(),
            "ready".into(),
            "reset_signals".into(),
            format!("install_seccomp {filter} instructions"),
            r#"exec "/bin/app" ["/bin/app"] []"#.into(),
        ];
        assert_eq!(*sys.calls.borrow(), expected);
    }

    #[test]
    fn exec_of_a_minimal_process_joins_and_execs() {
        let bundle = TempDir::new("exec-minimal");
        let spec = spec::parse(CONFIG.as_bytes(), bundle.path()).unwrap();
        let target = exec_target(&bundle, &[NamespaceKind::Mount, NamespaceKind::Uts]);
        let sys = Recorder {
            fail: Some("enter_root"),
            ..Recorder::default()
        };

        let capabilities = exec_join(&sys, &spec.process, &target).unwrap();
        let error = exec_init(
            &sys,
            &spec.process,
            None,
            capabilities.as_ref(),
            &target,
            None,
            || Ok(sys.record("ready", String::new())?),
        )
        .unwrap_err();

        assert_eq!(
            crate::error_chain(&error),
            "enter_root: EPERM: Operation not permitted"
        );
        let expected = [
            "set_non_dumpable",
            "mark_fds_cloexec",
            "setns CLONE_NEWNS /proc/42/ns/mnt",
            "setns CLONE_NEWUTS /proc/42/ns/uts",
            "enter_root /proc/42/root",
        ];
        assert_eq!(*sys.calls.borrow(), expected);
    }

    #[test]
    fn exec_target_joins_the_namespaces_that_are_not_ours() {
        let tmp = TempDir::new("exec-target");
        let proc_root = tmp.path();
        fs::create_dir_all(proc_root.join("self/ns")).unwrap();
        fs::create_dir_all(proc_root.join("42/ns")).unwrap();
        fs::create_dir(proc_root.join("42/root")).unwrap();
        for name in ["user", "mnt", "pid", "uts", "ipc", "net"] {
            fs::write(proc_root.join("self/ns").join(name), "").unwrap();
        }
        // The same file is the same namespace; this kernel has no cgroup namespace.
        for name in ["mnt", "pid", "uts"] {
            fs::write(proc_root.join("42/ns").join(name), "").unwrap();
        }
        for name in ["user", "ipc", "net"] {
            fs::hard_link(
                proc_root.join("self/ns").join(name),
                proc_root.join("42/ns").join(name),
            )
            .unwrap();
        }

        let target = ExecTarget::open(proc_root, Pid::from_raw(42)).unwrap();

        let kinds: Vec<_> = target.kinds().collect();
        assert_eq!(
            kinds,
            [NamespaceKind::Mount, NamespaceKind::Pid, NamespaceKind::Uts]
        );
        assert_eq!(target.root_path, proc_root.join("42/root"));
        fs::remove_file(proc_root.join("42/ns/uts")).unwrap();
        let error = ExecTarget::open(proc_root, Pid::from_raw(42)).unwrap_err();
        assert!(
            crate::error_chain(&error).starts_with(&format!(
                "opening namespace {}/42/ns/uts: ",
                proc_root.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn program_lookup() {
        let root = TempDir::new("path");
        for dir in ["usr/bin", "bin", "sbin"] {
            fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let write = |path: &str, mode: u32| {
            fs::write(root.path().join(path), "").unwrap();
            fs::set_permissions(root.path().join(path), fs::Permissions::from_mode(mode)).unwrap();
        };
        write("usr/bin/plain", 0o644);
        write("bin/plain", 0o755);
        write("bin/tool", 0o755);
        write("sbin/tool", 0o755);
        fs::create_dir(root.path().join("usr/bin/dir")).unwrap();
        let find = |program: &CStr, env: &[&CStr]| {
            let env: Vec<CString> = env.iter().map(|&e| e.to_owned()).collect();
            find_program(root.path(), program, &env)
        };
        let path = c"PATH=/usr/bin:relative::/bin:/sbin";

        assert_eq!(find(c"tool", &[path]), Some(c"/bin/tool".to_owned()));
        assert_eq!(
            find(c"plain", &[path]),
            Some(c"/bin/plain".to_owned()),
            "skips non-executable"
        );
        assert_eq!(find(c"dir", &[path]), None, "skips directories");
        assert_eq!(find(c"missing", &[path]), None);
        assert_eq!(
            find(c"tool", &[c"PATH=/sbin"]),
            Some(c"/sbin/tool".to_owned())
        );
        assert_eq!(
            find(c"tool", &[]),
            Some(c"/sbin/tool".to_owned()),
            "default PATH"
        );
        assert_eq!(
            find(c"./x", &[path]),
            Some(c"./x".to_owned()),
            "a slash means no lookup"
        );
    }

    #[test]
    fn destination_resolution() {
        let root = TempDir::new("resolve");
        let r = root.path();
        fs::create_dir_all(r.join("real/sub")).unwrap();
        fs::write(r.join("file"), "").unwrap();
        symlink("real", r.join("rel")).unwrap();
        symlink("/real/sub", r.join("abs")).unwrap();
        symlink("../../..", r.join("real/out")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let resolve = |dest: &str| {
            let json = format!(
                r#"{{"ociVersion": "1.0.0", "process": {{"args": ["a"], "cwd": "{dest}"}},
                "root": {{"path": "/"}}, "linux": {{"namespaces": [{{"type": "mount"}}]}}}}"#
            );
            let cwd = spec::parse(json.as_bytes(), Path::new("/"))
                .unwrap()
                .process
                .cwd;
            resolve_in_root(r, &cwd).map_err(|e| crate::error_chain(&e))
        };

        assert_eq!(resolve("/real/sub"), Ok(r.join("real/sub")));
        assert_eq!(resolve("/rel/sub/new/dir"), Ok(r.join("real/sub/new/dir")));
        assert_eq!(
            resolve("/abs/x"),
            Ok(r.join("real/sub/x")),
            "absolute links stay inside"
        );
        assert_eq!(
            resolve("/real/out/etc"),
            Err("mount destination /real/out/etc leads out of the container root".into())
        );
        // The error text comes from the C library: glibc and musl differ.
        let text = |errno: Errno| io::Error::from(errno).to_string();
        assert_eq!(
            resolve("/loop"),
            Err(format!(
                "resolving mount destination /loop: {}",
                text(Errno::ELOOP)
            ))
        );
        assert_eq!(
            resolve("/file/x"),
            Err(format!(
                "resolving mount destination /file/x: {}",
                text(Errno::ENOTDIR)
            ))
        );
    }

    #[test]
    fn container_ids() {
        for id in ["a", "web-1", "A_b.c", &"x".repeat(64)] {
            assert_eq!(id.parse::<ContainerId>().unwrap().as_str(), id);
        }
        for id in ["", ".hidden", "a/b", "sp ace", "ü", &"x".repeat(65)] {
            assert!(
                id.parse::<ContainerId>().is_err(),
                "{id:?} should be rejected"
            );
        }
    }
}
