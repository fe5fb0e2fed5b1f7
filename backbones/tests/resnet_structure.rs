//! Every variant's blocks against the definitions in the paper (figure 2) and GluonCV/timm:
//! where the stride sits, what the shortcut holds, dilation and padding, which BNs start at
//! zero, and the parameter and MAC counts PyTorch reports (for MobileNet v1 too).

use backbones::layers::NormMode;
use backbones::resnet::{Block, Stem};
use backbones::{ClassifierArch, ClassifierConfig, ClassifierNet, ResNet, ResNetConfig};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

fn build(arch: &str, f: impl FnOnce(&mut ResNetConfig)) -> (nn::VarStore, ResNet) {
    let mut config = ResNetConfig::classifier(arch.parse().unwrap(), 10);
    f(&mut config);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), &config);
    (vs, model)
}

fn strides(block: &Block) -> Vec<i64> {
    block.convs.iter().map(|c| c.stride).collect()
}

fn all_equal(t: &Tensor, v: f64) -> bool {
    t.eq(v).all().int64_value(&[]) == 1
}

#[test]
fn downsampling_bottleneck_strides_where_each_variant_says() {
    for (arch, expected) in [
        ("resnet50a", vec![2, 1, 1]),
        ("resnet50", vec![1, 2, 1]),
        ("resnet50c", vec![1, 2, 1]),
        ("resnet50d", vec![1, 2, 1]),
        ("resnet50e", vec![1, 2, 1]),
        ("resnet50s", vec![1, 2, 1]),
    ] {
        let (_vs, m) = build(arch, |_| {});
        for stage in 1..4 {
            assert_eq!(
                strides(&m.stages[stage][0]),
                expected,
                "{arch} layer{}.0",
                stage + 1
            );
            assert_eq!(
                strides(&m.stages[stage][1]),
                vec![1, 1, 1],
                "{arch} layer{}.1",
                stage + 1
            );
        }
        assert_eq!(
            strides(&m.stages[0][0]),
            vec![1, 1, 1],
            "{arch} layer1 does not stride"
        );
    }
}

#[test]
fn shortcut_is_strided_conv_or_avg_pool_then_conv() {
    for arch in ["resnet50a", "resnet50", "resnet50c", "resnet50s"] {
        let (vs, m) = build(arch, |_| {});
        let d = m.stages[1][0].downsample.as_ref().unwrap();
        assert_eq!(
            (d.avg_pool_stride, d.conv.stride, d.conv.kernel()),
            (None, 2, 1),
            "{arch}"
        );
        assert!(
            vs.variables().contains_key("layer2.0.downsample.0.weight"),
            "{arch}: conv is downsample.0"
        );
    }
    for arch in ["resnet50d", "resnet50e"] {
        let (vs, m) = build(arch, |_| {});
        let d = m.stages[1][0].downsample.as_ref().unwrap();
        assert_eq!(
            (d.avg_pool_stride, d.conv.stride, d.conv.kernel()),
            (Some(2), 1, 1),
            "{arch}"
        );
        // layer1 changes channels only: conv and BN, no pool.
        let d1 = m.stages[0][0].downsample.as_ref().unwrap();
        assert_eq!(d1.avg_pool_stride, None, "{arch} layer1");
        let vars = vs.variables();
        assert!(
            vars.contains_key("layer2.0.downsample.1.weight"),
            "{arch}: conv is downsample.1"
        );
        assert!(
            vars.contains_key("layer2.0.downsample.2.running_var"),
            "{arch}: BN is downsample.2"
        );
    }
    // Blocks that keep their shape have no shortcut layers.
    let (_vs, m) = build("resnet50d", |_| {});
    assert!(m
        .stages
        .iter()
        .all(|s| s[1..].iter().all(|b| b.downsample.is_none())));
}

#[test]
fn stems_are_seven_by_seven_or_three_deep_convs() {
    let (_vs, m) = build("resnet50", |_| {});
    let Stem::Plain { conv1, .. } = &m.stem else {
        panic!("B has the 7x7 stem")
    };
    assert_eq!(
        (conv1.kernel(), conv1.stride, conv1.padding),
        (7, 2, [3, 3])
    );
    for (arch, widths) in [
        ("resnet50c", [32, 32, 64]),
        ("resnet50d", [32, 32, 64]),
        ("resnet50s", [64, 64, 128]),
    ] {
        let (_vs, m) = build(arch, |_| {});
        let Stem::Deep { convs, .. } = &m.stem else {
            panic!("{arch} has the deep stem")
        };
        let out: Vec<i64> = convs.iter().map(|c| c.weight.size()[0]).collect();
        assert_eq!(out, widths, "{arch}");
        let geometry: Vec<(i64, i64, i64)> = convs
            .iter()
            .map(|c| (c.kernel(), c.stride, c.padding[0]))
            .collect();
        assert_eq!(geometry, vec![(3, 2, 1), (3, 1, 1), (3, 1, 1)], "{arch}");
    }
}

