//! Every system call husk makes, and all of its `unsafe` code.
//!
//! Calls go through nix; libc is used directly only where nix has no wrapper:
//! `_exit(2)`, `fsetxattr(2)`, `lgetxattr(2)`, `seccomp(2)`, `bpf(2)`, `capset(2)`, the prctls `PR_SET_SECCOMP`,
//! `PR_CAPBSET_DROP` and `PR_CAP_AMBIENT`, and the terminal ioctls
//! `TIOCSCTTY` and `TIOCSWINSZ`. Every result passes through `check`,
//! which names the operation and the path or name it was applied to.
//!
//! Capabilities are set with `capset(2)` and `prctl(2)` here rather than with
//! the `caps` crate: four calls do not justify a dependency, and this way every
//! `unsafe` block stays in this file.

use std::convert::Infallible;
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use crate::cgroup::Insn;
use crate::container::Syscalls;
use crate::seccomp::Filter;
use crate::spec::{CapSet, Capabilities, Capability, ConsoleSize, NodeKind, Rlimit, User};

/// A failed system call: what was done, to which path or named object (a
/// resource limit, a capability), and the errno.
#[derive(Debug)]
pub struct SysError {
    op: &'static str,
    name: Option<&'static str>,
    path: Option<PathBuf>,
    errno: Errno,
}

/// Where the kernel says which capability is its last (Linux 3.2 and later).
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets, in two halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct` of `<linux/capability.h>` (not in libc).
#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` of `<linux/capability.h>` (not in libc).
#[repr(C)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The running kernel, as the container init sees it.
pub struct Linux;

