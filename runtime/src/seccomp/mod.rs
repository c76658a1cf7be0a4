//! `linux.seccomp`: system call filters, compiled to classic BPF in pure Rust.
//!
//! Three layers, each converted once:
//! - [`WireSeccomp`] mirrors the JSON object of the runtime spec (bounded, see
//!   `wire.rs`);
//! - [`Profile`] is the validated profile: actions, architectures and rules
//!   with their system calls resolved;
//! - [`Filter`] is the BPF program for one native architecture, ready for
//!   [`crate::sys::install_seccomp`].
//!
//! # Semantics (those of runc with libseccomp, unless said otherwise)
//!
//! - **Names.** A name is looked up per architecture: a name an architecture
//!   lacks (`open` on aarch64, `socketcall` on x86_64) is skipped there, as
//!   libseccomp does, because profiles such as Docker's list the names of every
//!   architecture in one rule. A name that is a system call of *no* architecture
//!   libseccomp knows (a typo) is an error naming it. This is looser than "unknown
//!   on every selected architecture": Docker's and podman's profiles for riscv64
//!   select only riscv64 and still name `open`, `stat` and friends.
//! - **Architectures.** The filter always covers the native architecture. Listed
//!   architectures that cannot run on the native kernel (aarch64 on an x86_64
//!   host) are left out of the program; a system call from any architecture not
//!   covered kills the process (`SECCOMP_RET_KILL_PROCESS`). On x86_64, x32 calls
//!   (number with bit 30 set) are filtered with the x32 numbers if
//!   `SCMP_ARCH_X32` is listed and kill the process otherwise.
//! - **Rules.** A rule whose action is the default action is skipped, as runc
//!   does. For one system call, a rule without `args` wins over rules with
//!   `args` (libseccomp's behaviour); if several rules without `args` name it,
//!   the first one counts. Rules with `args` are tried in profile order and the
//!   first whose comparisons all hold decides; several comparisons in one rule
//!   may test the same argument.
//! - **Arguments** are compared as 64-bit values. On the 32-bit ABIs (arm, x86)
//!   the kernel zero-extends arguments, so their upper half is known to be zero
//!   and a value above `u32::MAX` compares accordingly (`EQ` never holds).
//! - `errnoRet`/`defaultErrnoRet` default to `EPERM`; on an action other than
//!   `SCMP_ACT_ERRNO` or `SCMP_ACT_TRACE` they are an error, as the spec requires.
//!
//! Not supported, each an error naming the property: `SCMP_ACT_NOTIFY` and
//! `listenerPath`/`listenerMetadata` (no seccomp agent), the flags
//! `SECCOMP_FILTER_FLAG_TSYNC` and `_NEW_LISTENER`, `_TSYNC_ESRCH`,
//! `_WAIT_KILLABLE_RECV`, and architectures other than x86_64, x86, x32,
//! aarch64, arm and riscv64.

mod bpf;
#[cfg(test)]
mod interp;
mod syscalls;
mod tables;
mod wire;

use std::fmt;

use serde_json_core::str::EscapedStr;

pub use bpf::{SockFilter, MAX_INSTRUCTIONS};
pub use wire::WireSeccomp;

use crate::wire::{unescape_with_nul, Field, WireError};
use syscalls::Syscall;
use wire::{WireArg, WireSyscall};

/// Most entries in `syscalls` (Docker's and podman's profiles have about 30).
pub const MAX_SYSCALL_RULES: usize = 64;
/// Most entries in one rule's `names` (Docker's longest has about 370; the
/// tables know [`KNOWN_SYSCALLS`] names).
pub const MAX_NAMES_PER_RULE: usize = 512;
/// Most entries in one rule's `args` (a system call has 6 arguments).
pub const MAX_ARGS_PER_RULE: usize = 6;
/// Most entries in `architectures` (libseccomp knows 20).
pub const MAX_ARCHITECTURES: usize = 16;
/// Most entries in `flags` (the kernel has 6).
pub const MAX_FLAGS: usize = 8;
/// Longest system call name looked up, in bytes (the longest known has 28).
pub const MAX_SYSCALL_NAME: usize = 64;
/// Largest `errnoRet` for `SCMP_ACT_ERRNO`: the kernel's `MAX_ERRNO`.
pub const MAX_ERRNO: u32 = 4095;
/// How many system call names the tables know, on all architectures.
pub const KNOWN_SYSCALLS: usize = tables::COUNT;

