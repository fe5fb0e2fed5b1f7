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

fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle filter's support is 1
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
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

/// Resizes an interleaved 8-bit image of `channels` channels from `(w, h)` to `(out_w, out_h)`.
pub fn resize_bilinear(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w * h * channels,
        "buffer does not match its size"
    );
    assert!(out_w > 0 && out_h > 0, "cannot resize to an empty image");
    if (w, h) == (out_w, out_h) {
        return src.to_vec();
    }
    let vert = taps(h, out_h);
    // Only the rows the vertical pass reads are resized horizontally, as Pillow does.
    let first_row = vert.starts[0];
    let last_row = vert.starts[out_h - 1] + vert.weights[out_h - 1].len();
    let rows = last_row - first_row;
    let half = 1i32 << (PRECISION_BITS - 1);

    let (tmp, tmp_w) = if out_w != w {
        let horiz = taps(w, out_w);
        let mut tmp = vec![0u8; out_w * rows * channels];
        for y in 0..rows {
            let row = &src[(y + first_row) * w * channels..][..w * channels];
            let out_row = &mut tmp[y * out_w * channels..][..out_w * channels];
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
        (tmp, out_w)
    } else {
        (
            src[first_row * w * channels..last_row * w * channels].to_vec(),
            w,
        )
    };
    if out_h == h {
        return tmp;
    }

    let stride = tmp_w * channels;
    let mut out = vec![0u8; out_w * out_h * channels];
    let mut acc = vec![0i32; stride];
    for (yy, (start, k)) in vert.starts.iter().zip(&vert.weights).enumerate() {
        acc.fill(half);
        for (i, &kw) in k.iter().enumerate() {
            let row = &tmp[(start - first_row + i) * stride..][..stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * kw;
            }
        }
        for (o, &a) in out[yy * stride..][..stride].iter_mut().zip(&acc) {
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
    fn torchvision_resize_sizes() {
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        assert_eq!(shorter_side_size(224, 224, 256), (256, 256));
    }
}
