//! Parsing, and compiled filters run in the interpreter of `interp.rs`.

use super::interp::{run, SeccompData};
use super::syscalls::X32_SYSCALL_BIT;
use super::*;

const ALLOW: u32 = Action::Allow.ret();
const KILL_PROCESS: u32 = Action::KillProcess.ret();
const fn errno(errno: u16) -> u32 {
    Action::Errno(errno).ret()
}
const ENOSYS: u16 = 38;
const ARCH_64: [Arch; 4] = [Arch::X86_64, Arch::X32, Arch::Aarch64, Arch::Riscv64];

fn profile(json: &str) -> Profile {
    parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn error(json: &str) -> String {
    parse(json.as_bytes())
        .expect_err("profile should be rejected")
        .to_string()
}

fn compile(profile: &Profile, native: Arch) -> Filter {
    profile.compile(native).unwrap_or_else(|e| panic!("{e}"))
}

fn nr(name: &str, arch: Arch) -> u32 {
    Syscall::lookup(name)
        .and_then(|s| s.number(arch))
        .unwrap_or_else(|| panic!("{name} on {arch:?}"))
}

/// What `filter` returns for the system call `name` of `arch` with `args`.
fn call(filter: &Filter, arch: Arch, name: &str, args: &[u64]) -> u32 {
    raw(filter, arch.audit(), nr(name, arch), args)
}

fn raw(filter: &Filter, audit: u32, nr: u32, args: &[u64]) -> u32 {
    let mut data = SeccompData {
        nr,
        arch: audit,
        args: [0; 6],
    };
    data.args[..args.len()].copy_from_slice(args);
    run(filter.program(), &data)
}

/// A rule for `names` as JSON.
fn rule(names: &[&str], action: &str, args: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!(
        r#"{{"names": [{}], "action": "{action}", "args": [{args}]}}"#,
        names.join(", ")
    )
}

#[test]
fn minimal_profile() {
    let p = profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
    assert_eq!(p.default_action(), Action::Allow);
    assert_eq!(p.flags(), 0);
    for native in Arch::ALL {
        let filter = compile(&p, native);
        assert_eq!(call(&filter, native, "read", &[]), ALLOW);
        assert_eq!(raw(&filter, 0x1234, 0, &[]), KILL_PROCESS);
    }
}

#[test]
fn actions() {
    let cases = [
        ("SCMP_ACT_KILL", "", Action::KillThread, 0),
        ("SCMP_ACT_KILL_THREAD", "", Action::KillThread, 0),
        (
            "SCMP_ACT_KILL_PROCESS",
            "",
            Action::KillProcess,
            0x8000_0000,
        ),
        ("SCMP_ACT_TRAP", "", Action::Trap, 0x0003_0000),
        ("SCMP_ACT_ERRNO", "", Action::Errno(1), 0x0005_0001),
        (
            "SCMP_ACT_ERRNO",
            r#", "errnoRet": 38"#,
            Action::Errno(38),
            0x0005_0026,
        ),
        (
            "SCMP_ACT_ERRNO",
            r#", "errnoRet": 0"#,
            Action::Errno(0),
            0x0005_0000,
        ),
        ("SCMP_ACT_TRACE", "", Action::Trace(1), 0x7ff0_0001),
        (
            "SCMP_ACT_TRACE",
            r#", "errnoRet": 65535"#,
            Action::Trace(65535),
            0x7ff0_ffff,
        ),
        ("SCMP_ACT_ALLOW", "", Action::Allow, 0x7fff_0000),
        ("SCMP_ACT_LOG", "", Action::Log, 0x7ffc_0000),
    ];
    for (name, errno, action, ret) in cases {
        let p = profile(&format!(
            r#"{{"defaultAction": "{name}"{}, "syscalls": [{}]}}"#,
            errno.replace("errnoRet", "defaultErrnoRet"),
            rule(&["write"], name, "").replace('}', &format!("{errno}}}")),
        ));
        assert_eq!(p.default_action(), action);
        assert_eq!(p.rules[0].action, action);
        assert_eq!(action.ret(), ret);
        assert_eq!(
            call(&compile(&p, Arch::X86_64), Arch::X86_64, "read", &[]),
            ret
        );
    }
}

#[test]
fn rejections() {
    let with = |extra: &str| format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", {extra}}}"#);
    let rule_with = |members: &str| with(&format!(r#""syscalls": [{{{members}}}]"#));
    let cases = [
        (
            r#"{"syscalls": []}"#.to_owned(),
            "linux.seccomp.defaultAction is required",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#.to_owned(),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not supported",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}"#.to_owned(),
            "linux.seccomp.defaultErrnoRet applies only to SCMP_ACT_ERRNO and SCMP_ACT_TRACE",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}"#.to_owned(),
            "linux.seccomp.defaultErrnoRet must be at most 4095",
        ),
        (
            with(r#""listenerPath": "/run/agent.sock""#),
            "linux.seccomp.listenerPath is not supported",
        ),
        (
            with(r#""listenerMetadata": "x""#),
            "linux.seccomp.listenerMetadata is not supported",
        ),
        (
            with(r#""architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE"]"#),
            "linux.seccomp.architectures[1]: SCMP_ARCH_PPC64LE is not supported",
        ),
        (
            with(r#""flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]"#),
            "linux.seccomp.flags[1]: SECCOMP_FILTER_FLAG_TSYNC is not supported",
        ),
        (
            with(r#""flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]"#),
            "linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_NEW_LISTENER is not supported",
        ),
        (
            rule_with(r#""names": ["read", "opne"], "action": "SCMP_ACT_KILL""#),
            r#"linux.seccomp.syscalls[0].names[1]: no architecture has a system call "opne""#,
        ),
        (
            rule_with(r#""action": "SCMP_ACT_KILL""#),
            "linux.seccomp.syscalls[0].names is required",
        ),
        (
            rule_with(r#""names": [], "action": "SCMP_ACT_KILL""#),
            "linux.seccomp.syscalls[0].names must not be empty",
        ),
        (
            rule_with(r#""names": ["read"]"#),
            "linux.seccomp.syscalls[0].action is required",
        ),
        (
            rule_with(r#""names": ["read"], "action": "SCMP_ACT_NOTIFY""#),
            "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported",
        ),
        (
            rule_with(r#""names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1"#),
            "linux.seccomp.syscalls[0].errnoRet applies only to SCMP_ACT_ERRNO and SCMP_ACT_TRACE",
        ),
        (
            rule_with(
                r#""names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]"#,
            ),
            "linux.seccomp.syscalls[0].args[0].index must be at most 5",
        ),
        (
            rule_with(
                r#""names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]"#,
            ),
            "linux.seccomp.syscalls[0].args[0].value is required",
        ),
        (
            rule_with(
                r#""names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"value": 1, "op": "SCMP_CMP_EQ"}]"#,
            ),
            "linux.seccomp.syscalls[0].args[0].index is required",
        ),
        (
            rule_with(
                r#""names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_BETWEEN"}]"#,
            ),
            "linux.seccomp.syscalls[0].args[0].op: SCMP_CMP_BETWEEN is not supported",
        ),
        (
            rule_with(
                r#""names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 1, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}]"#,
            ),
            "linux.seccomp.syscalls[0].args[0].valueTwo applies only to SCMP_CMP_MASKED_EQ",
        ),
        (
            rule_with(&format!(
                r#""names": ["{}"], "action": "SCMP_ACT_KILL""#,
                "x".repeat(65)
            )),
            "linux.seccomp.syscalls[0].names[0] is longer than 64 bytes",
        ),
    ];
    for (json, message) in cases {
        assert_eq!(error(&json), message, "{json}");
    }
    assert!(error("{").starts_with("linux.seccomp: invalid JSON: "));
    assert!(error(r#"{"defaultAction": 1}"#).starts_with("linux.seccomp: invalid JSON: "));
    assert!(error(r#"{"defaultAction": "SCMP_ACT_ALLOW"} x"#)
        .starts_with("linux.seccomp: invalid JSON: "));
}

#[test]
fn capacities_are_named() {
    let json = |rules: usize, names: usize, args: usize| {
        let names = vec!["read"; names];
        let args = vec![r#"{"index": 0, "value": 1, "op": "SCMP_CMP_NE"}"#; args].join(", ");
        let rules = vec![rule(&names, "SCMP_ACT_KILL", &args); rules].join(", ");
        format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{rules}]}}"#)
    };
    profile(&json(
        MAX_SYSCALL_RULES,
        MAX_NAMES_PER_RULE,
        MAX_ARGS_PER_RULE,
    ));
    assert_eq!(
        error(&json(MAX_SYSCALL_RULES + 1, 1, 0)),
        "linux.seccomp.syscalls has more than 64 entries"
    );
    assert_eq!(
        error(&json(1, MAX_NAMES_PER_RULE + 1, 0)),
        "linux.seccomp.syscalls[0].names has more than 512 entries"
    );
    assert_eq!(
        error(&json(1, 1, MAX_ARGS_PER_RULE + 1)),
        "linux.seccomp.syscalls[0].args has more than 6 entries"
    );
    let arches = vec![r#""SCMP_ARCH_ARM""#; MAX_ARCHITECTURES + 1].join(", ");
    assert_eq!(
        error(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": [{arches}]}}"#
        )),
        "linux.seccomp.architectures has more than 16 entries"
    );
}

/// The wire structs live on the stack while `config.json` is parsed.
#[test]
fn wire_structs_are_small() {
    let size = std::mem::size_of::<WireSeccomp<'_>>();
    assert!(size < 1 << 10, "WireSeccomp is {size} bytes");
    let size = std::mem::size_of::<wire::WireSyscall<'_>>();
    assert!(size < 2 << 10, "WireSyscall is {size} bytes");
}

#[test]
fn flags_and_architectures() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_LOG"], "architectures": ["SCMP_ARCH_ARM", "SCMP_ARCH_X86",
            "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_RISCV64", "SCMP_ARCH_X32",
            "SCMP_ARCH_X86_64"], "unknownMember": {"x": [1]}}"#,
    );
    assert_eq!(p.flags(), FILTER_FLAG_LOG | FILTER_FLAG_SPEC_ALLOW);
    assert_eq!(compile(&p, Arch::Arm).flags(), 6);
    assert_eq!(p.architectures, Arch::ALL, "sorted, without repeats");
    assert_eq!(
        p.covered(Arch::X86_64),
        [Arch::X86_64, Arch::X86, Arch::X32]
    );
    assert_eq!(p.covered(Arch::Aarch64), [Arch::Aarch64, Arch::Arm]);
    assert_eq!(p.covered(Arch::Arm), [Arch::Arm]);
    assert_eq!(p.covered(Arch::Riscv64), [Arch::Riscv64]);
    let native_only = profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
    assert_eq!(native_only.covered(Arch::Aarch64), [Arch::Aarch64]);
}

/// A name missing on a selected architecture is skipped there, like libseccomp.
#[test]
fn names_missing_on_an_architecture_are_skipped() {
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_RISCV64"],
            "syscalls": [{}, {}]}}"#,
        rule(
            &["open", "openat", "s390_pci_mmio_read"],
            "SCMP_ACT_KILL_PROCESS",
            ""
        ),
        rule(&["swapcontext"], "SCMP_ACT_KILL_PROCESS", ""),
    ));
    let filter = compile(&p, Arch::Riscv64);
    assert_eq!(call(&filter, Arch::Riscv64, "openat", &[]), KILL_PROCESS);
    assert_eq!(call(&filter, Arch::Riscv64, "read", &[]), ALLOW);
    // Escaped names are names too.
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}]}}"#,
        rule(&["re\\u0061d"], "SCMP_ACT_KILL_PROCESS", "").replace("\\\\", "\\"),
    ));
    assert_eq!(p.rules[0].syscalls, [Syscall::lookup("read").unwrap()]);
}

