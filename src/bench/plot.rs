//! Pictures of a propagation report (plotters, SVG and PNG): the CDF of the time until each
//! node had verified and relayed each block, per relay mode, and the bytes a node received
//! per block, per mode; and the scale curve of `bench scale`.

use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Fonts tried for the pictures' text, in order (Debian's `fonts-dejavu-core`).
pub const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the first font of [`FONTS`] that loads as "sans-serif" (once per process).
///
/// Errors: none of them is installed.
fn font() -> anyhow::Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        FONTS.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    });
    anyhow::ensure!(ok, "no font for the pictures (tried {})", FONTS.join(", "));
    Ok(())
}

/// One relay mode's data for the pictures.
pub struct Series {
    /// Mode name (legend).
    pub name: String,
    /// Per (block, receiving node): ms from publish until it had verified and relayed it.
    pub arrival_ms: Vec<f64>,
    /// Mean bytes a node received per block: first delivery plus fetched transactions.
    pub bytes: f64,
    /// The same with gossipsub's duplicate deliveries.
    pub bytes_with_duplicates: f64,
}

/// Writes `<stem>.cdf.{svg,png}` and `<stem>.bytes.{svg,png}` next to `out` (the JSON report);
/// returns the paths written.
///
/// Errors: no font (see [`FONTS`]), or a file cannot be written.
pub fn write(out: &Path, nodes: usize, series: &[Series]) -> anyhow::Result<Vec<PathBuf>> {
    font()?;
    let stem = out.with_extension("");
    let path = |kind: &str, ext: &str| PathBuf::from(format!("{}.{kind}.{ext}", stem.display()));
    let mut written = Vec::new();
    let (cdf_svg, cdf_png) = (path("cdf", "svg"), path("cdf", "png"));
    cdf(
        SVGBackend::new(&cdf_svg, (900, 540)).into_drawing_area(),
        nodes,
        series,
    )?;
    cdf(
        BitMapBackend::new(&cdf_png, (900, 540)).into_drawing_area(),
        nodes,
        series,
    )?;
    written.extend([cdf_svg, cdf_png]);
    let (b_svg, b_png) = (path("bytes", "svg"), path("bytes", "png"));
    bytes(
        SVGBackend::new(&b_svg, (900, 540)).into_drawing_area(),
        series,
    )?;
    bytes(
        BitMapBackend::new(&b_png, (900, 540)).into_drawing_area(),
        series,
    )?;
    written.extend([b_svg, b_png]);
    Ok(written)
}

/// Writes the scale curve (t100 p50 and p95, imported and relayed, against the node count)
/// as `<stem>.curve.{svg,png}` next to `out`; returns the paths written.
///
/// Errors: no font (see [`FONTS`]), no size with figures, or a file cannot be written.
pub fn write_scale(out: &Path, report: &super::scale::ScaleReport) -> anyhow::Result<Vec<PathBuf>> {
    font()?;
    anyhow::ensure!(
        report.sizes.iter().any(|s| s.t100_ms.p95.is_some()),
        "no size has figures to draw"
    );
    let stem = out.with_extension("");
    let svg = PathBuf::from(format!("{}.curve.svg", stem.display()));
    let png = PathBuf::from(format!("{}.curve.png", stem.display()));
    curve(
        SVGBackend::new(&svg, (900, 540)).into_drawing_area(),
        report,
    )?;
    curve(
        BitMapBackend::new(&png, (900, 540)).into_drawing_area(),
        report,
    )?;
    Ok(vec![svg, png])
}

fn curve<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    report: &super::scale::ScaleReport,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    type Pick = fn(&super::scale::SizeReport) -> Option<f64>;
    let lines: [(&str, Pick); 3] = [
        ("t100 p50 (imported)", |s| s.t100_ms.p50),
        ("t100 p95 (imported)", |s| s.t100_ms.p95),
        ("t100 p95 (verified and relayed)", |s| s.t100_relayed_ms.p95),
    ];
    let ymax = report
        .sizes
        .iter()
        .flat_map(|s| lines.iter().filter_map(move |(_, f)| f(s)))
        .fold(1.0f64, f64::max)
        * 1.1;
    let xmax = report.sizes.iter().map(|s| s.nodes).max().unwrap_or(2) as f64 * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Block propagation against network size ({} relay, {} tx/s{})",
                report.relay,
                report.tps,
                report
                    .profile
                    .as_deref()
                    .map(|p| format!(", link profile {p}"))
                    .unwrap_or_default()
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("nodes")
        .y_desc("ms from publish")
        .draw()
        .map_err(err)?;
    for (i, (name, f)) in lines.iter().enumerate() {
        let pts: Vec<(f64, f64)> = report
            .sizes
            .iter()
            .filter_map(|s| f(s).map(|v| (s.nodes as f64, v)))
            .collect();
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}

