//! The end-to-end benchmark's figures as Markdown: one column per mode, then the ratios the
//! issue's targets are stated in.

use std::{fmt::Write, path::PathBuf, time::Duration};

/// How the run was made, printed above the figures so they can be reproduced.
pub struct Setup {
    pub activities: usize,
    pub concurrency: usize,
    pub warmup: usize,
    pub rounds: usize,
    pub idle_secs: usize,
    pub binary: PathBuf,
    /// The unit of the kernel's CPU accounting, hence the CPU figures' resolution.
    pub clock_ticks: f64,
}

/// What one mode measured over its timed windows.
pub struct Figures {
    pub name: &'static str,
    pub activities: usize,
    pub wall: Duration,
    /// Worker user + system CPU over the timed windows.
    pub cpu_secs: f64,
    pub idle_cpu_per_sec: f64,
    /// Sorted.
    pub schedule_to_close: Vec<Duration>,
    /// Sorted.
    pub start_to_close: Vec<Duration>,
    pub peak_rss: u64,
    pub end_rss: u64,
}

impl Figures {
    fn per_activity(&self, secs: f64) -> f64 {
        secs / self.activities.max(1) as f64
    }

    fn cpu_ms(&self) -> f64 {
        self.per_activity(self.cpu_secs) * 1e3
    }

    /// CPU per activity beyond what the worker would have burnt polling anyway.
    fn net_cpu_ms(&self) -> f64 {
        let idle = self.idle_cpu_per_sec * self.wall.as_secs_f64();
        self.per_activity(self.cpu_secs - idle) * 1e3
    }

    fn throughput(&self) -> f64 {
        self.activities as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn mib(bytes: u64) -> f64 {
        bytes as f64 / f64::from(1 << 20)
    }
}

/// Nearest-rank percentile of sorted durations, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

fn title(name: &str) -> &str {
    match name {
        "wasm" => "(a) wasm plugin",
        "native" => "(b) native Rust",
        "python" => "(c) Python SDK",
        other => other,
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

pub fn markdown(setup: &Setup, figures: &[Figures]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# End-to-end: the testkit `echo` activity three ways\n\n\
         Machine: {}; Temporal dev server, driver worker and measured workers all on it.\n\
         Per mode: {} timed activities in {} interleaved rounds, {} workflows in flight, \
         after {} untimed; idle baseline over {} s. Worker binary: `{}`, logging warnings \
         only. Worker CPU is user + system time from `/proc/<pid>/stat`, counted in ticks of \
         1/{} s; latencies are history event times.\n",
        machine(),
        setup.activities,
        setup.rounds,
        setup.concurrency,
        setup.warmup,
        setup.idle_secs,
        setup.binary.display(),
        setup.clock_ticks,
    );
    let header: Vec<&str> = figures.iter().map(|f| title(f.name)).collect();
    let _ = writeln!(out, "| | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "--:|".repeat(figures.len()));
    type Row = (&'static str, fn(&Figures) -> String);
    let rows: [Row; 9] = [
        ("throughput (activities/s)", |f| {
            format!("{:.1}", f.throughput())
        }),
        ("schedule-to-close p50 (ms)", |f| {
            format!("{:.1}", percentile_ms(&f.schedule_to_close, 50.0))
        }),
        ("schedule-to-close p99 (ms)", |f| {
            format!("{:.1}", percentile_ms(&f.schedule_to_close, 99.0))
        }),
        ("start-to-close p50 (ms)", |f| {
            format!("{:.2}", percentile_ms(&f.start_to_close, 50.0))
        }),
        ("worker CPU per activity (ms)", |f| {
            format!("{:.3}", f.cpu_ms())
        }),
        ("worker CPU per activity, idle baseline removed (ms)", |f| {
            format!("{:.3}", f.net_cpu_ms())
        }),
        ("worker idle CPU (ms per s)", |f| {
            format!("{:.2}", f.idle_cpu_per_sec * 1e3)
        }),
        ("worker peak RSS (MiB)", |f| {
            format!("{:.1}", Figures::mib(f.peak_rss))
        }),
        ("worker RSS at the end (MiB)", |f| {
            format!("{:.1}", Figures::mib(f.end_rss))
        }),
    ];
    for (label, cell) in rows {
        let cells: Vec<String> = figures.iter().map(cell).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
    if let [wasm, native, python] = figures {
        ratios(&mut out, wasm, native, python);
    }
    out
}

fn ratios(out: &mut String, wasm: &Figures, native: &Figures, python: &Figures) {
    let _ = writeln!(
        out,
        "\n| ratio | wasm / native | wasm / python |\n|---|--:|--:|"
    );
    type Measure = (&'static str, fn(&Figures) -> f64);
    let measures: [Measure; 4] = [
        ("worker CPU per activity", Figures::cpu_ms),
        ("worker CPU per activity, idle removed", Figures::net_cpu_ms),
        ("schedule-to-close p50", |f| {
            percentile_ms(&f.schedule_to_close, 50.0)
        }),
        ("worker peak RSS", |f| f.peak_rss as f64),
    ];
    for (label, measure) in measures {
        let _ = writeln!(
            out,
            "| {label} | {:.2} | {:.2} |",
            measure(wasm) / measure(native),
            measure(wasm) / measure(python)
        );
    }
}
