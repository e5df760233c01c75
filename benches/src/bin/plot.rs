//! Plots `parley-loadgen --json` timelines as SVG: delivered msg/s and the
//! p99 of each second, one line per run, so a spike and its recovery, or
//! two servers side by side, read at a glance.
//!
//! `parley-plot OUT.svg LABEL=RUN.json [LABEL=RUN.json ...]`
//!
//! `parley-plot curve OUT.svg LABEL=RUN.json ...`: the throughput/latency
//! curve instead, one point per run (its delivered rate against its p50
//! and p99), one line per label, so runs of two servers at the same rates
//! compare as two curves.
//!
//! `parley-plot disk OUT.svg SAMPLES.txt`: disk use over time from the
//! samples `benches/scripts/disk.sh` writes (`seconds name=bytes ...` per
//! line), one line per name, so a flat log under steady load shows as one.

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use serde_json::Value;

/// One run's timeline: (second, delivered/s, p99 ms) each second.
type Timeline = Vec<(f64, f64, f64)>;

/// One run's timeline.
fn timeline(path: &str) -> Result<Timeline> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let v: Value = serde_json::from_str(text.trim()).with_context(|| format!("{path}: JSON"))?;
    let points = v["timeline"]
        .as_array()
        .with_context(|| format!("{path}: no timeline (run parley-loadgen with --json)"))?
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
            (f("second"), f("delivered"), f("p99_ms"))
        })
        .collect();
    Ok(points)
}

/// One run's summary: (delivered/s, p50 ms, p99 ms).
fn summary(path: &str) -> Result<(f64, f64, f64)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let v: Value = serde_json::from_str(text.trim()).with_context(|| format!("{path}: JSON"))?;
    let f = |x: &Value| {
        x.as_f64()
            .with_context(|| format!("{path}: not a --json summary"))
    };
    Ok((
        f(&v["delivered_per_s"])?,
        f(&v["latency_ms"]["p50"])?,
        f(&v["latency_ms"]["p99"])?,
    ))
}

/// Runs grouped by label, in the order the labels first appear.
fn by_label<T>(runs: &[String], read: impl Fn(&str) -> Result<T>) -> Result<Vec<(String, Vec<T>)>> {
    let mut out: Vec<(String, Vec<T>)> = Vec::new();
    for r in runs {
        let (label, path) = r.split_once('=').unwrap_or((r.as_str(), r.as_str()));
        let v = read(path)?;
        match out.iter_mut().find(|(l, _)| l == label) {
            Some((_, vs)) => vs.push(v),
            None => out.push((label.to_owned(), vec![v])),
        }
    }
    if out.is_empty() {
        bail!("no runs given");
    }
    Ok(out)
}

/// The legend at `at`, then the file written.
fn finish<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    out: &str,
    at: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    eprintln!("wrote {out}");
    Ok(())
}

fn curve(out: &str, runs: &[String]) -> Result<()> {
    let mut series = by_label(runs, summary)?;
    for (_, points) in &mut series {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let all = || series.iter().flat_map(|(_, t)| t.iter());
    let rate = all().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let top = all().map(|p| p.2).fold(1.0, f64::max) * 1.5;
    let floor = all().map(|p| p.1).filter(|v| *v > 0.0).fold(top, f64::min) / 2.0;
    let root = SVGBackend::new(out, (1000, 550)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "latency against delivered rate: p99 solid, p50 dashed (ms, log scale)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..rate, (floor..top).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("delivered msg/s")
        .y_desc("ms")
        .draw()?;
    for (i, (label, t)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                t.iter().map(|p| (p.0, p.2)),
                color.stroke_width(2),
            ))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(t.iter().map(|p| Circle::new((p.0, p.2), 4, color.filled())))?;
        chart.draw_series(DashedLineSeries::new(
            t.iter().map(|p| (p.0, p.1.max(floor))),
            6,
            4,
            color.into(),
        ))?;
    }
    finish(&mut chart, &root, out, SeriesLabelPosition::UpperLeft)
}

/// Disk use per name over time, MiB.
fn disk(out: &str, samples: &str) -> Result<()> {
    let text = std::fs::read_to_string(samples).with_context(|| format!("reading {samples}"))?;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(Ok(t)) = words.next().map(str::parse::<f64>) else {
            continue;
        };
        for w in words {
            let Some((name, bytes)) = w.split_once('=') else {
                continue;
            };
            let mib = bytes.parse::<f64>().unwrap_or(0.0) / (1 << 20) as f64;
            match series.iter_mut().find(|(n, _)| n == name) {
                Some((_, pts)) => pts.push((t, mib)),
                None => series.push((name.to_owned(), vec![(t, mib)])),
            }
        }
    }
    let all = || series.iter().flat_map(|(_, t)| t.iter());
    let secs = all().map(|p| p.0).fold(1.0, f64::max);
    let top = all().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(out, (1000, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("disk use under steady load, MiB", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..secs, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MiB")
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    finish(&mut chart, &root, out, SeriesLabelPosition::UpperLeft)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, out, samples] = args.as_slice() {
        if cmd == "disk" {
            return disk(out, samples);
        }
    }
    if let Some(("curve", rest)) = args.split_first().map(|(a, r)| (a.as_str(), r)) {
        let Some((out, runs)) = rest.split_first() else {
            bail!("usage: parley-plot curve OUT.svg LABEL=RUN.json [LABEL=RUN.json ...]");
        };
        return curve(out, runs);
    }
    let Some((out, runs)) = args.split_first() else {
        bail!("usage: parley-plot OUT.svg LABEL=RUN.json [LABEL=RUN.json ...]");
    };
    let series: Vec<(String, Timeline)> = by_label(runs, timeline)?
        .into_iter()
        .flat_map(|(label, runs)| runs.into_iter().map(move |t| (label.clone(), t)))
        .collect();
    let all = || series.iter().flat_map(|(_, t)| t.iter());
    let secs = all().map(|p| p.0).fold(1.0, f64::max);
    let rate = all().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let p99 = all().map(|p| p.2).fold(1.0, f64::max) * 1.5;
    let floor = all().map(|p| p.2).filter(|v| *v > 0.0).fold(p99, f64::min) / 2.0;

    let root = SVGBackend::new(out, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(350);
    let mut rates = ChartBuilder::on(&top)
        .caption("delivered msg/s, per second", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..secs, 0.0..rate)?;
    rates.configure_mesh().x_desc("seconds").draw()?;
    let mut lat = ChartBuilder::on(&bottom)
        .caption(
            "p99 latency of each second, ms (log scale)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..secs, (floor..p99).log_scale())?;
    lat.configure_mesh().x_desc("seconds").draw()?;
    for (i, (label, t)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        rates
            .draw_series(LineSeries::new(t.iter().map(|p| (p.0, p.1)), color))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        lat.draw_series(LineSeries::new(
            t.iter().map(|p| (p.0, p.2.max(floor))),
            color,
        ))?;
    }
    finish(&mut rates, &root, out, SeriesLabelPosition::UpperRight)
}
