//! Bilinear resizing that reproduces Pillow's `Image.resize(size, BILINEAR)` byte for byte.
//!
//! torchvision's `Resize` on PIL images calls exactly that, so a model imported from PyTorch
//! sees the same pixels here as in its own evaluation pipeline. Pillow's algorithm is a
//! separable convolution with a triangle filter whose support widens with the downscaling
//! factor (so downscaling is antialiased), computed in 22-bit fixed point, horizontal pass
//! first, rounding to 8 bits between the passes.

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Filter taps for one axis: for each output index, the first input index and the weights.
struct Taps {
    starts: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// The taps of the output indices in `outputs` (each depends only on its own index, so a
/// window of the output needs only its own taps).
fn taps(in_size: usize, out_size: usize, outputs: std::ops::Range<usize>) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle filter's support is 1
    let mut starts = Vec::with_capacity(outputs.len());
    let mut weights = Vec::with_capacity(outputs.len());
    for xx in outputs {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates towards zero; the bounds are clamped afterwards.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (xmin..xmax)
            .map(|x| triangle((x as f64 - center + 0.5) / filterscale))
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let v = w * (1u32 << PRECISION_BITS) as f64;
                (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
            })
            .collect();
        starts.push(xmin);
        weights.push(fixed);
    }
    Taps { starts, weights }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// A rectangle of an image: left column, top row, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// Resizes an interleaved 8-bit image of `channels` channels from `(w, h)` to `(out_w, out_h)`.
pub fn resize_bilinear(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let whole = Window {
        x: 0,
        y: 0,
        w: out_w,
        h: out_h,
    };
    resize_bilinear_window(src, w, h, channels, out_w, out_h, whole)
}

/// The `window` of what [`resize_bilinear`] would return, byte for byte, computing and
/// holding only that window: resize-then-crop without the whole resized image, whose size a
/// long thin input makes arbitrarily large (a 1 x 60000 image resized to a shorter side of
/// 256 would be 15 million pixels wide).
pub fn resize_bilinear_window(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
    window: Window,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w * h * channels,
        "buffer does not match its size"
    );
    assert!(out_w > 0 && out_h > 0, "cannot resize to an empty image");
    assert!(
        window.w > 0
            && window.h > 0
            && window.x + window.w <= out_w
            && window.y + window.h <= out_h,
        "window {window:?} is not inside {out_w}x{out_h}"
    );
    let (columns, rows_out) = (window.x..window.x + window.w, window.y..window.y + window.h);
    // The input rows the vertical pass reads (all of the window's rows when it does not run).
    let vert = (out_h != h).then(|| taps(h, out_h, rows_out.clone()));
    let (first_row, rows) = match &vert {
        Some(v) => {
            let last = v.starts[window.h - 1] + v.weights[window.h - 1].len();
            (v.starts[0], last - v.starts[0])
        }
        None => (window.y, window.h),
    };
    let half = 1i32 << (PRECISION_BITS - 1);

    // Only the rows the vertical pass reads are resized horizontally, as Pillow does, and
    // only the window's columns.
    let tmp_row = window.w * channels;
    let mut tmp = vec![0u8; rows * tmp_row];
    let horiz = (out_w != w).then(|| taps(w, out_w, columns.clone()));
    for y in 0..rows {
        let row = &src[(y + first_row) * w * channels..][..w * channels];
        let out_row = &mut tmp[y * tmp_row..][..tmp_row];
        match &horiz {
            Some(horiz) => {
                for (xx, (start, k)) in horiz.starts.iter().zip(&horiz.weights).enumerate() {
                    for c in 0..channels {
                        let mut acc = half;
                        for (i, &kw) in k.iter().enumerate() {
                            acc += row[(start + i) * channels + c] as i32 * kw;
                        }
                        out_row[xx * channels + c] = clip8(acc);
                    }
                }
            }
            None => out_row.copy_from_slice(&row[columns.start * channels..columns.end * channels]),
        }
    }
    let Some(vert) = vert else {
        return tmp;
    };

    let mut out = vec![0u8; window.h * tmp_row];
    let mut acc = vec![0i32; tmp_row];
    for (yy, (start, k)) in vert.starts.iter().zip(&vert.weights).enumerate() {
        acc.fill(half);
        for (i, &kw) in k.iter().enumerate() {
            let row = &tmp[(start - first_row + i) * tmp_row..][..tmp_row];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * kw;
            }
        }
        for (o, &a) in out[yy * tmp_row..][..tmp_row].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// The output size of torchvision's `Resize(size)` with one number: the shorter side becomes
/// `size`, the longer one keeps the aspect ratio (truncated, as `int()` does).
pub fn shorter_side_size(w: usize, h: usize, size: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy() {
        let src: Vec<u8> = (0..48).map(|v| v as u8).collect();
        assert_eq!(resize_bilinear(&src, 4, 4, 3, 4, 4), src);
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 13 * 7 * 3];
        for (ow, oh) in [(5, 3), (26, 14), (13, 2), (40, 7)] {
            let out = resize_bilinear(&src, 13, 7, 3, ow, oh);
            assert!(out.iter().all(|&v| v == 77), "{ow}x{oh}");
        }
    }

    #[test]
    fn halving_matches_pillow() {
        // Scale 2 widens the triangle to 2 input pixels each side of the centre; at the
        // border the taps are clipped and renormalised. Pillow 13:
        //   Image.frombytes("L", (4, 1), bytes([0, 100, 200, 255])).resize((2, 1), BILINEAR)
        //   -> [71, 209]
        let src = [0u8, 100, 200, 255];
        assert_eq!(resize_bilinear(&src, 4, 1, 1, 2, 1), vec![71, 209]);
    }

    #[test]
    fn a_window_is_the_same_bytes_as_resize_then_crop() {
        let (w, h) = (13, 9);
        let src: Vec<u8> = (0..w * h * 3).map(|v| (v * 37 % 251) as u8).collect();
        for (ow, oh) in [(13, 9), (26, 18), (5, 4), (13, 4), (6, 9), (31, 7)] {
            let full = resize_bilinear(&src, w, h, 3, ow, oh);
            for window in [
                Window {
                    x: 0,
                    y: 0,
                    w: ow,
                    h: oh,
                },
                Window {
                    x: ow / 3,
                    y: oh / 2,
                    w: ow - ow / 3,
                    h: oh - oh / 2,
                },
                Window {
                    x: ow - 1,
                    y: 0,
                    w: 1,
                    h: 1,
                },
            ] {
                let expected: Vec<u8> = (window.y..window.y + window.h)
                    .flat_map(|y| {
                        full[(y * ow + window.x) * 3..(y * ow + window.x + window.w) * 3].to_vec()
                    })
                    .collect();
                let got = resize_bilinear_window(&src, w, h, 3, ow, oh, window);
                assert_eq!(got, expected, "{ow}x{oh} {window:?}");
            }
        }
    }

    #[test]
    fn torchvision_resize_sizes() {
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        assert_eq!(shorter_side_size(224, 224, 256), (256, 256));
    }
}
