//! Per-plugin metrics, recorded through the Temporal SDK core's meter so that they are served
//! on the same Prometheus endpoint as the core's own worker metrics (`temporal_*`). Labels are
//! plugin, operation and (for outcomes) the failure type: bounded sets chosen by operators
//! and plugin authors, never by request data.

use std::sync::Arc;

use mlx_runtime::observer::{Observer, Outcome, ReloadResult};
use temporalio_common::telemetry::metrics::{
    CoreMeter, Counter, Histogram, HistogramDuration, MetricKeyValue, MetricParameters,
    NewAttributes,
};

pub struct PluginMetrics {
    meter: Arc<dyn CoreMeter>,
    invocations: Counter,
    failures: Counter,
    latency: HistogramDuration,
    instantiation: HistogramDuration,
    peak_memory: Histogram,
    reloads: Counter,
}

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetrics").finish_non_exhaustive()
    }
}

impl PluginMetrics {
    pub fn new(meter: Arc<dyn CoreMeter>) -> Self {
        let param = |name: &'static str, description: &'static str, unit: &'static str| {
            MetricParameters::builder()
                .name(name)
                .description(description)
                .unit(unit)
                .build()
        };
        Self {
            invocations: meter.counter(param(
                "mlx_plugin_invocations",
                "Plugin invocations by plugin, operation and outcome",
                "",
            )),
            failures: meter.counter(param(
                "mlx_plugin_failures",
                "Failed plugin invocations by failure type",
                "",
            )),
            latency: meter.histogram_duration(param(
                "mlx_plugin_invocation_latency",
                "Wall time of one invocation, instantiation included",
                "",
            )),
            instantiation: meter.histogram_duration(param(
                "mlx_plugin_instantiation_latency",
                "Time to instantiate a fresh sandbox for one invocation",
                "",
            )),
            peak_memory: meter.histogram(param(
                "mlx_plugin_peak_memory_bytes",
                "Largest linear memory one invocation grew to",
                "bytes",
            )),
            reloads: meter.counter(param(
                "mlx_plugin_reloads",
                "Plugin file changes applied or refused, by result",
                "",
            )),
            meter,
        }
    }
}

impl Observer for PluginMetrics {
    fn invocation(&self, outcome: &Outcome<'_>) {
        let base = vec![
            MetricKeyValue::new("plugin", outcome.plugin.to_string()),
            MetricKeyValue::new("operation", outcome.operation.to_string()),
        ];
        let attrs = self.meter.new_attributes(NewAttributes::from(base.clone()));
        let mut with_outcome = base.clone();
        with_outcome.push(MetricKeyValue::new(
            "outcome",
            outcome.failure_type.unwrap_or("ok").to_string(),
        ));
        with_outcome.push(MetricKeyValue::new("version", outcome.version.to_string()));
        let outcome_attrs = self.meter.new_attributes(NewAttributes::from(with_outcome));
        self.invocations.add(1, &outcome_attrs);
        if let Some(failure) = outcome.failure_type {
            let mut by_type = base;
            by_type.push(MetricKeyValue::new("failure_type", failure.to_string()));
            self.failures
                .add(1, &self.meter.new_attributes(NewAttributes::from(by_type)));
        }
        self.latency.record(outcome.duration, &attrs);
        if let Some(t) = outcome.instantiation {
            self.instantiation.record(t, &attrs);
        }
        if let Some(bytes) = outcome.peak_memory_bytes {
            self.peak_memory.record(bytes as u64, &attrs);
        }
    }

    /// A plugin file change: added, replaced, removed, refused or unchanged.
    fn reload(&self, result: ReloadResult) {
        let attrs = self
            .meter
            .new_attributes(NewAttributes::from(vec![MetricKeyValue::new(
                "result",
                result.as_str(),
            )]));
        self.reloads.add(1, &attrs);
    }
}