/// A tiny deterministic generator for test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Values where 64-bit comparisons split into two words can go wrong.
const EDGES: [u64; 14] = [
    0,
    1,
    2,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    0x1_ffff_ffff,
    0xdead_beef_0000_0001,
    0xffff_ffff_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

/// Arguments near `value`: equal, one above, one below, each word changed.
fn near(value: u64) -> [u64; 7] {
    [
        value,
        value.wrapping_add(1),
        value.wrapping_sub(1),
        value ^ 1,
        value ^ 0x1_0000_0000,
        value & 0xffff_ffff,
        value | 0xffff_ffff_0000_0000,
    ]
}

/// Every operator on values at the word edges, on 64- and 32-bit ABIs, agrees
/// with the comparison evaluated in Rust.
#[test]
fn argument_comparisons() {
    let ops = ["NE", "LT", "LE", "EQ", "GE", "GT"];
    for native in Arch::ALL {
        for (n, &value) in EDGES.iter().enumerate() {
            for op in ops {
                let index = n % 6;
                let p = profile(&format!(
                    r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}]}}"#,
                    rule(
                        &["read"],
                        "SCMP_ACT_ERRNO",
                        &format!(
                            r#"{{"index": {index}, "value": {value}, "op": "SCMP_CMP_{op}"}}"#
                        )
                    ),
                ));
                let cmp = p.rules[0].args[0].cmp;
                let filter = compile(&p, native);
                let args = EDGES.iter().flat_map(|&v| near(v)).chain(near(value));
                for arg in args {
                    // The kernel zero-extends the arguments of 32-bit ABIs.
                    let arg = if native.wide_args() {
                        arg
                    } else {
                        arg & 0xffff_ffff
                    };
                    let mut argv = [0xffff_ffff_ffff_ffff; 6];
                    argv[index] = arg;
                    let expected = if cmp.holds(arg) { errno(1) } else { ALLOW };
                    assert_eq!(
                        call(&filter, native, "read", &argv),
                        expected,
                        "{native:?}: arg{index} = {arg:#x} {op} {value:#x}"
                    );
                }
            }
        }
    }
}