/// `SECCOMP_FILTER_FLAG_LOG`: log every action but `SECCOMP_RET_ALLOW`.
pub const FILTER_FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: keep speculative store bypass mitigation off.
pub const FILTER_FLAG_SPEC_ALLOW: u32 = 1 << 2;

const EPERM: u16 = 1;

/// The JSON text of husk's default profile: a deny-list, see [`default_profile`].
const DEFAULT_PROFILE: &str = include_str!("default.json");

/// The profile `husk spec` writes: a deny-list. Everything is allowed except
/// the dangerous system calls that Docker's default profile (an allow-list)
/// denies a container without extra capabilities; they fail with `EPERM`. It
/// lists all six architectures; [`Profile::compile`] keeps those the native
/// kernel can run. The groups, one or more rules each in `default.json`:
///
/// - **Kernel code and boot**: `kexec_load`, `kexec_file_load`, `init_module`,
///   `finit_module`, `delete_module`, the obsolete `create_module`,
///   `get_kernel_syms`, `query_module`, and `reboot`.
/// - **Swap**: `swapon`, `swapoff`.
/// - **Mounts**: `mount`, `umount`, `umount2`, `pivot_root`, `mount_setattr` and
///   the new mount API: `open_tree`, `open_tree_attr`, `move_mount`, `fsopen`,
///   `fsconfig`, `fsmount`, `fspick`.
/// - **Namespaces**: `unshare`, `setns`, and `clone` with any of `CLONE_NEWNS`,
///   `NEWUTS`, `NEWIPC`, `NEWUSER`, `NEWPID`, `NEWNET`, `NEWCGROUP` in its flags
///   (argument 0 on all six ABIs), one rule per flag. `clone3` fails with
///   `ENOSYS`, since its flags are in memory a filter cannot read; glibc and
///   musl then fall back to `clone`.
/// - **Host identity**: `sethostname`, `setdomainname` (as Docker without
///   `CAP_SYS_ADMIN`).
/// - **Tracing and other processes' memory**: `ptrace`, `process_vm_readv`,
///   `process_vm_writev`, `kcmp`, `pidfd_getfd`, `process_madvise`.
/// - **Kernel interfaces with a history of exploits or host-wide effect**:
///   `bpf`, `perf_event_open`, `userfaultfd`, `lookup_dcookie`, `fanotify_init`,
///   `quotactl`, `quotactl_fd`, `syslog`, `acct`, `vhangup`, the keyring
///   (`keyctl`, `add_key`, `request_key`: keys are not namespaced), and
///   `open_by_handle_at` (the "shocker" escape; `name_to_handle_at` stays
///   allowed, as in Docker).
/// - **Clock**: `settimeofday`, `stime`, `clock_settime`, `clock_settime64`.
///   `adjtimex` and `clock_adjtime` stay allowed as in Docker: glibc's
///   `ntp_gettime` reads the clock with them, and the kernel requires
///   `CAP_SYS_TIME` for changes.
/// - **Raw I/O and x86 legacy**: `iopl`, `ioperm`, `vm86`, `vm86old`, `uselib`,
///   `nfsservctl`, `_sysctl`.
/// - **NUMA memory policy** (Docker allows it only with `CAP_SYS_NICE`): `mbind`,
///   `get_mempolicy`, `set_mempolicy`, `set_mempolicy_home_node`,
///   `migrate_pages`, `move_pages`.
/// - **`personality`** except the values Docker allows: 0 (`PER_LINUX`), 8
///   (`PER_LINUX32`), 0x20000 (`UNAME26`), 0x20008, and 0xffffffff (query).
/// - **`socket`** with `AF_VSOCK` (40), which reaches the hypervisor.
///
/// A deny-list allows system calls newer than itself; Docker's allow-list, with
/// `SCMP_ACT_ERRNO` as its default, does not.
pub fn default_profile() -> &'static str {
    DEFAULT_PROFILE
}

