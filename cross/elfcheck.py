#!/usr/bin/env python3
"""Prints the build table and fails when a binary is not a static ELF for its arch,
or is larger than its size budget.

Usage: elfcheck.py ARCH=PATH...   (ARCH is armv7, aarch64, riscv64 or x86_64)

"Static" means: no program interpreter (PT_INTERP) and no shared library needed
(DT_NEEDED). A static-pie binary has a dynamic section for its own relocations but
needs nothing at run time, so it counts as static.
"""

import os
import struct
import sys

MACHINE = {"armv7": 40, "aarch64": 183, "riscv64": 243, "x86_64": 62}
TRIPLE = {
    "armv7": "armv7-unknown-linux-musleabihf",
    "aarch64": "aarch64-unknown-linux-musl",
    "riscv64": "riscv64gc-unknown-linux-musl",
    "x86_64": "x86_64-unknown-linux-musl",
}
# Size budgets in bytes, by (arch, binary): issue 7's contract for the device
# binary on the smallest target (without TLS: husk has none yet).
BUDGETS = {("armv7", "husk"): 1024 * 1024}
PT_DYNAMIC, PT_INTERP = 2, 3
DT_NULL, DT_NEEDED = 0, 1


class ElfError(Exception):
    pass


def inspect(data):
    """Returns (e_machine, has_interp, needed_count) of an ELF image."""
    if data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        (machine,) = struct.unpack_from(end + "H", data, 18)
        phoff, = struct.unpack_from(end + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 54)
    else:
        (machine,) = struct.unpack_from(end + "H", data, 18)
        phoff, = struct.unpack_from(end + "I", data, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 42)
    interp, needed = False, 0
    for i in range(phnum):
        off = phoff + i * phentsize
        if is64:
            p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(end + "IIQQQQ", data, off)
        else:
            p_type, p_offset, _va, _pa, p_filesz = struct.unpack_from(end + "IIIII", data, off)
        if p_type == PT_INTERP:
            interp = True
        elif p_type == PT_DYNAMIC:
            fmt, size = (end + "qQ", 16) if is64 else (end + "iI", 8)
            for pos in range(p_offset, p_offset + p_filesz, size):
                tag, _val = struct.unpack_from(fmt, data, pos)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED:
                    needed += 1
    return machine, interp, needed


def main(args):
    rows, bad = [], []
    for arg in args:
        arch, _, path = arg.partition("=")
        if arch not in MACHINE or not path:
            print(f"elfcheck: bad argument {arg!r}: want ARCH=PATH", file=sys.stderr)
            return 2
        with open(path, "rb") as f:
            data = f.read()
        try:
            machine, interp, needed = inspect(data)
        except (ElfError, struct.error) as e:
            bad.append(f"{path}: {e}")
            continue
        static = not interp and needed == 0
        if not static:
            bad.append(f"{path}: dynamically linked (interpreter: {interp}, libraries needed: {needed})")
        if machine != MACHINE[arch]:
            bad.append(f"{path}: ELF machine {machine}, expected {MACHINE[arch]} for {arch}")
        name = os.path.basename(path)
        budget = BUDGETS.get((arch, name))
        if budget is not None and len(data) > budget:
            bad.append(f"{path}: {len(data):,} bytes, over its budget of {budget:,} bytes "
                       f"by {len(data) - budget:,}")
        rows.append((TRIPLE[arch], name, len(data), "yes" if static else "NO", budget))

    print(f"{'target':<32} {'binary':<13} {'bytes':>9} {'KiB':>8}  static  budget")
    for triple, name, size, static, budget in rows:
        within = f"{size / budget:.0%} of {budget:,}" if budget else ""
        print(f"{triple:<32} {name:<13} {size:>9} {size / 1024:>8.1f}  {static:<6}  {within}")
    for line in bad:
        print(f"cross: error: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
