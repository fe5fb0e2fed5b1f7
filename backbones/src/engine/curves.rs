//! `curves.png` of a run: three panels side by side, drawn from `metrics.jsonl` —
//! training loss by iteration, learning rate by iteration, validation top-1 by epoch.
//!
//! Drawn with the `image` crate and a built-in 5x7 bitmap font, so it needs no system fonts
//! and looks the same everywhere. Each panel's axes span the data's range; the numbers at
//! the corners give it.

use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CurvesError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: cannot encode the PNG ({message})", path.display())]
    Encode { path: PathBuf, message: String },
}

pub const PANEL_WIDTH: u32 = 320;
pub const PANEL_HEIGHT: u32 = 240;
/// Space around a panel's plot area: numbers on the left, title above, numbers below.
const LEFT: u32 = 48;
const RIGHT: u32 = 12;
const TOP: u32 = 20;
const BOTTOM: u32 = 28;

const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const LOSS_COLOUR: Rgb<u8> = Rgb([31, 119, 180]);
const LR_COLOUR: Rgb<u8> = Rgb([44, 160, 44]);
const TOP1_COLOUR: Rgb<u8> = Rgb([214, 39, 40]);

/// The series the panels plot, read from the metrics file.
#[derive(Debug, Default, PartialEq)]
pub struct Series {
    /// (iteration, training loss)
    pub loss: Vec<(f64, f64)>,
    /// (iteration, learning rate)
    pub lr: Vec<(f64, f64)>,
    /// (epoch, validation top-1)
    pub top1: Vec<(f64, f64)>,
}

/// Reads the train and val records of a metrics file. Records of other splits and missing
/// fields are skipped; a line that is not a JSON object is an error naming its number.
pub fn read_series(metrics_jsonl: &Path) -> Result<Series, CurvesError> {
    let text = std::fs::read_to_string(metrics_jsonl).map_err(|source| CurvesError::Io {
        path: metrics_jsonl.to_path_buf(),
        source,
    })?;
    let mut series = Series::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse_error = |message: String| CurvesError::Parse {
            path: metrics_jsonl.to_path_buf(),
            line: index + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| parse_error(format!("not valid JSON ({e})")))?;
        let record = value
            .as_object()
            .ok_or_else(|| parse_error("a record must be a JSON object".to_string()))?;
        let number = |key: &str| record.get(key).and_then(serde_json::Value::as_f64);
        match record.get("split").and_then(serde_json::Value::as_str) {
            Some("train") => {
                if let Some(iter) = number("iter") {
                    if let Some(loss) = number("loss") {
                        series.loss.push((iter, loss));
                    }
                    if let Some(lr) = number("lr") {
                        series.lr.push((iter, lr));
                    }
                }
            }
            Some("val") => {
                if let (Some(epoch), Some(top1)) = (number("epoch"), number("top1")) {
                    series.top1.push((epoch, top1));
                }
            }
            _ => {}
        }
    }
    // A resumed run logs some iterations twice: plot in order of x.
    for s in [&mut series.loss, &mut series.lr, &mut series.top1] {
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(series)
}

/// Draws the three panels (`3 * PANEL_WIDTH` x `PANEL_HEIGHT` pixels) from `metrics_jsonl`
/// into the PNG `out`, written to a temporary file and renamed, so a reader never sees
/// half a picture.
pub fn write_curves_png(metrics_jsonl: &Path, out: &Path) -> Result<(), CurvesError> {
    let series = read_series(metrics_jsonl)?;
    let picture = draw_curves(&series);
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| CurvesError::Encode {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?;
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "curves.png".to_string());
    let temp = out.with_file_name(format!(".{file_name}.tmp"));
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CurvesError::Io { path, source }
    };
    std::fs::write(&temp, &png).map_err(io_error(&temp))?;
    std::fs::rename(&temp, out).map_err(io_error(out))
}

/// The three panels as a picture.
pub fn draw_curves(series: &Series) -> RgbImage {
    let mut picture = RgbImage::from_pixel(3 * PANEL_WIDTH, PANEL_HEIGHT, BACKGROUND);
    let panels = [
        ("TRAIN LOSS", "ITER", &series.loss, LOSS_COLOUR),
        ("LR", "ITER", &series.lr, LR_COLOUR),
        ("VAL TOP-1", "EPOCH", &series.top1, TOP1_COLOUR),
    ];
    for (i, (title, x_label, points, colour)) in panels.into_iter().enumerate() {
        draw_panel(
            &mut picture,
            i as u32 * PANEL_WIDTH,
            title,
            x_label,
            points,
            colour,
        );
    }
    picture
}

/// A data range widened when it is a single value, so it maps to a line, not a point.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return Some((lo - pad, hi + pad));
    }
    Some((lo, hi))
}

