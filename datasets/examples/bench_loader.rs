//! Loader throughput until `backbone bench --data SPEC` exists:
//!
//!   cargo run --release -p datasets --example bench_loader -- \
//!       [--make-jpegs DIR] [--data imagenet:DIR] [--workers N] [--batch N] [--size PX] [--batches N]
//!
//! `--make-jpegs DIR` first writes a synthetic ImageNet-layout folder of 500x375 JPEGs there
//! (10 classes x 100 train images) and benchmarks it unless `--data` says otherwise.
//! Prints one JSON object.

use datasets::bench::{loader_throughput, write_jpeg_folder, LoaderBenchSettings};
use datasets::spec::DatasetSpec;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench_loader: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut settings = LoaderBenchSettings::default();
    let mut data: Option<DatasetSpec> = None;
    let mut make_jpegs: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--data" => data = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--make-jpegs" => make_jpegs = Some(PathBuf::from(value()?)),
            "--workers" => settings.workers = number(value()?)?,
            "--batch" => settings.batch_size = number(value()?)?,
            "--size" => settings.input_size = number(value()?)?,
            "--batches" => settings.batches = number(value()?)?,
            "--warmup" => settings.warmup_batches = number(value()?)?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if let Some(dir) = &make_jpegs {
        write_jpeg_folder(dir, 10, 100, 10, (500, 375), 0).map_err(|e| e.to_string())?;
        data.get_or_insert(DatasetSpec::ImageNet { root: dir.clone() });
    }
    let spec = data.ok_or("give --data imagenet:DIR or --make-jpegs DIR")?;
    let result = loader_throughput(&spec, &settings).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&result).map_err(|e| e.to_string())?
    );
    Ok(())
}