/// Validates the JSON text of a `linux.seccomp` object.
pub fn parse(json: &[u8]) -> Result<Profile, SeccompError> {
    let (wire, _) =
        serde_json_core::from_slice::<WireSeccomp<'_>>(json).map_err(SeccompError::Json)?;
    Profile::try_from(wire)
}

/// A validated `linux.seccomp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    default_action: Action,
    /// Listed architectures, in [`Arch::ALL`] order, without repeats.
    architectures: Vec<Arch>,
    flags: u32,
    rules: Vec<Rule>,
}

/// A compiled filter for one native architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    program: Vec<SockFilter>,
    flags: u32,
}

/// The architectures (ABIs) husk can filter: `SCMP_ARCH_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    /// `SCMP_ARCH_X86_64`
    X86_64,
    /// `SCMP_ARCH_X86`: i386, also as a compat ABI of x86_64 kernels.
    X86,
    /// `SCMP_ARCH_X32`: the x32 ABI of x86_64 kernels.
    X32,
    /// `SCMP_ARCH_AARCH64`
    Aarch64,
    /// `SCMP_ARCH_ARM`: EABI, also as a compat ABI of aarch64 kernels.
    Arm,
    /// `SCMP_ARCH_RISCV64`
    Riscv64,
}

/// What a filter does with a system call: `SCMP_ACT_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `SCMP_ACT_KILL`, `SCMP_ACT_KILL_THREAD`: kill the calling thread.
    KillThread,
    /// `SCMP_ACT_KILL_PROCESS`: kill the process.
    KillProcess,
    /// `SCMP_ACT_TRAP`: send `SIGSYS`.
    Trap,
    /// `SCMP_ACT_ERRNO`: fail with this errno, without running the call.
    Errno(u16),
    /// `SCMP_ACT_TRACE`: notify a ptrace tracer with this value.
    Trace(u16),
    /// `SCMP_ACT_ALLOW`
    Allow,
    /// `SCMP_ACT_LOG`: allow and log.
    Log,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// Never empty.
    syscalls: Vec<Syscall>,
    action: Action,
    /// All must hold for the rule to apply.
    args: Vec<ArgCmp>,
}

/// One entry of `syscalls[].args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ArgCmp {
    /// 0 to 5.
    index: u8,
    cmp: Cmp,
}

/// A comparison of an argument with constants: `SCMP_CMP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Ne(u64),
    Lt(u64),
    Le(u64),
    Eq(u64),
    Ge(u64),
    Gt(u64),
    /// `arg & mask == value`; OCI's `value` is the mask, `valueTwo` the value.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

/// Why a `linux.seccomp` was rejected or could not be compiled.
#[derive(Debug)]
pub enum SeccompError {
    /// The text is not JSON of the expected shape.
    Json(serde_json_core::de::Error),
    /// A required property is absent.
    Missing(Field),
    /// A property husk does not implement is present.
    Unsupported(Field),
    /// A property has a value husk does not implement.
    UnsupportedValue {
        /// The property.
        field: Field,
        /// The value.
        value: String,
    },
    /// A name in `syscalls[].names` is a system call on no architecture.
    UnknownSyscall {
        /// The entry of `names`.
        field: Field,
        /// The name.
        name: String,
    },
    /// An array or string is over its capacity, or a string is malformed.
    Wire(WireError),
    /// A property has an invalid value.
    Invalid {
        /// The property.
        field: Field,
        /// What is wrong, as a predicate: "must be at most 5".
        reason: &'static str,
    },
    /// The compiled program is longer than the kernel accepts.
    ProgramTooLong {
        /// The architecture it was compiled for.
        native: Arch,
        /// Its length.
        instructions: usize,
    },
}

impl Profile {
    /// Compiles the filter for a kernel of architecture `native`, usually
    /// [`Arch::native`].
    pub fn compile(&self, native: Arch) -> Result<Filter, SeccompError> {
        Ok(Filter {
            program: bpf::compile(self, native)?,
            flags: self.flags,
        })
    }

