//! The image transform: torchvision's output sizes, and zero padding in normalised space.

use detection::transform::{boxes_to_original, ImageTransform, TransformSpec};
use tch::{Device, Kind, Tensor};

#[test]
fn resized_sizes_are_torchvisions() {
    // torch.nn.functional.interpolate(scale_factor=min(800/short, 1333/long),
    // recompute_scale_factor=True) on zeros of each (h, w), torchvision 0.26.
    let spec = TransformSpec::torchvision();
    for (input, output) in [
        ((100, 1000), (133, 1333)),
        ((1000, 100), (1333, 133)),
        ((333, 500), (800, 1201)),
        ((183, 275), (800, 1202)),
        ((600, 800), (800, 1066)),
        ((37, 1234), (39, 1333)),
        ((190, 290), (800, 1221)),
    ] {
        assert_eq!(spec.resized_size(input), output, "{input:?}");
    }
}

#[test]
fn batches_are_padded_with_zeros_after_normalising() {
    let spec = TransformSpec {
        min_size: 40,
        max_size: 100,
        ..TransformSpec::torchvision()
    };
    let transform = ImageTransform::new(&spec, Device::Cpu);
    let white = Tensor::full([20, 30, 3], 255, (Kind::Uint8, Device::Cpu));
    let grey = Tensor::full([30, 20, 3], 128, (Kind::Uint8, Device::Cpu));
    let batch = transform.images(&[white, grey]);
    assert_eq!(batch.image_sizes, [(40, 60), (60, 40)]);
    assert_eq!(batch.tensors.size(), [2, 3, 64, 64]);
    let red = (1.0 - 0.485) / 0.229;
    let first = batch.tensors.get(0);
    assert!((f64::try_from(first.get(0).get(39).get(59)).unwrap() - red).abs() < 1e-5);
    assert_eq!(
        f64::try_from(first.narrow(1, 40, 24).abs().sum(Kind::Double)).unwrap(),
        0.0
    );
    assert_eq!(
        f64::try_from(first.narrow(2, 60, 4).abs().sum(Kind::Double)).unwrap(),
        0.0
    );

    // The loader's u8 batch, zero-padded on the host, comes out the same way.
    let pixels = Tensor::zeros([1, 64, 64, 3], (Kind::Uint8, Device::Cpu));
    let _ = pixels.narrow(1, 0, 40).narrow(2, 0, 60).fill_(255);
    let from_loader = transform.loader_batch(&pixels, &[(40, 60)]);
    assert!(from_loader
        .tensors
        .get(0)
        .allclose(&first, 1e-6, 1e-6, false));
}

#[test]
fn boxes_scale_back_to_original_pixels() {
    let boxes = Tensor::from_slice(&[10f32, 20., 600., 400.]).view([1, 4]);
    let back = boxes_to_original(&boxes, (400, 600), (200, 300));
    let want = Tensor::from_slice(&[5f32, 10., 300., 200.]).view([1, 4]);
    assert!(back.allclose(&want, 1e-6, 1e-6, false));
}

/// Normalising and resizing a channel at a time (what bounds a large photo's memory) gives
/// exactly the numbers of doing both to the whole image, as torchvision does.
#[test]
fn channel_by_channel_resizing_is_torchvisions_whole_image_arithmetic() {
    let spec = TransformSpec {
        min_size: 48,
        max_size: 80,
        ..TransformSpec::torchvision()
    };
    let transform = ImageTransform::new(&spec, Device::Cpu);
    tch::manual_seed(3);
    let image = Tensor::randint(256, [37, 61, 3], (Kind::Uint8, Device::Cpu));
    let ours = transform.images(&[image.shallow_clone()]);
    let mean = Tensor::from_slice(&spec.mean).view([3, 1, 1]);
    let std = Tensor::from_slice(&spec.std).view([3, 1, 1]);
    let whole = (image.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0 - mean) / std;
    let (h, w) = spec.resized_size((37, 61));
    let expected = whole
        .unsqueeze(0)
        .upsample_bilinear2d([h, w], false, None, None)
        .squeeze_dim(0);
    let got = ours.tensors.get(0).narrow(1, 0, h).narrow(2, 0, w);
    assert!(got.equal(&expected), "the per-channel transform differs");
}

#[test]
fn sizes_whose_inputs_would_exhaust_memory_are_refused() {
    let budget = 4u64 << 30;
    assert!(TransformSpec::torchvision().check_memory(budget).is_ok());
    assert!(TransformSpec::gluoncv_voc().check_memory(budget).is_ok());
    let huge = TransformSpec {
        min_size: 4096,
        max_size: 4096,
        ..TransformSpec::torchvision()
    };
    let err = huge.check_memory(budget).unwrap_err();
    assert!(
        err.contains("16777216 pixels") && err.contains("TRICKS_MAX_INFERENCE_MIB"),
        "{err}"
    );
}
