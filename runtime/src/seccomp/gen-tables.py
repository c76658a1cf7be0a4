#!/usr/bin/env python3
"""Generates tables.rs: system call numbers of the ABIs husk filters.

Source: the kernel's generated UAPI headers in Debian's linux-libc-dev
6.12.95-1~bpo12+1 (bookworm-backports), which is architecture-independent and
ships the headers of every architecture under usr/lib/linux/uapi/<arch>/asm/:

    cd "$(mktemp -d)"
    apt-get download linux-libc-dev=6.12.95-1~bpo12+1
    dpkg-deb -x linux-libc-dev_*.deb x
    python3 /path/to/gen-tables.py x/usr/lib/linux/uapi > /path/to/tables.rs

System calls added after 6.12 (463-470) are in POST_6_12 below, copied from
the kernel's syscall.tbl files: since 5.1 (424) they have one number on every
architecture husk supports.

Optionally, with --check-libc DIR (the libc crate's src/unix/linux_like/linux),
the numbers are compared with the libc crate's SYS_* constants of each target
and differences are printed on stderr.
"""

import argparse
import pathlib
import re
import sys

# Column order of NUMBERS in tables.rs; must match `Arch::column` in mod.rs.
ABIS = [
    ("x86_64", ["x86/asm/unistd_64.h"]),
    ("x32", ["x86/asm/unistd_x32.h"]),
    ("x86", ["x86/asm/unistd_32.h"]),
    ("aarch64", ["arm64/asm/unistd_64.h"]),
    ("arm", ["arm/asm/unistd-eabi.h", "arm/asm/unistd.h"]),
    ("riscv64", ["riscv/asm/unistd_64.h"]),
]

POST_6_12 = {
    "setxattrat": 463,
    "getxattrat": 464,
    "listxattrat": 465,
    "removexattrat": 466,
    "open_tree_attr": 467,
    "file_getattr": 468,
    "file_setattr": 469,
    "listns": 470,
}

# Architectures libseccomp has tables for (not alpha, sparc): the names they
# know are accepted in profiles.
LIBSECCOMP_ARCHES = [
    "arm", "arm64", "loongarch", "m68k", "mips", "parisc", "powerpc", "riscv", "s390", "sh", "x86",
]

X32_SYSCALL_BIT = 0x40000000
ARM_NR_BASE = 0x0F0000
# The u16 encoding of numbers in tables.rs.
ABSENT = 0xFFFF
ARM_PRIVATE = 0xF000

DEFINE = re.compile(r"^#define\s+__(NR|ARM_NR)_([a-z_][a-z0-9_]*)\s+(.+?)\s*$")
# Not system calls: bases and counts.
NOT_SYSCALLS = {"syscalls", "arch_specific_syscall"}


def parse(*paths):
    """{name: number} of headers read together, so aliases across them resolve."""
    raw = {}
    lines = [line for path in paths for line in path.read_text().splitlines()]
    for line in lines:
        m = DEFINE.match(line)
        if not m:
            continue
        kind, name, expr = m.groups()
        if name in NOT_SYSCALLS or re.fullmatch(r"(reserved|unused)\d+", name):
            continue
        raw[(kind, name)] = expr
    numbers = {}
    for (kind, name), expr in raw.items():
        value = evaluate(expr, raw)
        if value is None:
            continue
        if kind == "ARM_NR":
            value += ARM_NR_BASE
        numbers[name] = value
    return numbers


def evaluate(expr, raw):
    expr = expr.strip()
    if expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1].strip()
    m = re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)", expr)
    if m:
        return int(expr, 0)
    m = re.fullmatch(r"(__NR_SYSCALL_BASE|__X32_SYSCALL_BIT|__ARM_NR_BASE|__NR_\w*Linux)\s*\+\s*(\d+)", expr)
    if m:
        base = {"__NR_SYSCALL_BASE": 0, "__X32_SYSCALL_BIT": X32_SYSCALL_BIT, "__ARM_NR_BASE": 0}
        return base.get(m.group(1), 0) + int(m.group(2))
    m = re.fullmatch(r"__NR_([a-z_][a-z0-9_]*)", expr)
    if m and ("NR", m.group(1)) in raw:
        return evaluate(raw[("NR", m.group(1))], raw)
    return None


