//! `linux.resources.devices` on cgroup v2: the rules, validated, and the eBPF
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE` they compile to.
//!
//! cgroup v2 has no `devices.allow` file: the kernel asks a program attached
//! to the cgroup, for every `open` and `mknod` of a device node, with a
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! whose `access_type` holds the device type in its low 16 bits
//! (`BPF_DEVCG_DEV_BLOCK` 1, `BPF_DEVCG_DEV_CHAR` 2) and the access in its high
//! 16 (`BPF_DEVCG_ACC_MKNOD` 1, `READ` 2, `WRITE` 4); the program returns 1 to
//! allow and 0 to deny.
//!
//! Evaluation, as in runc and crun: the rules apply in order and a later rule
//! wins over an earlier one; what no rule matches is denied. husk decides each
//! requested access (`r`, `w`, `m`) on its own, so `open(O_RDWR)` needs both
//! `r` and `w` allowed, each by the last rule that matches the device and
//! names that access (runc and crun instead skip a rule that covers only part
//! of the request, so a deny of `w` alone does not stop an `O_RDWR` open that
//! an earlier rule allowed). The container always gets [`DEFAULT_RULES`],
//! after its own rules, as runc appends its `AllowedDevices`; between the two
//! the runtime puts `m` for the nodes of `linux.devices`
//! ([`super::Resources::implied_devices`]).
//!
//! The program ([`compile`]) tests the rules from the last to the first,
//! keeping the accesses still undecided in a register: a matching deny rule
//! that names one of them denies; a matching allow rule decides the ones it
//! names, and allows once none is left. A rule for every device and every
//! access ends the search, so it and the rules before it are not emitted.

use std::fmt;

/// `BPF_DEVCG_ACC_MKNOD`.
const ACC_MKNOD: u8 = 1;
/// `BPF_DEVCG_ACC_READ`.
const ACC_READ: u8 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
const ACC_WRITE: u8 = 4;
/// `BPF_DEVCG_DEV_BLOCK`.
const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
const DEV_CHAR: i32 = 2;

/// The largest major number the kernel has (12 bits).
pub const MAX_MAJOR: u32 = (1 << 12) - 1;
/// The largest minor number the kernel has (20 bits).
pub const MAX_MINOR: u32 = (1 << 20) - 1;

/// What devices a rule is about: `type` of a `linux.resources.devices` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// `a`: character and block devices.
    All,
    /// `c`: character devices.
    Char,
    /// `b`: block devices.
    Block,
}

/// A set of the accesses `r` (read), `w` (write) and `m` (mknod), in the
/// kernel's bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access(u8);

/// One validated entry of `linux.resources.devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// `allow`: whether the rule allows or denies.
    pub allow: bool,
    /// `type`.
    pub kind: DeviceType,
    /// `major`; `None` (absent or -1) for any.
    pub major: Option<u32>,
    /// `minor`; `None` (absent or -1) for any.
    pub minor: Option<u32>,
    /// `access`.
    pub access: Access,
}

