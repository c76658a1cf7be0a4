//! The compiler from [`Profile`] to a classic BPF program.
//!
//! The program:
//!
//! ```text
//!     ld  [arch]
//!     jeq #AUDIT_ARCH_<native>, native     one test per covered AUDIT_ARCH
//!     ...
//!     ret #KILL_PROCESS                    an architecture not covered
//! native:
//!     ld  [nr]
//!     (x86_64: nr >= 0x40000000 is x32: its own section, or KILL_PROCESS)
//!     jeq #nr1, l1                         system calls whose rule has no
//!     jeq #nr2, l1                         arguments, grouped by action,
//!     jeq #nr3, 0, l2                      at most 255 per group
//! l1: ret #action
//! l2: jeq #nr4, 0, l3                      one with arguments: its rules in
//!     <compare arguments; ret #action>     order, then the default
//!     ret #default
//! l3: ...
//!     ret #default
//! ```
//!
//! Conditional jumps have 8-bit offsets; [`Asm`] places jumps with symbolic
//! targets and adds `ja` trampolines (32-bit offsets) where a target is
//! further than 255 instructions.

use std::collections::BTreeMap;

use super::syscalls::X32_SYSCALL_BIT;
use super::{Action, Arch, ArgCmp, Cmp, Profile, SeccompError};

/// The kernel's `BPF_MAXINSNS`: the longest program it loads.
pub const MAX_INSTRUCTIONS: usize = 4096;

/// One classic BPF instruction, as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// The operation (`BPF_*` class, size, mode and operation bits).
    pub code: u16,
    /// Conditional jumps: how many instructions to skip when true.
    pub jt: u8,
    /// Conditional jumps: how many instructions to skip when false.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

// Instruction classes and fields of classic BPF (linux/bpf_common.h).
pub(super) const BPF_LD: u16 = 0x00;
pub(super) const BPF_ALU: u16 = 0x04;
pub(super) const BPF_JMP: u16 = 0x05;
pub(super) const BPF_RET: u16 = 0x06;
pub(super) const BPF_W: u16 = 0x00;
pub(super) const BPF_ABS: u16 = 0x20;
pub(super) const BPF_K: u16 = 0x00;
pub(super) const BPF_AND: u16 = 0x50;
pub(super) const BPF_JA: u16 = 0x00;
pub(super) const BPF_JEQ: u16 = 0x10;
pub(super) const BPF_JGT: u16 = 0x20;
pub(super) const BPF_JGE: u16 = 0x30;

// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

// The argument words below are little-endian: the low half first.
#[cfg(target_endian = "big")]
compile_error!("the seccomp compiler assumes a little-endian target");

/// What a system call from an architecture the filter does not cover gets.
const BAD_ARCH: Action = Action::KillProcess;

/// Compiles `profile` for a kernel of architecture `native`.
pub(super) fn compile(profile: &Profile, native: Arch) -> Result<Vec<SockFilter>, SeccompError> {
    let arches = profile.covered(native);
    let mut asm = Asm::default();

    // One section per AUDIT_ARCH value; x86_64 and x32 share one.
    let mut sections: Vec<(u32, Vec<Arch>)> = Vec::new();
    for &arch in &arches {
        match sections
            .iter_mut()
            .find(|(audit, _)| *audit == arch.audit())
        {
            Some((_, members)) => members.push(arch),
            None => sections.push((arch.audit(), vec![arch])),
        }
    }
    let labels: Vec<Label> = sections.iter().map(|_| asm.label()).collect();

    asm.load(ARCH);
    for ((audit, _), &label) in sections.iter().zip(&labels) {
        asm.jump(BPF_JEQ, *audit, Target::Label(label), Target::Next);
    }
    asm.ret(BAD_ARCH);

    for ((_, members), label) in sections.iter().zip(labels) {
        asm.mark(label);
        asm.load(NR);
        let native_abi = members.iter().copied().find(|&a| a != Arch::X32);
        let x32 = members.contains(&Arch::X32);
        if members.iter().any(|&a| a == Arch::X86_64 || a == Arch::X32) {
            split_x32(&mut asm, profile, native_abi, x32);
        } else if let Some(arch) = native_abi {
            section(&mut asm, profile, arch);
        }
    }

    let program = asm.finish();
    if program.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::ProgramTooLong {
            native,
            instructions: program.len(),
        });
    }
    Ok(program)
}