impl Syscalls for Linux {
    fn mark_fds_cloexec(&self) -> Result<(), SysError> {
        const FD_DIR: &str = "/proc/self/fd";
        let mut fds = Vec::new();
        for entry in io_check("list", Some(Path::new(FD_DIR)), fs::read_dir(FD_DIR))? {
            let entry = io_check("list", Some(Path::new(FD_DIR)), entry)?;
            fds.extend(
                entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok()),
            );
        }
        for fd in fds.into_iter().filter(|&fd| fd > 2) {
            // EBADF: the descriptor read_dir itself used, closed by now.
            match fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
                Ok(_) | Err(Errno::EBADF) => {}
                Err(errno) => return Err(SysError::new("set close-on-exec", None, errno)),
            }
        }
        Ok(())
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), SysError> {
        let result = nix::mount::mount(source, target, fstype, flags, data);
        check("mount", Some(target), result)
    }

    fn umount_detach(&self, target: &Path) -> Result<(), SysError> {
        let result = nix::mount::umount2(target, MntFlags::MNT_DETACH);
        check("umount", Some(target), result)
    }

    fn run_hook(
        &self,
        kind: &'static str,
        hook: &crate::spec::Hook,
        state: &str,
    ) -> Result<(), crate::container::ContainerError> {
        crate::hooks::run_all(kind, std::slice::from_ref(hook), state)
            .map_err(crate::container::ContainerError::Hook)
    }

    fn own_pid(&self) -> i32 {
        nix::unistd::getpid().as_raw()
    }

    fn mount_flags(&self, path: &Path) -> Result<MsFlags, SysError> {
        use nix::sys::statvfs::FsFlags;
        let flags = check("statvfs", Some(path), nix::sys::statvfs::statvfs(path))?.flags();
        let pairs = [
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        ];
        let kept = pairs
            .iter()
            .filter(|(st, _)| flags.contains(*st))
            .fold(MsFlags::empty(), |all, (_, ms)| all | *ms);
        // ST_RELATIME (Linux's 0x1000): musl's headers, and so nix on musl,
        // do not name it.
        const ST_RELATIME: libc::c_ulong = 0x1000;
        if flags.bits() & ST_RELATIME != 0 {
            return Ok(kept | MsFlags::MS_RELATIME);
        }
        Ok(kept)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), SysError> {
        let result = nix::unistd::pivot_root(new_root, put_old);
        check("pivot_root", Some(new_root), result)
    }

    fn chdir(&self, dir: &Path) -> Result<(), SysError> {
        check("chdir", Some(dir), nix::unistd::chdir(dir))
    }

    fn sethostname(&self, name: &str) -> Result<(), SysError> {
        check("sethostname", None, nix::unistd::sethostname(name))
    }

    fn loopback_up(&self) -> Result<(), SysError> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let sock = check(
            "socket",
            None,
            socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            ),
        )?;
        // SAFETY: ifreq is plain data (a name and a union of integers and
        // addresses); all zeroes is a valid value of it.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (to, from) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *to = libc::c_char::from_ne_bytes([*from]);
        }
        // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the
        // flags member of `request`, which lives across the call.
        let got = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut request) };
        check("ioctl(SIOCGIFFLAGS)", None, Errno::result(got))?;
        // SAFETY: the kernel has just written the flags member of the union.
        let flags = unsafe { request.ifr_ifru.ifru_flags };
        request.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads the name and flags of `request`.
        let set = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &request) };
        check("ioctl(SIOCSIFFLAGS)", None, Errno::result(set)).map(drop)
    }

    fn mkdir_all(&self, dir: &Path) -> Result<(), SysError> {
        io_check("mkdir", Some(dir), fs::create_dir_all(dir))
    }

    fn create_file(&self, file: &Path) -> Result<(), SysError> {
        if let Some(parent) = file.parent() {
            self.mkdir_all(parent)?;
        }
        let result = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(file);
        io_check("create", Some(file), result).map(drop)
    }

    fn write_file(&self, file: &Path, contents: &str) -> Result<(), SysError> {
        let result = File::options()
            .write(true)
            .open(file)
            .and_then(|mut f| f.write_all(contents.as_bytes()));
        io_check("write", Some(file), result)
    }

    fn cap_last_cap(&self) -> Result<u8, SysError> {
        let path = Path::new(CAP_LAST_CAP);
        let text = io_check("read", Some(path), fs::read_to_string(path))?;
        text.trim_end()
            .parse()
            .map_err(|_| SysError::new("read", Some(path), Errno::EINVAL))
    }

    /// Also sets the mode exactly, whatever the umask.
    fn mknod(
        &self,
        node: &Path,
        kind: NodeKind,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> Result<(), SysError> {
        let kind = match kind {
            NodeKind::Char => SFlag::S_IFCHR,
            NodeKind::Block => SFlag::S_IFBLK,
            NodeKind::Fifo => SFlag::S_IFIFO,
        };
        let dev = nix::sys::stat::makedev(major.into(), minor.into());
        let perm = Mode::from_bits_truncate(mode);
        let made = nix::sys::stat::mknod(node, kind, perm, dev);
        check("mknod", Some(node), made)?;
        let chmod = fs::set_permissions(node, fs::Permissions::from_mode(mode));
        io_check("chmod", Some(node), chmod)
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), SysError> {
        let result = nix::unistd::fchownat(
            None,
            path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        check("chown", Some(path), result)
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<(), SysError> {
        io_check(
            "symlink",
            Some(link),
            std::os::unix::fs::symlink(target, link),
        )
    }

    fn set_rlimit(&self, rlimit: &Rlimit) -> Result<(), SysError> {
        // rlim_t is 64 bits on every musl target; a 32-bit glibc's limit
        // beyond its range is as good as infinite.
        let limit = |value: u64| {
            nix::sys::resource::rlim_t::try_from(value).unwrap_or(nix::sys::resource::RLIM_INFINITY)
        };
        let result =
            nix::sys::resource::setrlimit(rlimit.resource, limit(rlimit.soft), limit(rlimit.hard));
        check_named("setrlimit", rlimit.name, result)
    }

    fn set_no_new_privs(&self) -> Result<(), SysError> {
        set_no_new_privs()
    }

    fn install_seccomp(&self, filter: &Filter) -> Result<(), SysError> {
        install_seccomp(filter.program(), filter.flags())
    }

    fn drop_bounding(&self, keep: CapSet, last_cap: u8) -> Result<(), SysError> {
        for number in (0..=last_cap).filter(|&n| !keep.contains(n)) {
            // SAFETY: PR_CAPBSET_DROP takes the capability number as an
            // integer and no pointers; unused arguments are zero.
            let result = unsafe {
                libc::prctl(
                    libc::PR_CAPBSET_DROP,
                    libc::c_ulong::from(number),
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            let name = Capability::from_number(number)
                .map_or("(a capability newer than husk)", Capability::name);
            check_named("prctl(PR_CAPBSET_DROP)", name, Errno::result(result))?;
        }
        Ok(())
    }

    fn set_keep_caps(&self) -> Result<(), SysError> {
        let result = nix::sys::prctl::set_keepcaps(true);
        check("prctl(PR_SET_KEEPCAPS)", None, result)
    }

    fn set_capabilities(&self, caps: &Capabilities) -> Result<(), SysError> {
        let half = |set: CapSet, shift: u32| (set.bits() >> shift) as u32;
        let data = [0, 32].map(|shift| CapUserData {
            effective: half(caps.effective, shift),
            permitted: half(caps.permitted, shift),
            inheritable: half(caps.inheritable, shift),
        });
        let mut header = CapUserHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        // SAFETY: version 3 of capset(2) reads one header (on a version
        // mismatch it writes the version it wants into it) and two data
        // structs; both outlive the call and have the kernel's layout.
        let result = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapUserHeader,
                data.as_ptr(),
            )
        };
        check("capset", None, Errno::result(result).map(drop))
    }

    fn set_ambient(&self, ambient: CapSet) -> Result<(), SysError> {
        let prctl = |op: libc::c_int, number: u8| {
            // SAFETY: PR_CAP_AMBIENT takes an operation and a capability
            // number as integers and no pointers; unused arguments are zero.
            let result = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    op as libc::c_ulong,
                    libc::c_ulong::from(number),
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            Errno::result(result).map(drop)
        };
        match prctl(libc::PR_CAP_AMBIENT_CLEAR_ALL, 0) {
            // Before Linux 4.3 there is no ambient set to clear.
            Err(Errno::EINVAL) if ambient.bits() == 0 => return Ok(()),
            result => check("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", None, result)?,
        }
        for cap in ambient.iter() {
            let raise = prctl(libc::PR_CAP_AMBIENT_RAISE, cap.number());
            check_named("prctl(PR_CAP_AMBIENT_RAISE)", cap.name(), raise)?;
        }
        Ok(())
    }

    fn set_user(&self, user: &User) -> Result<(), SysError> {
        if let Some(mask) = user.umask {
            nix::sys::stat::umask(Mode::from_bits_truncate(mask));
        }
        let groups: Vec<Gid> = user
            .additional_gids
            .iter()
            .copied()
            .map(Gid::from_raw)
            .collect();
        match nix::unistd::setgroups(&groups) {
            // In a user namespace whose `setgroups` is `deny` (one an
            // unprivileged husk mapped), setgroups(2) fails with EPERM. With
            // no additional gids asked, the process keeps the groups it has,
            // which are its own on the host and nobody's in the namespace.
            Err(Errno::EPERM) if groups.is_empty() => {}
            other => check("setgroups", None, other)?,
        }
        let gid = Gid::from_raw(user.gid);
        check("setresgid", None, nix::unistd::setresgid(gid, gid, gid))?;
        let uid = Uid::from_raw(user.uid);
        check("setresuid", None, nix::unistd::setresuid(uid, uid, uid))
    }

    fn reset_signals(&self) -> Result<(), SysError> {
        let unblock =
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
        check("sigprocmask", None, unblock)?;
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context.
        let sigpipe = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
        check("signal", None, sigpipe).map(drop)
    }

    fn become_reaper(&self) -> Result<(), SysError> {
        // Blocked before the fork, so a signal sent meanwhile waits for the
        // loop instead of meeting PID 1's default (ignore) disposition.
        let all = SigSet::all();
        let blocked = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
        check("sigprocmask", None, blocked)?;
        match fork()? {
            ForkResult::Child => Ok(()),
            ForkResult::Parent { child } => {
                // Nothing in the container may open /proc/1/exe (husk) or ptrace it.
                let _ = nix::sys::prctl::set_dumpable(false);
                // This process never executes: close what it inherited (the
                // report pipe, whose end husk waits for, and the exec fifo).
                close_fds_above_stdio();
                exit_now(i32::from(reap_as_init(child, &all)))
            }
        }
    }

    fn set_non_dumpable(&self) -> Result<(), SysError> {
        let result = nix::sys::prctl::set_dumpable(false);
        check("prctl(PR_SET_DUMPABLE)", None, result)
    }

    fn setns(&self, namespace: &File, kind: CloneFlags, path: &Path) -> Result<(), SysError> {
        setns(namespace, kind, path)
    }

    fn enter_root(&self, root: &File, path: &Path) -> Result<(), SysError> {
        check("fchdir", Some(path), nix::unistd::fchdir(root.as_raw_fd()))?;
        check("chroot", Some(path), nix::unistd::chroot("."))
    }

    fn open_pty(&self, size: Option<ConsoleSize>) -> Result<(OwnedFd, PathBuf), SysError> {
        let ptmx = Path::new("/dev/ptmx");
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let master = check("open", Some(ptmx), nix::pty::posix_openpt(flags))?;
        check("unlockpt", Some(ptmx), nix::pty::unlockpt(&master))?;
        let peer = PathBuf::from(check("ptsname", Some(ptmx), nix::pty::ptsname_r(&master))?);
        // SAFETY: into_raw_fd hands over the open descriptor, which nothing
        // else owns, so the OwnedFd closes it exactly once.
        let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
        if let Some(size) = size {
            let winsize = libc::winsize {
                ws_row: size.height,
                ws_col: size.width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCSWINSZ reads one `struct winsize`, which outlives
            // the call, from a descriptor that is open; nix has no wrapper.
            let result = unsafe {
                libc::ioctl(
                    master.as_raw_fd(),
                    libc::TIOCSWINSZ,
                    &winsize as *const libc::winsize,
                )
            };
            check("ioctl(TIOCSWINSZ)", Some(&peer), Errno::result(result))?;
        }
        Ok((master, peer))
    }

    fn set_controlling_terminal(&self, peer: &Path) -> Result<(), SysError> {
        check("setsid", None, nix::unistd::setsid())?;
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = check(
            "open",
            Some(peer),
            nix::fcntl::open(peer, flags, Mode::empty()),
        )?;
        // SAFETY: open returned a descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: TIOCSCTTY takes an integer (0: do not steal the terminal
        // from another session) and no pointers; nix has no wrapper.
        let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as libc::c_int) };
        check("ioctl(TIOCSCTTY)", Some(peer), Errno::result(result))?;
        for target in 0..=2 {
            // dup2 leaves the copies open across execve; `fd` itself closes here.
            check(
                "dup2",
                Some(peer),
                nix::unistd::dup2(fd.as_raw_fd(), target),
            )?;
        }
        Ok(())
    }

    fn send_fd(&self, socket: &OwnedFd, fd: &OwnedFd, path: &Path) -> Result<(), SysError> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
        let fds = [fd.as_raw_fd()];
        // One byte of data: a message with only ancillary data may be dropped.
        let data = [std::io::IoSlice::new(b"\0")];
        let rights = [ControlMessage::ScmRights(&fds)];
        let sent = sendmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &data,
            &rights,
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
        check("sendmsg", Some(path), sent).map(drop)
    }

    /// nix builds the argument arrays (an allocation) and calls execve(2).
    fn exec(
        &self,
        program: &CStr,
        args: &[CString],
        env: &[CString],
    ) -> Result<Infallible, SysError> {
        let Err(errno) = nix::unistd::execve(program, args, env);
        let path = Path::new(OsStr::from_bytes(program.to_bytes()));
        Err(SysError::new("exec", Some(path), errno))
    }
}

