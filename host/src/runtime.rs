//! The plugin runtime: one engine and linker for every plugin (loading is in `loader`), and
//! each invocation in a fresh sandbox raced against its deadline and cancellation.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use temporalio_common::telemetry::metrics::CoreMeter;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wasmtime::{
    Engine, Store,
    component::{HasSelf, Linker},
};

pub use crate::loader::{CompileStats, LoadError, LoadedPlugin};
use crate::{
    bindings::{PluginWorld, WitContext},
    capabilities::activity::ActivitySignals,
    compile_cache::CompileCache,
    contract::{GuestError, InvocationContext},
    engine::{EngineSettings, EpochTicker, build_engine},
    failure::InvocationError,
    manifest::Manifest,
    metrics::{Outcome, PluginMetrics},
    outcome,
    sandbox::{self, GuestState, SandboxError, SandboxSpec, new_store},
};

#[derive(Debug, Clone, Default)]
pub struct RuntimeSettings {
    pub engine: EngineSettings,
    /// Host directory holding one artifacts directory per workflow, mounted at `/artifacts`.
    /// None: plugins get no artifacts directory.
    pub artifacts_dir: Option<PathBuf>,
    /// Where per-invocation scratch directories are made; None: the system temp directory.
    pub scratch_root: Option<PathBuf>,
    /// Where precompiled components are kept ([`compile_cache`]); None: compile at every load.
    pub cache_dir: Option<PathBuf>,
    /// Where per-plugin metrics are recorded ([`crate::metrics`]); None: nowhere.
    pub metrics: Option<Arc<dyn CoreMeter>>,
}

/// What a successful invocation produced.
#[derive(Debug)]
pub struct Invocation {
    pub output: Value,
    pub duration: Duration,
    pub peak_memory_bytes: usize,
}

pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<GuestState>,
    pub(crate) settings: RuntimeSettings,
    pub(crate) cache: Option<Arc<CompileCache>>,
    pub(crate) compile_stats: Arc<CompileStats>,
    metrics: Option<PluginMetrics>,
    active: Arc<AtomicUsize>,
    ticker: EpochTicker,
}

/// Counts an invocation as active for as long as it lives, however it ends (even when its
/// future is dropped mid-call).
/// How the race between a call, its deadline and its cancellation ended.
enum Ended<R> {
    Returned(R),
    Deadline,
    Interrupted,
}

struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Runtime {
    pub fn new(settings: RuntimeSettings) -> wasmtime::Result<Arc<Self>> {
        let engine = build_engine(&settings.engine)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Linked for every plugin; only a manifest [http] grant lets a component import it
        // (imports.rs) or a request leave the host (capabilities/http.rs).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        PluginWorld::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)?;
        let ticker = EpochTicker::start(&engine);
        let metrics = settings.metrics.clone().map(PluginMetrics::new);
        let cache = match &settings.cache_dir {
            Some(dir) => Some(Arc::new(CompileCache::open(dir, &engine)?)),
            None => None,
        };
        Ok(Arc::new(Self {
            engine,
            linker,
            settings,
            cache,
            compile_stats: Arc::default(),
            metrics,
            active: Arc::new(AtomicUsize::new(0)),
            ticker,
        }))
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }

    /// A fresh store for a plugin with `manifest`: its fuel (the plugin's limit, or unlimited,
    /// when metering is on), and the epoch ticking for as long as the store lives.
    pub(crate) fn new_sandbox(
        &self,
        manifest: &Arc<Manifest>,
        artifacts_dir: Option<&Path>,
        scratch_dir: Option<&Path>,
        signals: ActivitySignals,
    ) -> Result<Store<GuestState>, SandboxError> {
        let fuel = self
            .settings
            .engine
            .fuel_metering
            .then(|| manifest.limits.fuel.unwrap_or(u64::MAX));
        new_store(
            &self.engine,
            SandboxSpec {
                manifest,
                artifacts_dir,
                scratch_dir,
                fuel,
                signals,
                ticking: Some(self.ticker.running()),
            },
        )
    }

    pub fn metrics(&self) -> Option<&PluginMetrics> {
        self.metrics.as_ref()
    }

    pub fn compile_stats(&self) -> &CompileStats {
        &self.compile_stats
    }

    /// Guest instances currently alive for invocations (not counting `describe` at load).
    pub fn active_invocations(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn scratch_dir(&self) -> Result<tempfile::TempDir, InvocationError> {
        let root = self.settings.scratch_root.clone();
        tempfile::Builder::new()
            .prefix("mlx-scratch-")
            .tempdir_in(root.unwrap_or_else(std::env::temp_dir))
            .map_err(|e| InvocationError::Sandbox(format!("creating a scratch directory: {e}")))
    }

    /// A fresh store and instance of `plugin`, dropped without a call: what each invocation
    /// pays before the plugin runs. Measured by the benchmarks, not used by the worker.
    #[doc(hidden)]
    pub async fn instantiate_only(&self, plugin: &LoadedPlugin) -> Result<(), InvocationError> {
        let (signals, _) = ActivitySignals::new(CancellationToken::new());
        let mut store = self
            .new_sandbox(&plugin.manifest, None, None, signals)
            .map_err(|e| InvocationError::Sandbox(e.to_string()))?;
        plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map(drop)
            .map_err(|e| InvocationError::Sandbox(format!("{e:#}")))
    }

    /// Runs one operation in a fresh instance. `deadline` is the activity's own deadline;
    /// the plugin's timeout limit may make it earlier, never later.
    pub async fn invoke(
        &self,
        plugin: &LoadedPlugin,
        operation: &str,
        input: &Value,
        ctx: &InvocationContext,
        signals: ActivitySignals,
        deadline: Option<Instant>,
    ) -> Result<Invocation, InvocationError> {
        let start = Instant::now();
        let instantiated = OnceLock::new();
        let result = self
            .invoke_inner(
                plugin,
                operation,
                input,
                ctx,
                signals,
                deadline,
                &instantiated,
            )
            .await;
        if let Some(metrics) = &self.metrics {
            let failure = result.as_ref().err().map(|e| e.failure().type_name);
            metrics.invocation(&Outcome {
                plugin: &plugin.info.name,
                version: &plugin.info.version,
                operation,
                failure_type: failure.as_deref(),
                duration: start.elapsed(),
                instantiation: instantiated.get().copied(),
                peak_memory_bytes: result.as_ref().ok().map(|done| done.peak_memory_bytes),
            });
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn invoke_inner(
        &self,
        plugin: &LoadedPlugin,
        operation: &str,
        input: &Value,
        ctx: &InvocationContext,
        signals: ActivitySignals,
        deadline: Option<Instant>,
        instantiated: &OnceLock<Duration>,
    ) -> Result<Invocation, InvocationError> {
        if plugin.info.operation(operation).is_none() {
            return Err(InvocationError::UnknownOperation {
                plugin: plugin.info.name.clone(),
                operation: operation.to_string(),
                available: plugin.info.operation_names().join(", "),
            });
        }
        let _active = ActiveGuard::new(&self.active);
        let limits = &plugin.manifest.limits;
        let start = Instant::now();
        let deadline = deadline.map_or(start + limits.timeout, |d| d.min(start + limits.timeout));
        let artifacts = self
            .settings
            .artifacts_dir
            .as_ref()
            .map(|dir| dir.join(sandbox::workflow_dir_name(&ctx.workflow_id)));
        // Wait for a slot of this plugin, but never past the deadline nor after cancellation.
        let cancel = signals.cancel_token().clone();
        let _slot = match &plugin.slots {
            None => None,
            Some(slots) => tokio::select! {
                permit = tokio::time::timeout_at(deadline.into(), slots.clone().acquire_owned()) => {
                    match permit {
                        Ok(Ok(permit)) => Some(permit),
                        Ok(Err(_)) => return Err(InvocationError::Sandbox("plugin unloaded".into())),
                        Err(_) => return Err(InvocationError::Deadline { after: start.elapsed() }),
                    }
                }
                _ = cancel.cancelled() => {
                    return Err(InvocationError::Cancelled { acknowledged_by_plugin: false });
                }
            },
        };
        // Removed when this function returns, however the invocation ended.
        let scratch = match plugin.manifest.scratch {
            true => Some(self.scratch_dir()?),
            false => None,
        };
        let mut store = self
            .new_sandbox(
                &plugin.manifest,
                artifacts.as_deref(),
                scratch.as_ref().map(|dir| dir.path()),
                signals,
            )
            .map_err(|e| InvocationError::Sandbox(e.to_string()))?;

        let input_text = input.to_string();
        let wit_ctx = WitContext::from(ctx);
        let run = async {
            let started = Instant::now();
            let bindings = plugin.pre.instantiate_async(&mut store).await?;
            let _ = instantiated.set(started.elapsed());
            bindings
                .mlx_plugin_plugin()
                .call_invoke(&mut store, operation, &input_text, &wit_ctx)
                .await
        };
        let grace = limits.cancel_grace;
        // Dropping `run` interrupts the guest: it yields at every epoch tick, so this select
        // regains control within one tick even from a pure CPU loop.
        let returned = tokio::select! {
            r = run => Ended::Returned(r),
            _ = tokio::time::sleep_until(deadline.into()) => Ended::Deadline,
            _ = async { cancel.cancelled().await; tokio::time::sleep(grace).await } => Ended::Interrupted,
        };
        let duration = start.elapsed();
        // However it ended, the latest checkpoint goes to Temporal for the next attempt.
        store.data_mut().flush_heartbeat();
        let state = store.data();
        let cancelled = cancel.is_cancelled();
        let denied = state.denials.take();
        match returned {
            Ended::Deadline => Err(InvocationError::Deadline { after: duration }),
            Ended::Interrupted => Err(InvocationError::Cancelled {
                acknowledged_by_plugin: false,
            }),
            Ended::Returned(Err(trap)) => match outcome::classify_trap(state, trap) {
                // A panic after a refused capability is usually an unwrap of that refusal.
                InvocationError::Trap { message, .. } if !denied.is_empty() => {
                    Err(InvocationError::CapabilityDenied {
                        denied,
                        plugin_error: message,
                    })
                }
                other => Err(other),
            },
            Ended::Returned(Ok(Err(_))) if cancelled => Err(InvocationError::Cancelled {
                acknowledged_by_plugin: true,
            }),
            Ended::Returned(Ok(Err(guest))) if !denied.is_empty() => {
                Err(InvocationError::CapabilityDenied {
                    denied,
                    plugin_error: GuestError::from(guest).message,
                })
            }
            Ended::Returned(Ok(Err(guest))) => Err(InvocationError::Guest(guest.into())),
            // Work that finished despite a late cancellation is kept, not thrown away.
            Ended::Returned(Ok(Ok(text))) => {
                let output = outcome::parse_output(&text, limits.max_output_bytes)?;
                Ok(Invocation {
                    output,
                    duration,
                    peak_memory_bytes: state.limiter.peak,
                })
            }
        }
    }
}
