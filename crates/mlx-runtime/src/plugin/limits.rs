//! Per-invocation resource limits: the manifest's `[limits]` table. Limits of the invocation
//! as a whole have their defaults here; a capability's own limits (log, heartbeats) have
//! theirs in its module. Deny-by-default in spirit: a plugin gets modest resources unless its
//! manifest asks for more, and never more than the engine-wide ceiling.

use std::time::Duration;

use serde::Deserialize;

use crate::sandbox::capabilities::{
    activity::HeartbeatLimits,
    disk::{DEFAULT_DISK_MB, DISK_MB_CEILING},
    host_memory::{DEFAULT_HOST_MEMORY_MB, HOST_MEMORY_MB_CEILING},
    log::LogLimits,
    open_files::{DEFAULT_MAX_OPEN_FILES, MAX_OPEN_FILES_CEILING},
};

/// Limits applied to one invocation of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Linear memory the instance may grow to. Default 512 MiB: enough for a tabular dataset
    /// of a few million cells, small enough that a handful of concurrent plugins fit a worker.
    pub memory_bytes: u64,
    /// Wall-time ceiling for one invocation, applied even when Temporal's start-to-close is
    /// longer (it never extends it). Default 2 h, the demo pipeline's longest step.
    pub timeout: Duration,
    /// Largest output JSON the host accepts. Default 1 MiB: results travel in Temporal history,
    /// which is no place for data (write artifacts, return references).
    pub max_output_bytes: usize,
    /// Heartbeat size and rate ([`HeartbeatLimits`]).
    pub heartbeat: HeartbeatLimits,
    /// Log bytes and lines, stdout/stderr included ([`LogLimits`]).
    pub log: LogLimits,
    /// How long a plugin may keep running after cancellation was requested before the host
    /// interrupts it. Default 5 s.
    pub cancel_grace: Duration,
    /// Invocations of this plugin running at once; more wait for a slot (within their own
    /// deadline). Default: no limit of its own, only the worker's concurrency.
    pub max_concurrent: Option<usize>,
    /// Instructions (fuel units) one invocation may execute; needs the worker's fuel metering.
    /// Default: no fuel limit.
    pub fuel: Option<u64>,
    /// Files and directories one invocation may hold open at once (each is a host file
    /// descriptor). Default 256, at most 4096 ([`crate::sandbox::capabilities::open_files`]).
    pub max_open_files: usize,
    /// Bytes one invocation may write to files (and directories it makes). Default 1 GiB, at
    /// most 64 GiB ([`crate::sandbox::capabilities::disk`]).
    pub disk_bytes: u64,
    /// Bytes the worker may hold for one invocation outside its linear memory (file stream
    /// buffers, directory listings), and may copy out of it or make for it in one call
    /// (arguments, the result, random bytes). Default 32 MiB, at most 1 GiB
    /// ([`crate::sandbox::capabilities::host_memory`]).
    pub host_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(2 * 60 * 60),
            max_output_bytes: 1 << 20,
            heartbeat: HeartbeatLimits::default(),
            log: LogLimits::default(),
            cancel_grace: Duration::from_secs(5),
            max_concurrent: None,
            fuel: None,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            disk_bytes: DEFAULT_DISK_MB << 20,
            host_memory_bytes: DEFAULT_HOST_MEMORY_MB << 20,
        }
    }
}

/// The `[limits]` table of a plugin manifest. Absent keys keep the defaults above.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub memory_mb: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub max_output_kb: Option<u64>,
    pub max_heartbeat_kb: Option<u64>,
    pub heartbeats_per_sec: Option<u32>,
    pub max_log_kb: Option<u64>,
    pub log_lines_per_sec: Option<u32>,
    pub cancel_grace_secs: Option<u64>,
    pub max_concurrent: Option<usize>,
    pub fuel: Option<u64>,
    pub max_open_files: Option<usize>,
    pub disk_mb: Option<u64>,
    pub host_memory_mb: Option<u64>,
}

