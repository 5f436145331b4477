# JavaScript plugins (issue 14): components built by componentize-js (StarlingMonkey) from
# plugins/js/, with the JavaScript SDK (plugins/js/mlx_plugin) beside them. Included by the
# Makefile after python.mk (it uses ROOT and TOOLS).
#
#   make js-plugins    plugins/target/js/NAME.wasm (+ NAME.toml) for each plugin below
#   make js-test       the SDK's and the plugins' unit tests, natively with node --test
#
# The toolchain is pinned in mk/js-tools/package.json + package-lock.json and installed with
# `npm ci` into tools/node; the stamp names the versions, so bumping them reinstalls.
# jco 1.35.0 wants componentize-js ^0.22; the package's overrides give it 0.23.0, the one the
# build runs. preview2-shim is pinned to 0.26.0: 0.26.1 dropped the default "/" preopen, so
# the WIT tooling inside jco and componentize-js could no longer read wit/ from disk (and
# componentize-js 0.23.0 uses preview2-shim without declaring it). Both make WASI 0.2.12
# components, which wasmtime 48 runs.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
JS_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

JCO_VERSION := 1.35.0
COMPONENTIZE_JS_VERSION := 0.23.0
NODE_TOOLS := $(TOOLS)/node
JS_TOOLS_SRC := $(ROOT)/mk/js-tools
COMPONENTIZE_JS := $(NODE_TOOLS)/node_modules/.bin/componentize-js
JS_TOOLS_STAMP := $(NODE_TOOLS)/.installed-jco-$(JCO_VERSION)-componentize-js-$(COMPONENTIZE_JS_VERSION)
JS_SRC := $(ROOT)/plugins/js
JS_OUT := $(ROOT)/plugins/target/js
# One directory per plugin under plugins/js/, its main module plugin.js exporting `plugin`.
JS_PLUGINS := validate contract
JS_SDK_FILES := $(wildcard $(JS_SRC)/mlx_plugin/*.js)
JS_WIT_FILES := $(ROOT)/wit/plugin.wit $(wildcard $(ROOT)/wit/deps/*.wit) $(JS_SRC)/wit/world.wit

.PHONY: js-tools js-plugins js-test

js-tools: $(JS_TOOLS_STAMP)

$(JS_TOOLS_STAMP): $(JS_TOOLS_SRC)/package.json $(JS_TOOLS_SRC)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20 or newer) is needed for the JavaScript plugins"; exit 1; }
	mkdir -p $(NODE_TOOLS)
	cp $(JS_TOOLS_SRC)/package.json $(JS_TOOLS_SRC)/package-lock.json $(NODE_TOOLS)/
	npm ci --prefix $(NODE_TOOLS) --no-audit --no-fund --loglevel=error
	rm -f $(NODE_TOOLS)/.installed-*
	@touch $@

js-plugins: $(JS_PLUGINS:%=$(JS_OUT)/%.wasm)

# The world is plugins/js/wit/world.wit with the contract and its WASI packages (wit/) copied in
# as dependencies. The entry
# module binds the plugin to the WIT imports and exports it (SDK's wit.js); componentize-js
# runs in plugins/ with absolute paths, so the component's module paths (and its stacks) read
# js/NAME/plugin.js. Written to a temporary name and renamed, so a worker watching the
# directory never sees half a file.
$(JS_OUT)/%.wasm: $(JS_TOOLS_STAMP) $(JS_WIT_FILES) $(JS_SDK_FILES)
	rm -rf $(JS_OUT)/.build-$* && mkdir -p $(JS_OUT)/.build-$*/wit/deps/mlx-plugin
	cp $(JS_SRC)/wit/world.wit $(JS_OUT)/.build-$*/wit/
	cp $(ROOT)/wit/plugin.wit $(JS_OUT)/.build-$*/wit/deps/mlx-plugin/
	cp $(ROOT)/wit/deps/*.wit $(JS_OUT)/.build-$*/wit/deps/
	printf '%s\n' \
	  'import { component } from "../../../js/mlx_plugin/wit.js";' \
	  'import { plugin as declared } from "../../../js/$*/plugin.js";' \
	  'export const plugin = component(declared);' > $(JS_OUT)/.build-$*/entry.js
	cd $(ROOT)/plugins && $(COMPONENTIZE_JS) $(JS_OUT)/.build-$*/entry.js \
	  --wit $(JS_OUT)/.build-$*/wit --world-name js-plugin-world -o $(JS_OUT)/.$*.wasm.tmp
	rm -rf $(JS_OUT)/.build-$*
	if [ -f $(JS_SRC)/$*/$*.toml ]; then cp $(JS_SRC)/$*/$*.toml $(JS_OUT)/; fi
	mv $(JS_OUT)/.$*.wasm.tmp $@

# Each component also depends on its own directory's sources and manifest.
$(foreach p,$(JS_PLUGINS),$(eval \
  $(JS_OUT)/$(p).wasm: $(wildcard $(JS_SRC)/$(p)/*.js $(JS_SRC)/$(p)/*.toml)))

js-test:
	cd $(JS_SRC) && node --test tests/

.DEFAULT_GOAL := $(JS_MK_DEFAULT_GOAL)
