//! System calls by name: lookups in the generated [`tables`](super::tables).

use super::tables::{ABSENT, ARM_PRIVATE, COUNT, NAMES, NUMBERS};
use super::Arch;

/// The bit that marks x32 system call numbers on x86_64 (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The first ARM-private system call number (`__ARM_NR_BASE`).
const ARM_NR_BASE: u32 = 0x000f_0000;

/// A name that is a system call on some architecture libseccomp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Syscall(u16);

/// Where each name starts in [`NAMES`]; entry `COUNT` is the end of the text.
static STARTS: [u16; COUNT + 1] = starts();

impl Syscall {
    /// The system call called `name` on some architecture.
    pub fn lookup(name: &str) -> Option<Self> {
        let mut low = 0;
        let mut high = COUNT;
        while low < high {
            let middle = low + (high - low) / 2;
            match Self(middle as u16).name().cmp(name) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(Self(middle as u16)),
            }
        }
        None
    }

    /// The name, as in the kernel's headers.
    pub fn name(self) -> &'static str {
        let i = usize::from(self.0);
        // Each name is followed by a newline.
        &NAMES[usize::from(STARTS[i])..usize::from(STARTS[i + 1]) - 1]
    }

    /// The number `seccomp_data.nr` has for this call on `arch`, if `arch` has it.
    pub fn number(self, arch: Arch) -> Option<u32> {
        let stored = NUMBERS[usize::from(self.0)][arch.column()];
        match (stored, arch) {
            (ABSENT, _) => None,
            (n, Arch::Arm) if n >= ARM_PRIVATE => Some(ARM_NR_BASE + u32::from(n - ARM_PRIVATE)),
            (n, Arch::X32) => Some(X32_SYSCALL_BIT | u32::from(n)),
            (n, _) => Some(u32::from(n)),
        }
    }

    /// Every known name, in byte order.
    #[cfg(test)]
    pub fn all() -> impl Iterator<Item = Self> {
        (0..COUNT as u16).map(Self)
    }
}

