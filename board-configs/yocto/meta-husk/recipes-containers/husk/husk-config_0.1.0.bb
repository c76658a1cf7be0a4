SUMMARY = "husk's board configuration and update root key"
DESCRIPTION = "Installs /etc/husk/board.toml (one of the workspace's \
board-configs/, chosen by HUSK_BOARD), the kernel config fragment it names \
(so 'husk check --board /etc/husk/board.toml' works on the device), and the \
update repository's root public key as /etc/husk/root.pub."

require husk-source.inc

# A board file of board-configs/ without .toml, e.g. rpi4 or visionfive2.
HUSK_BOARD ??= ""
# The update repository's root public key, a file on the build host.
HUSK_UPDATE_ROOT_KEY ??= ""

python () {
    if not d.getVar('HUSK_BOARD'):
        raise bb.parse.SkipRecipe("set HUSK_BOARD to a board-configs/<board>.toml name, e.g. rpi4")
    if not d.getVar('HUSK_UPDATE_ROOT_KEY'):
        raise bb.parse.SkipRecipe("set HUSK_UPDATE_ROOT_KEY to the update repository's root public key file")
}

# A new key rebuilds the package.
do_install[file-checksums] += "${HUSK_UPDATE_ROOT_KEY}:True"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    board=${S}/board-configs/${HUSK_BOARD}.toml
    [ -f "$board" ] || bbfatal "HUSK_BOARD=${HUSK_BOARD}: there is no board-configs/${HUSK_BOARD}.toml"
    fragment=$(sed -n 's/^kernel_fragment = "\([^"]*\)".*/\1/p' "$board")
    [ -n "$fragment" ] || bbfatal "board-configs/${HUSK_BOARD}.toml has no kernel_fragment line"
    [ -f "${HUSK_UPDATE_ROOT_KEY}" ] || bbfatal "HUSK_UPDATE_ROOT_KEY=${HUSK_UPDATE_ROOT_KEY}: no such file"
    install -d ${D}${sysconfdir}/husk
    install -m 0644 "$board" ${D}${sysconfdir}/husk/board.toml
    install -m 0644 ${S}/board-configs/$fragment ${D}${sysconfdir}/husk/$fragment
    install -m 0644 ${HUSK_UPDATE_ROOT_KEY} ${D}${sysconfdir}/husk/root.pub
}

FILES:${PN} = "${sysconfdir}/husk"
CONFFILES:${PN} = "${sysconfdir}/husk/board.toml"
PACKAGE_ARCH = "${MACHINE_ARCH}"
