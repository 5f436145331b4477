//! [`PluginHost`]: one engine and linker for every plugin (loading is in
//! [`crate::plugin::loader`]), and each invocation in a fresh sandbox raced against its
//! deadline and cancellation.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

mod held;
mod serve;

pub use serve::serve;

use held::Held;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wasmtime::Engine;

use crate::{
    bindings::WitContext,
    child::ChildProgram,
    contract::{GuestError, InvocationContext},
    engine::{EngineSettings, build_engine},
    failure::InvocationError,
    isolated::{self, Spare},
    live::LiveCount,
    observer::{Observer, Outcome},
    outcome,
    plugin::{
        compile_cache::CompileCache,
        compiler::ChildCompiler,
        loader::{CompileStats, LoadError, LoadedPlugin, Loader},
        manifest::Isolation,
    },
    sandbox::{self, Sandboxes, capabilities::activity::ActivitySignals, scratch::ScratchDir},
};

#[derive(Clone, Default)]
pub struct HostSettings {
    pub engine: EngineSettings,
    /// Host directory holding one artifacts directory per workflow, mounted at `/artifacts`.
    /// None: plugins get no artifacts directory.
    pub artifacts_dir: Option<PathBuf>,
    /// Where per-invocation scratch directories are made; None: the system temp directory.
    pub scratch_root: Option<PathBuf>,
    /// Where precompiled components are kept ([`crate::plugin::compile_cache`]); None: compile
    /// at every load.
    pub cache_dir: Option<PathBuf>,
    /// Most bytes of compiled artifacts the cache keeps, least recently used removed first;
    /// None: [`crate::plugin::compile_cache_evict::DEFAULT_MAX_BYTES`].
    pub cache_max_bytes: Option<u64>,
    /// Told of every invocation and reload (the worker records metrics); None: nobody.
    pub observer: Option<Arc<dyn Observer>>,
    /// Compile in a child process ([`crate::plugin::compiler`]); None: in this one. The
    /// daemon sets it; tools that load a plugin once and exit need not.
    pub compiler: Option<ChildProgram>,
    /// Runs one invocation of a plugin with `isolation = "process"` in a child process
    /// ([`crate::isolated`]); None: such plugins run in this process like the others. The
    /// daemon sets it.
    pub invoker: Option<ChildProgram>,
}

impl std::fmt::Debug for HostSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSettings")
            .field("engine", &self.engine)
            .field("artifacts_dir", &self.artifacts_dir)
            .field("scratch_root", &self.scratch_root)
            .field("cache_dir", &self.cache_dir)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("observer", &self.observer.is_some())
            .field("compiler", &self.compiler)
            .field("invoker", &self.invoker)
            .finish()
    }
}

/// What a successful invocation produced.
#[derive(Debug)]
pub struct Invocation {
    pub output: Value,
    pub duration: Duration,
    pub peak_memory_bytes: usize,
}

/// One invocation as [`PluginHost::invoke_in`] and the child's half of an isolated one take it.
struct Request<'a> {
    /// Behind `/artifacts`; the caller owns it.
    artifacts: Option<PathBuf>,
    /// Behind `/scratch` when the manifest asks for it: a directory the caller made and
    /// removes (the worker's, for the child it runs the call in). None: the invocation makes
    /// its own.
    scratch: Option<PathBuf>,
    plugin: &'a LoadedPlugin,
    operation: &'a str,
    input: &'a Value,
    ctx: &'a InvocationContext,
    signals: ActivitySignals,
    deadline: Option<Instant>,
}

/// Loads plugins and runs their invocations, each in a fresh sandbox.
pub struct PluginHost {
    settings: HostSettings,
    sandboxes: Arc<Sandboxes>,
    loader: Loader,
    /// Guest instances alive for invocations.
    active: LiveCount,
    /// Host file descriptors the invocations may hold between them ([`descriptor_budget`]).
    descriptors: Arc<Semaphore>,
    descriptor_budget: usize,
}

/// Descriptors kept out of the invocations' budget for the worker itself (Temporal
/// connections, plugin loading, the compile cache, logs): at least this many, or a quarter of
/// the limit.
const DESCRIPTOR_RESERVE: u64 = 256;

/// The share of the process's descriptor limit `limit` that invocations may hold between them.
/// Each invocation takes its whole cap (`limits.max_open_files` and its preopened
/// directories) before its store is made, so the reserve is never spent by guests and a
/// neighbour can always open its grants.
fn descriptor_budget(limit: u64) -> usize {
    let reserve = DESCRIPTOR_RESERVE.max(limit / 4);
    usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX)
}

/// Raises this process's soft descriptor limit to its hard limit (the soft one is often 1024
/// while the hard one is far higher) and returns the soft limit then in force.
fn raise_descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raise = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) => current < maximum,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if raise {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "could not raise the file descriptor limit");
        }
    }
    // None is unlimited; the kernel caps descriptors per process at 2^20 by default anyway.
    getrlimit(Resource::Nofile).current.unwrap_or(1 << 20)
}