/// The AUDIT_ARCH_X86_64 section: x86_64 (if `x86_64` is `Some`) below the x32
/// bit, x32 (if `x32`) above it; the uncovered half kills the process. `nr` -1
/// (a system call a tracer skipped) counts as x86_64, as in libseccomp.
fn split_x32(asm: &mut Asm, profile: &Profile, x86_64: Option<Arch>, x32: bool) {
    let x32_label = asm.label();
    match (x86_64, x32) {
        (Some(arch), true) => {
            asm.jump(
                BPF_JGE,
                X32_SYSCALL_BIT,
                Target::Label(x32_label),
                Target::Next,
            );
            section(asm, profile, arch);
            asm.mark(x32_label);
            section(asm, profile, Arch::X32);
        }
        (Some(arch), false) => {
            let native = asm.label();
            asm.jump(
                BPF_JGE,
                X32_SYSCALL_BIT,
                Target::Next,
                Target::Label(native),
            );
            asm.jump(BPF_JEQ, u32::MAX, Target::Label(native), Target::Next);
            asm.ret(BAD_ARCH);
            asm.mark(native);
            section(asm, profile, arch);
        }
        (None, _) => {
            asm.jump(
                BPF_JGE,
                X32_SYSCALL_BIT,
                Target::Label(x32_label),
                Target::Next,
            );
            asm.ret(BAD_ARCH);
            asm.mark(x32_label);
            section(asm, profile, Arch::X32);
        }
    }
}

/// What one system call number gets on one architecture.
#[derive(Default)]
struct Entry {
    /// The first rule without arguments that names it.
    unconditional: Option<Action>,
    /// Indices of the rules with arguments that name it, in profile order.
    conditional: Vec<usize>,
}

/// The dispatch on `seccomp_data.nr` (already in the accumulator) for `arch`.
fn section(asm: &mut Asm, profile: &Profile, arch: Arch) {
    /// Most jumps to one shared `ret`: the furthest is then 254 ahead.
    const MAX_GROUP: usize = 255;

    let default = profile.default_action;
    let mut entries: BTreeMap<u32, Entry> = BTreeMap::new();
    for (i, rule) in profile.rules.iter().enumerate() {
        if rule.action == default {
            continue;
        }
        for nr in rule.syscalls.iter().filter_map(|s| s.number(arch)) {
            let entry = entries.entry(nr).or_default();
            if rule.args.is_empty() {
                entry.unconditional.get_or_insert(rule.action);
            } else if entry.conditional.last() != Some(&i) {
                entry.conditional.push(i);
            }
        }
    }

    // Unconditional ones, grouped by action in order of first appearance.
    let mut groups: Vec<(Action, Vec<u32>)> = Vec::new();
    for (&nr, entry) in &entries {
        if let Some(action) = entry.unconditional {
            match groups.iter_mut().find(|(a, _)| *a == action) {
                Some((_, nrs)) => nrs.push(nr),
                None => groups.push((action, vec![nr])),
            }
        }
    }
    for (action, nrs) in &groups {
        for chunk in nrs.chunks(MAX_GROUP) {
            let (ret, skip) = (asm.label(), asm.label());
            let (&last, rest) = chunk.split_last().expect("chunks are not empty");
            for &nr in rest {
                asm.jump(BPF_JEQ, nr, Target::Label(ret), Target::Next);
            }
            asm.jump(BPF_JEQ, last, Target::Next, Target::Label(skip));
            asm.mark(ret);
            asm.ret(*action);
            asm.mark(skip);
        }
    }

    // Conditional ones: each its block of rules.
    for (&nr, entry) in &entries {
        if entry.unconditional.is_some() {
            continue;
        }
        let skip = asm.label();
        asm.jump(BPF_JEQ, nr, Target::Next, Target::Label(skip));
        for &i in &entry.conditional {
            let rule = &profile.rules[i];
            let next_rule = asm.label();
            for arg in &rule.args {
                compare(asm, *arg, arch.wide_args(), next_rule);
            }
            asm.ret(rule.action);
            asm.mark(next_rule);
        }
        asm.ret(default);
        asm.mark(skip);
    }
    asm.ret(default);
}

