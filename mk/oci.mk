# OCI registry (issue 17): the registry the `plugin push|pull` and `worker.plugin_refs`
# end-to-end tests push to and pull from. Included by the Makefile after its variables (TOOLS).
#
#   make oci-tools    tools/docker-registry/usr/bin/docker-registry, the pinned version below
#
# Debian's build of the CNCF distribution registry, unpacked into tools/ rather than installed:
# nothing outside the project changes, and no service starts (the tests start their own, on a
# free loopback port). The stamp names the version: bumping it unpacks a fresh copy.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
OCI_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

DOCKER_REGISTRY_VERSION := 2.8.2+ds1-1
DOCKER_REGISTRY_DIR := $(TOOLS)/docker-registry
DOCKER_REGISTRY_STAMP := $(DOCKER_REGISTRY_DIR)/.installed-docker-registry-$(DOCKER_REGISTRY_VERSION)

.PHONY: oci-tools

oci-tools: $(DOCKER_REGISTRY_STAMP)

$(DOCKER_REGISTRY_STAMP):
	rm -rf $(DOCKER_REGISTRY_DIR) $(TOOLS)/docker-registry-deb
	mkdir -p $(TOOLS)/docker-registry-deb
	# Without a package list apt-get knows no version; one update, only when needed.
	cd $(TOOLS)/docker-registry-deb && { \
	  apt-get download docker-registry=$(DOCKER_REGISTRY_VERSION) 2>/dev/null || \
	  { apt-get update -qq && apt-get download docker-registry=$(DOCKER_REGISTRY_VERSION); }; }
	dpkg-deb -x $(TOOLS)/docker-registry-deb/docker-registry_*.deb $(DOCKER_REGISTRY_DIR)
	rm -rf $(TOOLS)/docker-registry-deb
	$(DOCKER_REGISTRY_DIR)/usr/bin/docker-registry --version
	@touch $@

.DEFAULT_GOAL := $(OCI_MK_DEFAULT_GOAL)
