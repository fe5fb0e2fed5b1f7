//! `detect`'s failures, reported as every command of the project reports them, with the
//! evaluation's own input errors (comp4 files, COCO results) counted as bad input.

use datasets::spec::SpecError;
use detection::metrics::coco::CocoEvalError;
use detection::metrics::comp4::Comp4Error;
pub use engine::cli::{warn, BadInput};

fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(c) = e.downcast_ref::<Comp4Error>() {
        return c.is_bad_input();
    }
    if let Some(c) = e.downcast_ref::<CocoEvalError>() {
        return c.is_bad_input();
    }
    e.is::<SpecError>()
}

pub fn report(program: &str, err: &anyhow::Error) -> i32 {
    engine::cli::report(program, err, is_bad_input)
}
