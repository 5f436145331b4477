# The pipelines page's browser tests (issue 19): headless Chromium driven over WebDriver.
# Included by the Makefile after its variables.
#
#   make ui-tools    /usr/bin/chromium and /usr/bin/chromedriver (Debian chromium, chromium-driver)
#
# Unlike the registry (mk/oci.mk), Chromium cannot be unpacked into tools/: it needs a few
# dozen shared libraries (NSS, GTK, fonts) that apt resolves, so it is installed system-wide,
# once, when missing. Not pinned to a Debian version: the security archive replaces Chromium
# builds within weeks, so a pin would stop installing; the browser and its driver come from one
# source package, so they always match. The tests print nothing version-specific.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
UI_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: ui-tools

ui-tools:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
	  echo "installing Debian chromium and chromium-driver (browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver; \
	fi
	@/usr/bin/chromium --version

.DEFAULT_GOAL := $(UI_MK_DEFAULT_GOAL)
