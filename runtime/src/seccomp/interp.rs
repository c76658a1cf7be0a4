//! A classic BPF interpreter for tests: runs a filter on a `seccomp_data` the
//! way the kernel does, after the checks the kernel makes when loading it.

use super::bpf::{
    SockFilter, BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K,
    BPF_LD, BPF_RET, BPF_W, MAX_INSTRUCTIONS,
};

/// `struct seccomp_data` (64 bytes; `instruction_pointer` is left 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The structure as the kernel lays it out on a little-endian machine.
    fn bytes(&self) -> [u8; 64] {
        let mut bytes = [0; 64];
        bytes[0..4].copy_from_slice(&self.nr.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_le_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
        }
        bytes
    }
}

/// Panics unless the kernel would load `program`: 1 to 4096 instructions, only
/// the opcodes the compiler emits, aligned loads inside `seccomp_data`, jumps
/// inside the program, and a `ret` last.
pub fn check(program: &[SockFilter]) {
    assert!(!program.is_empty() && program.len() <= MAX_INSTRUCTIONS);
    for (pc, insn) in program.iter().enumerate() {
        let remaining = program.len() - pc - 1;
        match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                assert!(insn.k % 4 == 0 && insn.k < 64, "load {insn:?} at {pc}")
            }
            c if c == BPF_ALU | BPF_AND | BPF_K || c == BPF_RET | BPF_K => {}
            c if c == BPF_JMP | BPF_JA | BPF_K => {
                assert!((insn.k as usize) < remaining, "ja {insn:?} at {pc}")
            }
            c if [BPF_JEQ, BPF_JGT, BPF_JGE].contains(&(c & !BPF_JMP)) && c & 0x07 == BPF_JMP => {
                assert!(
                    usize::from(insn.jt) < remaining && usize::from(insn.jf) < remaining,
                    "jump {insn:?} at {pc} of {}",
                    program.len()
                )
            }
            _ => panic!("unexpected instruction {insn:?} at {pc}"),
        }
    }
    assert_eq!(program.last().unwrap().code, BPF_RET | BPF_K, "ends in ret");
}

/// Runs `program` (see [`check`]) on `data` and returns what it returns.
pub fn run(program: &[SockFilter], data: &SeccompData) -> u32 {
    check(program);
    let bytes = data.bytes();
    let mut a: u32 = 0;
    let mut pc = 0;
    loop {
        let insn = program[pc];
        pc += 1;
        let code = insn.code;
        if code == BPF_LD | BPF_W | BPF_ABS {
            let k = insn.k as usize;
            a = u32::from_le_bytes(bytes[k..k + 4].try_into().unwrap());
        } else if code == BPF_ALU | BPF_AND | BPF_K {
            a &= insn.k;
        } else if code == BPF_RET | BPF_K {
            return insn.k;
        } else if code == BPF_JMP | BPF_JA | BPF_K {
            pc += insn.k as usize;
        } else {
            let holds = match code & !BPF_JMP {
                BPF_JEQ => a == insn.k,
                BPF_JGT => a > insn.k,
                BPF_JGE => a >= insn.k,
                _ => unreachable!("checked"),
            };
            pc += usize::from(if holds { insn.jt } else { insn.jf });
        }
    }
}
