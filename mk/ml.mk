# scikit-learn, skl2onnx and onnx (issue 15): what the scorer plugin's end-to-end tests train
# and export models with (scripts/export_onnx.py). Included by the Makefile after its
# variables (TOOLS).
#
#   make ml-tools    tools/ml-venv with the pinned versions below
#
# A venv of its own, not tools/venv: scikit-learn's numpy and scipy stay out of the venv whose
# python the Temporal tests run. Everything that decides a prediction is pinned (numpy and
# scipy too), so the exported models and scikit-learn's reference predictions are the same on
# every machine. The stamp names the versions: bumping one makes a fresh venv.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
ML_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

SKLEARN_VERSION := 1.9.1
SKL2ONNX_VERSION := 1.20.0
ONNX_VERSION := 1.23.2
NUMPY_VERSION := 2.4.6
SCIPY_VERSION := 1.17.1
ML_VENV := $(TOOLS)/ml-venv
ML_TOOLS_STAMP := $(ML_VENV)/.installed-scikit-learn-$(SKLEARN_VERSION)-skl2onnx-$(SKL2ONNX_VERSION)-onnx-$(ONNX_VERSION)-numpy-$(NUMPY_VERSION)-scipy-$(SCIPY_VERSION)

.PHONY: ml-tools

ml-tools: $(ML_TOOLS_STAMP)

$(ML_TOOLS_STAMP):
	rm -rf $(ML_VENV)
	python3 -m venv $(ML_VENV)
	$(ML_VENV)/bin/pip install --quiet --disable-pip-version-check \
	  scikit-learn==$(SKLEARN_VERSION) skl2onnx==$(SKL2ONNX_VERSION) onnx==$(ONNX_VERSION) \
	  numpy==$(NUMPY_VERSION) scipy==$(SCIPY_VERSION)
	@touch $@

.DEFAULT_GOAL := $(ML_MK_DEFAULT_GOAL)