/// How the race between a call, its deadline and its cancellation ended.
enum Ended<R> {
    /// No instance: nothing of the plugin ran, unless its start trapped.
    NotInstantiated(wasmtime::Error),
    Returned(R),
    Deadline,
    Interrupted,
}

impl PluginHost {
    pub fn new(settings: HostSettings) -> wasmtime::Result<Arc<Self>> {
        let engine = build_engine(&settings.engine)?;
        let sandboxes = Arc::new(Sandboxes::new(&engine, settings.engine.fuel_metering));
        let cache = match &settings.cache_dir {
            Some(dir) => Some(Arc::new(CompileCache::open(
                dir,
                &engine,
                settings
                    .cache_max_bytes
                    .unwrap_or(crate::plugin::compile_cache_evict::DEFAULT_MAX_BYTES),
            )?)),
            None => None,
        };
        let compiler = settings
            .compiler
            .clone()
            .map(|process| ChildCompiler::new(process, &settings.engine));
        let loader = Loader::new(
            sandboxes.clone(),
            cache,
            compiler,
            settings.engine.max_memory_bytes,
        )?;
        let limit = raise_descriptor_limit();
        let descriptor_budget = descriptor_budget(limit);
        tracing::info!(
            limit,
            budget = descriptor_budget,
            "file descriptors: invocations may hold the budget between them, each its \
             limits.max_open_files and its directories; the rest is the worker's reserve"
        );
        Ok(Arc::new(Self {
            settings,
            sandboxes,
            loader,
            active: LiveCount::default(),
            descriptors: Arc::new(Semaphore::new(
                descriptor_budget.min(Semaphore::MAX_PERMITS),
            )),
            descriptor_budget,
        }))
    }

    pub fn settings(&self) -> &HostSettings {
        &self.settings
    }

    /// Compiles, links (a missing import fails here, not at 3 a.m.), reads the manifest and
    /// calls `describe`.
    pub async fn load(&self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        self.loader.load(path).await
    }

    /// [`Self::load`] of bytes and a manifest given by the worker: a child process's load.
    pub(crate) async fn load_given(
        &self,
        path: &Path,
        bytes: Arc<[u8]>,
        manifest: crate::plugin::manifest::Manifest,
    ) -> Result<LoadedPlugin, LoadError> {
        self.loader.load_given(path, bytes, manifest).await
    }

    /// [`Self::load`] of a component [`Self::compile`] returned.
    pub async fn load_compiled(
        &self,
        path: &Path,
        component: wasmtime::component::Component,
        digest: String,
    ) -> Result<LoadedPlugin, LoadError> {
        self.loader.load_compiled(path, component, digest).await
    }

    /// Reads and compiles a component file; returns it with its digest.
    pub async fn compile(
        &self,
        path: &Path,
    ) -> Result<(wasmtime::component::Component, String), LoadError> {
        self.loader.compile(path).await
    }

