//! The compiled program, run by a small eBPF interpreter, against a plain
//! reading of the rules.

use super::*;

/// A device access the kernel asks the program about.
#[derive(Debug, Clone, Copy)]
struct Query {
    block: bool,
    major: u32,
    minor: u32,
    access: u8,
}

/// The rules read directly: each requested access is decided by the last rule
/// that matches the device and names it; no such rule denies.
fn expected(rules: &[DeviceRule], q: Query) -> bool {
    [ACC_MKNOD, ACC_READ, ACC_WRITE]
        .into_iter()
        .filter(|bit| q.access & bit != 0)
        .all(|bit| {
            rules
                .iter()
                .rev()
                .find(|r| {
                    let kind = match r.kind {
                        DeviceType::All => true,
                        DeviceType::Char => !q.block,
                        DeviceType::Block => q.block,
                    };
                    kind && r.major.is_none_or(|m| m == q.major)
                        && r.minor.is_none_or(|m| m == q.minor)
                        && r.access.bits() & bit != 0
                })
                .is_some_and(|r| r.allow)
        })
}

/// What the kernel would decide: the program's verdict, or allow when there
/// is no program.
fn verdict(program: Option<&[Insn]>, q: Query) -> bool {
    let Some(program) = program else { return true };
    let kind = if q.block { DEV_BLOCK } else { DEV_CHAR } as u32;
    let ctx = [kind | u32::from(q.access) << 16, q.major, q.minor];
    match run(program, ctx) {
        0 => false,
        1 => true,
        other => panic!("the program returned {other}"),
    }
}

/// A register as the verifier tracks it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reg {
    Uninit,
    Ctx,
    Scalar(u64),
}