/// Tests one argument comparison: falls through if it holds, jumps to `fail`
/// if not. Clobbers the accumulator.
///
/// A 64-bit argument is two words: the high word decides unless it equals the
/// constant's, then the low word does. With 32-bit arguments (`wide` false)
/// the high word is zero, so its test is decided while compiling.
fn compare(asm: &mut Asm, arg: ArgCmp, wide: bool, fail: Label) {
    let low = ARGS + 8 * u32::from(arg.index);
    let high = low + 4;
    let pass = asm.label();
    let (value, mask) = match arg.cmp {
        Cmp::MaskedEq { mask, value } => (value, Some(mask)),
        Cmp::Ne(v) | Cmp::Lt(v) | Cmp::Le(v) | Cmp::Eq(v) | Cmp::Ge(v) | Cmp::Gt(v) => (v, None),
    };
    let (v_high, v_low) = ((value >> 32) as u32, value as u32);
    let (m_high, m_low) = mask.map_or((u32::MAX, u32::MAX), |m| ((m >> 32) as u32, m as u32));
    let (pass_t, fail_t) = (Target::Label(pass), Target::Label(fail));

    // The high word: where each outcome goes, `None` meaning "compare the low word".
    // (outcome when arg_high > v_high, == v_high, < v_high)
    let (above, below) = match arg.cmp {
        Cmp::Eq(_) | Cmp::MaskedEq { .. } => (Some(false), Some(false)),
        Cmp::Ne(_) => (Some(true), Some(true)),
        Cmp::Gt(_) | Cmp::Ge(_) => (Some(true), Some(false)),
        Cmp::Lt(_) | Cmp::Le(_) => (Some(false), Some(true)),
    };
    let outcome = |holds: Option<bool>| match holds {
        Some(true) => pass_t,
        _ => fail_t,
    };
    if wide {
        asm.load(high);
        if mask.is_some() {
            asm.stmt(BPF_ALU | BPF_AND | BPF_K, m_high);
        }
        if above == below {
            asm.jump(BPF_JEQ, v_high, Target::Next, outcome(above));
        } else {
            asm.jump(BPF_JGT, v_high, outcome(above), Target::Next);
            asm.jump(BPF_JEQ, v_high, Target::Next, outcome(below));
        }
    } else {
        // The high word is 0, masked or not.
        let high_outcome = match 0.cmp(&v_high) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => above,
            std::cmp::Ordering::Less => below,
        };
        if let Some(holds) = high_outcome {
            if !holds {
                asm.goto(fail);
            }
            asm.mark(pass);
            return;
        }
    }

    // The high words are equal: the low word decides.
    asm.load(low);
    if mask.is_some() {
        asm.stmt(BPF_ALU | BPF_AND | BPF_K, m_low);
    }
    match arg.cmp {
        Cmp::Eq(_) | Cmp::MaskedEq { .. } => asm.jump(BPF_JEQ, v_low, pass_t, fail_t),
        Cmp::Ne(_) => asm.jump(BPF_JEQ, v_low, fail_t, pass_t),
        Cmp::Gt(_) => asm.jump(BPF_JGT, v_low, pass_t, fail_t),
        Cmp::Ge(_) => asm.jump(BPF_JGE, v_low, pass_t, fail_t),
        Cmp::Lt(_) => asm.jump(BPF_JGE, v_low, fail_t, pass_t),
        Cmp::Le(_) => asm.jump(BPF_JGT, v_low, fail_t, pass_t),
    }
    asm.mark(pass);
}

/// A jump target, defined by [`Asm::mark`] after every jump to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// Where a conditional jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The next instruction.
    Next,
    Label(Label),
}

#[derive(Debug)]
enum Insn {
    /// Anything that does not jump.
    Stmt { code: u16, k: u32 },
    /// A conditional jump.
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    /// `ja`: an unconditional jump, 32-bit offset.
    Goto(Label),
    /// Where a label points; no instruction.
    Mark(Label),
}

