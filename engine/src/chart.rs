//! Line and grouped-bar charts written as PNG files, drawn with `plotters` into an RGB buffer
//! and encoded with the `image` crate. Text is set in DejaVu Sans, embedded in the binary by
//! the `dejavu` crate, so a chart needs no system fonts and looks the same on every machine.
//!
//! `curves.rs` lays several line panels out on one picture; the transfer tables call
//! [`draw_line_chart`] and [`draw_bar_chart`]. Both share the styling here.

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Size of the pictures [`draw_line_chart`] and [`draw_bar_chart`] write.
pub const CHART_SIZE: (u32, u32) = (900, 560);

/// Series colours, in the order series are given (Tableau 10, readable on white and to most
/// colour-blind readers); a chart with more series cycles through them.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const INK: RGBColor = RGBColor(40, 40, 40);
const GRID: RGBColor = RGBColor(230, 230, 230);
/// The family name of the embedded font, once [`register_font`] has run.
pub const FONT: &str = "DejaVu Sans";
const TITLE_SIZE: u32 = 20;
const LABEL_SIZE: u32 = 14;
const NOTE_SIZE: u32 = 16;
/// A series with at most this many points marks each one: evaluations come once an epoch,
/// and a line between a few points hides where the measurements are.
const MARK_POINTS_UP_TO: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot draw the chart ({message})", path.display())]
    Draw { path: PathBuf, message: String },
    #[error("{}: cannot encode the PNG ({message})", path.display())]
    Encode { path: PathBuf, message: String },
    #[error("the embedded DejaVu Sans font could not be loaded, so no chart can be drawn")]
    Font,
}

/// One named line: (x, y) points in the order given. Points with a non-finite coordinate are
/// left out and break the line there.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }

    /// The runs of consecutive finite points, so a NaN leaves a gap instead of a wild line.
    fn finite_runs(&self) -> Vec<Vec<(f64, f64)>> {
        let mut runs = vec![Vec::new()];
        for &(x, y) in &self.points {
            if x.is_finite() && y.is_finite() {
                runs.last_mut().expect("runs is never empty").push((x, y));
            } else if !runs.last().expect("runs is never empty").is_empty() {
                runs.push(Vec::new());
            }
        }
        runs.retain(|run| !run.is_empty());
        runs
    }
}

/// How a line panel chooses its y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YAxis {
    /// The data's range, with a little room above and below.
    Data,
    /// 0 to 1 when every value lies in it (accuracies, mAP, mIoU read against the full
    /// scale), else the data's range.
    UnitIfItFits,
}

/// A titled line plot inside a larger picture.
pub struct LinePanel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    pub y_axis: YAxis,
    /// Name the series under the title (colour swatch and name each).
    pub legend: bool,
    /// Written in the middle of the panel when no series has a finite point.
    pub empty_note: &'a str,
}

/// The drawing surface a panel draws on.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws one line panel on a picture of its own, [`CHART_SIZE`], into the PNG `out`; a
/// legend names the series when there are several.
pub fn draw_line_chart(
    out: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), ChartError> {
    let panel = LinePanel {
        title,
        x_label,
        y_label,
        series,
        y_axis: YAxis::Data,
        legend: series.len() > 1,
        empty_note: "no data",
    };
    let picture = render(out, CHART_SIZE, |root| draw_line_panel(root, &panel))?;
    write_png(&picture, out)
}

/// Draws grouped bars, [`CHART_SIZE`], into the PNG `out`: one group per category, one bar
/// per series in each group (its value at the category's index; a missing or non-finite
/// value leaves the bar out), with a legend naming the series when there are several.
pub fn draw_bar_chart(
    out: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), ChartError> {
    let picture = render(out, CHART_SIZE, |root| {
        draw_bars(root, title, y_label, categories, series)
    })?;
    write_png(&picture, out)
}