/// Makes a fifo at `path`, readable and writable by its owner only.
pub fn mkfifo(path: &Path) -> Result<(), SysError> {
    let mode = Mode::S_IRUSR | Mode::S_IWUSR;
    check("mkfifo", Some(path), nix::unistd::mkfifo(path, mode))
}

/// Closes every descriptor above 2: `close_range(2)` (Linux 5.9), else one by
/// one up to the soft descriptor limit. libc directly: nix has no close_range.
fn close_fds_above_stdio() {
    // SAFETY: close_range takes two integers and flags and touches no memory of
    // ours; the descriptors it closes are owned by nothing in this process that
    // runs afterwards (the reaper loop uses none).
    let result = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if result != 0 {
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft.min(65536));
        for fd in 3..limit as i32 {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// The loop of `--init`'s PID 1: forwards every signal to `child`, reaps every
/// child that ends, and returns `child`'s status the way a shell reports it.
fn reap_as_init(child: Pid, signals: &SigSet) -> u8 {
    loop {
        let Ok(signal) = signals.wait() else {
            continue;
        };
        if signal != Signal::SIGCHLD {
            // The child may be gone already; then its SIGCHLD is on its way.
            let _ = nix::sys::signal::kill(child, signal);
            continue;
        }
        loop {
            let any = Pid::from_raw(-1);
            match nix::sys::wait::waitpid(any, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) if status.pid() == Some(child) => {
                    if let Some(code) = exit_code(status) {
                        return code;
                    }
                }
                Ok(_) => {}
            }
        }
    }
}

/// Forks the calling process.
pub fn fork() -> Result<ForkResult, SysError> {
    // SAFETY: husk never starts a thread (see the process model in container.rs),
    // so the child is a copy of a single-threaded process and may run any code.
    let result = unsafe { nix::unistd::fork() };
    check("fork", None, result)
}

/// `CLONE_INTO_CGROUP` (linux/sched.h; libc has no constant for it).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), up to the `cgroup` member (Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks the calling process straight into the cgroup whose directory is open
/// as `cgroup` (clone3 with `CLONE_INTO_CGROUP`), so that no process has to be
/// migrated between cgroups, which costs an RCU grace period. Returns `None`
/// when the kernel cannot (before Linux 5.7); the caller then forks and joins.
///
/// Uses libc directly: nix has no clone3. The child is left as libc's `fork`
/// would leave it except for libc's cached thread id, which still names the
/// parent; the child must therefore not use `raise`, `abort` or pthread calls
/// (husk's intermediate only calls setns, unshare, fork and `_exit`, and libc's
/// `fork` there refreshes the cache for the container init).
pub fn fork_into_cgroup(cgroup: &File) -> Result<Option<ForkResult>, SysError> {
    use std::os::fd::AsRawFd;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: husk is single-threaded when it forks (see the process model), and
    // without CLONE_VM the child gets its own copy of the address space and of
    // this stack, exactly as with fork(2). The kernel reads `args`, whose size is
    // passed, only during the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(result) {
        Ok(0) => Ok(Some(ForkResult::Child)),
        Ok(pid) => Ok(Some(ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        })),
        // No clone3 (ENOSYS), or no CLONE_INTO_CGROUP in it (E2BIG, EINVAL).
        Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) => Ok(None),
        Err(errno) => Err(SysError::new("clone3", None, errno)),
    }
}

/// Ends the calling process at once, running no exit handlers: for forked children.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes no pointers and never returns; nix has no wrapper for it.
    unsafe { libc::_exit(code) }
}

/// A pipe whose ends close on exec: (read end, write end).
pub fn pipe() -> Result<(File, File), SysError> {
    let (read, write) = check("pipe", None, nix::unistd::pipe2(OFlag::O_CLOEXEC))?;
    Ok((File::from(read), File::from(write)))
}

/// Adds `signals` to the signal mask, so they stay pending until [`wait_signal`].
pub fn block_signals(signals: &SigSet) -> Result<(), SysError> {
    let result = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(signals), None);
    check("sigprocmask", None, result)
}

/// Waits for one of the blocked `signals` and takes it.
pub fn wait_signal(signals: &SigSet) -> Result<Signal, SysError> {
    check("sigwait", None, signals.wait())
}

/// Makes orphaned descendants children of this process, so it can wait for them.
pub fn set_child_subreaper() -> Result<(), SysError> {
    let result = nix::sys::prctl::set_child_subreaper(true);
    check("prctl(PR_SET_CHILD_SUBREAPER)", None, result)
}

/// Joins the namespace `file` (opened from `path`) refers to.
pub fn setns(file: &File, kind: CloneFlags, path: &Path) -> Result<(), SysError> {
    check("setns", Some(path), nix::sched::setns(file, kind))
}

/// Whether the calling process may create entries in the directory `dir`
/// (`faccessat(2)` with its effective ids).
pub fn writable(dir: &Path) -> bool {
    use nix::fcntl::AtFlags;
    use nix::unistd::AccessFlags;
    let access = AccessFlags::W_OK | AccessFlags::X_OK;
    nix::unistd::faccessat(None, dir, access, AtFlags::AT_EACCESS).is_ok()
}

