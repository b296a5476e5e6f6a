################################################################################
#
# edged
#
################################################################################

# The daemon is built from the repository this tree lives in. Buildroot cannot fetch crates
# for a local package, so the crates are vendored next to the workspace first
# (package/edged/vendor.sh, where the internet is) and cargo runs offline against them.
EDGED_VERSION = 0.1.0
EDGED_SITE = $(BR2_EXTERNAL_EDGE_PATH)/..
EDGED_SITE_METHOD = local
EDGED_LICENSE = Proprietary
EDGED_VENDOR_DIR = $(BR2_EXTERNAL_EDGE_PATH)/package/edged/vendor

# Only what the build needs: not the build outputs, images or test venvs of the checkout.
EDGED_OVERRIDE_SRC_RSYNC_EXCLUDES = --exclude target --exclude images/out --exclude hil-tests/.venv \
	--exclude hil-tests/.work --exclude buildroot/package/edged/vendor
define EDGED_LINK_VENDORED_CRATES
	test -d $(EDGED_VENDOR_DIR) || { echo "edged: run $(BR2_EXTERNAL_EDGE_PATH)/package/edged/vendor.sh first"; exit 1; }
	mkdir -p $(@D)/.cargo
	ln -sfn $(EDGED_VENDOR_DIR) $(@D)/vendor
	cp $(BR2_EXTERNAL_EDGE_PATH)/package/edged/cargo-config.toml $(@D)/.cargo/config.toml
endef
EDGED_POST_RSYNC_HOOKS += EDGED_LINK_VENDORED_CRATES

EDGED_CARGO_BUILD_OPTS = --locked --offline -p edged -p edgectl
EDGED_CARGO_INSTALL_OPTS = --locked --offline

define EDGED_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/edged $(TARGET_DIR)/usr/bin/edged
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/edgectl $(TARGET_DIR)/usr/bin/edgectl
endef

define EDGED_USERS
	edged 100 edged 100 * /data/edged - - Edge appliance daemon
endef

$(eval $(cargo-package))