fn cdf<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    nodes: usize,
    series: &[Series],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let xmax = series
        .iter()
        .flat_map(|s| s.arrival_ms.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Time until a node has verified and relayed a block ({nodes} nodes)"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..1f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("ms from publish")
        .y_desc("fraction of (block, node)")
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let mut v = s.arrival_ms.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len().max(1) as f64;
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                v.iter().enumerate().map(|(k, x)| (*x, (k + 1) as f64 / n)),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn bytes<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let ymax = series
        .iter()
        .map(|s| s.bytes_with_duplicates.max(s.bytes))
        .fold(1.0f64, f64::max)
        / 1024.0
        * 1.1;
    let n = series.len();
    let mut chart = ChartBuilder::on(&root)
        .caption("KiB a node receives per block", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
        .map_err(err)?;
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("KiB per node per block")
        .draw()
        .map_err(err)?;
    for (k, (label, color)) in [
        ("first delivery + fetched", BLUE.mix(0.8)),
        ("with duplicates", RED.mix(0.6)),
    ]
    .into_iter()
    .enumerate()
    {
        chart
            .draw_series(series.iter().enumerate().map(|(i, s)| {
                let v = if k == 0 {
                    s.bytes
                } else {
                    s.bytes_with_duplicates
                } / 1024.0;
                let x0 = i as f64 + 0.15 + k as f64 * 0.35;
                Rectangle::new([(x0, 0.0), (x0 + 0.33, v)], color.filled())
            }))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Writes the nemesis timeline as `<stem>.timeline.{svg,png}` next to `out`: every node's
/// height over time (a partition shows as diverging lines, a killed node as a gap), and below
/// it a bar per fault, one row per kind, as long as the fault was held. Returns the paths.
///
/// Errors: no font (see [`FONTS`]) or a file cannot be written.
pub fn write_timeline(
    out: &Path,
    report: &super::nemesis::NemesisReport,
) -> anyhow::Result<Vec<PathBuf>> {
    font()?;
    let stem = out.with_extension("");
    let svg = PathBuf::from(format!("{}.timeline.svg", stem.display()));
    let png = PathBuf::from(format!("{}.timeline.png", stem.display()));
    timeline(
        SVGBackend::new(&svg, (1200, 700)).into_drawing_area(),
        report,
    )?;
    timeline(
        BitMapBackend::new(&png, (1200, 700)).into_drawing_area(),
        report,
    )?;
    Ok(vec![svg, png])
}

fn timeline<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    report: &super::nemesis::NemesisReport,
) -> anyhow::Result<()> {
    use crate::devnet::faults::FaultKind as K;
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(420);
    let tmax = report
        .heights
        .last()
        .map(|(t, _)| *t)
        .unwrap_or(1.0)
        .max(1.0);
    let hmax = report
        .heights
        .iter()
        .flat_map(|(_, hs)| hs.iter().flatten().copied())
        .max()
        .unwrap_or(1) as f64
        * 1.05;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "Nemesis: {} nodes, {} tx/s, seed {}",
                report.nodes, report.tps, report.seed
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..tmax, 0f64..hmax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .y_desc("head height")
        .draw()
        .map_err(err)?;
    for node in 0..report.nodes {
        let color = Palette99::pick(node).to_rgba();
        // One line per run of samples where the node answered.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs = Vec::new();
        for (t, hs) in &report.heights {
            match hs.get(node).copied().flatten() {
                Some(h) => run.push((*t, h as f64)),
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        runs.push(run);
        for (k, r) in runs.into_iter().enumerate() {
            let s = chart
                .draw_series(LineSeries::new(r, color.stroke_width(1)))
                .map_err(err)?;
            if k == 0 {
                s.label(format!("node{node}")).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;

    let rows = [
        (K::Partition, K::Heal, "partition"),
        (K::BootnodesDown, K::BootnodesUp, "bootnodes down"),
        (K::Kill, K::Restart, "kill"),
        (K::Spam, K::Spam, "spam"),
        (K::DamageStore, K::DamageStore, "damaged store"),
    ];
    let mut faults = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(120)
        .build_cartesian_2d(0f64..tmax, -0.5f64..rows.len() as f64 - 0.5)
        .map_err(err)?;
    faults
        .configure_mesh()
        .x_desc("seconds")
        .y_labels(rows.len())
        .y_label_formatter(&|y| {
            if (y - y.round()).abs() > 0.01 {
                return String::new();
            }
            rows.get(y.round() as usize)
                .map(|r| r.2.to_string())
                .unwrap_or_default()
        })
        .disable_y_mesh()
        .draw()
        .map_err(err)?;
    for (row, (start, end, _)) in rows.iter().enumerate() {
        let color = Palette99::pick(row + 3).to_rgba();
        let mut bars = Vec::new();
        let mut open: Option<f64> = None;
        for r in &report.log {
            let t = r.at_ms as f64 / 1e3;
            if r.kind == *start && start == end {
                bars.push((t, t + (r.took_ms as f64 / 1e3).max(tmax / 400.0)));
            } else if r.kind == *start {
                open = Some(t);
            } else if r.kind == *end {
                if let Some(s) = open.take() {
                    bars.push((s, t + r.took_ms as f64 / 1e3));
                }
            }
        }
        let y = row as f64;
        faults
            .draw_series(
                bars.into_iter()
                    .map(|(a, b)| Rectangle::new([(a, y - 0.3), (b, y + 0.3)], color.filled())),
            )
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
