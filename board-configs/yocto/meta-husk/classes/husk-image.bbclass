# The image feature "husk": husk, its init integration (systemd unit or
# sysvinit script, whichever the distro uses), the board's config and the
# update repository's root key.
#
# In an image recipe:     inherit husk-image
#                         IMAGE_FEATURES += "husk"
# or from local.conf:     IMAGE_CLASSES += "husk-image"
#                         EXTRA_IMAGE_FEATURES += "husk"
# with HUSK_BOARD and HUSK_UPDATE_ROOT and HUSK_UPDATE_CONFIG set (see husk-config).

FEATURE_PACKAGES_husk = "packagegroup-husk"
IMAGE_FEATURES[validitems] += "husk"