/// What every container may do after its own rules: runc's `AllowedDevices`
/// without two of its entries. Allowed for `rwm` are the devices of the
/// minimal `/dev` husk makes (`null`, `zero`, `full`, `random`, `urandom`,
/// `tty`) and the terminal devices (`console` 5:1, `ptmx` 5:2 and the devpts
/// peers, major 136). Left out are runc's `mknod` of every character and block
/// device, which its own maintainers call questionable, and `/dev/net/tun`
/// (10:200), which runc keeps only for old Docker setups: a config that needs
/// them says so in its rules.
pub const DEFAULT_RULES: [DeviceRule; 9] = [
    allow_char(1, Some(3)), // null
    allow_char(1, Some(5)), // zero
    allow_char(1, Some(7)), // full
    allow_char(1, Some(8)), // random
    allow_char(1, Some(9)), // urandom
    allow_char(5, Some(0)), // tty
    allow_char(5, Some(1)), // console
    allow_char(5, Some(2)), // ptmx
    allow_char(136, None),  // pts/*
];

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn` on a
/// little-endian machine (every target husk is built for): the destination
/// register in the low four bits of `regs`, the source in the high four.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// The opcode.
    pub code: u8,
    /// `dst_reg | src_reg << 4`.
    pub regs: u8,
    /// The jump offset or memory offset.
    pub off: i16,
    /// The immediate.
    pub imm: i32,
}

// Opcode parts of <linux/bpf.h> and <linux/bpf_common.h>.
pub(crate) const BPF_LDX: u8 = 0x01;
pub(crate) const BPF_ALU: u8 = 0x04;
pub(crate) const BPF_JMP: u8 = 0x05;
pub(crate) const BPF_ALU64: u8 = 0x07;
pub(crate) const BPF_W: u8 = 0x00;
pub(crate) const BPF_MEM: u8 = 0x60;
pub(crate) const BPF_K: u8 = 0x00;
pub(crate) const BPF_X: u8 = 0x08;
pub(crate) const BPF_AND: u8 = 0x50;
pub(crate) const BPF_RSH: u8 = 0x70;
pub(crate) const BPF_MOV: u8 = 0xb0;
pub(crate) const BPF_JEQ: u8 = 0x10;
pub(crate) const BPF_JNE: u8 = 0x50;
pub(crate) const BPF_EXIT: u8 = 0x90;

/// The registers the program uses: R0 the verdict, R1 the context (then
/// scratch), R2 the device type, R3 the accesses still undecided, R4 the
/// major, R5 the minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

impl Access {
    /// `rwm`.
    pub const ALL: Self = Self(ACC_MKNOD | ACC_READ | ACC_WRITE);
    /// `r`.
    pub const READ: Self = Self(ACC_READ);
    /// `w`.
    pub const WRITE: Self = Self(ACC_WRITE);
    /// `m`.
    pub const MKNOD: Self = Self(ACC_MKNOD);

    /// Parses a non-empty string of the letters `r`, `w` and `m`.
    pub fn parse(letters: &str) -> Option<Self> {
        if letters.is_empty() {
            return None;
        }
        letters.chars().try_fold(Self(0), |set, c| {
            let bit = match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return None,
            };
            Some(Self(set.0 | bit))
        })
    }

    /// The kernel's bits: `BPF_DEVCG_ACC_*`.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether every access of `other` is in this set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

impl DeviceRule {
    /// Whether the rule is about every device and every access, so that
    /// nothing before it matters.
    fn is_wildcard(&self) -> bool {
        self.kind == DeviceType::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == Access::ALL
    }
}

/// `rules`, then [`DEFAULT_RULES`]: what the container's program enforces.
pub fn with_defaults(rules: &[DeviceRule]) -> Vec<DeviceRule> {
    rules.iter().chain(&DEFAULT_RULES).copied().collect()
}

/// Compiles `rules` (the whole list, defaults included) into a
/// `BPF_PROG_TYPE_CGROUP_DEVICE` program; `None` when they allow every access
/// to every device, so there is nothing to enforce.
pub fn compile(rules: &[DeviceRule]) -> Option<Vec<Insn>> {
    // A wildcard decides everything no later rule decides: it is the default,
    // and the rules before it never matter.
    let (default_allow, rules) = match rules.iter().rposition(DeviceRule::is_wildcard) {
        Some(last) => (rules[last].allow, &rules[last + 1..]),
        None => (false, rules),
    };
    if default_allow && rules.iter().all(|r| r.allow) {
        return None;
    }
    let mut program = vec![
        // R2 = type, R3 = access, R4 = major, R5 = minor.
        ldx_w(R2, R1, 0),
        alu32_imm(BPF_AND, R2, 0xffff),
        ldx_w(R3, R1, 0),
        alu32_imm(BPF_RSH, R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ];
    for rule in rules.iter().rev() {
        append_rule(&mut program, rule);
    }
    program.push(mov64_imm(R0, i32::from(default_allow)));
    program.push(exit());
    Some(program)
}

/// Appends the block of one rule; a rule that does not match the device, or
/// has nothing to say about the undecided accesses, falls through to the
/// instruction after the block.
fn append_rule(program: &mut Vec<Insn>, rule: &DeviceRule) {
    let mut checks: Vec<(u8, i32)> = Vec::new();
    match rule.kind {
        DeviceType::All => {}
        DeviceType::Char => checks.push((R2, DEV_CHAR)),
        DeviceType::Block => checks.push((R2, DEV_BLOCK)),
    }
    // Device numbers are at most 20 bits, so they fit an immediate.
    checks.extend(rule.major.map(|m| (R4, m as i32)));
    checks.extend(rule.minor.map(|m| (R5, m as i32)));
    let verdict = [mov64_imm(R0, i32::from(rule.allow)), exit()];
    let access = i32::from(rule.access.bits());
    let tail: Vec<Insn> = match (rule.allow, rule.access == Access::ALL) {
        // Every undecided access is decided by this rule.
        (_, true) => verdict.to_vec(),
        // Deny if one of the undecided accesses is named.
        (false, false) => vec![
            mov32_reg(R1, R3),
            alu32_imm(BPF_AND, R1, access),
            jmp_imm(BPF_JEQ, R1, 0, 2),
            verdict[0],
            verdict[1],
        ],
        // The named accesses are allowed; allow once none is left.
        (true, false) => vec![
            alu32_imm(BPF_AND, R3, !access & i32::from(Access::ALL.bits())),
            jmp_imm(BPF_JNE, R3, 0, 2),
            verdict[0],
            verdict[1],
        ],
    };
    let mut remaining = checks.len() + tail.len();
    for (reg, value) in checks {
        remaining -= 1;
        program.push(jmp_imm(BPF_JNE, reg, value, offset(remaining)));
    }
    program.extend(tail);
}

/// A jump offset; blocks are a few instructions long.
fn offset(instructions: usize) -> i16 {
    i16::try_from(instructions).expect("a rule's block is short")
}

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_W | BPF_MEM, dst, src, off, 0)
}

fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
}

fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}

fn mov64_imm(dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
}

fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    insn(BPF_JMP | op | BPF_K, dst, 0, off, imm)
}

fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    }
}

const fn allow_char(major: u32, minor: Option<u32>) -> DeviceRule {
    DeviceRule {
        allow: true,
        kind: DeviceType::Char,
        major: Some(major),
        minor,
        access: Access::ALL,
    }
}

#[cfg(test)]
mod tests;
