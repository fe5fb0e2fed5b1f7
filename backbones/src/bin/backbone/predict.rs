use backbones::Classifier;
use clap::Args;
use engine::limits;
use tch::{Kind, Tensor};

#[derive(Args)]
#[command(
    mut_arg("ckpt", |a| a.help("A classification checkpoint")),
    mut_arg("json", |a| a.help("Print one JSON object: {\"image\", \"top\": [{\"class\", \"label\", \"prob\"}]}")),
)]
pub struct PredictArgs {
    #[command(flatten)]
    predict: engine::command::PredictArgs,
    #[arg(
        long,
        default_value_t = 5,
        value_parser = limits::flag_range_usize(1..=*limits::CLASSES.end() as usize),
        help = limits::help("Classes to show, best first (at most the checkpoint's classes)", &limits::CLASSES)
    )]
    topk: usize,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let input = &args.predict;
    let device = input.device()?;
    let classifier = Classifier::from_checkpoint(&input.ckpt, device)?;
    let image = datasets::image_io::load_rgb(&input.image)?;
    let pixels = classifier.transform.apply(&image);
    let side = classifier.transform.crop as i64;
    let batch = Tensor::from_slice(&pixels).view([1, side, side, 3]);
    let probs = classifier
        .probabilities(&batch)
        .squeeze_dim(0)
        .to_kind(Kind::Double);
    let k = args.topk.clamp(1, classifier.classes.len());
    let (values, indices) = probs.topk(k as i64, -1, true, true);
    let values = Vec::<f64>::try_from(&values)?;
    let indices = Vec::<i64>::try_from(&indices)?;
    let top: Vec<(i64, &str, f64)> = indices
        .iter()
        .zip(&values)
        .map(|(&i, &p)| (i, classifier.classes[i as usize].as_str(), p))
        .collect();
    if input.json {
        let top: Vec<_> = top
            .iter()
            .map(|(i, label, p)| serde_json::json!({"class": i, "label": label, "prob": p}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"image": input.image.display().to_string(), "top": top})
        );
    } else {
        println!("{}", input.image.display());
        for (i, label, p) in top {
            println!("  {p:.4}  {i:>4}  {label}");
        }
    }
    Ok(())
}