/// Computes [`STARTS`] from [`NAMES`] while compiling.
const fn starts() -> [u16; COUNT + 1] {
    let text = NAMES.as_bytes();
    assert!(
        text.len() <= u16::MAX as usize,
        "NAMES must be indexable by u16"
    );
    let mut starts = [0; COUNT + 1];
    let mut count = 0;
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\n' {
            count += 1;
            starts[count] = (i + 1) as u16;
        }
        i += 1;
    }
    assert!(count == COUNT, "NAMES must hold COUNT names");
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(name: &str, arch: Arch) -> Option<u32> {
        Syscall::lookup(name)
            .unwrap_or_else(|| panic!("{name} is in the tables"))
            .number(arch)
    }

    #[test]
    fn names_are_sorted_unique_and_found() {
        let names: Vec<_> = Syscall::all().map(Syscall::name).collect();
        assert_eq!(names.len(), COUNT);
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        for (i, name) in names.iter().enumerate() {
            assert!(!name.is_empty() && !name.contains('\n'));
            assert_eq!(Syscall::lookup(name), Some(Syscall(i as u16)));
        }
        assert_eq!(Syscall::lookup("opne"), None);
        assert_eq!(Syscall::lookup(""), None);
        assert_eq!(Syscall::lookup("zzz"), None);
    }

    #[test]
    fn numbers_from_the_kernel_headers() {
        use Arch::*;
        let cases = [
            (
                "read",
                [
                    (X86_64, 0),
                    (X32, 0x4000_0000),
                    (X86, 3),
                    (Aarch64, 63),
                    (Arm, 3),
                    (Riscv64, 63),
                ],
            ),
            (
                "ioctl",
                [
                    (X86_64, 16),
                    (X32, 0x4000_0202),
                    (X86, 54),
                    (Aarch64, 29),
                    (Arm, 54),
                    (Riscv64, 29),
                ],
            ),
            (
                "kexec_load",
                [
                    (X86_64, 246),
                    (X32, 0x4000_0210),
                    (X86, 283),
                    (Aarch64, 104),
                    (Arm, 347),
                    (Riscv64, 104),
                ],
            ),
            (
                "clone3",
                [
                    (X86_64, 435),
                    (X32, 0x4000_01b3),
                    (X86, 435),
                    (Aarch64, 435),
                    (Arm, 435),
                    (Riscv64, 435),
                ],
            ),
            (
                "listns",
                [
                    (X86_64, 470),
                    (X32, 0x4000_01d6),
                    (X86, 470),
                    (Aarch64, 470),
                    (Arm, 470),
                    (Riscv64, 470),
                ],
            ),
        ];
        for (name, numbers) in cases {
            for (arch, expected) in numbers {
                assert_eq!(number(name, arch), Some(expected), "{name} on {arch:?}");
            }
        }
        assert_eq!(number("cacheflush", Arm), Some(0x000f_0002));
        assert_eq!(number("set_tls", Arm), Some(0x000f_0005));
        assert_eq!(
            number("sync_file_range2", Arm),
            number("arm_sync_file_range", Arm)
        );
        assert_eq!(number("riscv_flush_icache", Riscv64), Some(259));
        assert_eq!(number("open", Aarch64), None);
        assert_eq!(number("open", Riscv64), None);
        assert_eq!(number("renameat", Aarch64), Some(38));
        assert_eq!(number("renameat", Riscv64), None);
        assert_eq!(number("memfd_secret", Arm), None, "arm has no memfd_secret");
        assert_eq!(number("socketcall", X86), Some(102));
        assert_eq!(number("socketcall", Arm), None, "OABI only");
        // The x32 numbers 512-547 replace the x86_64 ones for calls with compat arguments.
        assert_eq!(number("rt_sigaction", X32), Some(X32_SYSCALL_BIT | 512));
        assert_eq!(number("execve", X32), Some(X32_SYSCALL_BIT | 520));
        assert_eq!(number("uretprobe", X86_64), Some(335));
        // Names of other architectures are known, with no number on ours.
        let s390 = Syscall::lookup("s390_pci_mmio_read").unwrap();
        assert!(Arch::ALL.iter().all(|&arch| s390.number(arch).is_none()));
    }

    /// The host's libc crate agrees with the tables for the native ABI.
    #[test]
    fn numbers_match_libc() {
        let Some(native) = Arch::native() else {
            return;
        };
        macro_rules! check {
            ($($name:ident),* $(,)?) => {$(
                let name = stringify!($name).strip_prefix("SYS_").unwrap();
                assert_eq!(number(name, native), Some(libc::$name as u32), "{name} on {native:?}");
            )*};
        }
        // On all four architectures husk runs on.
        check!(
            SYS_read,
            SYS_write,
            SYS_openat,
            SYS_close,
            SYS_fstat,
            SYS_lseek,
            SYS_mprotect,
            SYS_munmap,
            SYS_brk,
            SYS_rt_sigaction,
            SYS_rt_sigprocmask,
            SYS_ioctl,
            SYS_pread64,
            SYS_readv,
            SYS_writev,
            SYS_sched_yield,
            SYS_mremap,
            SYS_madvise,
            SYS_dup,
            SYS_dup3,
            SYS_nanosleep,
            SYS_getpid,
            SYS_socket,
            SYS_connect,
            SYS_clone,
            SYS_execve,
            SYS_exit,
            SYS_wait4,
            SYS_kill,
            SYS_uname,
            SYS_fcntl,
            SYS_getcwd,
            SYS_mkdirat,
            SYS_unlinkat,
            SYS_ptrace,
            SYS_getuid,
            SYS_personality,
            SYS_prctl,
            SYS_mount,
            SYS_umount2,
            SYS_pivot_root,
            SYS_reboot,
            SYS_init_module,
            SYS_delete_module,
            SYS_kexec_load,
            SYS_keyctl,
            SYS_unshare,
            SYS_setns,
            SYS_seccomp,
            SYS_bpf,
            SYS_execveat,
            SYS_statx,
            SYS_clone3,
            SYS_pidfd_open,
            SYS_openat2,
            SYS_close_range,
            SYS_futex_waitv,
        );
        #[cfg(target_arch = "x86_64")]
        check!(
            SYS_open,
            SYS_stat,
            SYS_lstat,
            SYS_poll,
            SYS_access,
            SYS_pipe,
            SYS_select,
            SYS_dup2,
            SYS_fork,
            SYS_vfork,
            SYS_mkdir,
            SYS_rmdir,
            SYS_unlink,
            SYS_rename,
            SYS_arch_prctl,
            SYS_iopl,
            SYS_ioperm,
            SYS_time,
            SYS_epoll_wait_old,
            SYS_uselib,
            SYS_mmap,
            SYS_afs_syscall,
        );
        #[cfg(target_arch = "arm")]
        check!(
            SYS_open,
            SYS_mmap2,
            SYS_fstatat64,
            SYS_arm_fadvise64_64,
            SYS__llseek
        );
    }
}
