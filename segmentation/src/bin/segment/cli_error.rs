//! `segment`'s failures, reported as every command of the project reports them, with the
//! recipe's and the prediction PNGs' own errors, inference over its memory bound and a split
//! without a labelled pixel counted as bad input.

pub use engine::cli::BadInput;
use engine::config_file::ConfigError;
use segmentation::budget::OverBudget;
use segmentation::metric::NoLabelledPixels;
use segmentation::predictions::BadPrediction;

fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<BadPrediction>()
        || e.is::<ConfigError>()
        || e.is::<OverBudget>()
        || e.is::<NoLabelledPixels>()
}

pub fn report(program: &str, err: &anyhow::Error) -> i32 {
    engine::cli::report(program, err, is_bad_input)
}
