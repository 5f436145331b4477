//! Invokes testkit's `echo` in a fresh sandbox N times in a loop, for profilers that need a
//! plain process rather than criterion (BENCHMARKS.md, "Where the time goes"):
//!
//! ```sh
//! cargo build --release -p mlx-e2e --example invoke_loop
//! perf record -g target/release/examples/invoke_loop 100000
//! target/release/examples/invoke_loop 100000 --instantiate-only
//! ```
//!
//! The component is compiled once into a compile cache under the system temp directory, so
//! later runs profile invocations, not compilation.

use mlx_e2e::{PluginsDir, invoke_once};
use mlx_runtime::{HostSettings, PluginHost};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u32 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let instantiate_only = args.next().as_deref() == Some("--instantiate-only");

    let cache = std::env::temp_dir().join("mlx-invoke-loop-cache");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let plugins = PluginsDir::with(&["testkit"]);
    let runtime = PluginHost::new(HostSettings {
        cache_dir: Some(cache),
        ..Default::default()
    })?;
    let plugin = tokio.block_on(runtime.load(&plugins.path().join("testkit.wasm")))?;
    let tiny = json!({"n": 1});
    let elapsed = tokio.block_on(async {
        let started = std::time::Instant::now();
        for _ in 0..n {
            if instantiate_only {
                runtime.instantiate_only(&plugin).await?;
            } else {
                invoke_once(&runtime, &plugin, "echo", &tiny, "loop").await?;
            }
        }
        anyhow::Ok(started.elapsed())
    })?;
    println!("{n} invocations, {:?} each", elapsed / n);
    Ok(())
}
