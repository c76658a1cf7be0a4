SUMMARY = "husk: the runtime, its init integration, the board config and the update root key"
LICENSE = "MIT"

# husk-config differs per machine (HUSK_BOARD).
PACKAGE_ARCH = "${MACHINE_ARCH}"
inherit packagegroup

RDEPENDS:${PN} = " \
    husk \
    husk-config \
"