/// The calling process's effective uid.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The calling process's effective gid.
pub fn effective_gid() -> u32 {
    nix::unistd::getegid().as_raw()
}

/// Becomes uid and gid 0 of the calling process's user namespace (where they
/// are mapped and the process holds `CAP_SETUID` and `CAP_SETGID` there).
pub fn become_root() -> Result<(), SysError> {
    let root = Gid::from_raw(0);
    check("setresgid", None, nix::unistd::setresgid(root, root, root))?;
    let root = Uid::from_raw(0);
    check("setresuid", None, nix::unistd::setresuid(root, root, root))
}

/// Moves the calling process into new namespaces (new PID namespace: its children).
pub fn unshare(flags: CloneFlags) -> Result<(), SysError> {
    check("unshare", None, nix::sched::unshare(flags))
}

/// Waits for the child `pid` to end and returns its status the way a shell
/// reports it: the exit code, or 128 + the signal that killed it.
pub fn wait(pid: Pid) -> Result<u8, SysError> {
    loop {
        if let Some(code) = exit_code(check("waitpid", None, nix::sys::wait::waitpid(pid, None))?) {
            return Ok(code);
        }
    }
}

/// Waits for `pid` to end if it is a child of this process; does nothing if
/// it is not (a process reparented elsewhere is reaped there).
pub fn reap(pid: Pid) -> Result<(), SysError> {
    match wait(pid) {
        Err(SysError {
            errno: Errno::ECHILD,
            ..
        }) => Ok(()),
        result => result.map(drop),
    }
}

/// Like [`wait`], but returns `None` at once if `pid` is still running.
pub fn try_wait(pid: Pid) -> Result<Option<u8>, SysError> {
    let status = nix::sys::wait::waitpid(pid, Some(WaitPidFlag::WNOHANG));
    Ok(exit_code(check("waitpid", None, status)?))
}

/// Makes `command` start its program with no signal blocked. Rust's
/// `Command` keeps the parent's signal mask, and the daemon blocks SIGTERM,
/// SIGINT, SIGHUP and SIGCHLD for its signalfd: without this, its update
/// poll or a hook it runs could not be stopped with SIGTERM.
pub fn unblock_signals_in(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed; it makes one, sigprocmask,
    // and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
}

/// Sends `signal` to `pid`; a process that has already ended is not an error.
pub fn forward_signal(pid: Pid, signal: Signal) -> Result<(), SysError> {
    match nix::sys::signal::kill(pid, signal) {
        Err(Errno::ESRCH) => Ok(()),
        result => check("kill", None, result),
    }
}

impl SysError {
    /// A failure of `op` on `path`; also for fakes of [`crate::container::Syscalls`].
    pub(crate) fn new(op: &'static str, path: Option<&Path>, errno: Errno) -> Self {
        Self {
            op,
            name: None,
            path: path.map(Path::to_path_buf),
            errno,
        }
    }

    /// The errno the call failed with.
    pub fn errno(&self) -> Errno {
        self.errno
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op)?;
        if let Some(name) = self.name {
            write!(f, " {name}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {}", path.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for SysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errno)
    }
}

fn check<T>(op: &'static str, path: Option<&Path>, result: nix::Result<T>) -> Result<T, SysError> {
    result.map_err(|errno| SysError::new(op, path, errno))
}

/// Like [`check`], for an operation on a named object such as `RLIMIT_NOFILE`.
fn check_named<T>(
    op: &'static str,
    name: &'static str,
    result: nix::Result<T>,
) -> Result<T, SysError> {
    result.map_err(|errno| SysError {
        op,
        name: Some(name),
        path: None,
        errno,
    })
}

fn io_check<T>(
    op: &'static str,
    path: Option<&Path>,
    result: io::Result<T>,
) -> Result<T, SysError> {
    let errno = |e: io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    check(op, path, result.map_err(errno))
}

fn exit_code(status: WaitStatus) -> Option<u8> {
    match status {
        WaitStatus::Exited(_, code) => Some(code as u8),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as u8),
        _ => None,
    }
}

/// Sets the calling thread's no_new_privs bit, which `execve` keeps and which
/// lets an unprivileged process install a seccomp filter.
pub fn set_no_new_privs() -> Result<(), SysError> {
    let result = nix::sys::prctl::set_no_new_privs();
    check("prctl(PR_SET_NO_NEW_PRIVS)", None, result)
}

/// Installs `program` as a seccomp filter of the calling thread with the
/// `SECCOMP_FILTER_FLAG_*` bits `flags`. Without no_new_privs this needs
/// `CAP_SYS_ADMIN`.
///
/// Uses libc directly: nix wraps neither `seccomp(2)` nor `PR_SET_SECCOMP`.
/// Kernels before 3.17 have no `seccomp(2)`; there the filter is installed with
/// `prctl(PR_SET_SECCOMP)`, which takes no flags.
pub fn install_seccomp(program: &[crate::seccomp::SockFilter], flags: u32) -> Result<(), SysError> {
    const OP: &str = "seccomp(SECCOMP_SET_MODE_FILTER)";
    let mut filters: Vec<libc::sock_filter> = program
        .iter()
        .map(|insn| libc::sock_filter {
            code: insn.code,
            jt: insn.jt,
            jf: insn.jf,
            k: insn.k,
        })
        .collect();
    let len = u16::try_from(filters.len()).map_err(|_| SysError::new(OP, None, Errno::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: filters.as_mut_ptr(),
    };
    // SAFETY: `fprog` points to `len` initialised instructions that outlive the
    // call; the kernel copies them and writes nothing. The integer arguments are
    // passed as the `unsigned long`s the variadic `syscall` reads.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            libc::c_ulong::from(flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    match Errno::result(result) {
        Err(Errno::ENOSYS) if flags == 0 => {
            // SAFETY: as above; PR_SET_SECCOMP reads the same `sock_fprog`.
            let result = unsafe {
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::c_ulong::from(libc::SECCOMP_MODE_FILTER),
                    &fprog as *const libc::sock_fprog,
                )
            };
            check(
                "prctl(PR_SET_SECCOMP)",
                None,
                Errno::result(result).map(drop),
            )
        }
        result => check(OP, None, result.map(drop)),
    }
}

