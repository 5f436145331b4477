//! Loading a plugin: read, compile (or take from the compile cache), check imports against
//! the manifest, link, pre-instantiate and call `describe`, so that every problem with a file
//! shows at load, naming the file, and never at 3 a.m. in the middle of a workflow.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wasmtime::component::Component;

use wasmtime::component::Linker;

use crate::{
    bindings::PluginWorldPre,
    contract::PluginInfo,
    engine::{BoxError, EngineError},
    live::{Live, LiveCount},
    plugin::{
        compile_cache::{self, CompileCache},
        compiler::{ChildCompiler, ChildFailure},
        imports,
        input_schema::InputSchemas,
        manifest::{self, Isolation, Manifest, ManifestError},
    },
    sandbox::{GuestState, Sandboxes, capabilities::activity::ActivitySignals},
};

/// How long `describe` may take at load.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How components were obtained since the runtime started: a warm restart compiles nothing.
#[derive(Debug, Default)]
pub struct CompileStats {
    pub compiled: AtomicU64,
    pub cache_hits: AtomicU64,
}

/// What to do about a compile error, by its cause: the engine's limits, a component-model
/// feature the worker does not enable, or (most often) not a component at all.
fn compile_hint(source: &BoxError) -> String {
    let text = source.to_string();
    if text.contains("exceeds the configured maximum") {
        format!(
            "it needs more of the worker's instance pool than one component may take: at most \
             {} core instances, {} memories and {} tables; build it without statically \
             instantiating so many modules",
            crate::engine::CORE_INSTANCES_PER_COMPONENT,
            crate::engine::MEMORIES_PER_COMPONENT,
            crate::engine::TABLES_PER_COMPONENT
        )
    } else if text.contains("async") || text.contains("not enabled") {
        "it uses a WebAssembly or component-model feature the worker does not enable (e.g. \
         component-model async): build a synchronous WASI 0.2 component (componentize-qjs \
         --sync, or the toolchain's default WASI 0.2 target)"
            .into()
    } else {
        "build plugins as WASI 0.2 components: cargo's wasm32-wasip2 target, componentize-py \
         or jco componentize"
            .into()
    }
}

/// Why a plugin file could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a loadable WebAssembly component ({}): {source}", path.display(), compile_hint(source))]
    Compile { path: PathBuf, source: BoxError },
    #[error(
        "{}: imports something this worker does not provide ({source}); the worker offers {}",
        path.display(), crate::sandbox::capabilities::offered()
    )]
    Link { path: PathBuf, source: EngineError },
    #[error(
        "{}: does not export the plugin interface ({source}); build it against the world \
         mlx:plugin/plugin-world in wit/ (the guest SDK's export_plugin! does this)", path.display()
    )]
    MissingExport { path: PathBuf, source: EngineError },
    #[error("{}: imports {import}, which is refused: {reason}", path.display())]
    RefusedImport {
        path: PathBuf,
        import: String,
        reason: String,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{}: describe() failed: {message}", path.display())]
    Describe { path: PathBuf, message: String },
    #[error("{}: invalid self-description: {message}", path.display())]
    InvalidDescription { path: PathBuf, message: String },
    #[error(
        "two plugin files describe themselves as {name:?}: {} and {}; remove or rename one",
        first.display(), second.display()
    )]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("plugins directory {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A compiled, linked and described plugin, ready to instantiate.
pub struct LoadedPlugin {
    pub info: PluginInfo,
    pub path: PathBuf,
    /// `sha256:<hex>` of the component bytes: which bytes ran.
    pub digest: String,
    pub manifest: Arc<Manifest>,
    pub(crate) pre: PluginWorldPre<GuestState>,
    /// Per-plugin concurrency (`limits.max_concurrent`), if limited.
    pub(crate) slots: Option<Arc<Semaphore>>,
    /// Each operation's input validator, compiled once for this version of the plugin.
    pub(crate) inputs: Arc<InputSchemas>,
    /// The component's bytes, kept for a plugin with `isolation = "process"` (its child
    /// processes are given them); None otherwise, and for one loaded without its file.
    pub(crate) component_bytes: Option<Arc<[u8]>>,
    /// Its child process for the next call, already loaded (`isolation = "process"`).
    pub(crate) spare: Arc<std::sync::Mutex<Option<crate::isolated::Spare>>>,
    _alive: Live,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("path", &self.path)
            .field("digest", &self.digest)
            .finish()
    }
}