fn draw_panel(
    picture: &mut RgbImage,
    x_offset: u32,
    title: &str,
    x_label: &str,
    points: &[(f64, f64)],
    colour: Rgb<u8>,
) {
    let (left, right) = (x_offset + LEFT, x_offset + PANEL_WIDTH - RIGHT);
    let (top, bottom) = (TOP, PANEL_HEIGHT - BOTTOM);
    draw_text(picture, x_offset + LEFT, 6, title, INK);
    // Frame and a light middle grid line each way.
    let (mid_x, mid_y) = ((left + right) / 2, (top + bottom) / 2);
    line(picture, (left, mid_y), (right, mid_y), GRID);
    line(picture, (mid_x, top), (mid_x, bottom), GRID);
    line(picture, (left, top), (left, bottom), INK);
    line(picture, (left, bottom), (right, bottom), INK);
    line(picture, (left, top), (right, top), GRID);
    line(picture, (right, top), (right, bottom), GRID);
    let label_x = right - text_width(x_label);
    draw_text(picture, label_x, bottom + 14, x_label, INK);

    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (Some((x0, x1)), Some((y0, y1))) = (
        range(finite.iter().map(|p| p.0)),
        range(finite.iter().map(|p| p.1)),
    ) else {
        draw_text(
            picture,
            mid_x - text_width("NO DATA") / 2,
            mid_y - GLYPH_HEIGHT / 2,
            "NO DATA",
            INK,
        );
        return;
    };
    // Numbers: y range at the left corners, x range under the axis ends.
    for (value, y) in [(y1, top), (y0, bottom - 7)] {
        let text = format_number(value);
        draw_text(
            picture,
            left.saturating_sub(text_width(&text) + 4),
            y,
            &text,
            INK,
        );
    }
    draw_text(picture, left, bottom + 4, &format_number(x0), INK);
    let x_max = format_number(x1);
    draw_text(picture, right - text_width(&x_max), bottom + 4, &x_max, INK);

    let to_pixel = |(x, y): (f64, f64)| -> (u32, u32) {
        let px = left as f64 + (x - x0) / (x1 - x0) * (right - left) as f64;
        let py = bottom as f64 - (y - y0) / (y1 - y0) * (bottom - top) as f64;
        (px.round() as u32, py.round() as u32)
    };
    let pixels: Vec<(u32, u32)> = finite.iter().map(|&p| to_pixel(p)).collect();
    for pair in pixels.windows(2) {
        line(picture, pair[0], pair[1], colour);
    }
    // Few points (evaluations are per epoch): mark each one.
    if pixels.len() <= 60 {
        for &(x, y) in &pixels {
            for dy in 0..3 {
                for dx in 0..3 {
                    put(
                        picture,
                        (x + dx).saturating_sub(1),
                        (y + dy).saturating_sub(1),
                        colour,
                    );
                }
            }
        }
    }
}

fn put(picture: &mut RgbImage, x: u32, y: u32, colour: Rgb<u8>) {
    if x < picture.width() && y < picture.height() {
        picture.put_pixel(x, y, colour);
    }
}

/// Bresenham's line from `a` to `b`, both ends included.
fn line(picture: &mut RgbImage, a: (u32, u32), b: (u32, u32), colour: Rgb<u8>) {
    let (mut x, mut y) = (a.0 as i64, a.1 as i64);
    let (x1, y1) = (b.0 as i64, b.1 as i64);
    let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
    let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        put(picture, x as u32, y as u32, colour);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// A short label for an axis end: plain digits where they fit, else `1.2e-4`.
fn format_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

const GLYPH_WIDTH: u32 = 5;
const GLYPH_HEIGHT: u32 = 7;
const ADVANCE: u32 = GLYPH_WIDTH + 1;

fn text_width(text: &str) -> u32 {
    (text.chars().count() as u32 * ADVANCE).saturating_sub(1)
}

fn draw_text(picture: &mut RgbImage, x: u32, y: u32, text: &str, colour: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (dy, row) in rows.iter().enumerate() {
            for dx in 0..GLYPH_WIDTH {
                if row & (0b10000 >> dx) != 0 {
                    put(picture, x + i as u32 * ADVANCE + dx, y + dy as u32, colour);
                }
            }
        }
    }
}

