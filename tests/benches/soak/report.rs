//! The soak's report: a table per minute, growth after the warm-up, and SVG plots.

use std::{fmt::Write as _, path::Path};

use plotters::prelude::*;

use crate::{
    Config,
    sample::{
        GAUGES, HEAP_FREE, HEAP_IN_USE, INSTANCES, POOL_RESIDENT, POOL_WARM, SLOTS, STICKY, Sample,
        TASKS, TRACKED, VERSIONS,
    },
};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Least-squares slope of y over x: a trend that one noisy reading at either end cannot set.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

/// Activities per second over the `window` samples before each one.
fn throughput(samples: &[Sample], window: usize) -> Vec<(f64, f64)> {
    samples
        .iter()
        .enumerate()
        .skip(window)
        .map(|(i, s)| {
            let before = &samples[i - window];
            let rate = (s.activities - before.activities) as f64 / (s.secs - before.secs);
            (s.secs / 60.0, rate)
        })
        .collect()
}

fn plot(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    reloads: &[f64],
) -> anyhow::Result<()> {
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0_f64, f64::max);
    let y_max = all.clone().map(|p| p.1).fold(0.0_f64, f64::max) * 1.1;
    let y_min = all.map(|p| p.1).fold(y_max, f64::min).min(0.0);
    let root = SVGBackend::new(path, (800, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, y_min..y_max.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc(y_label)
        .draw()?;
    // Each hot reload as a faint vertical line, so a step in the curve can be matched to one.
    for &at in reloads {
        chart.draw_series(LineSeries::new(
            [(at, y_min), (at, y_max.max(1.0))],
            RGBColor(200, 200, 200),
        ))?;
    }
    const COLOURS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];
    for ((name, points), &colour) in series.iter().zip(COLOURS.iter().cycle()) {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Writes report.md, samples.csv and the plots into `dir`; returns the Markdown.
pub fn write(
    dir: &Path,
    config: &Config,
    samples: &[Sample],
    reloads: u64,
    parked: Option<&crate::parked::Parked>,
) -> anyhow::Result<String> {
    anyhow::ensure!(samples.len() >= 2, "fewer than two samples");
    let first = &samples[0];
    let last = &samples[samples.len() - 1];
    let minutes = |s: &Sample| s.secs / 60.0;
    let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        samples.iter().map(|s| (minutes(s), f(s))).collect()
    };
    // A gauge the worker did not report (an older worker, another allocator) is left out.
    let gauge_series = |k: usize, scale: f64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter_map(|s| s.gauges[k].map(|v| (minutes(s), v * scale)))
            .collect()
    };
    let to_mib = 1.0 / f64::from(1 << 20);
    // When each reload happened: the first sample that counted it.
    let reload_at: Vec<f64> = samples
        .windows(2)
        .filter(|w| w[1].reloads > w[0].reloads)
        .map(|w| minutes(&w[1]))
        .collect();

    plot(
        &dir.join("rss.svg"),
        "Worker resident memory",
        "MiB",
        &[
            ("VmRSS", series(&|s| mib(s.rss))),
            ("RssAnon", series(&|s| mib(s.rss_anon))),
            ("heap in use", gauge_series(HEAP_IN_USE, to_mib)),
            (
                "heap free (kept by the allocator)",
                gauge_series(HEAP_FREE, to_mib),
            ),
            (
                "pool: unused slots' resident pages",
                gauge_series(POOL_RESIDENT, to_mib),
            ),
        ],
        &reload_at,
    )?;
    plot(
        &dir.join("fds.svg"),
        "Worker open file descriptors",
        "fds",
        &[("open fds", series(&|s| s.fds as f64))],
        &reload_at,
    )?;
    plot(
        &dir.join("threads.svg"),
        "Worker threads",
        "threads",
        &[("threads", series(&|s| s.threads as f64))],
        &reload_at,
    )?;
    plot(
        &dir.join("alive.svg"),
        "What the worker holds alive",
        "count",
        &[
            ("tokio tasks", gauge_series(TASKS, 1.0)),
            ("sticky workflows", gauge_series(STICKY, 1.0)),
            ("guest instances", gauge_series(INSTANCES, 1.0)),
            ("plugin versions", gauge_series(VERSIONS, 1.0)),
            ("activities tracked", gauge_series(TRACKED, 1.0)),
            (
                "pool: unused warm memory slots",
                gauge_series(POOL_WARM, 1.0),
            ),
        ],
        &reload_at,
    )?;
    plot(
        &dir.join("throughput.svg"),
        "Activities completed per second (10 s window)",
        "activities/s",
        &[("activities/s", throughput(samples, 10))],
        &reload_at,
    )?;

    let mut csv = String::from("secs,rss,rss_anon,fds,threads,activities,losses,reloads");
    for (name, _) in GAUGES {
        write!(csv, ",{name}")?;
    }
    csv.push('\n');
    for s in samples {
        write!(
            csv,
            "{:.1},{},{},{},{},{},{},{}",
            s.secs, s.rss, s.rss_anon, s.fds, s.threads, s.activities, s.losses, s.reloads
        )?;
        for g in &s.gauges {
            write!(csv, ",{}", g.map(|v| v.to_string()).unwrap_or_default())?;
        }
        csv.push('\n');
    }
    std::fs::write(dir.join("samples.csv"), csv)?;

    let mut md = format!(
        "# Soak\n\n\
         One release worker, testkit only, {} workflows in flight for {:.0} s: echo \
         `RunPluginWorkflow`s, {}-step echo pipelines, fan-out pipelines over {} items, \
         permanently failing `fail` invocations (1 in 10 workflows), and a rebuilt testkit \
         renamed into the plugins directory every {} s ({reloads} reloads). Sampled once a \
         second ({} samples). Extra worker flags: `{}`; environment: {:?}.\n\n",
        crate::IN_FLIGHT,
        last.secs,
        crate::CHAIN,
        crate::FAN_OUT,
        config.reload_secs,
        samples.len(),
        config.worker_args,
        config.worker_env,
    );

    md.push_str(
        "## Per minute (the last sample of each)\n\n\
         | min | VmRSS MiB | RssAnon MiB | heap in use MiB | heap free MiB | fds | threads | tasks | activities | activities/s | losses | reloads | sticky cache | activity slots used | instances | plugin versions | pool warm slots | pool resident MiB |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut previous = first;
    let mut minute = 1;
    for (i, s) in samples.iter().enumerate() {
        let end_of_minute = s.secs >= f64::from(minute) * 60.0 || i == samples.len() - 1;
        if !end_of_minute {
            continue;
        }
        let rate = (s.activities - previous.activities) as f64 / (s.secs - previous.secs);
        let g = |k: usize| {
            s.gauges[k]
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "–".into())
        };
        let g_mib = |k: usize| {
            s.gauges[k]
                .map(|v| format!("{:.1}", v * to_mib))
                .unwrap_or_else(|| "–".into())
        };
        writeln!(
            md,
            "| {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            minutes(s),
            mib(s.rss),
            mib(s.rss_anon),
            g_mib(HEAP_IN_USE),
            g_mib(HEAP_FREE),
            s.fds,
            s.threads,
            g(TASKS),
            s.activities,
            rate,
            s.losses,
            s.reloads,
            g(STICKY),
            g(SLOTS),
            g(INSTANCES),
            g(VERSIONS),
            g(POOL_WARM),
            g_mib(POOL_RESIDENT),
        )?;
        previous = s;
        minute = (s.secs / 60.0).floor() as u32 + 1;
    }

    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.secs >= config.warmup_secs as f64)
        .collect();
    md.push_str("\n## Growth after the warm-up\n\n");
    if after.len() >= 2 {
        let (a, b) = (after[0], after[after.len() - 1]);
        let acts = (b.activities - a.activities) as f64;
        // MiB per activity of a reading, over the samples that have it.
        let per_activity = |y: &dyn Fn(&Sample) -> Option<f64>| {
            slope(
                &after
                    .iter()
                    .filter_map(|s| y(s).map(|v| (s.activities as f64, v)))
                    .collect::<Vec<_>>(),
            )
        };
        let per_act = per_activity(&|s| Some(mib(s.rss)));
        let per_sec = slope(
            &after
                .iter()
                .map(|s| (s.secs, mib(s.rss)))
                .collect::<Vec<_>>(),
        );
        let anon_per_act = per_activity(&|s| Some(mib(s.rss_anon)));
        let heap_per_act = per_activity(&|s| s.gauges[HEAP_IN_USE].map(|v| v * to_mib));
        let heap_free_per_act = per_activity(&|s| s.gauges[HEAP_FREE].map(|v| v * to_mib));
        let f = |v: Option<f64>, scale: f64| {
            v.map(|v| format!("{:+.2}", v * scale))
                .unwrap_or_else(|| "–".into())
        };
        writeln!(
            md,
            "From {:.0} s (warm-up {} s) to {:.0} s: {acts:.0} activities, VmRSS {:.1} → {:.1} \
             MiB ({:+.1} MiB).\n\n\
             | | value |\n| --- | --- |\n\
             | VmRSS growth per 100,000 activities (least-squares slope), MiB | **{}** |\n\
             | RssAnon growth per 100,000 activities, MiB | {} |\n\
             | heap in use, growth per 100,000 activities, MiB | {} |\n\
             | heap free (kept by the allocator), growth per 100,000 activities, MiB | {} |\n\
             | VmRSS growth per hour (slope over time), MiB | {} |\n\
             | VmRSS growth per 100,000 activities, end − start, MiB | {:+.2} |\n",
            a.secs,
            config.warmup_secs,
            b.secs,
            mib(a.rss),
            mib(b.rss),
            mib(b.rss) - mib(a.rss),
            f(per_act, 1e5),
            f(anon_per_act, 1e5),
            f(heap_per_act, 1e5),
            f(heap_free_per_act, 1e5),
            f(per_sec, 3600.0),
            if acts > 0.0 {
                (mib(b.rss) - mib(a.rss)) / acts * 1e5
            } else {
                f64::NAN
            },
        )?;
    } else {
        md.push_str("The run was not longer than its warm-up: no growth figure.\n");
    }

    if let Some(p) = parked {
        let mib_each = p.bytes_each() / f64::from(1 << 20);
        writeln!(
            md,
            "\n## A cached workflow\n\n\
             Before the load, {} pipelines (an echo step, then an approval gate nobody \
             decides) were parked: the sticky cache held {:.0}, and the heap in use went \
             {:.1} → {:.1} MiB: **{:.1} KiB per cached pipeline**. They stayed parked \
             through the run. At the default `worker.max_cached_workflows` (1,000), cached \
             pipelines like these hold about {:.0} MiB.",
            p.count,
            p.cached,
            p.heap_before / f64::from(1 << 20),
            p.heap_after / f64::from(1 << 20),
            p.bytes_each() / 1024.0,
            mib_each * 1000.0,
        )?;
    }

    let wall = last.secs - first.secs;
    writeln!(
        md,
        "\n## Totals\n\n\
         | | start | end |\n| --- | --- | --- |\n\
         | VmRSS, MiB | {:.1} | {:.1} |\n\
         | RssAnon, MiB | {:.1} | {:.1} |\n\
         | open fds | {} | {} |\n\
         | threads | {} | {} |\n\n\
         {} activities in {wall:.0} s: **{:.1} activities/s**; losses (a workflow that did \
         not end as expected): **{}**; reloads: {reloads}. Peak VmRSS {:.1} MiB; fds {}–{}, \
         threads {}–{} over the run.\n\n\
         Plots: rss.svg (with the allocator's heap in use and free), alive.svg (tasks, \
         sticky workflows, guest instances, plugin versions, activities tracked), fds.svg, threads.svg, \
         throughput.svg (grey lines: reloads); \
         every sample: samples.csv.",
        mib(first.rss),
        mib(last.rss),
        mib(first.rss_anon),
        mib(last.rss_anon),
        first.fds,
        last.fds,
        first.threads,
        last.threads,
        last.activities,
        last.activities as f64 / wall,
        last.losses,
        mib(samples.iter().map(|s| s.rss).max().unwrap_or(0)),
        samples.iter().map(|s| s.fds).min().unwrap_or(0),
        samples.iter().map(|s| s.fds).max().unwrap_or(0),
        samples.iter().map(|s| s.threads).min().unwrap_or(0),
        samples.iter().map(|s| s.threads).max().unwrap_or(0),
    )?;
    std::fs::write(dir.join("report.md"), &md)?;
    Ok(md)
}