#[test]
fn masked_comparisons() {
    let masks = [
        0,
        0xff,
        0xffff_ffff,
        0x1_0000_0000,
        0x7e02_0000,
        0xffff_0000_ffff_0000,
        u64::MAX,
    ];
    let mut rng = Rng(0x5eed);
    for native in [Arch::X86_64, Arch::Arm] {
        for mask in masks {
            for value in [
                0,
                0x2_0000,
                0x1_0000_0000,
                0xff,
                0xffff_0000_0000_0000,
                mask,
            ] {
                let p = profile(&format!(
                    r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}]}}"#,
                    rule(
                        &["clone"],
                        "SCMP_ACT_TRAP",
                        &format!(
                            r#"{{"index": 0, "value": {mask}, "valueTwo": {value}, "op": "SCMP_CMP_MASKED_EQ"}}"#
                        )
                    ),
                ));
                let filter = compile(&p, native);
                let randoms: Vec<u64> = (0..32).map(|_| rng.next()).collect();
                for arg in EDGES
                    .iter()
                    .chain(&randoms)
                    .copied()
                    .chain([value, value | !mask])
                {
                    let arg = if native.wide_args() {
                        arg
                    } else {
                        arg & 0xffff_ffff
                    };
                    let expected = if arg & mask == value {
                        Action::Trap.ret()
                    } else {
                        ALLOW
                    };
                    assert_eq!(
                        call(&filter, native, "clone", &[arg]),
                        expected,
                        "{native:?}: {arg:#x} & {mask:#x} == {value:#x}"
                    );
                }
            }
        }
    }
}