/// Runs `program` on a `struct bpf_cgroup_dev_ctx`, panicking on what the
/// kernel's verifier refuses: an opcode the compiler does not emit, a read of
/// an unset register, a context load other than an aligned `u32` of one of
/// its three fields, a jump backwards or out of the program, an exit without R0.
fn run(program: &[Insn], ctx: [u32; 3]) -> u64 {
    assert!(!program.is_empty() && program.len() <= 4096);
    let mut regs = [Reg::Uninit; 11];
    regs[1] = Reg::Ctx;
    let scalar = |regs: &[Reg; 11], r: u8| match regs[usize::from(r)] {
        Reg::Scalar(v) => v,
        other => panic!("R{r} is {other:?}, not a number"),
    };
    let mut pc = 0;
    loop {
        let insn = *program.get(pc).expect("the program ran off its end");
        let (dst, src) = (insn.regs & 0xf, insn.regs >> 4);
        assert!(dst <= 10 && src <= 10);
        pc += 1;
        let imm32 = insn.imm as u32;
        match insn.code {
            c if c == BPF_LDX | BPF_W | BPF_MEM => {
                assert_eq!(regs[usize::from(src)], Reg::Ctx, "load from a non-context");
                let field = match insn.off {
                    0 => 0,
                    4 => 1,
                    8 => 2,
                    off => panic!("context load at offset {off}"),
                };
                regs[usize::from(dst)] = Reg::Scalar(u64::from(ctx[field]));
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => {
                let v = scalar(&regs, dst) as u32 & imm32;
                regs[usize::from(dst)] = Reg::Scalar(u64::from(v));
            }
            c if c == BPF_ALU | BPF_RSH | BPF_K => {
                assert!(imm32 < 32);
                let v = (scalar(&regs, dst) as u32) >> imm32;
                regs[usize::from(dst)] = Reg::Scalar(u64::from(v));
            }
            c if c == BPF_ALU | BPF_MOV | BPF_X => {
                let v = scalar(&regs, src) as u32;
                regs[usize::from(dst)] = Reg::Scalar(u64::from(v));
            }
            c if c == BPF_ALU64 | BPF_MOV | BPF_K => {
                regs[usize::from(dst)] = Reg::Scalar(i64::from(insn.imm) as u64);
            }
            c if c == BPF_JMP | BPF_JEQ | BPF_K || c == BPF_JMP | BPF_JNE | BPF_K => {
                assert!(insn.off >= 0, "a jump backwards");
                let target = pc + insn.off as usize;
                assert!(target < program.len(), "a jump out of the program");
                let equal = scalar(&regs, dst) == i64::from(insn.imm) as u64;
                if equal == (c == BPF_JMP | BPF_JEQ | BPF_K) {
                    pc = target;
                }
            }
            c if c == BPF_JMP | BPF_EXIT => return scalar(&regs, 0),
            other => panic!("opcode {other:#x} at {}", pc - 1),
        }
    }
}

/// Every device and access the tests ask about.
fn queries() -> impl Iterator<Item = Query> {
    let numbers = |values: &'static [u32]| values.iter().copied();
    [false, true].into_iter().flat_map(move |block| {
        numbers(&[1, 5, 8, 136, MAX_MAJOR]).flat_map(move |major| {
            numbers(&[0, 1, 3, 7, MAX_MINOR]).flat_map(move |minor| {
                (1..=7).map(move |access| Query {
                    block,
                    major,
                    minor,
                    access,
                })
            })
        })
    })
}

fn check_against_reading(rules: &[DeviceRule]) {
    let all = with_defaults(rules);
    let program = compile(&all);
    for q in queries() {
        assert_eq!(
            verdict(program.as_deref(), q),
            expected(&all, q),
            "{q:?} under {rules:?}"
        );
    }
}

fn rule(allow: bool, kind: DeviceType, major: i64, minor: i64, access: &str) -> DeviceRule {
    let number = |n: i64| u32::try_from(n).ok();
    DeviceRule {
        allow,
        kind,
        major: number(major),
        minor: number(minor),
        access: Access::parse(access).unwrap(),
    }
}

fn deny_all() -> DeviceRule {
    rule(false, DeviceType::All, -1, -1, "rwm")
}

fn allow_all() -> DeviceRule {
    rule(true, DeviceType::All, -1, -1, "rwm")
}

fn char_dev(major: u32, minor: u32, access: &str) -> Query {
    Query {
        block: false,
        major,
        minor,
        access: Access::parse(access).unwrap().bits(),
    }
}

fn block_dev(major: u32, minor: u32, access: &str) -> Query {
    Query {
        block: true,
        ..char_dev(major, minor, access)
    }
}

/// Decisions written out by hand, for rule lists like the ones configs have.
#[test]
fn verdicts_of_typical_rule_lists() {
    use DeviceType::{Block, Char};
    let cases: &[(&[DeviceRule], Query, bool)] = &[
        // No rules: the defaults only.
        (&[], char_dev(1, 3, "rw"), true),
        (&[], char_dev(1, 3, "m"), true),
        (&[], char_dev(136, 7, "rw"), true),
        (&[], char_dev(5, 1, "w"), true),
        (&[], block_dev(1, 3, "r"), false),
        (&[], block_dev(8, 0, "r"), false),
        (&[], char_dev(10, 200, "rw"), false),
        (&[], char_dev(1, 1, "r"), false),
        // runc's default spec: deny all, then the defaults.
        (&[deny_all()], char_dev(1, 9, "r"), true),
        (&[deny_all()], char_dev(1, 1, "r"), false),
        (&[deny_all()], block_dev(8, 0, "m"), false),
        // The defaults come last, so they cannot be denied (as in runc).
        (&[rule(false, Char, 1, 3, "rw")], char_dev(1, 3, "rw"), true),
        // One more device, for reading only.
        (
            &[deny_all(), rule(true, Char, 1, 11, "r")],
            char_dev(1, 11, "r"),
            true,
        ),
        (
            &[deny_all(), rule(true, Char, 1, 11, "r")],
            char_dev(1, 11, "rw"),
            false,
        ),
        // Any minor of a major.
        (
            &[rule(true, Block, 8, -1, "rwm")],
            block_dev(8, 7, "rw"),
            true,
        ),
        (
            &[rule(true, Block, 8, -1, "rwm")],
            char_dev(8, 7, "r"),
            false,
        ),
        // Allow all, then one deny: a later deny wins, for what it names.
        (
            &[allow_all(), rule(false, Block, 8, 0, "w")],
            block_dev(8, 0, "r"),
            true,
        ),
        (
            &[allow_all(), rule(false, Block, 8, 0, "w")],
            block_dev(8, 0, "rw"),
            false,
        ),
        (
            &[allow_all(), rule(false, Block, 8, 0, "w")],
            block_dev(8, 1, "w"),
            true,
        ),
        // A later allow wins over an earlier deny.
        (
            &[
                allow_all(),
                rule(false, Char, 1, 11, "rw"),
                rule(true, Char, 1, 11, "r"),
            ],
            char_dev(1, 11, "r"),
            true,
        ),
        // Accesses are decided one by one: read allowed by one rule and
        // write by another allows an O_RDWR open.
        (
            &[
                deny_all(),
                rule(true, Char, 1, 11, "r"),
                rule(true, Char, 1, 11, "w"),
            ],
            char_dev(1, 11, "rw"),
            true,
        ),
        // A deny of all after an allow all denies all again.
        (&[allow_all(), deny_all()], char_dev(8, 0, "r"), false),
        (&[allow_all(), deny_all()], char_dev(1, 3, "r"), true),
    ];
    for (rules, query, allowed) in cases {
        let all = with_defaults(rules);
        assert_eq!(
            expected(&all, *query),
            *allowed,
            "reading {query:?} under {rules:?}"
        );
        let program = compile(&all);
        assert_eq!(
            verdict(program.as_deref(), *query),
            *allowed,
            "program for {query:?} under {rules:?}"
        );
    }
}

#[test]
fn allowing_everything_needs_no_program() {
    assert_eq!(compile(&with_defaults(&[allow_all()])), None);
    let then_allows = [allow_all(), rule(true, DeviceType::Char, 1, 11, "r")];
    assert_eq!(compile(&with_defaults(&then_allows)), None);
    assert!(compile(&with_defaults(&[allow_all(), deny_all()])).is_some());
    assert!(compile(&with_defaults(&[])).is_some());
}

#[test]
fn rules_before_a_wildcard_are_not_emitted() {
    let noise = rule(true, DeviceType::Block, 8, 0, "r");
    let short = compile(&with_defaults(&[deny_all()])).unwrap();
    let long = compile(&with_defaults(&[noise, noise, deny_all()])).unwrap();
    assert_eq!(short, long);
}

#[test]
fn the_program_starts_by_loading_the_context_and_ends_with_the_default() {
    let program = compile(&with_defaults(&[])).unwrap();
    // The prologue crun and runc use (taken from systemd).
    assert_eq!(
        program[..6],
        [
            ldx_w(R2, R1, 0),
            alu32_imm(BPF_AND, R2, 0xffff),
            ldx_w(R3, R1, 0),
            alu32_imm(BPF_RSH, R3, 16),
            ldx_w(R4, R1, 4),
            ldx_w(R5, R1, 8),
        ]
    );
    assert_eq!(program[program.len() - 2..], [mov64_imm(R0, 0), exit()]);
    // Each default rule is a type check, a major, maybe a minor, and a verdict.
    assert_eq!(program.len(), 6 + 8 * 5 + 4 + 2);
    // The encoding of `struct bpf_insn`: dst in the low nibble.
    assert_eq!(
        ldx_w(R2, R1, 4),
        Insn {
            code: 0x61,
            regs: 0x12,
            off: 4,
            imm: 0
        }
    );
    assert_eq!(std::mem::size_of::<Insn>(), 8);
}

/// Rule lists drawn from a fixed pseudo-random sequence: the program agrees
/// with the reading of the rules on every query.
#[test]
fn the_program_agrees_with_the_rules_for_generated_lists() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    };
    let kinds = [DeviceType::All, DeviceType::Char, DeviceType::Block];
    let majors = [-1, 1, 5, 8, 136, i64::from(MAX_MAJOR)];
    let minors = [-1, 0, 1, 3, 7, i64::from(MAX_MINOR)];
    let accesses = ["r", "w", "m", "rw", "rm", "wm", "rwm"];
    for _ in 0..300 {
        let len = next(9) as usize;
        let rules: Vec<DeviceRule> = (0..len)
            .map(|_| {
                rule(
                    next(2) == 0,
                    kinds[next(3) as usize],
                    majors[next(6) as usize],
                    minors[next(6) as usize],
                    accesses[next(7) as usize],
                )
            })
            .collect();
        check_against_reading(&rules);
    }
}

#[test]
fn access_letters() {
    assert_eq!(Access::parse("rwm"), Some(Access::ALL));
    assert_eq!(Access::parse("mr"), Some(Access(ACC_MKNOD | ACC_READ)));
    assert_eq!(Access::parse("rr"), Some(Access::READ));
    assert_eq!(Access::parse(""), None);
    assert_eq!(Access::parse("rx"), None);
    assert_eq!(Access::parse("mwr").unwrap().to_string(), "rwm");
}