// bpf(2): the commands, program type, attach type and flags of <linux/bpf.h>.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
/// The most programs of one attach type on one cgroup (`BPF_CGROUP_MAX_PROGS`).
const BPF_CGROUP_MAX_PROGS: usize = 64;
/// The license the kernel is told; it matters only to programs that call
/// GPL-only helpers, and the device program calls none.
const BPF_LICENSE: &CStr = c"Apache-2.0";

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `prog_flags`: no
/// padding, so every byte the kernel reads is set. The kernel accepts a
/// shorter `attr` than its own union and treats the rest as zero.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// The `BPF_PROG_ATTACH` and `BPF_PROG_DETACH` member, up to `replace_bpf_fd`.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_OBJ_PIN` and `BPF_OBJ_GET` member.
#[repr(C)]
#[derive(Default)]
struct BpfObj {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// The statfs magic number of the BPF filesystem.
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;
/// Where the BPF filesystem is mounted (by systemd, or by husk).
const BPF_FS: &str = "/sys/fs/bpf";
/// husk's directory in it: device programs, pinned by content.
pub const BPF_PIN_DIR: &str = "/sys/fs/bpf/husk";

/// The `BPF_PROG_QUERY` member, up to `prog_cnt` and the padding after it.
#[repr(C)]
#[derive(Default)]
struct BpfProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    padding: u32,
}

/// The `BPF_PROG_GET_FD_BY_ID` member.
#[repr(C)]
#[derive(Default)]
struct BpfGetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Makes `program` (a `BPF_PROG_TYPE_CGROUP_DEVICE` program) the device filter
/// of the cgroup directory `cgroup`: loads it, attaches it with
/// `BPF_F_ALLOW_MULTI`, then, with `replace`, detaches the device programs
/// that were attached there before (all of them when `program` is `None`;
/// without `replace`, the cgroup is new and has none). Between the two steps
/// both apply, which only ever denies more. The attached program stays in the kernel, held by the cgroup, once
/// its descriptor is closed. Without the `bpf` system call the load fails with
/// `ENOSYS`; without `CONFIG_CGROUP_BPF`, with `EINVAL`.
pub fn set_device_program(
    cgroup: &Path,
    program: Option<&[Insn]>,
    replace: bool,
) -> Result<(), SysError> {
    let dir = io_check("open", Some(cgroup), File::open(cgroup))?;
    let loaded = program.map(device_program).transpose()?;
    // A cgroup husk has just made has no program to replace: not asking the
    // kernel saves a system call that costs a third of the load.
    let old = match replace {
        true => query_device_programs(&dir, cgroup)?,
        false => Vec::new(),
    };
    if let Some(loaded) = &loaded {
        let mut attach = BpfProgAttach {
            target_fd: fd_u32(&dir),
            attach_bpf_fd: fd_u32(loaded),
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            ..BpfProgAttach::default()
        };
        // SAFETY: `attach` is a fully initialised `repr(C)` prefix of `union
        // bpf_attr` of the size passed, holding two open descriptors; the
        // kernel only reads it.
        let result = unsafe { bpf(BPF_PROG_ATTACH, &mut attach) };
        check("bpf(BPF_PROG_ATTACH)", Some(cgroup), result)?;
    }
    for id in old {
        let mut by_id = BpfGetFdById {
            prog_id: id,
            ..BpfGetFdById::default()
        };
        // SAFETY: `by_id` is a fully initialised `repr(C)` prefix of `union
        // bpf_attr` of the size passed; the kernel only reads it. A
        // non-negative result is a new descriptor that nothing else owns.
        let fd = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id) } {
            // Detached meanwhile.
            Err(Errno::ENOENT) => continue,
            // SAFETY: see above: the descriptor is new and owned here.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
            Err(errno) => {
                return Err(SysError::new(
                    "bpf(BPF_PROG_GET_FD_BY_ID)",
                    Some(cgroup),
                    errno,
                ))
            }
        };
        let mut detach = BpfProgAttach {
            target_fd: fd_u32(&dir),
            attach_bpf_fd: fd_u32(&fd),
            attach_type: BPF_CGROUP_DEVICE,
            ..BpfProgAttach::default()
        };
        // SAFETY: as for the attach: initialised, sized, read only.
        match unsafe { bpf(BPF_PROG_DETACH, &mut detach) } {
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(errno) => return Err(SysError::new("bpf(BPF_PROG_DETACH)", Some(cgroup), errno)),
        }
    }
    Ok(())
}

/// A descriptor of `program` loaded in the kernel: the one pinned under
/// [`BPF_PIN_DIR`] by the sha256 of its instructions if there is one (most
/// containers have the same default program, and loading one — the
/// verifier, the JIT — is most of what a device filter costs), else newly
/// loaded and pinned there for the next container. Without the BPF
/// filesystem (and not root to mount it at /sys/fs/bpf), every container
/// loads its own. The directory is root's alone (0700): only root could
/// swap a pinned program, and root can change any cgroup's filter anyway.
fn device_program(program: &[Insn]) -> Result<OwnedFd, SysError> {
    let Some(path) = pin_path(program) else {
        return load_device_program(program);
    };
    let mut get = BpfObj {
        pathname: path.as_ptr() as u64,
        ..BpfObj::default()
    };
    // SAFETY: `get` is a fully initialised `repr(C)` prefix of `union
    // bpf_attr` of the size passed; `pathname` points to a NUL-ended string
    // alive for the call, which the kernel only reads. A non-negative result
    // is a new descriptor.
    if let Ok(fd) = unsafe { bpf(BPF_OBJ_GET, &mut get) } {
        // SAFETY: the descriptor is new and nothing else owns it.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    let loaded = load_device_program(program)?;
    let mut pin = BpfObj {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd_u32(&loaded),
        ..BpfObj::default()
    };
    // SAFETY: as for the get, with an open descriptor; the kernel only
    // reads. Failing (another husk pinned it first) only costs the next
    // container a load.
    let _ = unsafe { bpf(BPF_OBJ_PIN, &mut pin) };
    Ok(loaded)
}

/// The pin path of `program` under [`BPF_PIN_DIR`], after mounting the BPF
/// filesystem and making the directory if need be; `None` where that fails.
fn pin_path(program: &[Insn]) -> Option<CString> {
    // f_type is i64, u64 or u32 depending on the libc and the architecture.
    #[allow(clippy::unnecessary_cast)]
    let is_bpffs = |path: &str| {
        nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 as u64 == BPF_FS_MAGIC)
    };
    if !is_bpffs(BPF_FS) {
        let mounted = nix::mount::mount(
            Some("bpf"),
            BPF_FS,
            Some("bpf"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        );
        if mounted.is_err() || !is_bpffs(BPF_FS) {
            return None;
        }
    }
    match nix::unistd::mkdir(BPF_PIN_DIR, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(_) => return None,
    }
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&[insn.code, insn.regs]);
        bytes.extend_from_slice(&insn.off.to_le_bytes());
        bytes.extend_from_slice(&insn.imm.to_le_bytes());
    }
    let digest = delta_updater::Digest::of(&bytes).to_string();
    let hex = digest.trim_start_matches("sha256:");
    CString::new(format!("{BPF_PIN_DIR}/dev-{}", &hex[..32])).ok()
}

/// The ids of the device programs attached to the cgroup directory `cgroup`
/// (for diagnostics and tests).
pub fn device_program_ids(cgroup: &Path) -> Result<Vec<u32>, SysError> {
    let dir = io_check("open", Some(cgroup), File::open(cgroup))?;
    query_device_programs(&dir, cgroup)
}