/// Compiles, checks, links and describes plugin files; owned by [`crate::PluginHost`].
pub struct Loader {
    sandboxes: Arc<Sandboxes>,
    linker: Linker<GuestState>,
    cache: Option<Arc<CompileCache>>,
    /// None: compile on this process's blocking threads.
    compiler: Option<ChildCompiler>,
    stats: Arc<CompileStats>,
    /// Every [`LoadedPlugin`] made here and not yet dropped.
    versions: LiveCount,
    /// The engine's memory ceiling: a manifest may only ask for less.
    max_memory_bytes: u64,
}

impl Loader {
    pub(crate) fn new(
        sandboxes: Arc<Sandboxes>,
        cache: Option<Arc<CompileCache>>,
        compiler: Option<ChildCompiler>,
        max_memory_bytes: u64,
    ) -> wasmtime::Result<Self> {
        Ok(Self {
            linker: sandboxes.linker()?,
            sandboxes,
            cache,
            compiler,
            stats: Arc::default(),
            versions: LiveCount::default(),
            max_memory_bytes,
        })
    }

    pub fn stats(&self) -> &CompileStats {
        &self.stats
    }

    pub fn versions_alive(&self) -> usize {
        self.versions.get()
    }

    /// Reads and compiles a component file; returns it with its digest.
    pub async fn compile(&self, path: &Path) -> Result<(Component, String), LoadError> {
        self.compile_bytes(path, read(path).await?).await
    }

    /// Compiles the bytes of the component file `path` (named in errors and logs).
    async fn compile_bytes(
        &self,
        path: &Path,
        bytes: Arc<[u8]>,
    ) -> Result<(Component, String), LoadError> {
        let hex = format!("{:x}", Sha256::digest(&bytes));
        let digest = format!("sha256:{hex}");
        let engine = self.sandboxes.engine().clone();
        let compile_err = |source: BoxError| LoadError::Compile {
            path: path.to_path_buf(),
            source,
        };
        let joined = |e: tokio::task::JoinError| compile_err(e.into());
        if let Some(cache) = self.cache.clone() {
            let (engine, hex) = (engine.clone(), hex.clone());
            let lookup = tokio::task::spawn_blocking(move || cache.lookup(&engine, &hex));
            if let compile_cache::Lookup::Hit(component) = lookup.await.map_err(joined)? {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok((component, digest));
            }
        }
        let in_child = match &self.compiler {
            Some(compiler) => Some(self.compile_in_child(compiler, &bytes, &hex).await),
            None => None,
        };
        let component = match in_child {
            Some(Ok(component)) => Ok(component),
            Some(Err(ChildFailure::Compile(e))) => Err(e),
            // The cache never fails a load: with no room for the artifact (a full disk) or
            // no child (a process limit), the worker compiles as it did before there was one.
            Some(Err(ChildFailure::NoChild(why))) => {
                tracing::warn!(path = %path.display(), "compiling in the worker instead: {why}");
                self.compile_here(bytes, hex).await.map_err(joined)?
            }
            None => self.compile_here(bytes, hex).await.map_err(joined)?,
        }
        .map_err(compile_err)?;
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        Ok((component, digest))
    }

