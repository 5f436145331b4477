//! One sandbox = one fresh [`Store`] with its own WASI context, memory limiter and signals.
//! Nothing survives an invocation: isolation between activities is the point.
//!
//! WASI is deny-by-default, and each choice is made here: no environment variables (but those
//! the manifest lists), no arguments, no stdin, no sockets or name lookup, no directories
//! except those the manifest grants, the workflow's artifacts directory and (when the manifest
//! asks) the invocation's scratch directory.

use std::{path::Path, sync::Arc};

use sha2::{Digest, Sha256};

use wasmtime::{
    ResourceLimiter, Store,
    component::{Linker, ResourceTable},
};
use wasmtime_wasi::{
    FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView, filesystem::WasiFilesystemCtxView,
};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::{
    engine::{BoxError, EngineError, EpochTicker, Ticking},
    plugin::manifest::{ARTIFACTS_GUEST_PATH, Access, Manifest, SCRATCH_GUEST_PATH},
};
use capabilities::{
    activity::{ActivitySignals, ActivityState, ActivityView},
    config::{ConfigState, ConfigView},
    denials::Denials,
    disk::DiskQuota,
    host_memory::HostMemory,
    http::HttpState,
    log::{LogState, LogView},
    open_files::{OpenFiles, OpenFilesCtxView, OpenFilesView},
    sockets::SocketsView,
};

pub mod capabilities;
pub mod scratch;

/// Per-store state: everything a guest can reach goes through here, one field per capability.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) open_files: OpenFiles,
    pub(crate) disk: DiskQuota,
    pub(crate) host_memory: HostMemory,
    pub(crate) log: LogState,
    pub(crate) activity: ActivityState,
    config: ConfigState,
    http: HttpState,
    /// What the capabilities refused during this invocation.
    pub(crate) denials: Denials,
    /// Memory limit and fuel, for reporting which limit a trap hit.
    pub(crate) manifest: Arc<Manifest>,
    _ticking: Option<Ticking>,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.table,
            hooks: &mut self.http.hooks,
        }
    }
}

impl OpenFilesView for GuestState {
    fn open_files(&mut self) -> OpenFilesCtxView<'_> {
        OpenFilesCtxView {
            fs: WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            files: &mut self.open_files,
            disk: &self.disk,
            host: &self.host_memory,
        }
    }
}

impl SocketsView for GuestState {
    fn denials(&self) -> &Denials {
        &self.denials
    }
}

impl LogView for GuestState {
    fn log(&mut self) -> &mut LogState {
        &mut self.log
    }
}

impl ActivityView for GuestState {
    fn activity(&mut self) -> &mut ActivityState {
        &mut self.activity
    }
}

impl ConfigView for GuestState {
    fn config(&mut self) -> &mut ConfigState {
        &mut self.config
    }
}

/// Refuses memory growth beyond the plugin's limit and remembers that it did, so the failure
/// is reported as a memory limit rather than as whatever the guest did next (usually abort).
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    pub(crate) hit: bool,
    pub(crate) peak: usize,
}

/// Table growth is bounded too: a table-growth bomb must not exhaust host memory.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// What one sandbox is made of.
pub struct SandboxSpec<'a> {
    pub manifest: &'a Arc<Manifest>,
    /// Host directory behind `/artifacts`, if any.
    pub artifacts_dir: Option<&'a Path>,
    /// Host directory behind `/scratch`, if any; the caller owns (and removes) it.
    pub scratch_dir: Option<&'a Path>,
    /// Fuel to start with, when the engine meters fuel (it must then be set).
    pub fuel: Option<u64>,
    pub signals: ActivitySignals,
    /// Keeps the epoch ticking for as long as the store lives, so a running guest can be
    /// interrupted; None only where nothing needs interrupting.
    pub ticking: Option<Ticking>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the sandbox: {doing}: {source}")]
pub struct SandboxError {
    doing: String,
    #[source]
    source: BoxError,
}

impl SandboxError {
    fn new(doing: String, source: impl Into<BoxError>) -> Self {
        Self {
            doing,
            source: source.into(),
        }
    }
}

/// Makes the stores: one engine, its epoch ticker, and whether fuel is metered.
pub struct Sandboxes {
    engine: wasmtime::Engine,
    ticker: EpochTicker,
    fuel_metering: bool,
}

impl Sandboxes {
    pub fn new(engine: &wasmtime::Engine, fuel_metering: bool) -> Self {
        Self {
            engine: engine.clone(),
            ticker: EpochTicker::start(engine),
            fuel_metering,
        }
    }