#[test]
fn dilation_replaces_stride_for_output_stride_8_and_16() {
    let (_vs, m) = build("resnet50d", |c| c.output_stride = 8);
    let conv2 = |stage: usize, block: usize| {
        let c = &m.stages[stage][block].convs[1];
        (c.stride, c.dilation, c.padding[0])
    };
    assert_eq!(conv2(1, 0), (2, 1, 1), "layer2 still strides");
    assert_eq!(
        conv2(2, 0),
        (1, 1, 1),
        "layer3's first block keeps dilation 1"
    );
    assert_eq!(conv2(2, 1), (1, 2, 2));
    assert_eq!(
        conv2(3, 0),
        (1, 2, 2),
        "layer4's first block has layer3's dilation"
    );
    assert_eq!(conv2(3, 2), (1, 4, 4));
    // A dilated stage does not pool its shortcut (GluonCV): only the 1x1 conv and BN.
    assert_eq!(
        m.stages[2][0].downsample.as_ref().unwrap().avg_pool_stride,
        None
    );
    let f = m.features(
        &Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu)),
        false,
    );
    let sizes: Vec<Vec<i64>> = [&f.c2, &f.c3, &f.c4, &f.c5]
        .iter()
        .map(|t| t.size())
        .collect();
    assert_eq!(
        sizes,
        vec![
            vec![1, 256, 16, 16],
            vec![1, 512, 8, 8],
            vec![1, 1024, 8, 8],
            vec![1, 2048, 8, 8]
        ]
    );

    let (_vs, m) = build("resnet50", |c| c.output_stride = 16);
    let f = m.features(
        &Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(f.c4.size(), vec![1, 1024, 4, 4]);
    assert_eq!(f.c5.size(), vec![1, 2048, 4, 4]);
    assert_eq!(m.stages[3][0].convs[1].dilation, 1);
    assert_eq!(m.stages[3][1].convs[1].dilation, 2);
}

#[test]
fn a_dilated_basic_block_dilates_its_second_conv_from_the_first_block_on() {
    // GluonCV's `_make_layer` builds a dilated stage's first `BasicBlockV1b` with conv1 at the
    // previous dilation and conv2 at the stage's (timm's `BasicBlock` does the same): the
    // block keeps the receptive field it had before its stride was removed.
    let dilations = |m: &ResNet, stage: usize, block: usize| -> Vec<(i64, i64)> {
        let convs = &m.stages[stage][block].convs;
        convs.iter().map(|c| (c.dilation, c.padding[0])).collect()
    };
    for arch in ["resnet18", "resnet18d", "resnet34"] {
        let (_vs, m) = build(arch, |c| c.output_stride = 16);
        assert_eq!(dilations(&m, 2, 0), vec![(1, 1), (1, 1)], "{arch} layer3.0");
        assert_eq!(dilations(&m, 3, 0), vec![(1, 1), (2, 2)], "{arch} layer4.0");
        assert_eq!(dilations(&m, 3, 1), vec![(2, 2), (2, 2)], "{arch} layer4.1");
        assert_eq!(strides(&m.stages[3][0]), vec![1, 1], "{arch} layer4.0");

        let (_vs, m) = build(arch, |c| c.output_stride = 8);
        assert_eq!(dilations(&m, 2, 0), vec![(1, 1), (2, 2)], "{arch} layer3.0");
        assert_eq!(dilations(&m, 2, 1), vec![(2, 2), (2, 2)], "{arch} layer3.1");
        assert_eq!(dilations(&m, 3, 0), vec![(2, 2), (4, 4)], "{arch} layer4.0");
        assert_eq!(dilations(&m, 3, 1), vec![(4, 4), (4, 4)], "{arch} layer4.1");
        let f = m.features(
            &Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(f.c5.size(), vec![1, 512, 8, 8], "{arch}");
    }
}

#[test]
fn basic_blocks_for_resnet18_and_34() {
    let (vs, m) = build("resnet18d", |_| {});
    let b = &m.stages[1][0];
    assert_eq!(b.convs.len(), 2);
    assert_eq!(strides(b), vec![2, 1]);
    assert_eq!(b.downsample.as_ref().unwrap().avg_pool_stride, Some(2));
    assert!(
        m.stages[0][0].downsample.is_none(),
        "64 -> 64 at stride 1 needs no shortcut"
    );
    assert!(vs.variables().contains_key("layer4.1.bn2.weight"));
    let (_vs, m) = build("resnet34", |_| {});
    assert_eq!(
        m.stages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 4, 6, 3]
    );
}