/// Loads `program` into the kernel and returns its descriptor.
fn load_device_program(program: &[Insn]) -> Result<OwnedFd, SysError> {
    const OP: &str = "bpf(BPF_PROG_LOAD)";
    let insn_cnt =
        u32::try_from(program.len()).map_err(|_| SysError::new(OP, None, Errno::E2BIG))?;
    let mut load = BpfProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: program.as_ptr() as u64,
        license: BPF_LICENSE.as_ptr() as u64,
        ..BpfProgLoad::default()
    };
    // SAFETY: `load` is a fully initialised `repr(C)` prefix of `union
    // bpf_attr` of the size passed; `insns` points to `insn_cnt` instructions
    // laid out as `struct bpf_insn` (see `Insn`) and `license` to a NUL-ended
    // string, both alive for the call; the kernel copies them and, with no log
    // buffer, writes nothing of ours. A non-negative result is a new descriptor.
    let fd = unsafe { bpf(BPF_PROG_LOAD, &mut load) };
    let fd = check(OP, None, fd)?;
    // SAFETY: the descriptor is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The ids of the device programs attached to the cgroup `dir`.
fn query_device_programs(dir: &File, path: &Path) -> Result<Vec<u32>, SysError> {
    let mut ids = [0u32; BPF_CGROUP_MAX_PROGS];
    let mut query = BpfProgQuery {
        target_fd: fd_u32(dir),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: BPF_CGROUP_MAX_PROGS as u32,
        ..BpfProgQuery::default()
    };
    // SAFETY: `query` is a fully initialised `repr(C)` prefix of `union
    // bpf_attr` of the size passed; `prog_ids` points to `prog_cnt` writable
    // `u32`s alive for the call, and the kernel writes at most that many ids
    // there and the count into `query`.
    let result = unsafe { bpf(BPF_PROG_QUERY, &mut query) };
    check("bpf(BPF_PROG_QUERY)", Some(path), result)?;
    let count = (query.prog_cnt as usize).min(BPF_CGROUP_MAX_PROGS);
    Ok(ids[..count].to_vec())
}

/// `bpf(cmd, attr, sizeof *attr)`.
///
/// # Safety
///
/// `attr` must be a `repr(C)` prefix of the member of `union bpf_attr` that
/// `cmd` reads, with every byte initialised, and every pointer in it valid
/// for what `cmd` does with it.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> nix::Result<libc::c_long> {
    let size = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: the caller vouches for `attr`; `size` is its size. The integer
    // arguments are passed as the types the variadic `syscall` reads.
    let result = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size) };
    Errno::result(result)
}

/// A descriptor as the `u32` `union bpf_attr` holds.
fn fd_u32(fd: &impl AsRawFd) -> u32 {
    fd.as_raw_fd() as u32
}

// Layer extraction (`image::extract`): every call is relative to a directory
// opened by descriptor, and none follows a symbolic link in the name it is
// given, so nothing an archive says can make husk write outside the layer.

/// Opens the directory `path` (not a symbolic link) for `*at` calls.
pub fn open_dir(path: &Path) -> Result<OwnedFd, SysError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = check(
        "open",
        Some(path),
        nix::fcntl::open(path, flags, Mode::empty()),
    )?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `name`, one component, in `dir`; a symbolic link or a
/// file there fails (`ELOOP`, `ENOTDIR`). `shown` names it in the error.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<OwnedFd, SysError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let opened = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, Mode::empty());
    let fd = check("open", Some(shown), opened)?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory at the relative `path` beneath `dir` in one call:
/// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, so neither `..` nor
/// any symbolic link is followed. `Ok(None)` when the kernel has no `openat2`
/// (before Linux 5.6, or a seccomp filter that refuses it): the caller then
/// walks the path one [`open_dir_at`] at a time.
pub fn open_dir_beneath(dir: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>, SysError> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    match nix::fcntl::openat2(dir.as_raw_fd(), path, how) {
        // SAFETY: openat2 returned a new descriptor that nothing else owns.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(Errno::ENOSYS | Errno::EPERM | Errno::E2BIG) => Ok(None),
        Err(errno) => Err(SysError::new("openat2", Some(path), errno)),
    }
}

/// Makes the directory `name` in `dir` with `mode` (less the umask).
pub fn mkdir_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode: u32,
    shown: &Path,
) -> Result<(), SysError> {
    let made = nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(mode));
    check("mkdir", Some(shown), made)
}

/// Creates the regular file `name` in `dir` for writing; fails if anything,
/// a symbolic link included, is there already.
pub fn create_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<File, SysError> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = Mode::S_IRUSR | Mode::S_IWUSR;
    let opened = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, mode);
    let fd = check("create", Some(shown), opened)?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Makes the symbolic link `name` in `dir` pointing at `target` (never resolved).
pub fn symlink_at(
    target: &OsStr,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
) -> Result<(), SysError> {
    let made = nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name);
    check("symlink", Some(shown), made)
}

/// Makes `name` in `dir` a hard link to `source` in `source_dir`; a symbolic
/// link as `source` is linked itself, not followed.
pub fn hardlink_at(
    source_dir: BorrowedFd<'_>,
    source: &OsStr,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
) -> Result<(), SysError> {
    let made = nix::unistd::linkat(
        Some(source_dir.as_raw_fd()),
        source,
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::empty(),
    );
    check("link", Some(shown), made)
}

/// Makes the node `name` in `dir`, mode 0 until [`chmod_new_node_at`].
pub fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: NodeKind,
    (major, minor): (u32, u32),
    shown: &Path,
) -> Result<(), SysError> {
    let kind_flag = match kind {
        NodeKind::Fifo => SFlag::S_IFIFO,
        NodeKind::Char => SFlag::S_IFCHR,
        NodeKind::Block => SFlag::S_IFBLK,
    };
    let dev = nix::sys::stat::makedev(major.into(), minor.into());
    let made = nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, kind_flag, Mode::empty(), dev);
    check("mknod", Some(shown), made)
}

/// Sets the mode of the node `name` in `dir` exactly, whatever the umask.
/// Follows `name` if it is a symbolic link (Linux's fchmodat cannot refuse to
/// without /proc before 6.6), so only for a node the caller just made with
/// [`mknod_at`] in a directory no one else writes to.
pub fn chmod_new_node_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode: u32,
    shown: &Path,
) -> Result<(), SysError> {
    let chmod = nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    );
    check("chmod", Some(shown), chmod)
}

/// Sets the owner of the open file or directory `fd`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32, shown: &Path) -> Result<(), SysError> {
    let result = nix::unistd::fchown(
        fd.as_raw_fd(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    );
    check("chown", Some(shown), result)
}

/// Sets the access and modification times of the open `fd` to `mtime`.
pub fn futimens(fd: BorrowedFd<'_>, mtime: i64, shown: &Path) -> Result<(), SysError> {
    let time = time_spec(mtime);
    let result = nix::sys::stat::futimens(fd.as_raw_fd(), &time, &time);
    check("futimens", Some(shown), result)
}

