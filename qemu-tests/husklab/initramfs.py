"""A minimal writer for the kernel's initramfs format: cpio "newc", gzip-compressed.

Written by hand because it is small and needs no privileges: device nodes and
ownership are just header fields, so the host never has to mknod or chown.
"""

import gzip
import os
import stat

TRAILER = "TRAILER!!!"


class Cpio:
    def __init__(self):
        self._chunks = []
        self._ino = 1
        self._paths = set()

    def _entry(self, path, mode, data=b"", rdev=(0, 0)):
        path = path.strip("/")
        if path in self._paths:
            raise ValueError(f"initramfs: {path} added twice")
        self._parents(path)
        self._paths.add(path)
        name = path.encode() + b"\0"
        fields = [
            self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name), 0,
        ]
        self._ino += 1
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        self._chunks += [header, name, _pad(len(header) + len(name)), data, _pad(len(data))]

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self._paths:
                self._entry(parent, stat.S_IFDIR | 0o755)

    def dir(self, path, mode=0o755):
        if path.strip("/") not in self._paths:
            self._entry(path, stat.S_IFDIR | mode)

    def file(self, path, data, mode=0o644):
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path, target):
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, path, major, minor, mode=0o600):
        self._entry(path, stat.S_IFCHR | mode, rdev=(major, minor))

    def host_file(self, path, src, mode=None):
        with open(src, "rb") as f:
            data = f.read()
        self.file(path, data, mode if mode is not None else stat.S_IMODE(os.stat(src).st_mode))

    def host_tree(self, dest, src):
        """Adds a host directory tree (files, dirs and symlinks) under dest."""
        for top, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(top, src)
            base = dest if rel == "." else f"{dest}/{rel}"
            self.dir(base)
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
                full = os.path.join(top, name)
                if os.path.islink(full):
                    self.symlink(f"{base}/{name}", os.readlink(full))
                else:
                    self.host_file(f"{base}/{name}", full)

    def gzip_bytes(self):
        trailer_name = TRAILER.encode() + b"\0"
        header = b"070701" + b"".join(b"%08x" % f for f in [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(trailer_name), 0])
        raw = b"".join(self._chunks + [header, trailer_name, _pad(len(header) + len(trailer_name))])
        return gzip.compress(raw, compresslevel=6, mtime=0)


def _pad(n):
    return b"\0" * ((4 - n % 4) % 4)
