# MLflow (issue 16): the tracking server the mlflow plugin's end-to-end tests log runs to, and
# MLflow's own Python client they read the runs back with. Included by the Makefile after its
# variables (TOOLS).
#
#   make mlflow-tools    tools/mlflow-venv with the pinned version below
#
# A venv of its own: MLflow's many dependencies (about 850 MB) stay out of the other tools'
# venvs. The stamp names the version: bumping it makes a fresh venv.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
MLFLOW_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

MLFLOW_VERSION := 3.17.2
MLFLOW_VENV := $(TOOLS)/mlflow-venv
MLFLOW_TOOLS_STAMP := $(MLFLOW_VENV)/.installed-mlflow-$(MLFLOW_VERSION)

.PHONY: mlflow-tools

mlflow-tools: $(MLFLOW_TOOLS_STAMP)

$(MLFLOW_TOOLS_STAMP):
	rm -rf $(MLFLOW_VENV)
	python3 -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check \
	  mlflow==$(MLFLOW_VERSION)
	@touch $@

.DEFAULT_GOAL := $(MLFLOW_MK_DEFAULT_GOAL)