/// What a filter of `profile` should return, by the rules in mod.rs's
/// documentation, for a call from a covered `arch`.
fn oracle(profile: &Profile, arch: Arch, nr: u32, args: &[u64; 6]) -> u32 {
    let rules: Vec<&Rule> = profile
        .rules
        .iter()
        .filter(|r| r.action != profile.default_action)
        .filter(|r| r.syscalls.iter().any(|s| s.number(arch) == Some(nr)))
        .collect();
    if let Some(rule) = rules.iter().find(|r| r.args.is_empty()) {
        return rule.action.ret();
    }
    for rule in rules {
        if rule
            .args
            .iter()
            .all(|a| a.cmp.holds(args[usize::from(a.index)]))
        {
            return rule.action.ret();
        }
    }
    profile.default_action.ret()
}

#[test]
fn rule_order_and_precedence() {
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{}]}}"#,
        [
            // Two comparisons on one argument: 10 <= arg0 < 20, and arg1 == 7.
            rule(
                &["read"],
                "SCMP_ACT_TRAP",
                r#"{"index": 0, "value": 10, "op": "SCMP_CMP_GE"},
                   {"index": 0, "value": 20, "op": "SCMP_CMP_LT"},
                   {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}"#
            ),
            // Rules with arguments: the first that holds decides.
            rule(
                &["read"],
                "SCMP_ACT_LOG",
                r#"{"index": 0, "value": 15, "op": "SCMP_CMP_GE"}"#
            ),
            // Same action as the default: skipped, so it does not shadow the ALLOW below.
            rule(
                &["write"],
                "SCMP_ACT_ERRNO",
                r#"{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}"#
            ),
            rule(
                &["write"],
                "SCMP_ACT_ALLOW",
                r#"{"index": 0, "value": 9, "op": "SCMP_CMP_LE"}"#
            ),
            // A rule without arguments wins over earlier ones with arguments.
            rule(
                &["close"],
                "SCMP_ACT_TRAP",
                r#"{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}"#
            ),
            rule(&["close", "read"], "SCMP_ACT_ALLOW", "").replace("\"read\"", "\"getpid\""),
            rule(&["close"], "SCMP_ACT_KILL", ""),
        ]
        .join(", ")
    ));
    let trap = Action::Trap.ret();
    let log = Action::Log.ret();
    for native in Arch::ALL {
        let f = compile(&p, native);
        assert_eq!(call(&f, native, "read", &[12, 7]), trap, "{native:?}");
        assert_eq!(call(&f, native, "read", &[15, 7]), trap);
        assert_eq!(call(&f, native, "read", &[15, 8]), log);
        assert_eq!(call(&f, native, "read", &[20, 7]), log);
        assert_eq!(call(&f, native, "read", &[9, 7]), errno(1));
        assert_eq!(call(&f, native, "write", &[1]), ALLOW);
        assert_eq!(call(&f, native, "write", &[10]), errno(1));
        assert_eq!(call(&f, native, "close", &[3]), ALLOW);
        assert_eq!(call(&f, native, "close", &[4]), ALLOW);
        assert_eq!(call(&f, native, "getpid", &[]), ALLOW);
        assert_eq!(call(&f, native, "gettid", &[]), errno(1));
    }
}

