# Python plugins (issue 14): components built by componentize-py from plugins/python/, with the
# Python SDK (plugins/python/mlx_plugin) on their path. Included by the Makefile after its
# variables (ROOT, VENV).
#
#   make python-plugins    plugins/target/python/NAME.wasm (+ NAME.toml) for each plugin below
#   make python-test       the SDK's and the plugins' unit tests, with the system python3
#
# componentize-py is pinned and installed into the project's venv like the Temporal CLI; the
# stamp names the version, so bumping it reinstalls. 0.25.1 makes WASI 0.2 (0.2.x) components,
# which wasmtime 48 runs.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
PYTHON_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

COMPONENTIZE_PY_VERSION := 0.25.1
COMPONENTIZE_PY := $(VENV)/bin/componentize-py
COMPONENTIZE_PY_STAMP := $(VENV)/.installed-componentize-py-$(COMPONENTIZE_PY_VERSION)
PYTHON_SRC := $(ROOT)/plugins/python
PYTHON_OUT := $(ROOT)/plugins/target/python
# One directory per plugin under plugins/python/, its main module app.py defining `Plugin`.
PYTHON_PLUGINS := features contract
PYTHON_SDK_FILES := $(wildcard $(PYTHON_SRC)/mlx_plugin/*.py)

.PHONY: python-tools python-plugins python-test

python-tools: $(COMPONENTIZE_PY_STAMP)

$(COMPONENTIZE_PY_STAMP):
	test -x $(VENV)/bin/pip || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
	  componentize-py==$(COMPONENTIZE_PY_VERSION)
	@touch $@

python-plugins: $(PYTHON_PLUGINS:%=$(PYTHON_OUT)/%.wasm)

# Run from an empty directory with explicit paths only (-p): nothing else (the venv's
# site-packages, the working directory) is bundled. Written to a temporary name and renamed,
# so a worker watching the directory never sees half a file.
$(PYTHON_OUT)/%.wasm: $(COMPONENTIZE_PY_STAMP) $(ROOT)/wit/plugin.wit $(PYTHON_SDK_FILES)
	mkdir -p $(PYTHON_OUT)/.build-$*
	cd $(PYTHON_OUT)/.build-$* && $(COMPONENTIZE_PY) --quiet -d $(ROOT)/wit -w plugin-world \
	  componentize app -p $(PYTHON_SRC)/$* -p $(PYTHON_SRC) -o $(PYTHON_OUT)/.$*.wasm.tmp
	rm -rf $(PYTHON_OUT)/.build-$*
	if [ -f $(PYTHON_SRC)/$*/$*.toml ]; then cp $(PYTHON_SRC)/$*/$*.toml $(PYTHON_OUT)/; fi
	mv $(PYTHON_OUT)/.$*.wasm.tmp $@

# Each component also depends on its own directory's sources and manifest.
$(foreach p,$(PYTHON_PLUGINS),$(eval \
  $(PYTHON_OUT)/$(p).wasm: $(wildcard $(PYTHON_SRC)/$(p)/*.py $(PYTHON_SRC)/$(p)/*.toml)))

python-test:
	cd $(PYTHON_SRC) && python3 -m unittest discover -s tests -t . -v

.DEFAULT_GOAL := $(PYTHON_MK_DEFAULT_GOAL)