    /// The linker every plugin is linked with: WASI and each capability
    /// ([`capabilities::add_to_linker`]).
    pub fn linker(&self) -> wasmtime::Result<Linker<GuestState>> {
        let mut linker = Linker::new(&self.engine);
        capabilities::add_to_linker(&mut linker)?;
        Ok(linker)
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    pub fn fuel_metering(&self) -> bool {
        self.fuel_metering
    }

    /// A fresh store for a plugin with `manifest`: its fuel (the plugin's limit, or unlimited,
    /// when metering is on), and the epoch ticking for as long as the store lives.
    pub fn store(
        &self,
        manifest: &Arc<Manifest>,
        artifacts_dir: Option<&Path>,
        scratch_dir: Option<&Path>,
        signals: ActivitySignals,
    ) -> Result<Store<GuestState>, SandboxError> {
        let fuel = self
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
}

/// Builds a fresh store for one instance.
pub fn new_store(
    engine: &wasmtime::Engine,
    spec: SandboxSpec<'_>,
) -> Result<Store<GuestState>, SandboxError> {
    let limits = &spec.manifest.limits;
    let log = LogState::new(&limits.log);

    let mut wasi = WasiCtxBuilder::new();
    // Random bytes are made on the host and then copied in: one call may ask for no more than
    // the host-memory budget (wasmtime-wasi's own default is 64 MiB a call).
    wasi.max_random_size(limits.host_memory_bytes)
        .stdout(log.stdout())
        .stderr(log.stderr().clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (key, value) in &spec.manifest.env {
        wasi.env(key, value);
    }
    for grant in &spec.manifest.dirs {
        let perms = match grant.access {
            Access::ReadOnly => FsPerms::ReadOnly,
            Access::ReadWrite => FsPerms::ReadWrite,
        };
        wasi.preopened_dir(&grant.host, &grant.guest, perms)
            .map_err(|e| {
                SandboxError::new(format!("granting {}", grant.host.display()), EngineError(e))
            })?;
    }
    if let Some(dir) = spec.artifacts_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| SandboxError::new(format!("creating {}", dir.display()), e))?;
        wasi.preopened_dir(dir, ARTIFACTS_GUEST_PATH, FsPerms::ReadWrite)
            .map_err(|e| {
                SandboxError::new(format!("granting {}", dir.display()), EngineError(e))
            })?;
    }
    if let Some(dir) = spec.scratch_dir {
        wasi.preopened_dir(dir, SCRATCH_GUEST_PATH, FsPerms::ReadWrite)
            .map_err(|e| {
                SandboxError::new(format!("granting {}", dir.display()), EngineError(e))
            })?;
    }

    let denials = Denials::new();
    let state = GuestState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        memory: MemoryLimiter {
            limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            hit: false,
            peak: 0,
        },
        open_files: OpenFiles::new(limits.max_open_files),
        disk: DiskQuota::new(limits.disk_bytes),
        host_memory: HostMemory::new(limits.host_memory_bytes),
        log,
        activity: ActivityState::new(spec.signals, &limits.heartbeat),
        config: ConfigState::new(spec.manifest.config.clone(), denials.clone()),
        http: HttpState::new(spec.manifest.http.clone(), denials.clone()),
        denials,
        manifest: spec.manifest.clone(),
        _ticking: spec.ticking,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    // What one call into the host may copy out of the guest (wasmtime's own bound, 128 MiB by
    // default) is the same budget as what the host holds for it between calls.
    store.set_hostcall_fuel(usize::try_from(limits.host_memory_bytes).unwrap_or(usize::MAX));
    // Yield to the executor at every epoch tick, so the call future can be raced against
    // deadlines and cancellation and dropped (which interrupts the guest).
    store.epoch_deadline_async_yield_and_update(1);
    if let Some(fuel) = spec.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| SandboxError::new("setting fuel".into(), EngineError(e)))?;
    }
    Ok(store)
}

/// Directory name for a workflow's artifacts: the id itself when it is a safe file name,
/// otherwise a digest, so no workflow id can escape the artifacts root.
pub fn workflow_dir_name(workflow_id: &str) -> String {
    let safe = !workflow_id.is_empty()
        && workflow_id.len() <= 128
        && !workflow_id.starts_with('.')
        && workflow_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if safe {
        workflow_id.to_string()
    } else {
        let hex = format!("{:x}", Sha256::digest(workflow_id.as_bytes()));
        format!("wf-{}", &hex[..32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_ids_cannot_escape_the_artifacts_root() {
        assert_eq!(workflow_dir_name("train-42"), "train-42");
        for hostile in ["..", "../etc", "a/b", "", ".hidden", "x\0y"] {
            let name = workflow_dir_name(hostile);
            assert!(name.starts_with("wf-"), "{hostile:?} -> {name}");
        }
    }
}