    /// What happens to a system call no rule matches.
    pub fn default_action(&self) -> Action {
        self.default_action
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits of `flags`.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The architectures a filter covers on a kernel of architecture `native`:
    /// `native` first, then the listed ones that can run there.
    fn covered(&self, native: Arch) -> Vec<Arch> {
        let mut arches = vec![native];
        arches.extend(
            self.architectures
                .iter()
                .copied()
                .filter(|&arch| arch != native && arch.runs_on(native)),
        );
        arches
    }
}

impl Filter {
    /// The BPF program, at most [`MAX_INSTRUCTIONS`] long.
    pub fn program(&self) -> &[SockFilter] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits to install it with.
    pub fn flags(&self) -> u32 {
        self.flags
    }
}

impl Arch {
    /// All of them.
    pub const ALL: [Self; 6] = [
        Self::X86_64,
        Self::X86,
        Self::X32,
        Self::Aarch64,
        Self::Arm,
        Self::Riscv64,
    ];

    /// The architecture husk was compiled for, if it is one of these.
    pub const fn native() -> Option<Self> {
        if cfg!(all(target_arch = "x86_64", target_pointer_width = "64")) {
            Some(Self::X86_64)
        } else if cfg!(target_arch = "x86_64") {
            Some(Self::X32)
        } else if cfg!(target_arch = "x86") {
            Some(Self::X86)
        } else if cfg!(target_arch = "aarch64") {
            Some(Self::Aarch64)
        } else if cfg!(target_arch = "arm") {
            Some(Self::Arm)
        } else if cfg!(target_arch = "riscv64") {
            Some(Self::Riscv64)
        } else {
            None
        }
    }

    /// The name in `linux.seccomp.architectures`.
    pub fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "SCMP_ARCH_X86_64",
            Self::X86 => "SCMP_ARCH_X86",
            Self::X32 => "SCMP_ARCH_X32",
            Self::Aarch64 => "SCMP_ARCH_AARCH64",
            Self::Arm => "SCMP_ARCH_ARM",
            Self::Riscv64 => "SCMP_ARCH_RISCV64",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|arch| arch.name() == name)
    }

    /// `seccomp_data.arch`: the `AUDIT_ARCH_*` value. x32 shares x86_64's.
    fn audit(self) -> u32 {
        const LE: u32 = 0x4000_0000;
        const BITS64: u32 = 0x8000_0000;
        match self {
            Self::X86_64 | Self::X32 => 62 | BITS64 | LE,
            Self::X86 => 3 | LE,
            Self::Aarch64 => 183 | BITS64 | LE,
            Self::Arm => 40 | LE,
            Self::Riscv64 => 243 | BITS64 | LE,
        }
    }

    /// Whether system call arguments are 64 bits wide (else zero-extended 32).
    fn wide_args(self) -> bool {
        !matches!(self, Self::X86 | Self::Arm)
    }

    /// Whether a process of this ABI can run on a kernel of architecture `native`.
    fn runs_on(self, native: Self) -> bool {
        let family = |arch| match arch {
            Self::X86_64 | Self::X86 | Self::X32 => 0,
            Self::Aarch64 | Self::Arm => 1,
            Self::Riscv64 => 2,
        };
        match native {
            // A 32-bit arm kernel runs no aarch64 code.
            Self::Arm => self == Self::Arm,
            _ => family(self) == family(native),
        }
    }

    /// The column of this ABI in the generated tables (see gen-tables.py).
    fn column(self) -> usize {
        match self {
            Self::X86_64 => 0,
            Self::X32 => 1,
            Self::X86 => 2,
            Self::Aarch64 => 3,
            Self::Arm => 4,
            Self::Riscv64 => 5,
        }
    }
}

impl Action {
    /// The filter's return value: `SECCOMP_RET_*` and its data.
    pub const fn ret(self) -> u32 {
        match self {
            Self::KillThread => 0,
            Self::KillProcess => 0x8000_0000,
            Self::Trap => 0x0003_0000,
            Self::Errno(errno) => 0x0005_0000 | errno as u32,
            Self::Trace(data) => 0x7ff0_0000 | data as u32,
            Self::Log => 0x7ffc_0000,
            Self::Allow => 0x7fff_0000,
        }
    }
}