/// 5x7 glyphs, one byte per row, the leftmost pixel in bit 4. Lower case is drawn as upper
/// case; anything else not listed as `?`.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        ' ' => [0x00; 7],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("engine-curves-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn synthetic_metrics() -> String {
        let mut lines = Vec::new();
        for iter in 0..200u32 {
            let epoch = iter / 20;
            let lr = 0.4 * (iter.min(50) as f64 / 50.0);
            let loss = 2.3 * (-(iter as f64) / 80.0).exp() + 0.1;
            lines.push(format!(
                r#"{{"epoch": {epoch}, "iter": {iter}, "split": "train", "time": 1.5, "loss": {loss}, "lr": {lr}}}"#
            ));
            if iter % 20 == 19 {
                let top1 = 0.1 + 0.08 * epoch as f64;
                lines.push(format!(
                    r#"{{"epoch": {epoch}, "iter": {iter}, "split": "val", "time": 2.0, "top1": {top1}, "top5": 0.9, "loss": 1.0}}"#
                ));
            }
        }
        lines.join("\n") + "\n"
    }

    /// Pixels of `colour` in the plot area of panel `panel`.
    fn coloured_pixels(picture: &RgbImage, panel: u32, colour: Rgb<u8>) -> usize {
        let x0 = panel * PANEL_WIDTH;
        (x0..x0 + PANEL_WIDTH)
            .flat_map(|x| (0..PANEL_HEIGHT).map(move |y| (x, y)))
            .filter(|&(x, y)| *picture.get_pixel(x, y) == colour)
            .count()
    }

    #[test]
    fn synthetic_metrics_draw_three_panels() {
        let dir = temp_dir("ok");
        let metrics = dir.join("metrics.jsonl");
        std::fs::write(&metrics, synthetic_metrics()).unwrap();
        let out = dir.join("curves.png");
        write_curves_png(&metrics, &out).unwrap();
        assert!(!dir.join(".curves.png.tmp").exists());
        let picture = image::open(&out).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (3 * PANEL_WIDTH, PANEL_HEIGHT));
        assert!(coloured_pixels(&picture, 0, LOSS_COLOUR) > 100);
        assert!(coloured_pixels(&picture, 1, LR_COLOUR) > 100);
        assert!(coloured_pixels(&picture, 2, TOP1_COLOUR) > 50);
        // Each curve stays in its own panel, and every panel has its title and numbers.
        assert_eq!(coloured_pixels(&picture, 0, LR_COLOUR), 0);
        assert_eq!(coloured_pixels(&picture, 2, LOSS_COLOUR), 0);
        for panel in 0..3 {
            assert!(coloured_pixels(&picture, panel, INK) > 200, "panel {panel}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn series_are_read_by_split() {
        let dir = temp_dir("series");
        let metrics = dir.join("metrics.jsonl");
        std::fs::write(
            &metrics,
            concat!(
                r#"{"epoch": 0, "iter": 5, "split": "train", "time": 1, "loss": 2.0, "lr": 0.1}"#,
                "\n\n",
                r#"{"epoch": 0, "iter": 3, "split": "train", "time": 1, "loss": 2.5}"#,
                "\n",
                r#"{"epoch": 0, "iter": 9, "split": "val", "time": 1, "top1": 0.25}"#,
                "\n",
                r#"{"epoch": 0, "iter": 9, "split": "test", "time": 1, "top1": 0.5}"#,
                "\n"
            ),
        )
        .unwrap();
        let series = read_series(&metrics).unwrap();
        assert_eq!(series.loss, vec![(3.0, 2.5), (5.0, 2.0)]);
        assert_eq!(series.lr, vec![(5.0, 0.1)]);
        assert_eq!(series.top1, vec![(0.0, 0.25)]);
        // One point per panel, or none, still draws.
        let picture = draw_curves(&series);
        assert!(coloured_pixels(&picture, 1, LR_COLOUR) > 0);
        let empty = draw_curves(&Series::default());
        assert_eq!(empty.dimensions(), (3 * PANEL_WIDTH, PANEL_HEIGHT));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = temp_dir("bad");
        let metrics = dir.join("metrics.jsonl");
        std::fs::write(
            &metrics,
            "{\"epoch\": 0, \"iter\": 0, \"split\": \"train\", \"loss\": 1}\n{\"epoch\": 0, \"iter\n",
        )
        .unwrap();
        let err = write_curves_png(&metrics, &dir.join("curves.png")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("metrics.jsonl"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(!dir.join("curves.png").exists());

        std::fs::write(&metrics, "[1, 2]\n").unwrap();
        let message = read_series(&metrics).unwrap_err().to_string();
        assert!(
            message.contains("line 1") && message.contains("object"),
            "{message}"
        );

        let missing = read_series(&dir.join("absent.jsonl")).unwrap_err();
        assert!(missing.to_string().contains("absent.jsonl"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(0.4), "0.4");
        assert_eq!(format_number(2.3456), "2.35");
        assert_eq!(format_number(76.26), "76.3");
        assert_eq!(format_number(1200.0), "1200");
        assert_eq!(format_number(1e-4), "1.0e-4");
        assert_eq!(format_number(250000.0), "2.5e5");
        assert_eq!(format_number(-0.5), "-0.5");
    }
}