#[test]
fn architectures_not_covered_are_killed() {
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_ARM"],
            "syscalls": [{}]}}"#,
        rule(&["ioctl"], "SCMP_ACT_ERRNO", ""),
    ));
    let filter = compile(&p, Arch::Aarch64);
    assert_eq!(call(&filter, Arch::Aarch64, "ioctl", &[]), errno(1));
    assert_eq!(call(&filter, Arch::Arm, "ioctl", &[]), errno(1));
    assert_eq!(call(&filter, Arch::Arm, "read", &[]), ALLOW);
    // x86_64 is listed but cannot run on aarch64: left out.
    assert_eq!(call(&filter, Arch::X86_64, "read", &[]), KILL_PROCESS);
    assert_eq!(call(&filter, Arch::Riscv64, "read", &[]), KILL_PROCESS);
    let filter = compile(&p, Arch::Arm);
    assert_eq!(call(&filter, Arch::Arm, "ioctl", &[]), errno(1));
    assert_eq!(call(&filter, Arch::Aarch64, "read", &[]), KILL_PROCESS);
    let filter = compile(&p, Arch::X86_64);
    assert_eq!(call(&filter, Arch::X86_64, "ioctl", &[]), errno(1));
    assert_eq!(call(&filter, Arch::X86, "read", &[]), KILL_PROCESS);
    assert_eq!(call(&filter, Arch::Arm, "read", &[]), KILL_PROCESS);
}