impl Cmp {
    /// Whether `arg` satisfies the comparison (what the compiled code computes).
    #[cfg(test)]
    fn holds(self, arg: u64) -> bool {
        match self {
            Self::Ne(v) => arg != v,
            Self::Lt(v) => arg < v,
            Self::Le(v) => arg <= v,
            Self::Eq(v) => arg == v,
            Self::Ge(v) => arg >= v,
            Self::Gt(v) => arg > v,
            Self::MaskedEq { mask, value } => arg & mask == value,
        }
    }
}

impl TryFrom<WireSeccomp<'_>> for Profile {
    type Error = SeccompError;

    fn try_from(wire: WireSeccomp<'_>) -> Result<Self, SeccompError> {
        if wire.listener_path.is_some() {
            let field = Field::new("linux.seccomp.listenerPath");
            return Err(SeccompError::Unsupported(field));
        }
        if wire.listener_metadata.is_some() {
            let field = Field::new("linux.seccomp.listenerMetadata");
            return Err(SeccompError::Unsupported(field));
        }
        let action_field = Field::new("linux.seccomp.defaultAction");
        let default_action = convert_action(
            action_field,
            required(action_field, wire.default_action)?,
            Field::new("linux.seccomp.defaultErrnoRet"),
            wire.default_errno_ret,
        )?;

        let mut architectures = Vec::new();
        let field = Field::new("linux.seccomp.architectures");
        let names = wire.architectures.unwrap_or_default().into_items(field)?;
        for (i, name) in names.into_iter().enumerate() {
            let name = unescape(field.at(i), name)?;
            let arch = Arch::from_name(&name).ok_or(SeccompError::UnsupportedValue {
                field: field.at(i),
                value: name,
            })?;
            architectures.push(arch);
        }
        architectures.sort_unstable();
        architectures.dedup();

        let mut flags = 0;
        let field = Field::new("linux.seccomp.flags");
        let names = wire.flags.unwrap_or_default().into_items(field)?;
        for (i, name) in names.into_iter().enumerate() {
            flags |= match unescape(field.at(i), name)?.as_str() {
                "SECCOMP_FILTER_FLAG_LOG" => FILTER_FLAG_LOG,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FILTER_FLAG_SPEC_ALLOW,
                other => {
                    return Err(SeccompError::UnsupportedValue {
                        field: field.at(i),
                        value: other.into(),
                    })
                }
            };
        }

        let field = Field::new("linux.seccomp.syscalls");
        let rules = wire
            .syscalls
            .unwrap_or_default()
            .into_items(field)?
            .into_iter()
            .enumerate()
            .map(|(i, rule)| convert_rule(field.at(i), rule))
            .collect::<Result<_, _>>()?;

        Ok(Self {
            default_action,
            architectures,
            flags,
            rules,
        })
    }
}

fn convert_rule(field: Field, wire: WireSyscall<'_>) -> Result<Rule, SeccompError> {
    let names_field = field.member("names");
    let names = required(names_field, wire.names)?;
    if let Some((i, name)) = names.unknown {
        return Err(SeccompError::UnknownSyscall {
            field: names_field.at(i),
            name: unescape(names_field.at(i), name)?,
        });
    }
    if names.len > MAX_NAMES_PER_RULE {
        return Err(SeccompError::Wire(WireError::TooMany {
            field: names_field,
            max: MAX_NAMES_PER_RULE,
        }));
    }
    if names.syscalls.is_empty() {
        return Err(invalid(names_field, "must not be empty"));
    }

    let action_field = field.member("action");
    let action = convert_action(
        action_field,
        required(action_field, wire.action)?,
        field.member("errnoRet"),
        wire.errno_ret,
    )?;

    let args_field = field.member("args");
    let args = wire
        .args
        .unwrap_or_default()
        .into_items(args_field)?
        .into_iter()
        .enumerate()
        .map(|(i, arg)| convert_arg(args_field.at(i), arg))
        .collect::<Result<_, _>>()?;

    Ok(Rule {
        syscalls: names.syscalls.to_vec(),
        action,
        args,
    })
}