/// Runs `draw` on a white picture of `size` and returns the picture. `out` only names the
/// destination in errors.
pub fn render(
    out: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<RgbImage, ChartError> {
    register_font()?;
    let mut buffer = vec![0u8; size.0 as usize * size.1 as usize * 3];
    let draw_error = |message: String| ChartError::Draw {
        path: out.to_path_buf(),
        message,
    };
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(e.to_string()))?;
        draw(&root).map_err(|e| draw_error(e.to_string()))?;
        root.present().map_err(|e| draw_error(e.to_string()))?;
    }
    RgbImage::from_raw(size.0, size.1, buffer)
        .ok_or_else(|| draw_error("the picture buffer has the wrong size".to_string()))
}

/// Encodes `picture` as PNG into `out`, through a temporary file renamed into place, so a
/// reader never sees half a picture.
pub fn write_png(picture: &RgbImage, out: &Path) -> Result<(), ChartError> {
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ChartError::Encode {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?;
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chart.png".to_string());
    let temp = out.with_file_name(format!(".{file_name}.tmp"));
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ChartError::Io { path, source }
    };
    std::fs::write(&temp, &png).map_err(io_error(&temp))?;
    std::fs::rename(&temp, out).map_err(io_error(out))
}

/// plotters looks fonts up by family name in a process-wide table: fill it once, with the
/// embedded DejaVu Sans as [`FONT`]. The default family name is registered too, for any text
/// plotters styles on its own. Every picture the project draws (charts, detections) calls it.
pub fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        [FONT, "sans-serif"].into_iter().all(|family| {
            plotters::style::register_font(family, FontStyle::Normal, dejavu::sans::regular())
                .is_ok()
        })
    });
    if registered {
        Ok(())
    } else {
        Err(ChartError::Font)
    }
}

fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&INK)
}

/// Consecutive finite points of a series.
type Run = Vec<(f64, f64)>;

/// What a legend entry shows beside the name.
#[derive(Clone, Copy)]
enum Swatch {
    Line,
    Bar,
}