#[test]
fn x32_and_i386_on_x86_64() {
    let deny_ioctl = rule(&["ioctl", "kexec_load"], "SCMP_ACT_ERRNO", "");
    let json = |arches: &str| {
        format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": [{arches}], "syscalls": [{deny_ioctl}]}}"#
        )
    };
    let x86_64 = Arch::X86_64.audit();

    // Without SCMP_ARCH_X32, x32 calls kill the process; -1 is x86_64's.
    let f = compile(&profile(&json(r#""SCMP_ARCH_X86_64""#)), Arch::X86_64);
    assert_eq!(call(&f, Arch::X86_64, "ioctl", &[]), errno(1));
    assert_eq!(call(&f, Arch::X86_64, "read", &[]), ALLOW);
    assert_eq!(raw(&f, x86_64, X32_SYSCALL_BIT, &[]), KILL_PROCESS);
    assert_eq!(raw(&f, x86_64, X32_SYSCALL_BIT | 514, &[]), KILL_PROCESS);
    assert_eq!(raw(&f, x86_64, u32::MAX, &[]), ALLOW);
    assert_eq!(call(&f, Arch::X86, "ioctl", &[]), KILL_PROCESS);

    // With it, x32 calls are filtered by x32 numbers: ioctl is 514, not 16.
    let f = compile(
        &profile(&json(
            r#""SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_X86""#,
        )),
        Arch::X86_64,
    );
    assert_eq!(call(&f, Arch::X32, "ioctl", &[]), errno(1));
    assert_eq!(nr("ioctl", Arch::X32), X32_SYSCALL_BIT | 514);
    assert_eq!(raw(&f, x86_64, X32_SYSCALL_BIT | 16, &[]), ALLOW);
    assert_eq!(call(&f, Arch::X32, "kexec_load", &[]), errno(1));
    assert_eq!(call(&f, Arch::X32, "read", &[]), ALLOW);
    assert_eq!(call(&f, Arch::X86_64, "ioctl", &[]), errno(1));
    assert_eq!(call(&f, Arch::X86_64, "kexec_load", &[]), errno(1));
    assert_eq!(call(&f, Arch::X86, "ioctl", &[]), errno(1));
    assert_eq!(call(&f, Arch::X86, "kexec_load", &[]), errno(1));
    assert_eq!(call(&f, Arch::X86, "read", &[]), ALLOW);
}

#[test]
fn arm_private_calls() {
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_ARM"], "syscalls": [{}]}}"#,
        rule(&["cacheflush", "set_tls", "read"], "SCMP_ACT_ALLOW", ""),
    ));
    let f = compile(&p, Arch::Aarch64);
    assert_eq!(raw(&f, Arch::Arm.audit(), 0x000f_0002, &[]), ALLOW);
    assert_eq!(raw(&f, Arch::Arm.audit(), 0x000f_0005, &[]), ALLOW);
    assert_eq!(raw(&f, Arch::Arm.audit(), 0x000f_0001, &[]), errno(1));
    assert_eq!(call(&f, Arch::Aarch64, "read", &[]), ALLOW);
    assert_eq!(call(&f, Arch::Aarch64, "write", &[]), errno(1));
}

/// A Docker-like allow-list for `native`: like Docker's, one list of the
/// system calls of every architecture (here: all six husk knows), less the
/// dangerous ones Docker's default profile withholds from a container without
/// extra capabilities; Docker's rules for `personality`, `socket`, `clone` and
/// `clone3`; and the architectures Docker selects for `native`.
fn docker_like(native: Arch) -> String {
    const WITHHELD: &[&str] = &[
        "acct",
        "add_key",
        "bpf",
        "clock_settime",
        "clock_settime64",
        "clone",
        "clone3",
        "create_module",
        "delete_module",
        "fanotify_init",
        "finit_module",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "get_kernel_syms",
        "get_mempolicy",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mbind",
        "migrate_pages",
        "mount",
        "mount_setattr",
        "move_mount",
        "move_pages",
        "nfsservctl",
        "open_by_handle_at",
        "open_tree",
        "open_tree_attr",
        "perf_event_open",
        "personality",
        "pidfd_getfd",
        "pivot_root",
        "process_madvise",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
        "query_module",
        "quotactl",
        "quotactl_fd",
        "reboot",
        "request_key",
        "set_mempolicy",
        "set_mempolicy_home_node",
        "setdomainname",
        "sethostname",
        "setns",
        "settimeofday",
        "socket",
        "stime",
        "swapoff",
        "swapon",
        "syslog",
        "umount",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
        "vhangup",
        "vm86",
        "vm86old",
        "_sysctl",
    ];
    let arches: &[Arch] = match native {
        Arch::X86_64 => &[Arch::X86_64, Arch::X86, Arch::X32],
        Arch::Aarch64 => &[Arch::Aarch64, Arch::Arm],
        other => &[other],
    };
    let names: Vec<&str> = Syscall::all()
        .filter(|s| Arch::ALL.iter().any(|&a| s.number(a).is_some()))
        .map(Syscall::name)
        .filter(|n| !WITHHELD.contains(n))
        .collect();
    let mut rules: Vec<String> = names
        .chunks(MAX_NAMES_PER_RULE)
        .map(|chunk| rule(chunk, "SCMP_ACT_ALLOW", ""))
        .collect();
    for value in [0_u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        let arg = format!(r#"{{"index": 0, "value": {value}, "op": "SCMP_CMP_EQ"}}"#);
        rules.push(rule(&["personality"], "SCMP_ACT_ALLOW", &arg));
    }
    rules.push(rule(
        &["socket"],
        "SCMP_ACT_ALLOW",
        r#"{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}"#,
    ));
    rules.push(rule(
        &["clone"],
        "SCMP_ACT_ALLOW",
        r#"{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}"#,
    ));
    rules.push(
        rule(&["clone3"], "SCMP_ACT_ERRNO", "").replace("\"args\"", "\"errnoRet\": 38, \"args\""),
    );
    let arches: Vec<String> = arches.iter().map(|a| format!("{:?}", a.name())).collect();
    format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": [{}], "syscalls": [{}]}}"#,
        arches.join(", "),
        rules.join(",\n")
    )
}