    pub fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.settings.observer.as_ref()
    }

    pub fn compile_stats(&self) -> &CompileStats {
        self.loader.stats()
    }

    /// Guest instances currently alive for invocations (not counting `describe` at load).
    pub fn active_invocations(&self) -> usize {
        self.active.get()
    }

    /// Plugin versions alive: those in the registry plus replaced or removed ones whose last
    /// invocation has not yet ended. More than the registry holds for long means a leak.
    pub fn plugin_versions_alive(&self) -> usize {
        self.loader.versions_alive()
    }

    pub fn engine(&self) -> &Engine {
        self.sandboxes.engine()
    }

    fn scratch_dir(&self) -> Result<ScratchDir, InvocationError> {
        let root = self.settings.scratch_root.clone();
        ScratchDir::create(&root.unwrap_or_else(std::env::temp_dir))
            .map_err(|e| InvocationError::Sandbox(format!("creating a scratch directory: {e}")))
    }

    /// A fresh store and instance of `plugin`, dropped without a call: what each invocation
    /// pays before the plugin runs. Measured by the benchmarks, not used by the worker.
    #[doc(hidden)]
    pub async fn instantiate_only(&self, plugin: &LoadedPlugin) -> Result<(), InvocationError> {
        let (signals, _) = ActivitySignals::new(CancellationToken::new());
        let mut store = self
            .sandboxes
            .store(&plugin.manifest, None, None, signals)
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
        let artifacts = self.run_dir(&ctx.workflow_id);
        self.invoke_in(artifacts, plugin, operation, input, ctx, signals, deadline)
            .await
    }

    /// The workflow's own directory under the artifacts root, what `/artifacts` is when no
    /// caller prepared another: the one place this rule lives. None without a root.
    pub fn run_dir(&self, workflow_id: &str) -> Option<PathBuf> {
        self.settings
            .artifacts_dir
            .as_ref()
            .map(|dir| dir.join(sandbox::workflow_dir_name(workflow_id)))
    }

    /// [`Self::invoke`] with `artifacts` behind `/artifacts` instead of the workflow's
    /// directory under the worker's root: a private copy the caller prepared (and owns).
    #[allow(clippy::too_many_arguments)]
    pub async fn invoke_in(
        &self,
        artifacts: Option<PathBuf>,
        plugin: &LoadedPlugin,
        operation: &str,
        input: &Value,
        ctx: &InvocationContext,
        signals: ActivitySignals,
        deadline: Option<Instant>,
    ) -> Result<Invocation, InvocationError> {
        let request = Request {
            artifacts,
            scratch: None,
            plugin,
            operation,
            input,
            ctx,
            signals,
            deadline,
        };
        let mut held = Held::default();
        self.invoke_holding(request, &mut held).await
    }

    /// [`Self::invoke_in`], leaving what the invocation holds in `held`, for the caller to
    /// drop once the outcome is out (see [`Held`]).
    async fn invoke_holding(
        &self,
        request: Request<'_>,
        held: &mut Held,
    ) -> Result<Invocation, InvocationError> {
        let (plugin, operation) = (request.plugin, request.operation);
        let start = Instant::now();
        let instantiated = OnceLock::new();
        let result = self.invoke_inner(request, &instantiated, held).await;
        if let Some(observer) = &self.settings.observer {
            let failure = result.as_ref().err().map(|e| e.failure().type_name);
            observer.invocation(&Outcome {
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

    /// What the child of an `isolation = "process"` plugin is given to load: this host's
    /// settings less epoch checks (the worker kills the child instead) and the pool (one
    /// instance per process: a pool's slots would never be reused).
    fn isolated_load(&self, plugin: &LoadedPlugin) -> isolated::wire::Load {
        let settings = &self.settings;
        isolated::wire::Load {
            engine: EngineSettings {
                epoch_interruption: false,
                pooling: false,
                ..settings.engine.clone()
            },
            cache_dir: settings.cache_dir.clone(),
            cache_max_bytes: settings.cache_max_bytes,
            plugin: plugin.path.clone(),
            digest: plugin.digest.clone(),
            component_bytes: plugin.component_bytes.as_ref().map_or(0, |b| b.len()),
            manifest: plugin.manifest.text.as_deref().map(str::to_string),
        }
    }

    /// One call in a child process: the spare the previous call left, or a new child; then
    /// a spare for the next call.
    #[allow(clippy::too_many_arguments)]
    async fn invoke_in_child(
        &self,
        program: &ChildProgram,
        bytes: &Arc<[u8]>,
        plugin: &LoadedPlugin,
        call: &isolated::wire::Call,
        signals: &ActivitySignals,
        deadline: Instant,
        grace: Duration,
    ) -> Result<isolated::wire::Done, InvocationError> {
        let load = self.isolated_load(plugin);
        let spare = plugin
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let child = match spare.and_then(|mut spare| spare.alive().then_some(spare)) {
            Some(spare) => spare,
            None => Spare::start(program, &load, bytes.clone())?,
        };
        let ended = child.run(call, signals, deadline, grace).await;
        // Loading while no call waits for it, started once this call has returned; best
        // effort, as a call that finds no spare starts its own child. The slot is shared, so
        // a spare started as the version is unloaded goes with the last reference to it.
        let (slot, program, bytes) = (plugin.spare.clone(), program.clone(), bytes.clone());
        let name = plugin.info.name.clone();
        tokio::spawn(async move {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Spare::start(&program, &load, bytes)
                    .inspect_err(|e| tracing::warn!(plugin = %name, "no spare process: {e}"))
                    .ok();
            }
        });
        ended
    }

    async fn invoke_inner(
        &self,
        request: Request<'_>,
        instantiated: &OnceLock<Duration>,
        held: &mut Held,
    ) -> Result<Invocation, InvocationError> {
        let Request {
            artifacts,
            scratch,
            plugin,
            operation,
            input,
            ctx,
            signals,
            deadline,
        } = request;
        if plugin.info.operation(operation).is_none() {
            return Err(InvocationError::UnknownOperation {
                plugin: plugin.info.name.clone(),
                operation: operation.to_string(),
                available: crate::contract::listing(&plugin.info.operation_names()),
            });
        }
        if let Err(violations) = plugin.inputs.check(operation, input) {
            return Err(InvocationError::InvalidInput {
                plugin: plugin.info.name.clone(),
                operation: operation.to_string(),
                summary: violations.summary(),
                violations: violations.to_json(),
            });
        }
        held.active = Some(self.active.enter());
        let limits = &plugin.manifest.limits;
        let start = Instant::now();
        let deadline = deadline.map_or(start + limits.timeout, |d| d.min(start + limits.timeout));
        // Wait for a slot of this plugin, but never past the deadline nor after cancellation.
        let cancel = signals.cancel_token().clone();
        held.slot = match &plugin.slots {
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
        // The descriptors it may hold, reserved before any is opened: waits (within the deadline)
        // while other invocations hold the budget.
        let charge = limits.max_open_files + plugin.manifest.dirs.len() + 2;
        let Ok(permits) = u32::try_from(charge) else {
            return Err(InvocationError::Sandbox(
                "descriptor charge overflow".into(),
            ));
        };
        if charge > self.descriptor_budget {
            return Err(InvocationError::Sandbox(format!(
                "the plugin may hold {charge} file descriptors (limits.max_open_files and its \
                 directories), more than this worker's budget of {}; lower \
                 limits.max_open_files or raise the worker's RLIMIT_NOFILE",
                self.descriptor_budget
            )));
        }
        held.descriptors = Some(tokio::select! {
            permit = tokio::time::timeout_at(
                deadline.into(),
                self.descriptors.clone().acquire_many_owned(permits),
            ) => match permit {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(InvocationError::Sandbox("worker shutting down".into())),
                Err(_) => return Err(InvocationError::Deadline { after: start.elapsed() }),
            },
            _ = cancel.cancelled() => {
                return Err(InvocationError::Cancelled { acknowledged_by_plugin: false });
            }
        });
        // Made here unless the caller made it, and then removed (in the background) with
        // `held`, however the invocation ended: after the store, so the guest's descriptors
        // are closed by then, or after the child was killed, dead or alive, so that not even
        // a child the OOM killer took leaves it behind.
        let scratch = match (plugin.manifest.scratch, scratch) {
            (false, _) => None,
            (true, Some(given)) => Some(given),
            (true, None) => Some(
                held.scratch
                    .insert(self.scratch_dir()?)
                    .path()
                    .to_path_buf(),
            ),
        };
        // Without its bytes (loaded from a compiled component, not its file) or a child
        // program (a tool, not the daemon), an isolated plugin runs here like the others.
        if let (Isolation::Process, Some(program), Some(bytes)) = (
            plugin.manifest.isolation,
            &self.settings.invoker,
            &plugin.component_bytes,
        ) {
            let call = isolated::wire::Call {
                operation: operation.to_string(),
                input: input.clone(),
                context: ctx.clone(),
                artifacts,
                scratch,
            };
            let grace = limits.cancel_grace;
            let done = self
                .invoke_in_child(program, bytes, plugin, &call, &signals, deadline, grace)
                .await?;
            return Ok(Invocation {
                output: done.output,
                duration: start.elapsed(),
                peak_memory_bytes: done.peak_memory_bytes,
            });
        }
        let store = self
            .sandboxes
            .store(
                &plugin.manifest,
                artifacts.as_deref(),
                scratch.as_deref(),
                signals,
            )
            .map_err(|e| InvocationError::Sandbox(e.to_string()))?;
        let store = held.store.insert(store);

        let input_text = input.to_string();
        let wit_ctx = WitContext::from(ctx);
        let run = async {
            let started = Instant::now();
            let bindings = match plugin.pre.instantiate_async(&mut *store).await {
                Ok(bindings) => bindings,
                Err(e) => return Ended::NotInstantiated(e),
            };
            let _ = instantiated.set(started.elapsed());
            let returned = bindings
                .mlx_plugin_plugin()
                .call_invoke(&mut *store, operation, &input_text, &wit_ctx)
                .await;
            Ended::Returned(returned)
        };
        let grace = limits.cancel_grace;
        // Dropping `run` interrupts the guest: it yields at every epoch tick, so this select
        // regains control within one tick even from a pure CPU loop.
        let returned = tokio::select! {
            ended = run => ended,
            _ = tokio::time::sleep_until(deadline.into()) => Ended::Deadline,
            _ = async { cancel.cancelled().await; tokio::time::sleep(grace).await } => Ended::Interrupted,
        };
        let duration = start.elapsed();
        // However it ended, the latest checkpoint goes to Temporal for the next attempt.
        store.data_mut().activity.flush_heartbeat();
        let state = store.data();
        let cancelled = cancel.is_cancelled();
        let denied = state.denials.take();
        match returned {
            Ended::NotInstantiated(e) => Err(outcome::classify_instantiation(state, e)),
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
                    peak_memory_bytes: state.memory.peak,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_budget_leaves_the_worker_a_reserve() {
        assert_eq!(descriptor_budget(20_000), 15_000);
        assert_eq!(descriptor_budget(1024), 768);
        assert_eq!(descriptor_budget(100), 0);
    }
}
