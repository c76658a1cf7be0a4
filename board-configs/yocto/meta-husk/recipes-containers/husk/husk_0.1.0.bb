SUMMARY = "Minimal container runtime for ARM and RISC-V IoT devices"
DESCRIPTION = "husk runs OCI containers with Linux namespaces and cgroups v2 \
and keeps them up to date from a signed static update repository. One \
binary, /usr/bin/husk; its supervisor runs as 'husk daemon'."

require husk-source.inc

SRC_URI += " \
    file://husk.service \
    file://husk.init \
"

inherit cargo cargo-update-recipe-crates systemd update-rc.d

# Every crate of the workspace's Cargo.lock, fetched by bitbake (regenerate
# with: bitbake -c update_crates husk).
require ${BPN}-crates.inc

# The husk crate is runtime/ of a workspace whose Cargo.lock is at the top.
CARGO_SRC_DIR = "runtime"
CARGO_LOCK_SRC_DIR = "${S}"
CARGO_LOCK_PATH = "${S}/Cargo.lock"

# PACKAGECONFIG "tls": https:// update servers (husk's cargo feature tls,
# rustls + ring; ~370 KB more on armv7), with the CA bundle the device
# checks servers against (or set "caFile" in update.json).
PACKAGECONFIG ??= ""
PACKAGECONFIG[tls] = ",,,ca-certificates"
CARGO_BUILD_FLAGS:append = "${@bb.utils.contains('PACKAGECONFIG', 'tls', ' --features tls', '', d)}"

SYSTEMD_SERVICE:${PN} = "husk.service"
INITSCRIPT_NAME = "husk"
INITSCRIPT_PARAMS = "defaults 95 5"

do_install:append() {
    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        install -m 0644 ${UNPACKDIR}/husk.service ${D}${systemd_system_unitdir}/husk.service
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -d ${D}${sysconfdir}/init.d
        install -m 0755 ${UNPACKDIR}/husk.init ${D}${sysconfdir}/init.d/husk
    fi
    install -d ${D}${localstatedir}/lib/husk
    # Made by runtime/doc/gen.py from husk --help (the man page goes to
    # ${PN}-doc).
    install -D -m 0644 ${S}/runtime/doc/husk.1 ${D}${mandir}/man1/husk.1
    install -D -m 0644 ${S}/runtime/doc/husk.bash \
        ${D}${datadir}/bash-completion/completions/husk
}

FILES:${PN} += "${systemd_system_unitdir}/husk.service ${localstatedir}/lib/husk \
    ${datadir}/bash-completion/completions/husk"

# What husk check reports as optional, when the kernel builds it as modules
# (board-configs/*.config list the symbols).
RRECOMMENDS:${PN} += " \
    kernel-module-overlay \
    kernel-module-squashfs \
    kernel-module-loop \
    kernel-module-veth \
    kernel-module-bridge \
"
