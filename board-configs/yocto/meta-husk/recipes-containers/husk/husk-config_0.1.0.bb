SUMMARY = "husk's board configuration, update root and update settings"
DESCRIPTION = "Installs /etc/husk/board.toml (one of the workspace's \
board-configs/, chosen by HUSK_BOARD), the kernel config fragment it names \
(so 'husk check --board /etc/husk/board.toml' works on the device), the \
update repository's trusted root metadata as /etc/husk/root.json and the \
device's update settings as /etc/husk/update.json."

require husk-source.inc

# A board file of board-configs/ without .toml, e.g. rpi4 or visionfive2.
HUSK_BOARD ??= ""
# The update repository's root metadata the device trusts first
# (husk-publish's repo/root/1.json), a file on the build host.
HUSK_UPDATE_ROOT ??= ""
# The device's update settings (server, deviceClass, hardware, interval,
# grace), a JSON file on the build host.
HUSK_UPDATE_CONFIG ??= ""

python () {
    if not d.getVar('HUSK_BOARD'):
        raise bb.parse.SkipRecipe("set HUSK_BOARD to a board-configs/<board>.toml name, e.g. rpi4")
    if not d.getVar('HUSK_UPDATE_ROOT'):
        raise bb.parse.SkipRecipe("set HUSK_UPDATE_ROOT to the update repository's repo/root/1.json")
    if not d.getVar('HUSK_UPDATE_CONFIG'):
        raise bb.parse.SkipRecipe("set HUSK_UPDATE_CONFIG to the device's update settings (JSON)")
}

# A new root or new settings rebuild the package.
do_install[file-checksums] += "${HUSK_UPDATE_ROOT}:True ${HUSK_UPDATE_CONFIG}:True"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    board=${S}/board-configs/${HUSK_BOARD}.toml
    [ -f "$board" ] || bbfatal "HUSK_BOARD=${HUSK_BOARD}: there is no board-configs/${HUSK_BOARD}.toml"
    fragment=$(sed -n 's/^kernel_fragment = "\([^"]*\)".*/\1/p' "$board")
    [ -n "$fragment" ] || bbfatal "board-configs/${HUSK_BOARD}.toml has no kernel_fragment line"
    [ -f "${HUSK_UPDATE_ROOT}" ] || bbfatal "HUSK_UPDATE_ROOT=${HUSK_UPDATE_ROOT}: no such file"
    [ -f "${HUSK_UPDATE_CONFIG}" ] || bbfatal "HUSK_UPDATE_CONFIG=${HUSK_UPDATE_CONFIG}: no such file"
    install -d ${D}${sysconfdir}/husk
    install -m 0644 "$board" ${D}${sysconfdir}/husk/board.toml
    install -m 0644 ${S}/board-configs/$fragment ${D}${sysconfdir}/husk/$fragment
    install -m 0644 ${HUSK_UPDATE_ROOT} ${D}${sysconfdir}/husk/root.json
    install -m 0644 ${HUSK_UPDATE_CONFIG} ${D}${sysconfdir}/husk/update.json
}

FILES:${PN} = "${sysconfdir}/husk"
CONFFILES:${PN} = "${sysconfdir}/husk/board.toml ${sysconfdir}/husk/update.json"
PACKAGE_ARCH = "${MACHINE_ARCH}"
