//! Photometric augmentation: torchvision's `ColorJitter` brightness, contrast and saturation
//! on PIL images (byte for byte), and the PCA lighting noise of AlexNet as the paper uses it.
//!
//! PIL implements all three jitters as `Image.blend(degenerate, image, factor)`:
//! `degenerate + factor * (image - degenerate)` in single precision, truncated towards zero
//! (and clamped to 0..255 when extrapolating). The degenerate image is black (brightness),
//! the mean grey level (contrast) or the image's own grey version (saturation).

/// PIL's `convert("L")`: ITU-R 601-2 luma in 16-bit fixed point, rounded.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// PIL's `ImagingBlend` for one value. Single precision matters: in double precision some
/// products land just above an integer that single precision lands just below. Rust's `as`
/// truncates towards zero and saturates at 0 and 255, which is exactly PIL's conversion
/// (and its clamping when the factor extrapolates beyond 0..1).
#[inline]
fn blend(degenerate: u8, value: u8, factor: f32) -> u8 {
    (degenerate as f32 + factor * (value as f32 - degenerate as f32)) as u8
}

/// `ImageEnhance.Brightness(img).enhance(factor)` on interleaved RGB.
pub fn adjust_brightness(rgb: &mut [u8], factor: f32) {
    blend_all_with(rgb, 0, factor);
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with the image's mean grey level,
/// rounded to an integer first as PIL does.
pub fn adjust_contrast(rgb: &mut [u8], factor: f32) {
    let pixels = rgb.len() / 3;
    if pixels == 0 {
        return;
    }
    let total: u64 = rgb
        .chunks_exact(3)
        .map(|p| luma(p[0], p[1], p[2]) as u64)
        .sum();
    let mean = (total as f64 / pixels as f64 + 0.5) as u8;
    blend_all_with(rgb, mean, factor);
}

/// Blends every value with the same degenerate value: through a 256-entry table, which gives
/// the same bytes as blending each value and costs a lookup instead of float arithmetic.
fn blend_all_with(values: &mut [u8], degenerate: u8, factor: f32) {
    let table: [u8; 256] = std::array::from_fn(|v| blend(degenerate, v as u8, factor));
    for v in values {
        *v = table[*v as usize];
    }
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend each pixel with its own grey level.
pub fn adjust_saturation(rgb: &mut [u8], factor: f32) {
    for p in rgb.chunks_exact_mut(3) {
        let grey = luma(p[0], p[1], p[2]);
        for v in p {
            *v = blend(grey, *v, factor);
        }
    }
}

/// Eigenvalues of the ImageNet pixel covariance on the 0-255 scale (the paper, fb.resnet.torch).
pub const IMAGENET_EIGENVALUES: [f32; 3] = [55.46, 4.794, 1.148];

/// The matching eigenvectors as columns: row c is channel c (R, G, B).
pub const IMAGENET_EIGENVECTORS: [[f32; 3]; 3] = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
];

/// The RGB offset (0-255 scale) PCA lighting adds to every pixel for the draws `alpha`
/// (one per eigenvector, each ~ N(0, std)): `eigenvectors @ (alpha * eigenvalues)`.
pub fn lighting_offset(alpha: [f32; 3]) -> [f32; 3] {
    let weighted: [f32; 3] = std::array::from_fn(|j| alpha[j] * IMAGENET_EIGENVALUES[j]);
    std::array::from_fn(|c| {
        (0..3)
            .map(|j| IMAGENET_EIGENVECTORS[c][j] * weighted[j])
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values from Pillow 13.0:
    //   from PIL import Image, ImageEnhance
    //   px = [(10,200,30),(255,0,128),(90,90,90),(0,0,255),(250,240,5),(1,2,3)]
    //   im = Image.new("RGB", (3, 2)); im.putdata(px)
    //   list(im.convert("L").getdata())
    //   list(ImageEnhance.Brightness(im).enhance(f).getdata())   # and Contrast, Color
    const PIXELS: [u8; 18] = [
        10, 200, 30, 255, 0, 128, 90, 90, 90, 0, 0, 255, 250, 240, 5, 1, 2, 3,
    ];

    fn adjusted(op: fn(&mut [u8], f32), factor: f32) -> Vec<u8> {
        let mut rgb = PIXELS.to_vec();
        op(&mut rgb, factor);
        rgb
    }

    #[test]
    fn luma_matches_pil() {
        let grey: Vec<u8> = PIXELS
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect();
        assert_eq!(grey, [124, 91, 90, 29, 216, 2]);
    }

    #[test]
    fn brightness_matches_pil() {
        assert_eq!(
            adjusted(adjust_brightness, 0.6),
            [6, 120, 18, 153, 0, 76, 54, 54, 54, 0, 0, 153, 150, 144, 3, 0, 1, 1]
        );
        assert_eq!(
            adjusted(adjust_brightness, 1.37),
            [13, 255, 41, 255, 0, 175, 123, 123, 123, 0, 0, 255, 255, 255, 6, 1, 2, 4]
        );
    }

    #[test]
    fn contrast_matches_pil() {
        assert_eq!(
            adjusted(adjust_contrast, 0.6),
            [42, 156, 54, 189, 36, 113, 90, 90, 90, 36, 36, 189, 186, 180, 39, 37, 37, 38]
        );
        assert_eq!(
            adjusted(adjust_contrast, 1.37),
            [0, 239, 7, 255, 0, 141, 89, 89, 89, 0, 0, 255, 255, 255, 0, 0, 0, 0]
        );
    }

    #[test]
    fn saturation_matches_pil() {
        assert_eq!(
            adjusted(adjust_saturation, 0.6),
            [55, 169, 67, 189, 36, 113, 90, 90, 90, 11, 11, 164, 236, 230, 89, 1, 2, 2]
        );
        assert_eq!(
            adjusted(adjust_saturation, 0.93),
            [17, 194, 36, 243, 6, 125, 90, 90, 90, 2, 2, 239, 247, 238, 19, 1, 2, 2]
        );
    }

    #[test]
    fn factor_one_changes_nothing() {
        for op in [adjust_brightness, adjust_contrast, adjust_saturation] {
            assert_eq!(adjusted(op, 1.0), PIXELS);
        }
    }

    #[test]
    fn lighting_offset_by_hand() {
        // alpha = (0.1, -0.2, 0.05): alpha * eigenvalues = (5.546, -0.9588, 0.0574);
        // R = -0.5675 * 5.546 + 0.7192 * -0.9588 + 0.4009 * 0.0574 = -3.814...
        let offset = lighting_offset([0.1, -0.2, 0.05]);
        let expected = [
            -0.5675 * 5.546 + 0.7192 * -0.9588 + 0.4009 * 0.0574,
            -0.5808 * 5.546 + -0.0045 * -0.9588 + -0.8140 * 0.0574,
            -0.5836 * 5.546 + -0.6948 * -0.9588 + 0.4203 * 0.0574,
        ];
        for (got, want) in offset.iter().zip(expected) {
            assert!((got - want).abs() < 1e-4, "{offset:?} vs {expected:?}");
        }
        assert!((offset[0] - -3.8140).abs() < 1e-3);
        assert_eq!(lighting_offset([0.0; 3]), [0.0; 3]);
    }
}
