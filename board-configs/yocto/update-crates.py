#!/usr/bin/env python3
"""Rewrites meta-husk's husk-crates.inc from the workspace's Cargo.lock: every
crate it locks, with its checksum, in the format `bitbake -c update_crates
husk` writes. Run it after any Cargo.lock change (board-configs/test_boards.py
fails until then); it needs no bitbake."""

import os
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INC = os.path.join(HERE, "meta-husk", "recipes-containers", "husk", "husk-crates.inc")


def render(lock):
    crates = [p for p in lock["package"] if p.get("source", "").startswith("registry+")]
    lines = [
        "# Every crate the workspace's Cargo.lock locks, with its checksum, in the",
        "# format 'bitbake -c update_crates husk' writes (which regenerates this file;",
        "# so does board-configs/yocto/update-crates.py).",
        "",
        'SRC_URI += " \\',
    ]
    lines += [f"    crate://crates.io/{p['name']}/{p['version']} \\" for p in crates]
    lines += ['"', ""]
    lines += [f'SRC_URI[{p["name"]}-{p["version"]}.sha256sum] = "{p["checksum"]}"' for p in crates]
    return "\n".join(lines) + "\n"


def main():
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        text = render(tomllib.load(f))
    with open(INC + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(INC + ".tmp", INC)
    print(f"wrote {os.path.relpath(INC, ROOT)}")


if __name__ == "__main__":
    main()
