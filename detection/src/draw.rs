//! Detections drawn on their image: a box per detection in its class's colour, and its label
//! and score on a filled tag above the box (inside it when the box touches the top edge).
//! Text is DejaVu Sans from the `dejavu` crate, so no system font is needed.

use crate::predict::Detection;
use engine::chart::{register_font, FONT};
use image::RgbImage;
use plotters::prelude::*;

/// Distinct, saturated colours; class i takes entry i modulo the length.
const PALETTE: [RGBColor; 10] = [
    RGBColor(230, 25, 75),
    RGBColor(60, 180, 75),
    RGBColor(0, 130, 200),
    RGBColor(245, 130, 48),
    RGBColor(145, 30, 180),
    RGBColor(70, 240, 240),
    RGBColor(240, 50, 230),
    RGBColor(210, 245, 60),
    RGBColor(0, 128, 128),
    RGBColor(170, 110, 40),
];

/// `image` with `detections` drawn on it.
pub fn draw_detections(image: &RgbImage, detections: &[Detection]) -> Result<RgbImage, String> {
    register_font().map_err(|e| e.to_string())?;
    let (w, h) = image.dimensions();
    let mut buffer = image.as_raw().clone();
    // Text and lines scale with the picture so labels stay readable on large photos.
    let font_size = (h.min(w) as f64 / 30.0).clamp(11.0, 28.0);
    let thickness = (h.min(w) / 300).clamp(1, 4);
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        let clamp = |v: f64, hi: u32| v.round().clamp(0.0, hi.saturating_sub(1) as f64) as i32;
        // Lowest score first, so the best detections end up on top.
        for d in detections.iter().rev() {
            let colour = PALETTE[d.class.rem_euclid(PALETTE.len() as i64) as usize];
            let (x1, y1) = (clamp(d.bbox[0], w), clamp(d.bbox[1], h));
            let (x2, y2) = (clamp(d.bbox[2], w), clamp(d.bbox[3], h));
            root.draw(&Rectangle::new(
                [(x1, y1), (x2, y2)],
                colour.stroke_width(thickness),
            ))
            .map_err(|e| e.to_string())?;
            let caption = format!("{} {:.2}", d.label, d.score);
            let style = (FONT, font_size).into_font().color(&WHITE);
            let (tw, th) = root
                .estimate_text_size(&caption, &style)
                .map_err(|e| e.to_string())?;
            let (tw, th) = (tw as i32 + 4, th as i32 + 2);
            let top = if y1 >= th { y1 - th } else { y1 };
            root.draw(&Rectangle::new(
                [(x1, top), (x1 + tw, top + th)],
                colour.filled(),
            ))
            .map_err(|e| e.to_string())?;
            root.draw(&Text::new(caption, (x1 + 2, top + 1), style))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    RgbImage::from_raw(w, h, buffer).ok_or_else(|| "the picture buffer has the wrong size".into())
}