/// Checks the `personality`, `clone`, `clone3`, `socket`, `kexec_load` and
/// `read` rules both profiles share, for every ABI `native` covers.
fn check_common_rules(filter: &Filter, arches: &[Arch]) {
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    const CLONE_NEWNS: u64 = 0x0002_0000;
    const CLONE_NEWNET: u64 = 0x4000_0000;
    const SIGCHLD: u64 = 17;
    const THREAD: u64 = 0x003d_0f00;
    for &arch in arches {
        let call = |name, args: &[u64]| call(filter, arch, name, args);
        assert_eq!(call("read", &[]), ALLOW, "{arch:?}");
        assert_eq!(call("kexec_load", &[]), errno(1), "{arch:?}");
        for ok in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(call("personality", &[ok]), ALLOW, "{arch:?} {ok:#x}");
        }
        for denied in [0xdead_beef, 0x0040_0000, 1] {
            assert_eq!(
                call("personality", &[denied]),
                errno(1),
                "{arch:?} {denied:#x}"
            );
        }
        assert_eq!(call("clone", &[SIGCHLD]), ALLOW, "{arch:?}");
        assert_eq!(call("clone", &[THREAD]), ALLOW, "{arch:?}");
        for flag in [CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET] {
            assert_eq!(
                call("clone", &[flag | SIGCHLD]),
                errno(1),
                "{arch:?} {flag:#x}"
            );
        }
        assert_eq!(call("clone3", &[]), errno(ENOSYS), "{arch:?}");
        assert_eq!(call("socket", &[2, 1, 0]), ALLOW, "{arch:?}");
        assert_eq!(call("socket", &[40, 1, 0]), errno(1), "{arch:?}");
        if ARCH_64.contains(&arch) {
            let high = 1 << 32;
            assert_eq!(call("personality", &[high]), errno(1), "{arch:?}");
        }
    }
}

#[test]
fn docker_like_profile_on_four_architectures() {
    for native in [Arch::X86_64, Arch::Aarch64, Arch::Arm, Arch::Riscv64] {
        let p = profile(&docker_like(native));
        assert!(
            p.rules[0].syscalls.len() > 300,
            "one long rule, like Docker's"
        );
        let f = compile(&p, native);
        assert!(f.program().len() > 255, "{native:?}: {}", f.program().len());
        let arches = p.covered(native);
        check_common_rules(&f, &arches);
        for &arch in &arches {
            assert_eq!(call(&f, arch, "mount", &[]), errno(1));
            assert_eq!(call(&f, arch, "unshare", &[]), errno(1));
            assert_eq!(call(&f, arch, "getpid", &[]), ALLOW);
            assert_eq!(call(&f, arch, "mseal", &[]), ALLOW);
        }
    }
    let p = profile(&docker_like(Arch::Aarch64));
    let f = compile(&p, Arch::Aarch64);
    assert_eq!(call(&f, Arch::Arm, "cacheflush", &[]), ALLOW);
    assert_eq!(call(&f, Arch::Arm, "_llseek", &[]), ALLOW);
}