/// Draws `title` and, under it when `legend` is not empty, a swatch and the name of each
/// entry, wrapped onto as many rows as the width needs. The legend sits above the plot, not
/// in it, so it never hides data. Returns the area left below for the plot.
fn draw_header<'a>(
    area: &Area<'a>,
    title: &str,
    legend: &[(&str, RGBColor)],
    swatch: Swatch,
) -> Result<Area<'a>, Box<dyn std::error::Error>> {
    const TITLE_ROW: i32 = 34;
    const LEGEND_ROW: i32 = 20;
    const SWATCH_WIDTH: i32 = 22;
    const GAP: i32 = 18;
    let width = area.dim_in_pixel().0 as i32;
    let label = text(LABEL_SIZE);
    // Lay the entries out in rows: (x offset within the row, name, colour).
    let mut rows: Vec<Vec<(i32, &str, RGBColor)>> = Vec::new();
    let mut row_width = 0;
    for &(name, colour) in legend {
        let entry_width = SWATCH_WIDTH + 6 + area.estimate_text_size(name, &label)?.0 as i32;
        if rows.is_empty() || row_width + GAP + entry_width > width - 2 * GAP {
            rows.push(Vec::new());
            row_width = -GAP;
        }
        row_width += GAP;
        rows.last_mut()
            .expect("a row was just pushed")
            .push((row_width, name, colour));
        row_width += entry_width;
    }
    let height = TITLE_ROW + LEGEND_ROW * rows.len() as i32 + if rows.is_empty() { 0 } else { 6 };
    let (header, rest) = area.split_vertically(height);
    header.draw(&Text::new(
        title,
        (width / 2, 8),
        text(TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    for (row_index, row) in rows.iter().enumerate() {
        let row_width = row.last().map_or(0, |&(x, name, _)| {
            x + SWATCH_WIDTH
                + 6
                + header
                    .estimate_text_size(name, &label)
                    .map_or(0, |s| s.0 as i32)
        });
        let left = (width - row_width) / 2;
        let y = TITLE_ROW + LEGEND_ROW * row_index as i32 + LEGEND_ROW / 2;
        for &(x, name, colour) in row {
            let x = left + x;
            let (top, bottom) = match swatch {
                Swatch::Line => (y - 1, y + 2),
                Swatch::Bar => (y - 6, y + 6),
            };
            header.draw(&Rectangle::new(
                [(x, top), (x + SWATCH_WIDTH, bottom)],
                colour.filled(),
            ))?;
            header.draw(&Text::new(
                name,
                (x + SWATCH_WIDTH + 6, y),
                label.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
    }
    Ok(rest)
}

/// Draws `panel` filling `area`.
pub fn draw_line_panel(area: &Area, panel: &LinePanel) -> DrawResult {
    // (index of the series, its finite runs) for each series with a finite point; the
    // index keeps each series' colour whatever is left out.
    let runs: Vec<(usize, Vec<Run>)> = panel
        .series
        .iter()
        .map(Series::finite_runs)
        .enumerate()
        .filter(|(_, runs)| !runs.is_empty())
        .collect();
    let points = || runs.iter().flat_map(|(_, r)| r.iter().flatten());
    let marked = |series_runs: &[Vec<(f64, f64)>]| {
        series_runs.iter().map(Vec::len).sum::<usize>() <= MARK_POINTS_UP_TO
    };
    // Room at the sides for the marks of the first and last points.
    let x_pad = if runs.iter().any(|(_, r)| marked(r)) {
        0.03
    } else {
        0.0
    };
    let x_range = padded_range(points().map(|p| p.0), x_pad);
    let y_range = match panel.y_axis {
        YAxis::UnitIfItFits if points().all(|p| (0.0..=1.0).contains(&p.1)) => Some(0.0..1.0),
        _ => padded_range(points().map(|p| p.1), 0.05),
    };
    let colour = |index: usize| PALETTE[index % PALETTE.len()];
    let legend: Vec<(&str, RGBColor)> = if panel.legend {
        runs.iter()
            .map(|&(index, _)| (panel.series[index].name.as_str(), colour(index)))
            .collect()
    } else {
        Vec::new()
    };
    let plot_area = draw_header(area, panel.title, &legend, Swatch::Line)?;

    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .margin_top(4)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            x_range.clone().unwrap_or(0.0..1.0),
            y_range.clone().unwrap_or(0.0..1.0),
        )?;
    let no_data = x_range.is_none() || y_range.is_none();
    let format = |v: &f64| format_tick(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(panel.x_label)
        .y_desc(panel.y_label)
        .label_style(text(LABEL_SIZE))
        .axis_desc_style(text(LABEL_SIZE))
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .axis_style(INK)
        .x_label_formatter(&format)
        .y_label_formatter(&format)
        .y_labels(8);
    // Whole-number x values over a short span (epochs) get whole-number ticks only: at most
    // one tick per unit keeps plotters from choosing steps of 0.2.
    let whole_x = points().all(|p| p.0.fract() == 0.0);
    if let (true, Some(range)) = (whole_x, &x_range) {
        let span = (range.end - range.start).round() as usize;
        if span < 10 {
            mesh.x_labels(span + 1);
        }
    }
    if no_data {
        // Tick numbers of a made-up range would read as data.
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;

    if no_data {
        chart.plotting_area().draw(&Text::new(
            panel.empty_note,
            (0.5, 0.5),
            text(NOTE_SIZE).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        return Ok(());
    }

    for (index, series_runs) in &runs {
        let colour = colour(*index);
        let line = colour.stroke_width(2);
        let mark = marked(series_runs);
        for run in series_runs {
            chart.draw_series(LineSeries::new(run.iter().copied(), line))?;
            if mark {
                chart.draw_series(
                    run.iter()
                        .map(|&point| Circle::new(point, 3, colour.filled())),
                )?;
            }
        }
    }
    Ok(())
}

pub fn draw_bars(
    area: &Area,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> DrawResult {
    let values = || {
        series
            .iter()
            .flat_map(|(_, v)| v.iter().take(categories.len()))
            .copied()
            .filter(|v| v.is_finite())
    };
    // Bars start at zero, so the axis does too (or ends there, for negative values).
    let y_range = padded_range(values().chain([0.0]), 0.05)
        .filter(|_| values().next().is_some())
        .unwrap_or(0.0..1.0);
    let legend: Vec<(&str, RGBColor)> = if series.len() > 1 {
        series
            .iter()
            .enumerate()
            .map(|(index, (name, _))| (name.as_str(), PALETTE[index % PALETTE.len()]))
            .collect()
    } else {
        Vec::new()
    };
    let plot_area = draw_header(area, title, &legend, Swatch::Bar)?;
    let groups = categories.len().max(1) as f64;
    // Each category owns the unit interval [i, i + 1); its name sits under the middle.
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .margin_top(4)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..groups, y_range.clone())?;
    let format = |v: &f64| format_tick(*v);
    chart
        .configure_mesh()
        .y_desc(y_label)
        .label_style(text(LABEL_SIZE))
        .axis_desc_style(text(LABEL_SIZE))
        .disable_x_mesh()
        .x_labels(0)
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .axis_style(INK)
        .y_label_formatter(&format)
        .y_labels(8)
        .draw()?;
    // plotters puts tick labels where its own tick marks fall; category names go under the
    // middle of their groups instead, a little below the axis.
    let (base_x, base_y) = plot_area.get_base_pixel();
    for (index, name) in categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(index as f64 + 0.5, y_range.start));
        plot_area.draw(&Text::new(
            name.as_str(),
            (x - base_x, y - base_y + 8),
            text(LABEL_SIZE).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    if values().next().is_none() {
        chart.plotting_area().draw(&Text::new(
            "no data",
            (groups / 2.0, 0.5),
            text(NOTE_SIZE).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        return Ok(());
    }

    // Within a group, bars fill the middle 80%.
    let width = 0.8 / series.len().max(1) as f64;
    for (index, (_, bar_values)) in series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let bars = bar_values
            .iter()
            .take(categories.len())
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(group, &value)| {
                let left = group as f64 + 0.1 + index as f64 * width;
                Rectangle::new([(left, 0.0), (left + width, value)], colour.filled())
            });
        chart.draw_series(bars)?;
    }
    Ok(())
}

/// The range of the finite `values`, widened by `pad` of its span on each side, or around a
/// single value so it maps to a line, not a point; `None` when there is no finite value.
fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> Option<std::ops::Range<f64>> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    let span = hi - lo;
    if span == 0.0 {
        let half = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return Some(lo - half..hi + half);
    }
    if !(pad * span).is_finite() || !(lo - pad * span).is_finite() || !(hi + pad * span).is_finite()
    {
        // Values near the limits of f64: padding would overflow.
        return Some(lo..hi);
    }
    Some(lo - pad * span..hi + pad * span)
}

/// A tick label: up to four significant digits without trailing zeros (`0.3`, not
/// `0.30000000000000004`), and `2.5e-4` style for very small or large magnitudes.
pub fn format_tick(v: f64) -> String {
    let magnitude = v.abs();
    if magnitude < 1e-12 {
        return "0".to_string();
    }
    if !(1e-3..1e6).contains(&magnitude) {
        let text = format!("{v:.2e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (3 - magnitude.log10().floor() as i32).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Pixels of exactly `colour` in `region` (x, y, width, height).
    pub(crate) fn count_colour(
        picture: &RgbImage,
        region: (u32, u32, u32, u32),
        colour: RGBColor,
    ) -> usize {
        let (x0, y0, w, h) = region;
        (x0..x0 + w)
            .flat_map(|x| (y0..y0 + h).map(move |y| (x, y)))
            .filter(|&(x, y)| picture.get_pixel(x, y).0 == [colour.0, colour.1, colour.2])
            .count()
    }

    /// Pixels that are not white in `region`.
    pub(crate) fn count_ink(picture: &RgbImage, region: (u32, u32, u32, u32)) -> usize {
        let (x0, y0, w, h) = region;
        (x0..x0 + w)
            .flat_map(|x| (y0..y0 + h).map(move |y| (x, y)))
            .filter(|&(x, y)| picture.get_pixel(x, y).0 != [255, 255, 255])
            .count()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("engine-chart-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const WHOLE: (u32, u32, u32, u32) = (0, 0, CHART_SIZE.0, CHART_SIZE.1);

    #[test]
    fn line_chart_draws_each_series_in_its_colour() {
        let dir = temp_dir("line");
        let out = dir.join("line.png");
        let series = [
            Series::new(
                "ResNet-50",
                (0..5).map(|i| (i as f64, 70.0 + i as f64)).collect(),
            ),
            Series::new(
                "ResNet-50-D",
                (0..5).map(|i| (i as f64, 72.0 + i as f64)).collect(),
            ),
        ];
        draw_line_chart(&out, "Transfer", "fine-tune epochs", "top-1 (%)", &series).unwrap();
        assert!(!dir.join(".line.png.tmp").exists());
        let picture = image::open(&out).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), CHART_SIZE);
        for colour in &PALETTE[..2] {
            assert!(count_colour(&picture, WHOLE, *colour) > 1000, "{colour:?}");
        }
        assert_eq!(count_colour(&picture, WHOLE, PALETTE[2]), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bar_chart_draws_a_bar_per_value_and_skips_non_finite_ones() {
        let dir = temp_dir("bars");
        let out = dir.join("bars.png");
        let categories = vec!["CUB".to_string(), "Cars".to_string(), "VOC".to_string()];
        let series = [
            ("baseline".to_string(), vec![0.6, 0.8, 0.7]),
            ("tricks".to_string(), vec![0.65, f64::NAN, 0.75]),
        ];
        draw_bar_chart(&out, "Transfer", "accuracy", &categories, &series).unwrap();
        let picture = image::open(&out).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), CHART_SIZE);
        let baseline = count_colour(&picture, WHOLE, PALETTE[0]);
        let tricks = count_colour(&picture, WHOLE, PALETTE[1]);
        // Three bars against two of about the same heights: the NaN bar is missing.
        assert!(baseline > 5000, "{baseline}");
        assert!(tricks > 3000 && tricks < baseline, "{tricks} vs {baseline}");

        // No finite value at all still gives a picture (axes and a note), not an error.
        draw_bar_chart(&out, "Empty", "accuracy", &categories, &[]).unwrap();
        let picture = image::open(&out).unwrap().to_rgb8();
        assert!(count_ink(&picture, WHOLE) > 500);
        assert_eq!(count_colour(&picture, WHOLE, PALETTE[0]), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_finite_points_break_the_line() {
        let series = Series::new(
            "loss",
            vec![
                (0.0, 1.0),
                (1.0, f64::NAN),
                (2.0, 0.5),
                (3.0, 0.4),
                (f64::INFINITY, 0.1),
            ],
        );
        assert_eq!(
            series.finite_runs(),
            vec![vec![(0.0, 1.0)], vec![(2.0, 0.5), (3.0, 0.4)]]
        );
        assert!(Series::new("none", vec![(0.0, f64::NAN)])
            .finite_runs()
            .is_empty());
    }

    #[test]
    fn ranges_are_padded_and_never_empty() {
        assert_eq!(padded_range([1.0, 3.0].into_iter(), 0.05), Some(0.9..3.1));
        assert_eq!(padded_range([2.0].into_iter(), 0.05), Some(1.8..2.2));
        assert_eq!(padded_range([0.0].into_iter(), 0.05), Some(-1.0..1.0));
        assert_eq!(padded_range([f64::NAN].into_iter(), 0.05), None);
        let huge = padded_range([-f64::MAX, f64::MAX].into_iter(), 0.05).unwrap();
        assert!(huge.start < huge.end);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(0.30000000000000004), "0.3");
        assert_eq!(format_tick(0.4), "0.4");
        assert_eq!(format_tick(2.3456), "2.346");
        assert_eq!(format_tick(76.26), "76.26");
        assert_eq!(format_tick(1200.0), "1200");
        assert_eq!(format_tick(150000.0), "150000");
        assert_eq!(format_tick(1e-4), "1e-4");
        assert_eq!(format_tick(2.5e-4), "2.5e-4");
        assert_eq!(format_tick(-0.5), "-0.5");
        assert_eq!(format_tick(3e7), "3e7");
    }
}
