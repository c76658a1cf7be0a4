"""The QEMU boards the lab boots, read from board-configs/qemu-<arch>.toml."""

import os
import tomllib
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARD_DIR = os.path.join(ROOT, "board-configs")
ARCHS = ("armv7", "aarch64", "riscv64", "x86_64")


class BoardError(Exception):
    pass


@dataclass(frozen=True)
class Board:
    arch: str
    name: str
    rust_target: str
    qemu_binary: str
    machine: str
    cpu: str | None
    memory_mib: int
    console: str
    block_device: str
    debian_suite: str
    debian_arch: str
    kernel_package: str
    kernel_image: str

    def qemu_command(self, kernel, initrd, append, disks=()):
        """The QEMU command line; `disks` are (raw image path, read-only)
        attached in order as this board's virtio block device."""
        cmd = [self.qemu_binary, "-M", self.machine]
        if self.cpu:
            cmd += ["-cpu", self.cpu]
        cmd += [
            "-accel", "tcg", "-smp", "1", "-m", str(self.memory_mib),
            "-nographic", "-no-reboot", "-nic", "none",
            "-kernel", kernel, "-initrd", initrd,
            "-append", f"console={self.console} {append}",
        ]
        for i, (path, readonly) in enumerate(disks):
            ro = ",readonly=on" if readonly else ""
            cmd += ["-drive", f"file={path},format=raw,if=none,id=disk{i}{ro}",
                    "-device", f"{self.block_device},drive=disk{i}"]
        return cmd


def load(arch, board_dir=BOARD_DIR):
    path = os.path.join(board_dir, f"qemu-{arch}.toml")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise BoardError(f"{path}: no such board file (archs: {', '.join(ARCHS)})") from None
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{path}: not valid TOML: {e}") from None

    def get(key, kind=str, required=True):
        table, _, name = key.partition(".")
        value = doc.get(table, {}).get(name)
        if value is None and not required:
            return None
        if not isinstance(value, kind):
            want = "an integer" if kind is int else "a string"
            raise BoardError(f"{path}: {key} must be {want}")
        return value

    board = Board(
        arch=get("board.arch"), name=get("board.name"), rust_target=get("board.rust_target"),
        qemu_binary=get("qemu.binary"), machine=get("qemu.machine"),
        cpu=get("qemu.cpu", required=False), memory_mib=get("qemu.memory_mib", int),
        console=get("qemu.console"), block_device=get("qemu.block_device"),
        debian_suite=get("kernel.debian_suite"),
        debian_arch=get("kernel.debian_arch"), kernel_package=get("kernel.package"),
        kernel_image=get("kernel.image"),
    )
    if board.arch != arch:
        raise BoardError(f"{path}: board.arch is {board.arch!r}, expected {arch!r}")
    return board
