//! A spec file on the command line, with its param overrides, checked whole before anything is
//! started: a run that cannot succeed should fail here, with every problem listed, rather than
//! later in the workflow's history.

use std::path::{Path, PathBuf};

use mlx_pipeline::{
    PipelineSpec,
    load::{self, ParamOverride},
};
use mlx_runtime::plugin::registry::PluginRegistry;

use super::CliError;

#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// Pipeline spec: .yaml/.yml, .toml or .json.
    pub file: PathBuf,
    /// Override a declared param (repeatable). VALUE is JSON if it parses as JSON (3, 0.5,
    /// true, "3", {"a": 1}), otherwise the text itself.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<ParamOverride>,
    /// Also check plugin and operation names against the plugins in this directory (as the
    /// worker would load them).
    #[arg(long, env = "MLX_PLUGINS_DIR")]
    pub plugins_dir: Option<PathBuf>,
}

impl SpecArgs {
    /// The spec with overrides applied, valid; [`CliError::Invalid`] lists every problem.
    pub async fn load(&self) -> Result<PipelineSpec, CliError> {
        let mut spec = load::load(&self.file)?;
        load::apply_params(&mut spec, &self.params)?;
        let checked = match &self.plugins_dir {
            Some(dir) => {
                let plugins = plugin_operations(dir).await?;
                let lookup = |name: &str| plugins.get(name).cloned();
                spec.validate(Some(&lookup))
            }
            None => spec.validate(None),
        };
        checked.map_err(|errors| CliError::Invalid {
            file: self.file.clone(),
            errors,
        })?;
        Ok(spec)
    }
}

/// Each plugin's operations, loaded as `plugin list` loads a directory, through the plugin
/// commands' compile cache (`MLX_CACHE_DIR`, else the per-user one): compiling an
/// interpreter component takes seconds.
async fn plugin_operations(
    dir: &Path,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, CliError> {
    let cache_dir = std::env::var_os("MLX_CACHE_DIR").map(std::path::PathBuf::from);
    let runtime = super::plugin::Settings::new(cache_dir, false)
        .host()
        .map_err(|e| CliError::Local(format!("cannot start the plugin runtime: {e:#}")))?;
    let registry = PluginRegistry::load_dir(&runtime, dir).await?;
    Ok(registry
        .plugins()
        .iter()
        .map(|p| {
            let ops = p.info.operation_names().into_iter().map(String::from);
            (p.info.name.clone(), ops.collect())
        })
        .collect())
}