def encode(abi, number):
    if abi == "x32":
        assert number & X32_SYSCALL_BIT, number
        number &= ~X32_SYSCALL_BIT
    if abi == "arm" and number >= ARM_NR_BASE:
        assert number - ARM_NR_BASE < 0x1000, number
        return ARM_PRIVATE | (number - ARM_NR_BASE)
    assert number < ARM_PRIVATE, (abi, number)
    return number


def check_libc(libc_dir, tables):
    files = {
        "x86_64": "gnu/b64/x86_64/not_x32.rs",
        "x32": "gnu/b64/x86_64/x32.rs",
        "x86": "gnu/b32/x86/mod.rs",
        "aarch64": "gnu/b64/aarch64/mod.rs",
        "arm": "gnu/b32/arm/mod.rs",
        "riscv64": "gnu/b64/riscv64/mod.rs",
    }
    const = re.compile(r"pub const SYS_(\w+): c_long = (?:__X32_SYSCALL_BIT \+ )?(\d+);")
    problems = 0
    for abi, rel in files.items():
        text = (libc_dir / rel).read_text()
        compared = 0
        for name, number in const.findall(text):
            number = int(number)
            if abi == "x32":
                number |= X32_SYSCALL_BIT
            ours = tables[abi].get(name)
            compared += 1
            if ours != number:
                problems += 1
                print(f"{abi}: {name}: libc {number}, headers {ours}", file=sys.stderr)
        print(f"{abi}: compared {compared} libc constants", file=sys.stderr)
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("uapi", type=pathlib.Path)
    parser.add_argument("--check-libc", type=pathlib.Path)
    args = parser.parse_args()

    tables = {}
    for abi, headers in ABIS:
        numbers = parse(*(args.uapi / header for header in headers))
        for name, number in POST_6_12.items():
            assert name not in numbers, name
            numbers[name] = number | (X32_SYSCALL_BIT if abi == "x32" else 0)
        tables[abi] = numbers

    # Every name the headers of an architecture libseccomp supports know, so that
    # a profile written for several architectures (Docker's names s390 and
    # powerpc calls) is accepted.
    known = set(POST_6_12)
    for arch in LIBSECCOMP_ARCHES:
        for header in sorted((args.uapi / arch).glob("asm/unistd*.h")):
            known.update(parse(header))
    for numbers in tables.values():
        known.update(numbers)
    names = sorted(known)

    if args.check_libc:
        check_libc(args.check_libc, tables)

    out = []
    w = out.append
    w("// @generated by gen-tables.py from Linux 6.12 UAPI headers (Debian linux-libc-dev")
    w("// 6.12.95-1~bpo12+1) and the kernel's syscall.tbl for 463-470. Do not edit.")
    w("")
    w("//! System call names and numbers: the sorted names every architecture's")
    w("//! headers know, and each name's number for the six ABIs husk filters.")
    w("")
    w(f"/// How many names [`NAMES`] holds.")
    w(f"pub(super) const COUNT: usize = {len(names)};")
    w("")
    w("/// Marks a name the ABI has no system call for.")
    w(f"pub(super) const ABSENT: u16 = {ABSENT:#06x};")
    w("")
    w("/// ARM-private numbers (`__ARM_NR_*`, 0x0f0000 + n) are stored as this + n.")
    w(f"pub(super) const ARM_PRIVATE: u16 = {ARM_PRIVATE:#06x};")
    w("")
    w("/// Every name, in byte order, each followed by a newline.")
    w('pub(super) static NAMES: &str = "\\')
    for name in names:
        w(f"{name}\\n\\")
    w('";')
    w("")
    w("/// The number of each name in [`NAMES`], in columns")
    w("/// " + ", ".join(abi for abi, _ in ABIS) + "; x32 without its")
    w("/// `0x40000000` bit.")
    w("#[rustfmt::skip]")
    w(f"pub(super) static NUMBERS: [[u16; {len(ABIS)}]; COUNT] = [")
    for name in names:
        cells = []
        for abi, _ in ABIS:
            number = tables[abi].get(name)
            if number is None:
                cells.append("__")
            elif abi == "arm" and number >= ARM_NR_BASE:
                cells.append(f"{encode(abi, number):#06x}")
            else:
                cells.append(str(encode(abi, number)))
        w(f"    [{', '.join(cells)}], // {name}")
    w("];")
    w("")
    w("const __: u16 = ABSENT;")
    print("\n".join(out))


if __name__ == "__main__":
    main()