/// A second descriptor of `fd`'s open file, close-on-exec.
pub fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, SysError> {
    io_check("dup", None, fd.try_clone_to_owned())
}

/// Sets the mode of the open file or directory `fd` exactly.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32, shown: &Path) -> Result<(), SysError> {
    let result = nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode));
    check("chmod", Some(shown), result)
}

/// Lets group `gid` read `path`, which must not be a symbolic link: its
/// group becomes `gid`, and its mode gains group read (a file) or group
/// read, search and setgid (a directory, so that what is made in it later
/// gets the group too).
pub fn share_with_group(path: &Path, gid: u32) -> Result<(), SysError> {
    let result = nix::unistd::fchownat(
        None,
        path,
        None,
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    check("chown", Some(path), result)?;
    let stat = check("lstat", Some(path), nix::sys::stat::lstat(path))?;
    let add: nix::libc::mode_t =
        match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => 0o2050,
            SFlag::S_IFREG => 0o040,
            _ => return Ok(()),
        };
    let mode = Mode::from_bits_truncate((stat.st_mode & 0o7777) | add);
    let result = nix::sys::stat::fchmodat(
        None,
        path,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    );
    check("chmod", Some(path), result)
}

/// Sets the owner of `name` in `dir`, of a symbolic link itself.
pub fn chown_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    uid: u32,
    gid: u32,
    shown: &Path,
) -> Result<(), SysError> {
    let result = nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    check("chown", Some(shown), result)
}

/// Sets the access and modification times of `name` in `dir` to `mtime`
/// (seconds since the epoch), of a symbolic link itself.
pub fn set_mtime_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mtime: i64,
    shown: &Path,
) -> Result<(), SysError> {
    let time = time_spec(mtime);
    let result = nix::sys::stat::utimensat(
        Some(dir.as_raw_fd()),
        name,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
    check("utimensat", Some(shown), result)
}

/// `secs` after the epoch; a time before it is the epoch (libc's `time_t`
/// differs between targets, so nix converts from a `Duration`).
fn time_spec(secs: i64) -> nix::sys::time::TimeSpec {
    let secs = u64::try_from(secs).unwrap_or(0);
    nix::sys::time::TimeSpec::from_duration(std::time::Duration::from_secs(secs))
}

/// Sets the extended attribute `name` of the open file or directory `fd`.
/// libc directly: nix has no xattr calls.
pub fn set_xattr(
    fd: BorrowedFd<'_>,
    name: &CStr,
    value: &[u8],
    shown: &Path,
) -> Result<(), SysError> {
    // SAFETY: `name` is NUL-terminated and `value` is valid for `value.len()`
    // bytes for the duration of the call; the kernel copies both and keeps no
    // pointer. `fd` is open for the call's duration (it is borrowed).
    let result = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check("setxattr", Some(shown), Errno::result(result).map(drop))
}

/// What is at `name` in `dir`, without following a symbolic link: `None` if nothing.
pub fn kind_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<Option<SFlag>, SysError> {
    let stat = nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    match stat {
        Ok(stat) => Ok(Some(SFlag::from_bits_truncate(
            stat.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(SysError::new("stat", Some(shown), errno)),
    }
}

/// Removes `name` from `dir`: an empty directory if `directory`, else any other entry.
pub fn unlink_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    directory: bool,
    shown: &Path,
) -> Result<(), SysError> {
    let flag = if directory {
        nix::unistd::UnlinkatFlags::RemoveDir
    } else {
        nix::unistd::UnlinkatFlags::NoRemoveDir
    };
    let result = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, flag);
    check("unlink", Some(shown), result)
}

/// Writes every dirty page of the file system holding `fd` to disk.
pub fn syncfs(fd: BorrowedFd<'_>, shown: &Path) -> Result<(), SysError> {
    check("syncfs", Some(shown), nix::unistd::syncfs(fd.as_raw_fd()))
}

/// An exclusive `flock(2)` on an open file, released when dropped.
pub type FileLock = nix::fcntl::Flock<File>;

/// Waits for and takes an exclusive `flock(2)` on `file` (opened from `path`).
pub fn lock_exclusive(file: File, path: &Path) -> Result<FileLock, SysError> {
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| SysError::new("flock", Some(path), errno))
}

/// Whether husk runs with effective user id 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Mounts an overlay at `target` with `options` (`lowerdir=…,upperdir=…,workdir=…`).
pub fn mount_overlay(target: &Path, options: &str) -> Result<(), SysError> {
    let result = nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options),
    );
    check("mount overlay", Some(target), result)
}

/// The value of extended attribute `name` of `path` (not following a final
/// symbolic link), or `None` if it has none. At most 64 bytes are read: for
/// markers such as `trusted.overlay.opaque`. libc directly: nix has no xattr calls.
pub fn get_xattr(path: &Path, name: &CStr) -> Result<Option<Vec<u8>>, SysError> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SysError::new("getxattr", Some(path), Errno::EINVAL))?;
    let mut value = [0u8; 64];
    // SAFETY: `c_path` and `name` are NUL-terminated and `value` is valid for
    // `value.len()` bytes for the duration of the call; the kernel writes at
    // most that many bytes and keeps no pointer.
    let result = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    match Errno::result(result) {
        Ok(len) => Ok(Some(value[..len as usize].to_vec())),
        Err(Errno::ENODATA | Errno::ENOTSUP) => Ok(None),
        Err(errno) => Err(SysError::new("getxattr", Some(path), errno)),
    }
}

/// Makes the node `path` (a device or fifo) with `mode` and device number
/// `rdev` (as `st_rdev` gives it), whatever the umask.
pub fn mknod(path: &Path, kind: NodeKind, rdev: u64, mode: u32) -> Result<(), SysError> {
    let kind_flag = match kind {
        NodeKind::Fifo => SFlag::S_IFIFO,
        NodeKind::Char => SFlag::S_IFCHR,
        NodeKind::Block => SFlag::S_IFBLK,
    };
    #[allow(
        clippy::useless_conversion,
        reason = "dev_t is u64 on most targets, u32 on some"
    )]
    let made = nix::sys::stat::mknod(path, kind_flag, Mode::empty(), rdev.try_into().unwrap_or(0));
    check("mknod", Some(path), made)?;
    io_check(
        "chmod",
        Some(path),
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777)),
    )
}

/// Starts a new session with the calling process as its leader, without a
/// controlling terminal: a terminal closing no longer sends it SIGHUP.
pub fn new_session() -> Result<(), SysError> {
    check("setsid", None, nix::unistd::setsid()).map(drop)
}

/// Points descriptors 0, 1 and 2 at `/dev/null` for good.
pub fn stdio_to_null() -> Result<(), SysError> {
    let null = Path::new("/dev/null");
    let file = io_check(
        "open",
        Some(null),
        File::options().read(true).write(true).open(null),
    )?;
    for target in 0..3 {
        check(
            "dup2",
            Some(null),
            nix::unistd::dup2(file.as_raw_fd(), target),
        )?;
    }
    Ok(())
}