/// Many random calls to a long program agree with [`oracle`]: the jumps the
/// trampolines carry land where they should.
#[test]
fn long_programs_agree_with_the_oracle() {
    let mut rng = Rng(42);
    for native in [Arch::X86_64, Arch::Aarch64, Arch::Arm, Arch::Riscv64] {
        let p = profile(&docker_like(native));
        let f = compile(&p, native);
        let trampolines = f
            .program()
            .iter()
            .filter(|i| i.code == bpf::BPF_JMP | bpf::BPF_JA | bpf::BPF_K)
            .count();
        assert!(trampolines > 0 || native != Arch::X86_64, "{native:?}");
        for arch in p.covered(native) {
            for syscall in Syscall::all() {
                let Some(nr) = syscall.number(arch) else {
                    continue;
                };
                for _ in 0..4 {
                    let mut args = [0; 6];
                    for arg in &mut args {
                        *arg = match rng.next() % 3 {
                            0 => rng.pick(&EDGES),
                            1 => rng.pick(&[0, 8, 40, 0x20000, 0x1000_0000, 0xffff_ffff]),
                            _ => rng.next(),
                        };
                        if !arch.wide_args() {
                            *arg &= 0xffff_ffff;
                        }
                    }
                    assert_eq!(
                        raw(&f, arch.audit(), nr, &args),
                        oracle(&p, arch, nr, &args),
                        "{arch:?} {} {args:x?}",
                        syscall.name()
                    );
                }
            }
            // Numbers no name has get the default.
            assert_eq!(
                raw(&f, arch.audit(), nr("read", arch) + 3000, &[]),
                errno(1)
            );
        }
    }
}

#[test]
fn too_long_programs_are_rejected() {
    // Every rule: 6 two-word comparisons on every 64-bit ABI.
    let args = [r#"{"index": 5, "value": 12345678901234, "op": "SCMP_CMP_LE"}"#; 6].join(", ");
    let rules = vec![rule(&["read", "write"], "SCMP_ACT_KILL", &args); 64].join(", ");
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X32"], "syscalls": [{rules}]}}"#
    ));
    let instructions = match p.compile(Arch::X86_64) {
        Err(SeccompError::ProgramTooLong {
            native: Arch::X86_64,
            instructions,
        }) => instructions,
        other => panic!("{other:?}"),
    };
    assert!(instructions > MAX_INSTRUCTIONS);
    assert_eq!(
        p.compile(Arch::X86_64).unwrap_err().to_string(),
        format!(
            "linux.seccomp: the filter for SCMP_ARCH_X86_64 has {instructions} instructions, \
             more than the kernel's 4096"
        )
    );
    // On one 64-bit ABI it fits.
    compile(&p, Arch::Aarch64);
}

#[test]
fn default_profile_parses_and_compiles_everywhere() {
    let p = profile(default_profile());
    assert_eq!(p.default_action(), Action::Allow);
    assert_eq!(p.architectures, Arch::ALL);
    for native in Arch::ALL {
        let f = compile(&p, native);
        let arches = p.covered(native);
        check_common_rules(&f, &arches);
        for &arch in &arches {
            let call = |name, args: &[u64]| call(&f, arch, name, args);
            for denied in [
                "unshare",
                "setns",
                "mount",
                "pivot_root",
                "bpf",
                "keyctl",
                "ptrace",
            ] {
                assert_eq!(call(denied, &[]), errno(1), "{arch:?} {denied}");
            }
            for allowed in [
                "write",
                "openat",
                "execve",
                "getpid",
                "mseal",
                "name_to_handle_at",
            ] {
                assert_eq!(call(allowed, &[]), ALLOW, "{arch:?} {allowed}");
            }
        }
        if native == Arch::X86_64 {
            assert_eq!(call(&f, Arch::X86_64, "iopl", &[]), errno(1));
            assert_eq!(call(&f, Arch::X86, "vm86", &[]), errno(1));
            assert_eq!(call(&f, Arch::X86, "stime", &[]), errno(1));
        }
    }
}

/// The sizes `husk` installs, printed for the record (`--nocapture`).
#[test]
fn default_profile_sizes() {
    let p = profile(default_profile());
    for native in [Arch::X86_64, Arch::Aarch64, Arch::Arm, Arch::Riscv64] {
        let len = compile(&p, native).program().len();
        println!("default profile on {native:?}: {len} instructions");
        assert!(len < 1024, "{native:?}: {len}");
    }
    for native in [Arch::X86_64, Arch::Aarch64, Arch::Arm, Arch::Riscv64] {
        let len = compile(&profile(&docker_like(native)), native)
            .program()
            .len();
        println!("Docker-like allow-list on {native:?}: {len} instructions");
    }
}
