//! `backbone`'s failures, reported as every command of the project reports them, with an
//! unknown architecture name counted as bad input.

use backbones::arch::UnknownArch;
pub use engine::cli::BadInput;

pub fn report(program: &str, err: &anyhow::Error) -> i32 {
    engine::cli::report(program, err, |e| e.is::<UnknownArch>())
}
