//! `mlx-worker plugin inspect`: everything an operator needs to decide whether to deploy a
//! component, shown even when it would not load (that is when it is needed most).

use std::{fmt::Write, path::Path};

use crate::{
    host::PluginHost,
    plugin::{LoadError, imports, manifest},
};

/// What `inspect` found: the report, and whether the worker would load the file.
#[derive(Debug)]
pub struct Inspection {
    pub report: String,
    pub loads: bool,
}

/// A human-readable report on `path` (compiled once); `Err` only when the file cannot be
/// compiled at all.
pub async fn inspect(runtime: &PluginHost, path: &Path) -> Result<Inspection, LoadError> {
    let (component, digest) = runtime.compile(path).await?;
    let mut out = String::new();
    let _ = writeln!(out, "file:      {} ({digest})", path.display());

    let load = runtime.load_compiled(path, component.clone(), digest).await;
    match &load {
        Ok(plugin) => {
            let info = &plugin.info;
            let _ = writeln!(
                out,
                "plugin:    {} {} - {}",
                info.name, info.version, info.description
            );
            let _ = writeln!(out, "operations:");
            for op in &info.operations {
                let _ = writeln!(out, "  {:<20} {}", op.name, op.description);
            }
        }
        Err(e) => {
            let _ = writeln!(out, "plugin:    (not loadable) {e}");
        }
    }

    let _ = writeln!(out, "world:");
    let manifest = manifest::load_for(path, runtime.settings().engine.max_memory_bytes).ok();
    let granted = |section: &str| manifest.as_ref().is_some_and(|m| m.grants(section));
    for import in imports::review(runtime.engine(), &component, &granted) {
        let _ = match import.verdict {
            imports::Verdict::Granted => writeln!(out, "  import  {}  granted", import.name),
            imports::Verdict::DeniedAtCall(why) => {
                writeln!(out, "  import  {}  denied at call: {why}", import.name)
            }
            imports::Verdict::Refused(why) => {
                writeln!(out, "  import  {}  REFUSED: {why}", import.name)
            }
        };
    }
    for export in imports::exports(runtime.engine(), &component) {
        let _ = writeln!(out, "  export  {export}");
    }

    let max_memory = runtime.settings().engine.max_memory_bytes;
    match manifest::load_for(path, max_memory) {
        Ok(m) => {
            match &m.source {
                Some(source) => {
                    let _ = writeln!(out, "manifest:  {}", source.display());
                }
                None => {
                    let _ = writeln!(
                        out,
                        "manifest:  none ({} not found): defaults, nothing granted",
                        manifest::manifest_path_for(path).display()
                    );
                }
            }
            for dir in &m.dirs {
                let _ = writeln!(
                    out,
                    "  filesystem  {} -> {} ({:?})",
                    dir.guest,
                    dir.host.display(),
                    dir.access
                );
            }
            let _ = writeln!(
                out,
                "  always      {} (workflow artifacts, read-write)",
                manifest::ARTIFACTS_GUEST_PATH,
            );
            if m.scratch {
                let _ = writeln!(
                    out,
                    "  scratch     {} (empty, read-write, removed after each call)",
                    manifest::SCRATCH_GUEST_PATH
                );
            }
            if m.isolation == manifest::Isolation::Process {
                let _ = writeln!(
                    out,
                    "  isolation   process (each call in a child process of the worker, \
                     compiled without epoch checks, killed at its deadline)"
                );
            }
            let keys =
                |it: Vec<&String>| it.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
            if let Some(http) = &m.http {
                let origins: Vec<String> = http
                    .allow
                    .iter()
                    .map(|o| format!("{:?}://{}:{}", o.scheme, o.host, o.port).to_lowercase())
                    .collect();
                let _ = writeln!(
                    out,
                    "  http        [{}], responses up to {} KiB, requests up to {} KiB{}",
                    origins.join(", "),
                    http.max_response_bytes >> 10,
                    http.max_request_bytes >> 10,
                    if http.ca_files.is_empty() {
                        String::new()
                    } else {
                        format!(", extra CAs {:?}", http.ca_files)
                    }
                );
            }
            let _ = writeln!(out, "  env         [{}]", keys(m.env.keys().collect()));
            let _ = writeln!(
                out,
                "  config      [{}]",
                keys(m.config.values.keys().collect())
            );
            let secrets: Vec<String> = m
                .config
                .secrets
                .iter()
                .map(|(name, source)| format!("{name} ({source:?})"))
                .collect();
            let _ = writeln!(out, "  secrets     [{}]", secrets.join(", "));
            let l = &m.limits;
            let _ = writeln!(
                out,
                "  limits      memory {} MiB, timeout {:?}, output {} KiB, cancel grace {:?}",
                l.memory_bytes >> 20,
                l.timeout,
                l.max_output_bytes >> 10,
                l.cancel_grace
            );
        }
        Err(e) => {
            let _ = writeln!(out, "manifest:  INVALID: {e}");
        }
    }
    let _ = writeln!(
        out,
        "verdict:   {}",
        match &load {
            Ok(_) => "loads".to_string(),
            Err(e) => format!("refused: {e}"),
        }
    );
    Ok(Inspection {
        report: out,
        loads: load.is_ok(),
    })
}