/// An assembler for forward jumps to labels.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    fn mark(&mut self, label: Label) {
        self.insns.push(Insn::Mark(label));
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(Insn::Stmt { code, k });
    }

    fn load(&mut self, offset: u32) {
        self.stmt(BPF_LD | BPF_W | BPF_ABS, offset);
    }

    fn ret(&mut self, action: Action) {
        self.stmt(BPF_RET | BPF_K, action.ret());
    }

    fn jump(&mut self, op: u16, k: u32, jt: Target, jf: Target) {
        self.insns.push(Insn::Jump {
            code: BPF_JMP | op | BPF_K,
            k,
            jt,
            jf,
        });
    }

    fn goto(&mut self, label: Label) {
        self.insns.push(Insn::Goto(label));
    }

    /// Lays the program out. A conditional jump whose target is more than 255
    /// instructions ahead gets a `ja` right after it (the jump never falls
    /// through, so nothing else reaches that slot) and jumps to it instead.
    /// Adding trampolines only moves targets further, so the far set only
    /// grows: repeat until it stops changing.
    fn finish(self) -> Vec<SockFilter> {
        // Per instruction: whether its true and false branches need a trampoline.
        let mut far = vec![(false, false); self.insns.len()];
        let (address, label_address) = loop {
            let (address, label_address) = self.layout(&far);
            let mut changed = false;
            for (i, insn) in self.insns.iter().enumerate() {
                if let Insn::Jump { jt, jf, .. } = insn {
                    let end = address[i] + 1 + usize::from(far[i].0) + usize::from(far[i].1);
                    let distance = |target: &Target| match target {
                        Target::Next => end - address[i] - 1,
                        Target::Label(l) => forward(label_address[l.0], address[i]),
                    };
                    if !far[i].0 && distance(jt) > usize::from(u8::MAX) {
                        far[i].0 = true;
                        changed = true;
                    }
                    if !far[i].1 && distance(jf) > usize::from(u8::MAX) {
                        far[i].1 = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break (address, label_address);
            }
        };

        let mut program = Vec::new();
        for (i, insn) in self.insns.iter().enumerate() {
            let at = address[i];
            match *insn {
                Insn::Stmt { code, k } => program.push(SockFilter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Insn::Mark(_) => {}
                Insn::Goto(label) => program.push(ja(forward(label_address[label.0], at))),
                Insn::Jump { code, k, jt, jf } => {
                    let (far_t, far_f) = far[i];
                    let end = at + 1 + usize::from(far_t) + usize::from(far_f);
                    let destination = |target: Target| match target {
                        Target::Next => end,
                        Target::Label(l) => label_address[l.0],
                    };
                    let offset = |target: Target, far: bool, trampoline: usize| -> u8 {
                        let to = if far { trampoline } else { destination(target) };
                        // The loop above made every near offset fit.
                        forward(to, at) as u8
                    };
                    program.push(SockFilter {
                        code,
                        jt: offset(jt, far_t, at + 1),
                        jf: offset(jf, far_f, at + 1 + usize::from(far_t)),
                        k,
                    });
                    if far_t {
                        program.push(ja(forward(destination(jt), at + 1)));
                    }
                    if far_f {
                        let trampoline = at + 1 + usize::from(far_t);
                        program.push(ja(forward(destination(jf), trampoline)));
                    }
                }
            }
        }
        program
    }

    /// The address of every instruction and label, given the trampolines.
    fn layout(&self, far: &[(bool, bool)]) -> (Vec<usize>, Vec<usize>) {
        let mut address = Vec::with_capacity(self.insns.len());
        let mut label_address = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for (insn, &(far_t, far_f)) in self.insns.iter().zip(far) {
            address.push(pc);
            pc += match insn {
                Insn::Mark(label) => {
                    label_address[label.0] = pc;
                    0
                }
                Insn::Jump { .. } => 1 + usize::from(far_t) + usize::from(far_f),
                Insn::Stmt { .. } | Insn::Goto(_) => 1,
            };
        }
        (address, label_address)
    }
}

/// The offset of a jump at `from` to `to`: how many instructions it skips.
fn forward(to: usize, from: usize) -> usize {
    // Labels are marked after their jumps (and a never-marked label is at
    // usize::MAX): both are compiler bugs, not input errors.
    assert!(
        to > from && to != usize::MAX,
        "BPF jump from {from} to {to} is not forward"
    );
    to - from - 1
}

fn ja(offset: usize) -> SockFilter {
    SockFilter {
        code: BPF_JMP | BPF_JA | BPF_K,
        jt: 0,
        jf: 0,
        // MAX_INSTRUCTIONS is checked after assembly; the offset of a longer
        // program may be cut here, but that program is rejected.
        k: offset as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::interp::{check, run, SeccompData};

    const PASS: u32 = 1;
    const FAIL: u32 = 2;

    /// `jeq #1` with both branches `gap` instructions or more away.
    fn far_jump(gap: usize) -> Vec<SockFilter> {
        let mut asm = Asm::default();
        let (yes, no) = (asm.label(), asm.label());
        asm.load(NR);
        asm.jump(BPF_JEQ, 1, Target::Label(yes), Target::Label(no));
        for _ in 0..gap {
            asm.stmt(BPF_RET | BPF_K, 0);
        }
        asm.mark(yes);
        asm.stmt(BPF_RET | BPF_K, PASS);
        for _ in 0..gap {
            asm.stmt(BPF_RET | BPF_K, 0);
        }
        asm.mark(no);
        asm.stmt(BPF_RET | BPF_K, FAIL);
        asm.finish()
    }

    fn nr(nr: u32) -> SeccompData {
        SeccompData {
            nr,
            ..SeccompData::default()
        }
    }

    #[test]
    fn near_jumps_have_no_trampolines() {
        let program = far_jump(100);
        assert_eq!(program.len(), 2 + 100 + 1 + 100 + 1);
        assert_eq!((program[1].jt, program[1].jf), (100, 201));
        assert_eq!(run(&program, &nr(1)), PASS);
        assert_eq!(run(&program, &nr(0)), FAIL);
    }

    #[test]
    fn far_jumps_get_trampolines() {
        for gap in [254, 255, 256, 300, 1000] {
            let program = far_jump(gap);
            check(&program);
            assert_eq!(run(&program, &nr(1)), PASS, "gap {gap}");
            assert_eq!(run(&program, &nr(0)), FAIL, "gap {gap}");
        }
        // 254 fits; at 255 the false branch (255 + 1 + 255 away) needs one.
        assert_eq!(far_jump(254).len(), 2 + 254 * 2 + 2 + 1);
        let program = far_jump(300);
        assert_eq!(program.len(), 2 + 2 + 300 * 2 + 2);
        assert_eq!((program[1].jt, program[1].jf), (0, 1));
        assert_eq!(program[2].code, BPF_JMP | BPF_JA | BPF_K);
    }

    #[test]
    fn trampolines_push_other_jumps_out_of_range() {
        // Jumps 0..255 to one target, the first exactly 255 away until the
        // trampoline of a far jump among them moves the target one further.
        let mut asm = Asm::default();
        let (target, far) = (asm.label(), asm.label());
        asm.load(NR);
        for k in 0..100 {
            asm.jump(BPF_JEQ, k, Target::Label(target), Target::Next);
        }
        asm.jump(BPF_JEQ, 1000, Target::Label(far), Target::Next);
        for k in 100..254 {
            asm.jump(BPF_JEQ, k, Target::Label(target), Target::Next);
        }
        asm.stmt(BPF_RET | BPF_K, FAIL);
        asm.mark(target);
        asm.stmt(BPF_RET | BPF_K, PASS);
        for _ in 0..300 {
            asm.stmt(BPF_RET | BPF_K, 0);
        }
        asm.mark(far);
        asm.stmt(BPF_RET | BPF_K, 3);
        let program = asm.finish();
        // ld, jeq 0 and its trampoline, jeq 1..99, the far jeq and its trampoline, ...
        assert_eq!(program[2].code, BPF_JMP | BPF_JA | BPF_K);
        for k in 0..254 {
            assert_eq!(run(&program, &nr(k)), PASS, "nr {k}");
        }
        assert_eq!(run(&program, &nr(1000)), 3);
        assert_eq!(run(&program, &nr(999)), FAIL);
    }
}