#[test]
fn zero_gamma_zeroes_only_the_last_bn_of_each_block() {
    for arch in ["resnet50d", "resnet18"] {
        let (_vs, m) = build(arch, |c| c.zero_gamma = true);
        for block in m.stages.iter().flatten() {
            let (last, others) = block.bns.split_last().unwrap();
            assert!(
                all_equal(last.weight(), 0.0),
                "{arch}: the last BN starts at 0"
            );
            for bn in others {
                assert!(all_equal(bn.weight(), 1.0), "{arch}: other BNs start at 1");
            }
            if let Some(d) = &block.downsample {
                assert!(
                    all_equal(d.bn.weight(), 1.0),
                    "{arch}: the shortcut BN is not zeroed"
                );
            }
        }
        let (_vs, m) = build(arch, |c| c.zero_gamma = false);
        assert!(all_equal(m.stages[0][0].bns.last().unwrap().weight(), 1.0));
    }
}

#[test]
fn frozen_batch_norm_is_a_fixed_affine_map_with_eps() {
    let (vs, m) = build("resnet18", |c| {
        c.norm = NormMode::Frozen;
        c.bn_eps = 0.0;
        c.num_classes = None;
    });
    assert!(
        vs.trainable_variables().iter().all(|t| t.dim() == 4),
        "only conv weights train"
    );
    let vars = vs.variables();
    tch::no_grad(|| {
        let _ = vars["layer1.0.bn1.running_var"].shallow_clone().fill_(4.0);
        let _ = vars["layer1.0.bn1.running_mean"].shallow_clone().fill_(1.0);
        let _ = vars["layer1.0.bn1.weight"].shallow_clone().fill_(3.0);
        let _ = vars["layer1.0.bn1.bias"].shallow_clone().fill_(0.5);
    });
    let bn = &m.stages[0][0].bns[0];
    let x = Tensor::ones([2, 64, 3, 3], (Kind::Float, Device::Cpu)) * 5.0;
    // (5 - 1) / sqrt(4 + 0) * 3 + 0.5 = 6.5, in training mode too.
    for train in [false, true] {
        let y = bn.forward_t(&x, train);
        assert!((y - 6.5).abs().max().double_value(&[]) < 1e-6);
    }
}

#[test]
fn parameter_and_mac_counts_match_pytorch() {
    // tests/fixtures/pytorch/arch_counts.json: timm models, torch.utils.flop_counter at 224
    // (MobileNet v1 too: its 4.2M parameters and 569M MACs are the MobileNet paper's), or at
    // the entry's input_size (Inception-V3 at 299: timm's 23.8M parameters, torchvision's
    // 27.2M with the auxiliary classifier, 5.71G MACs).
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/pytorch/arch_counts.json"
    );
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (name, c) in counts.as_object().unwrap() {
        let arch: ClassifierArch = name.parse().unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = ClassifierNet::new(&vs.root(), &ClassifierConfig::classifier(arch, 1000));
        let params: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(params, c["params"].as_i64().unwrap(), "{name} parameters");
        let side = c.get("input_size").map_or(224, |s| s.as_i64().unwrap());
        assert_eq!(
            model.macs(side, side),
            c["macs"].as_u64().unwrap(),
            "{name} MACs at {side}"
        );
        if let Some(with_aux) = c.get("params_with_aux") {
            let mut config = ClassifierConfig::classifier(arch, 1000);
            config.set_aux_logits(true).unwrap();
            let vs = nn::VarStore::new(Device::Cpu);
            let _model = ClassifierNet::new(&vs.root(), &config);
            let params: i64 = vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum();
            assert_eq!(params, with_aux.as_i64().unwrap(), "{name} with aux");
        }
    }
    assert!(counts.get("inception_v3").is_some());
}

#[test]
fn initialisation_is_kaiming_fan_out_and_pytorch_linear() {
    tch::manual_seed(1);
    let (vs, m) = build("resnet50", |c| c.num_classes = Some(1000));
    let w = &m.stages[2][0].convs[1].weight; // 256 x 256 x 3 x 3
    let expected = (2.0f64 / (256.0 * 9.0)).sqrt();
    let std = w.std(true).double_value(&[]);
    assert!(
        (std / expected - 1.0).abs() < 0.02,
        "conv std {std} vs {expected}"
    );
    let fc = &vs.variables()["fc.weight"];
    let bound = 1.0 / 2048f64.sqrt();
    assert!(fc.abs().max().double_value(&[]) <= bound);
    assert!(fc.abs().max().double_value(&[]) > 0.9 * bound);
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    assert_eq!(m.forward_t(&x, false).size(), vec![2, 1000]);
}
