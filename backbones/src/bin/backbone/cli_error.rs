//! `backbone`'s failures, reported as every command of the project reports them.

pub use backbones::cli::BadInput;

pub fn report(program: &str, err: &anyhow::Error) -> i32 {
    backbones::cli::report(program, err, |_| false)
}