fn convert_arg(field: Field, wire: WireArg<'_>) -> Result<ArgCmp, SeccompError> {
    let index_field = field.member("index");
    let index = required(index_field, wire.index)?;
    let index = u8::try_from(index)
        .ok()
        .filter(|&i| i <= 5)
        .ok_or(invalid(index_field, "must be at most 5"))?;
    let value = required(field.member("value"), wire.value)?;
    let op_field = field.member("op");
    let op = unescape(op_field, required(op_field, wire.op)?)?;
    let value_two = wire.value_two.unwrap_or(0);
    let cmp = match op.as_str() {
        "SCMP_CMP_MASKED_EQ" => Cmp::MaskedEq {
            mask: value,
            value: value_two,
        },
        // Generators write `"valueTwo": 0` into every comparison (podman does).
        _ if value_two != 0 => {
            return Err(invalid(
                field.member("valueTwo"),
                "applies only to SCMP_CMP_MASKED_EQ",
            ))
        }
        "SCMP_CMP_NE" => Cmp::Ne(value),
        "SCMP_CMP_LT" => Cmp::Lt(value),
        "SCMP_CMP_LE" => Cmp::Le(value),
        "SCMP_CMP_EQ" => Cmp::Eq(value),
        "SCMP_CMP_GE" => Cmp::Ge(value),
        "SCMP_CMP_GT" => Cmp::Gt(value),
        _ => {
            return Err(SeccompError::UnsupportedValue {
                field: op_field,
                value: op,
            })
        }
    };
    Ok(ArgCmp { index, cmp })
}

/// An action and its `errnoRet` (`errno_field`).
fn convert_action(
    field: Field,
    name: EscapedStr<'_>,
    errno_field: Field,
    errno: Option<u32>,
) -> Result<Action, SeccompError> {
    let name = unescape(field, name)?;
    let data = |max: u32, reason| match errno {
        None => Ok(EPERM),
        Some(errno) if errno <= max => Ok(errno as u16),
        Some(_) => Err(invalid(errno_field, reason)),
    };
    let action = match name.as_str() {
        "SCMP_ACT_ERRNO" => return data(MAX_ERRNO, "must be at most 4095").map(Action::Errno),
        "SCMP_ACT_TRACE" => {
            return data(u16::MAX.into(), "must be at most 65535").map(Action::Trace)
        }
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_LOG" => Action::Log,
        _ => return Err(SeccompError::UnsupportedValue { field, value: name }),
    };
    if errno.is_some() {
        return Err(invalid(
            errno_field,
            "applies only to SCMP_ACT_ERRNO and SCMP_ACT_TRACE",
        ));
    }
    Ok(action)
}

fn required<T>(field: Field, value: Option<T>) -> Result<T, SeccompError> {
    value.ok_or(SeccompError::Missing(field))
}

fn invalid(field: Field, reason: &'static str) -> SeccompError {
    SeccompError::Invalid { field, reason }
}

/// Decodes a JSON string of at most [`MAX_SYSCALL_NAME`] bytes: every string of
/// a seccomp profile is a name, compared with known names (so a NUL is let
/// through: no name has one).
fn unescape(field: Field, escaped: EscapedStr<'_>) -> Result<String, SeccompError> {
    Ok(unescape_with_nul(field, escaped, MAX_SYSCALL_NAME)?)
}

impl fmt::Display for SeccompError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "linux.seccomp: invalid JSON: {e}"),
            Self::Missing(field) => write!(f, "{field} is required"),
            Self::Unsupported(field) => write!(f, "{field} is not supported"),
            Self::UnsupportedValue { field, value } => {
                write!(f, "{field}: {value} is not supported")
            }
            Self::UnknownSyscall { field, name } => {
                write!(f, "{field}: no architecture has a system call {name:?}")
            }
            Self::Wire(e) => e.fmt(f),
            Self::Invalid { field, reason } => write!(f, "{field} {reason}"),
            Self::ProgramTooLong {
                native,
                instructions,
            } => write!(
                f,
                "linux.seccomp: the filter for {} has {instructions} instructions, \
                 more than the kernel's {MAX_INSTRUCTIONS}",
                native.name()
            ),
        }
    }
}

impl std::error::Error for SeccompError {}

impl From<WireError> for SeccompError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

#[cfg(test)]
mod tests;
