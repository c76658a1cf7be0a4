################################################################################
#
# husk
#
################################################################################

# The workspace this external tree lives in (board-configs/buildroot/): built
# from the checkout, or from a release with HUSK_OVERRIDE_SRCDIR unset and
# HUSK_SITE pointed at its tarball.
HUSK_VERSION = 0.1.0
HUSK_SITE = $(BR2_EXTERNAL_HUSK_PATH)/../..
HUSK_SITE_METHOD = local
HUSK_LICENSE = Apache-2.0
# The workspace declares its license in Cargo.toml ([workspace.package]).
HUSK_LICENSE_FILES = Cargo.toml

# Build and install the husk crate, runtime/ of the workspace (whose
# Cargo.lock, at the top, cargo finds from there).
HUSK_SUBDIR = runtime

# A local site is not downloaded, so Buildroot's download step does not
# vendor the crates: vendor them once host-rustc is built, as that step
# would (cargo finds .cargo/config.toml above runtime/).
define HUSK_VENDOR_CRATES
	mkdir -p $(@D)/.cargo
	cd $(@D) && $(PKG_CARGO_ENV) $(HOST_DIR)/bin/cargo vendor \
		--manifest-path $(@D)/Cargo.toml --locked VENDOR \
		> $(@D)/.cargo/config.toml
endef
HUSK_PRE_CONFIGURE_HOOKS += HUSK_VENDOR_CRATES

ifeq ($(BR2_PACKAGE_HUSK_TLS),y)
HUSK_CARGO_BUILD_OPTS += --features tls
endif

HUSK_BOARD = $(call qstrip,$(BR2_PACKAGE_HUSK_BOARD))
HUSK_UPDATE_ROOT = $(call qstrip,$(BR2_PACKAGE_HUSK_UPDATE_ROOT))
HUSK_UPDATE_CONFIG = $(call qstrip,$(BR2_PACKAGE_HUSK_UPDATE_CONFIG))
HUSK_BOARD_FILE = $(BR2_EXTERNAL_HUSK_PATH)/../$(HUSK_BOARD).toml

define HUSK_INSTALL_CONFIG
	test -f $(HUSK_BOARD_FILE) || \
		{ echo "BR2_PACKAGE_HUSK_BOARD: no $(HUSK_BOARD_FILE)"; exit 1; }
	$(INSTALL) -D -m 0644 $(HUSK_BOARD_FILE) $(TARGET_DIR)/etc/husk/board.toml
	fragment=`sed -n 's/^kernel_fragment = "\([^"]*\)".*/\1/p' $(HUSK_BOARD_FILE)`; \
	$(INSTALL) -D -m 0644 $(BR2_EXTERNAL_HUSK_PATH)/../$$fragment \
		$(TARGET_DIR)/etc/husk/$$fragment
	$(if $(HUSK_UPDATE_ROOT),
		$(INSTALL) -D -m 0644 $(HUSK_UPDATE_ROOT) $(TARGET_DIR)/etc/husk/root.json)
	$(if $(HUSK_UPDATE_CONFIG),
		$(INSTALL) -D -m 0644 $(HUSK_UPDATE_CONFIG) $(TARGET_DIR)/etc/husk/update.json)
	mkdir -p $(TARGET_DIR)/var/lib/husk
endef
HUSK_POST_INSTALL_TARGET_HOOKS += HUSK_INSTALL_CONFIG

# The man page and bash completion runtime/doc/gen.py makes from husk --help
# (Buildroot's target-finalize drops /usr/share/man unless documentation is
# kept; the completion only where bash is).
define HUSK_INSTALL_DOCS
	$(INSTALL) -D -m 0644 $(@D)/runtime/doc/husk.1 $(TARGET_DIR)/usr/share/man/man1/husk.1
	$(if $(BR2_PACKAGE_BASH),
		$(INSTALL) -D -m 0644 $(@D)/runtime/doc/husk.bash \
			$(TARGET_DIR)/usr/share/bash-completion/completions/husk)
endef
HUSK_POST_INSTALL_TARGET_HOOKS += HUSK_INSTALL_DOCS

define HUSK_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(BR2_EXTERNAL_HUSK_PATH)/package/husk/S95husk \
		$(TARGET_DIR)/etc/init.d/S95husk
endef

define HUSK_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(BR2_EXTERNAL_HUSK_PATH)/package/husk/husk.service \
		$(TARGET_DIR)/usr/lib/systemd/system/husk.service
endef

$(eval $(cargo-package))
