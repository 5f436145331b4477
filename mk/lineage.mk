# openlineage-python (issue 16): the OpenLineage project's own client, which the end-to-end
# tests check the worker's run events with (scripts/check_openlineage.py). Included by the
# Makefile after its variables (TOOLS).
#
#   make lineage-tools    tools/lineage-venv with the pinned version below
#
# A venv of its own: the client's dependencies stay out of the other tools' venvs. The stamp
# names the version: bumping it makes a fresh venv.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
LINEAGE_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

OPENLINEAGE_VERSION := 1.54.0
LINEAGE_VENV := $(TOOLS)/lineage-venv
LINEAGE_TOOLS_STAMP := $(LINEAGE_VENV)/.installed-openlineage-python-$(OPENLINEAGE_VERSION)

.PHONY: lineage-tools

lineage-tools: $(LINEAGE_TOOLS_STAMP)

$(LINEAGE_TOOLS_STAMP):
	rm -rf $(LINEAGE_VENV)
	python3 -m venv $(LINEAGE_VENV)
	$(LINEAGE_VENV)/bin/pip install --quiet --disable-pip-version-check \
	  openlineage-python==$(OPENLINEAGE_VERSION)
	@touch $@

.DEFAULT_GOAL := $(LINEAGE_MK_DEFAULT_GOAL)
