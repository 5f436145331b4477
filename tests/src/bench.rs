//! What the benchmarks under `tests/benches/` share: the worker they measure and where their
//! reports go.

use std::path::PathBuf;

use anyhow::ensure;

use crate::workspace_root;

/// The optimised worker (`MLX_WORKER_BIN` overrides `target/release/mlx-worker`): a debug
/// build would measure the compiler's settings, not the worker.
pub fn release_worker() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("MLX_WORKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/mlx-worker"));
    ensure!(
        path.exists(),
        "{} is missing: run `cargo build --release -p mlx-worker --features native-echo` or set \
         MLX_WORKER_BIN",
        path.display()
    );
    Ok(path)
}

/// Prints a benchmark's Markdown report and writes it to `<target>/bench-report/NAME.md`.
pub fn write_report(name: &str, markdown: &str) -> anyhow::Result<()> {
    print!("{markdown}");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("bench-report");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, markdown)?;
    eprintln!("written to {}", path.display());
    Ok(())
}
