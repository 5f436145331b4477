//! The command line of `mlx-worker run`: the file's sections as flags, plus what only the
//! command line has. No clap defaults on the section flags: a default would hide the file's
//! value; [`ConfigFile::defaults`] applies under both.

use std::path::PathBuf;

use crate::{
    config::{ConfigError, ConfigFile, Layer, Settings},
    daemon::telemetry::LogFormat,
};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file (TOML); flags and environment variables override its keys.
    #[arg(long, env = "MLX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the resolved configuration (API key redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub keys: ConfigFile,
    /// For the end-to-end benchmark only: serve `plugin_activity` with a native Rust copy of
    /// the testkit plugin's `echo` instead of the plugins, to measure what the sandbox costs.
    /// Built only with the `native-echo` cargo feature.
    #[cfg(feature = "native-echo")]
    #[arg(long, env = "MLX_NATIVE_ECHO", help_heading = "Benchmarks")]
    pub native_echo: bool,
}

impl RunArgs {
    /// The settings: these flags/variables (and `mlx-worker --log-format`) over the `--config`
    /// file over the defaults.
    pub fn settings(&self, log_format: Option<LogFormat>) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let mut flags = self.keys.clone();
        flags.telemetry.log_format = log_format;
        let settings = file.overridden_by(flags).resolve()?;
        #[cfg(feature = "native-echo")]
        let settings = Settings {
            native_echo: self.native_echo,
            ..settings
        };
        Ok(settings)
    }
}