    /// Compiles on a blocking thread of this process (and stores the result in the cache).
    async fn compile_here(
        &self,
        wasm: Arc<[u8]>,
        hex: String,
    ) -> Result<Result<Component, BoxError>, tokio::task::JoinError> {
        let engine = self.sandboxes.engine().clone();
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let component = Component::new(&engine, &wasm).map_err(EngineError)?;
            if let Some(cache) = &cache {
                cache.store(&hex, &component);
            }
            Ok(component)
        })
        .await
    }

    /// The artifact is written beside the cache's entries, so that keeping it is a rename;
    /// with no cache, in the temporary directory, unlinked once mapped.
    async fn compile_in_child(
        &self,
        compiler: &ChildCompiler,
        wasm: &[u8],
        hex: &str,
    ) -> Result<Component, ChildFailure> {
        let dir = match &self.cache {
            Some(cache) => cache.dir().to_path_buf(),
            None => std::env::temp_dir(),
        };
        let no_room = |e: std::io::Error| {
            ChildFailure::NoChild(format!(
                "no file for the compiled artifact in {}: {e}",
                dir.display()
            ))
        };
        let artifact = tempfile::NamedTempFile::new_in(&dir).map_err(no_room)?;
        let out = artifact.as_file().try_clone().map_err(no_room)?;
        compiler.compile(wasm, out).await?;
        let engine = self.sandboxes.engine().clone();
        let cache = self.cache.clone();
        let hex = hex.to_string();
        tokio::task::spawn_blocking(move || match cache {
            Some(cache) => cache.adopt(&engine, &hex, artifact),
            // SAFETY: the compiler process wrote it (see `compiler`), in a file created for it
            // only this user can open; wasmtime rejects another version's or configuration's.
            None => unsafe { Component::deserialize_file(&engine, artifact.path()) },
        })
        .await
        .map_err(|e| ChildFailure::Compile(e.into()))?
        .map_err(|e| ChildFailure::Compile(EngineError(e).into()))
    }

    /// Compiles, links (a missing import fails here, not at 3 a.m.), reads the manifest and
    /// calls `describe`. A plugin with `isolation = "process"` keeps its bytes: its child
    /// processes run what was loaded, whatever the file holds by then.
    pub async fn load(&self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let bytes = read(path).await?;
        let (component, digest) = self.compile_bytes(path, bytes.clone()).await?;
        let mut plugin = self.load_compiled(path, component, digest).await?;
        if plugin.manifest.isolation == Isolation::Process {
            plugin.component_bytes = Some(bytes);
        }
        Ok(plugin)
    }

    /// [`Self::load`] of bytes and a manifest the worker read from `path` earlier: what the
    /// child process of an isolated invocation runs ([`crate::isolated`]).
    pub(crate) async fn load_given(
        &self,
        path: &Path,
        bytes: Arc<[u8]>,
        manifest: Manifest,
    ) -> Result<LoadedPlugin, LoadError> {
        let (component, digest) = self.compile_bytes(path, bytes).await?;
        self.load_with(path, component, digest, Arc::new(manifest))
            .await
    }

    /// [`Self::load`] of a component already compiled (with its digest), for callers that
    /// also look at the component itself (`inspect`) and must not compile it twice.
    pub async fn load_compiled(
        &self,
        path: &Path,
        component: Component,
        digest: String,
    ) -> Result<LoadedPlugin, LoadError> {
        let manifest = Arc::new(manifest::load_for(path, self.max_memory_bytes)?);
        self.load_with(path, component, digest, manifest).await
    }

    async fn load_with(
        &self,
        path: &Path,
        component: Component,
        digest: String,
        manifest: Arc<Manifest>,
    ) -> Result<LoadedPlugin, LoadError> {
        let path = path.to_path_buf();
        // Refused imports first: their message says what the worker offers, which the
        // linker's "not found" would not.
        let refused = imports::review(self.sandboxes.engine(), &component, &|s| manifest.grants(s))
            .into_iter()
            .find_map(|i| match i.verdict {
                imports::Verdict::Refused(reason) => Some((i.name, reason)),
                _ => None,
            });
        if let Some((import, reason)) = refused {
            return Err(LoadError::RefusedImport {
                path,
                import,
                reason,
            });
        }
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Link {
                    path: path.clone(),
                    source: EngineError(e),
                })?;
        let pre = PluginWorldPre::new(instance_pre).map_err(|e| LoadError::MissingExport {
            path: path.clone(),
            source: EngineError(e),
        })?;
        if manifest.limits.fuel.is_some() && !self.sandboxes.fuel_metering() {
            return Err(LoadError::Manifest(ManifestError {
                path: manifest::manifest_path_for(&path),
                message: "limits.fuel needs fuel metering, which this worker has off: start it \
                          with --fuel-metering or remove the key"
                    .into(),
            }));
        }
        let info = self
            .describe(&pre, &manifest)
            .await
            .map_err(|message| LoadError::Describe {
                path: path.clone(),
                message,
            })?;
        info.validate()
            .map_err(|message| LoadError::InvalidDescription {
                path: path.clone(),
                message,
            })?;
        let inputs =
            InputSchemas::compile(&info).map_err(|message| LoadError::InvalidDescription {
                path: path.clone(),
                message,
            })?;
        let slots = manifest
            .limits
            .max_concurrent
            .map(|n| Arc::new(Semaphore::new(n)));
        Ok(LoadedPlugin {
            info,
            path,
            digest,
            manifest,
            pre,
            slots,
            inputs: Arc::new(inputs),
            component_bytes: None,
            spare: Arc::default(),
            _alive: self.versions.enter(),
        })
    }

    async fn describe(
        &self,
        pre: &PluginWorldPre<GuestState>,
        manifest: &Arc<Manifest>,
    ) -> Result<PluginInfo, String> {
        let (signals, _) = ActivitySignals::new(CancellationToken::new());
        let mut store = self
            .sandboxes
            .store(manifest, None, None, signals)
            .map_err(|e| e.to_string())?;
        let call = async {
            let bindings = pre.instantiate_async(&mut store).await?;
            bindings.mlx_plugin_plugin().call_describe(&mut store).await
        };
        match tokio::time::timeout(DESCRIBE_TIMEOUT, call).await {
            Ok(Ok(info)) => Ok(info.into()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("did not return within {DESCRIBE_TIMEOUT:?}")),
        }
    }
}

async fn read(path: &Path) -> Result<Arc<[u8]>, LoadError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(bytes.into()),
        Err(source) => Err(LoadError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}
