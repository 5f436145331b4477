# S3 (issue 17): a real S3-compatible server for the artifact store's tests (crates/mlx-artifacts,
# tests/src/s3.rs). Included by the Makefile after its variables (TOOLS).
#
#   make s3-tools    tools/s3s-fs/bin/s3s-fs, the pinned version below
#
# s3s-fs serves a directory over the S3 API: small, no service to run, and a real HTTP server
# with SigV4, multipart uploads and S3's error codes, which an in-memory fake would not check.
# 0.14.1 is the newest release that builds with the workspace's toolchain (0.15 needs Rust
# 1.96). A debug build: it only serves tests, and it keeps CI's build time down. The stamp
# names the version: bumping it rebuilds.

# Rules here must not become the Makefile's default goal (`make` alone prints help).
S3_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

S3S_FS_VERSION := 0.14.1
S3S_FS_ROOT := $(TOOLS)/s3s-fs
S3_TOOLS_STAMP := $(S3S_FS_ROOT)/.installed-s3s-fs-$(S3S_FS_VERSION)

.PHONY: s3-tools

s3-tools: $(S3_TOOLS_STAMP)

$(S3_TOOLS_STAMP):
	rm -rf $(S3S_FS_ROOT)
	cargo install --locked --debug s3s-fs --version $(S3S_FS_VERSION) --features binary \
	  --root $(S3S_FS_ROOT)
	@touch $@

.DEFAULT_GOAL := $(S3_MK_DEFAULT_GOAL)