/// Waits until the child `pid` has ended, reaping every other child that
/// ends meanwhile (a child subreaper inherits orphans), and returns its
/// status as [`wait`] does; `None` if `pid` is not (or no longer) a child.
pub fn wait_reaping(pid: Pid) -> Result<Option<u8>, SysError> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), None) {
            Ok(status) if status.pid() == Some(pid) => {
                if let Some(code) = exit_code(status) {
                    return Ok(Some(code));
                }
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => return Ok(None),
            Err(errno) => return Err(SysError::new("waitpid", None, errno)),
        }
    }
}

/// Detaches the mount at `target`; nothing mounted there is not an error.
pub fn unmount(target: &Path) -> Result<(), SysError> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
        result => check("umount", Some(target), result),
    }
}

// What `husk daemon` needs: its signals as a descriptor, poll(2), reaping any
// child, and its containers' standard descriptors.

/// A descriptor that becomes readable when one of the blocked signals it was
/// made for is pending; reading it takes the signal.
pub struct SignalFd(nix::sys::signalfd::SignalFd);

impl SignalFd {
    /// Blocks `signals` and makes a non-blocking, close-on-exec signalfd for them.
    pub fn new(signals: &SigSet) -> Result<Self, SysError> {
        use nix::sys::signalfd::SfdFlags;
        block_signals(signals)?;
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        let fd = nix::sys::signalfd::SignalFd::with_flags(signals, flags);
        Ok(Self(check("signalfd", None, fd)?))
    }

    /// Takes one pending signal, if there is one.
    pub fn take(&self) -> Result<Option<Signal>, SysError> {
        let info = check("read signalfd", None, self.0.read_signal())?;
        Ok(info.and_then(|info| Signal::try_from(info.ssi_signo as i32).ok()))
    }
}

impl std::os::fd::AsFd for SignalFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Waits until one of `fds` is readable (or hung up), a signal arrives, or
/// `timeout` passes (`None`: no limit); says which are ready.
pub fn poll_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> Result<Vec<bool>, SysError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    // Rounded up, so a timer is never woken for a millisecond early.
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => {
            let ms = t.as_micros().div_ceil(1000).min(i32::MAX as u128);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    };
    match nix::poll::poll(&mut polled, timeout) {
        Err(Errno::EINTR) => return Ok(vec![false; fds.len()]),
        result => check("poll", None, result)?,
    };
    Ok(polled
        .iter()
        .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
        .collect())
}

/// How a child that was reaped ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The child.
    pub pid: Pid,
    /// Its exit code, if it exited.
    pub code: Option<u8>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

/// Reaps one child that has ended, if there is one (`waitpid(-1, WNOHANG)`).
pub fn reap_any() -> Result<Option<Reaped>, SysError> {
    loop {
        let status = nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG));
        return match status {
            Err(Errno::ECHILD) | Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(WaitStatus::Exited(pid, code)) => Ok(Some(Reaped {
                pid,
                code: Some(code as u8),
                signal: None,
            })),
            Ok(WaitStatus::Signaled(pid, signal, _)) => Ok(Some(Reaped {
                pid,
                code: None,
                signal: Some(signal as i32),
            })),
            // Stopped and continued children are not ended.
            Ok(_) => continue,
            Err(errno) => Err(SysError::new("waitpid", None, errno)),
        };
    }
}

/// Makes reads of `fd` return at once when there is nothing to read.
pub fn set_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> Result<(), SysError> {
    let flags = check(
        "fcntl(F_GETFL)",
        None,
        fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL),
    )?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    check(
        "fcntl(F_SETFL)",
        None,
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)),
    )
    .map(drop)
}

/// This process's descriptors 0, 1 and 2 as they were before
/// [`redirect_stdio`], put back on drop.
pub struct SavedStdio([OwnedFd; 3]);

/// Points descriptors 0, 1 and 2 at `stdin`, `stdout` and `stderr` until the
/// returned guard drops: what a child forked meanwhile inherits. The caller
/// must be single-threaded.
pub fn redirect_stdio(
    stdin: std::os::fd::BorrowedFd<'_>,
    stdout: std::os::fd::BorrowedFd<'_>,
    stderr: std::os::fd::BorrowedFd<'_>,
) -> Result<SavedStdio, SysError> {
    use std::os::fd::AsFd;
    let save = |fd: std::os::fd::BorrowedFd<'_>| io_check("dup", None, fd.try_clone_to_owned());
    let saved = SavedStdio([
        save(io::stdin().as_fd())?,
        save(io::stdout().as_fd())?,
        save(io::stderr().as_fd())?,
    ]);
    io::stdout().flush().ok();
    for (fd, target) in [stdin, stdout, stderr].into_iter().zip(0..) {
        check("dup2", None, nix::unistd::dup2(fd.as_raw_fd(), target))?;
    }
    Ok(saved)
}

impl Drop for SavedStdio {
    fn drop(&mut self) {
        for (fd, target) in self.0.iter().zip(0..) {
            // Nothing to do if it fails: the descriptor stays the container's.
            let _ = nix::unistd::dup2(fd.as_raw_fd(), target);
        }
    }
}

/// Joins the network namespace of process `pid` (for a health probe, in a
/// forked child).
pub fn join_net_namespace(proc_root: &Path, pid: Pid) -> Result<(), SysError> {
    let path = proc_root.join(pid.as_raw().to_string()).join("ns/net");
    let file = io_check("open", Some(&path), File::open(&path))?;
    setns(&file, CloneFlags::CLONE_NEWNET, &path)
}

/// Bytes free (for an unprivileged user) and in total on the filesystem
/// holding `path` (`statvfs(2)`).
#[allow(
    clippy::useless_conversion,
    reason = "c_ulong and fsblkcnt_t are u64 on 64-bit targets only"
)]
pub fn disk_space(path: &Path) -> Result<(u64, u64), SysError> {
    let stat = check("statvfs", Some(path), nix::sys::statvfs::statvfs(path))?;
    let unit = u64::from(stat.fragment_size()).max(1);
    Ok((
        u64::from(stat.blocks_available()).saturating_mul(unit),
        u64::from(stat.blocks()).saturating_mul(unit),
    ))
}

/// The id of the group `name` (`getgrnam_r(3)`, through nix), if it exists.
pub fn group_id(name: &str) -> Result<Option<u32>, SysError> {
    let group = check_named("getgrnam", "group", nix::unistd::Group::from_name(name))?;
    Ok(group.map(|g| g.gid.as_raw()))
}

/// The name of group `gid` (`getgrgid_r(3)`), if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// Takes an exclusive lock on `file` (opened from `path`) without waiting;
/// `None` if another open file description holds one.
pub fn try_lock(file: File, path: &Path) -> Result<Option<FileLock>, SysError> {
    use nix::fcntl::{Flock, FlockArg};
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(SysError::new("flock", Some(path), errno)),
    }
}
