################################################################################
#
# tinytor
#
################################################################################

TINYTOR_VERSION = 0.1.0
# TINYTOR_LICENSE / TINYTOR_LICENSE_FILES: to be set once the tinytor tree
# carries a LICENSE file (it does not yet; "make legal-info" will say so).

TINYTOR_TARBALL = $(call qstrip,$(BR2_PACKAGE_TINYTOR_TARBALL))

ifeq ($(TINYTOR_TARBALL),)
# Build the tree this BR2_EXTERNAL lives in (its parent directory).
TINYTOR_SITE = $(realpath $(BR2_EXTERNAL_TINYTOR_PATH)/..)
TINYTOR_SITE_METHOD = local

# The local site method has no download step, so Buildroot's download-time
# vendoring does not run. Vendor here instead, offline, from a Go module
# cache on the build machine (after host-go is built, hence a pre-build
# hook). HOST_GO_COMMON_ENV says GOFLAGS=-mod=vendor GOPROXY=off; the later
# assignments below win.
TINYTOR_GOMODCACHE = $(or $(call qstrip,$(BR2_PACKAGE_TINYTOR_GOMODCACHE)),$(HOME)/go/pkg/mod)

define TINYTOR_VENDOR_FROM_MODCACHE
	if [ ! -d $(@D)/vendor ]; then \
		cd $(@D) && $(HOST_GO_COMMON_ENV) \
			GOFLAGS=-mod=mod GOPROXY=off \
			GOMODCACHE="$(TINYTOR_GOMODCACHE)" \
			$(GO_BIN) mod vendor; \
	fi
endef
TINYTOR_PRE_BUILD_HOOKS += TINYTOR_VENDOR_FROM_MODCACHE
else
# A release tarball (BR2_PACKAGE_TINYTOR_TARBALL; see its help text: the
# default URL there is a placeholder). Dependencies are vendored into the
# downloaded archive by the golang-package infrastructure.
TINYTOR_SITE = $(patsubst %/,%,$(dir $(TINYTOR_TARBALL)))
TINYTOR_SOURCE = $(notdir $(TINYTOR_TARBALL))
endif

# The Go module is called "tinytor"; the binary is its root package
# (TINYTOR_BUILD_TARGETS defaults to ".", the binary to "tinytor").
TINYTOR_GOMOD = tinytor

# One static binary without cgo (tinytor needs none; this also keeps the
# pure-Go DNS resolver and user lookup), stripped for small flash.
TINYTOR_GO_ENV = CGO_ENABLED=0
TINYTOR_LDFLAGS = -s -w

# Buildroot's Go support does not cover 32-bit MIPS (BR2_mips, BR2_mipsel:
# ath79, ramips and most other router SoCs), although Go does. tinytor needs
# no cgo, so it is built for them with this environment instead of
# HOST_GO_TARGET_ENV (which is not defined for those architectures).
# GOMIPS follows BR2_MIPS_SOFT_FLOAT: softfloat for CPUs without an FPU.
ifeq ($(BR2_mips)$(BR2_mipsel),y)
TINYTOR_GOARCH = $(if $(BR2_mipsel),mipsle,mips)
TINYTOR_GOMIPS = $(if $(BR2_MIPS_SOFT_FLOAT),softfloat,hardfloat)
define TINYTOR_BUILD_CMDS
	cd $(@D) && $(HOST_GO_COMMON_ENV) \
		GOOS=linux GOARCH=$(TINYTOR_GOARCH) GOMIPS=$(TINYTOR_GOMIPS) \
		GOCACHE="$(HOST_GO_TARGET_CACHE)" CGO_ENABLED=0 \
		$(GO_BIN) build -v -trimpath -ldflags "$(TINYTOR_LDFLAGS)" \
		-o $(@D)/bin/tinytor $(TINYTOR_GOMOD)/.
endef
endif

define TINYTOR_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(TINYTOR_PKGDIR)/torrc \
		$(TARGET_DIR)/etc/tinytor/torrc
	$(INSTALL) -d -m 0700 $(TARGET_DIR)/var/lib/tinytor
endef
TINYTOR_POST_INSTALL_TARGET_HOOKS += TINYTOR_INSTALL_CONFIG

# BusyBox init / SysV: start late, after networking.
define TINYTOR_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/scripts/init/tinytor.sysv \
		$(TARGET_DIR)/etc/init.d/S50tinytor
endef

define TINYTOR_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/scripts/init/tinytor.service \
		$(TARGET_DIR)/usr/lib/systemd/system/tinytor.service
endef

# The dedicated unprivileged user; home is the DataDirectory.
define TINYTOR_USERS
	tinytor -1 tinytor -1 * /var/lib/tinytor - - tinytor Tor client
endef

define TINYTOR_PERMISSIONS
	/var/lib/tinytor d 0700 tinytor tinytor - - - - -
endef

$(eval $(golang-package))