impl LimitsFile {
    /// Applies the manifest's overrides, refusing values above the engine's ceiling.
    pub fn resolve(&self, max_memory_bytes: u64) -> Result<Limits, String> {
        let mut limits = Limits::default();
        if let Some(mb) = self.memory_mb {
            let bytes = mb.saturating_mul(1 << 20);
            if mb == 0 || bytes > max_memory_bytes {
                return Err(format!(
                    "limits.memory_mb = {mb} is out of range: use 1..={}",
                    max_memory_bytes >> 20
                ));
            }
            limits.memory_bytes = bytes;
        }
        limits.memory_bytes = limits.memory_bytes.min(max_memory_bytes);
        if let Some(secs) = self.timeout_secs {
            if secs == 0 {
                return Err("limits.timeout_secs must be at least 1".into());
            }
            limits.timeout = Duration::from_secs(secs);
        }
        if let Some(kb) = self.max_output_kb {
            if kb == 0 || kb > 64 << 10 {
                return Err(format!(
                    "limits.max_output_kb = {kb} is out of range: use 1..=65536 and write large \
                     results as artifacts"
                ));
            }
            limits.max_output_bytes = (kb as usize) << 10;
        }
        limits.heartbeat =
            HeartbeatLimits::resolve(self.max_heartbeat_kb, self.heartbeats_per_sec)?;
        limits.log = LogLimits::resolve(self.max_log_kb, self.log_lines_per_sec)?;
        if let Some(secs) = self.cancel_grace_secs {
            limits.cancel_grace = Duration::from_secs(secs);
        }
        if let Some(n) = self.max_concurrent {
            if n == 0 {
                return Err("limits.max_concurrent must be at least 1".into());
            }
            limits.max_concurrent = Some(n);
        }
        if let Some(fuel) = self.fuel {
            if fuel == 0 {
                return Err("limits.fuel must be at least 1".into());
            }
            limits.fuel = Some(fuel);
        }
        if let Some(n) = self.max_open_files {
            if n == 0 || n > MAX_OPEN_FILES_CEILING {
                return Err(format!(
                    "limits.max_open_files = {n} is out of range: use 1..={MAX_OPEN_FILES_CEILING}"
                ));
            }
            limits.max_open_files = n;
        }
        if let Some(mb) = self.disk_mb {
            if mb == 0 || mb > DISK_MB_CEILING {
                return Err(format!(
                    "limits.disk_mb = {mb} is out of range: use 1..={DISK_MB_CEILING}"
                ));
            }
            limits.disk_bytes = mb << 20;
        }
        if let Some(mb) = self.host_memory_mb {
            if mb == 0 || mb > HOST_MEMORY_MB_CEILING {
                return Err(format!(
                    "limits.host_memory_mb = {mb} is out of range: use 1..={HOST_MEMORY_MB_CEILING}"
                ));
            }
            limits.host_memory_bytes = mb << 20;
        }
        // The result is copied out of the guest under the host-memory budget (the store's
        // hostcall fuel): a larger allowance could never be used.
        if limits.max_output_bytes as u64 > limits.host_memory_bytes {
            return Err(format!(
                "limits.max_output_kb = {} is more than limits.host_memory_mb = {} allows: the \
                 result is copied out of the plugin under that budget; raise host_memory_mb too",
                limits.max_output_bytes >> 10,
                limits.host_memory_bytes >> 20
            ));
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_manifest_is_silent() {
        let limits = LimitsFile::default().resolve(4 << 30).unwrap();
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn memory_above_engine_ceiling_is_refused() {
        let file = LimitsFile {
            memory_mb: Some(8192),
            ..Default::default()
        };
        let err = file.resolve(4 << 30).unwrap_err();
        assert!(err.contains("limits.memory_mb = 8192"), "{err}");
    }

    #[test]
    fn log_and_heartbeat_budgets_are_configurable_within_bounds() {
        let file = LimitsFile {
            max_log_kb: Some(16),
            log_lines_per_sec: Some(5),
            max_heartbeat_kb: Some(1),
            heartbeats_per_sec: Some(2),
            ..Default::default()
        };
        let limits = file.resolve(4 << 30).unwrap();
        assert_eq!(limits.log.max_bytes, 16 << 10);
        assert_eq!(limits.log.lines_per_sec, 5);
        assert_eq!(limits.heartbeat.max_bytes, 1 << 10);
        assert_eq!(limits.heartbeat.per_sec, 2);
        let zero = LimitsFile {
            heartbeats_per_sec: Some(0),
            ..Default::default()
        };
        let err = zero.resolve(4 << 30).unwrap_err();
        assert!(err.contains("limits.heartbeats_per_sec = 0"), "{err}");
        let huge = LimitsFile {
            max_heartbeat_kb: Some(1 << 20),
            ..Default::default()
        };
        assert!(huge.resolve(4 << 30).is_err());
    }

    #[test]
    fn max_open_files_is_bounded() {
        let with = |n| LimitsFile {
            max_open_files: Some(n),
            ..Default::default()
        };
        assert_eq!(with(1000).resolve(4 << 30).unwrap().max_open_files, 1000);
        for refused in [0, MAX_OPEN_FILES_CEILING + 1] {
            let err = with(refused).resolve(4 << 30).unwrap_err();
            assert!(
                err.contains(&format!(
                    "limits.max_open_files = {refused} is out of range: use 1..=4096"
                )),
                "{err}"
            );
        }
        let manifest: LimitsFile = toml::from_str("max_open_files = 64").unwrap();
        assert_eq!(manifest.max_open_files, Some(64));
    }

    #[test]
    fn host_memory_mb_is_bounded() {
        let with = |mb| LimitsFile {
            host_memory_mb: Some(mb),
            ..LimitsFile::default()
        };
        assert_eq!(Limits::default().host_memory_bytes, 32 << 20);
        assert_eq!(with(8).resolve(4 << 30).unwrap().host_memory_bytes, 8 << 20);
        let err = LimitsFile {
            host_memory_mb: Some(1),
            max_output_kb: Some(2048),
            ..LimitsFile::default()
        }
        .resolve(4 << 30)
        .unwrap_err();
        assert!(err.contains("raise host_memory_mb too"), "{err}");
        for refused in [0, HOST_MEMORY_MB_CEILING + 1] {
            let err = with(refused).resolve(4 << 30).unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "limits.host_memory_mb = {refused} is out of range"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn disk_mb_is_bounded() {
        let with = |mb| LimitsFile {
            disk_mb: Some(mb),
            ..Default::default()
        };
        assert_eq!(Limits::default().disk_bytes, 1 << 30);
        assert_eq!(with(8).resolve(4 << 30).unwrap().disk_bytes, 8 << 20);
        for refused in [0, DISK_MB_CEILING + 1] {
            let err = with(refused).resolve(4 << 30).unwrap_err();
            assert!(
                err.contains(&format!(
                    "limits.disk_mb = {refused} is out of range: use 1..=65536"
                )),
                "{err}"
            );
        }
        let manifest: LimitsFile = toml::from_str("disk_mb = 8").unwrap();
        assert_eq!(manifest.disk_mb, Some(8));
    }

    #[test]
    fn overrides_are_applied() {
        let file = LimitsFile {
            memory_mb: Some(64),
            timeout_secs: Some(30),
            ..Default::default()
        };
        let limits = file.resolve(4 << 30).unwrap();
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert_eq!(limits.timeout, Duration::from_secs(30));
    }
}
