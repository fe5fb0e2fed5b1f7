//! One sentence on stderr per failure; exit 2 for bad input, 1 for failures at run time.

use backbones::arch::UnknownArch;
use backbones::CheckpointError;
use datasets::DataError;

/// Marks an error as the user's input being wrong (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

pub fn report(program: &str, err: &anyhow::Error) -> i32 {
    eprintln!("{program}: {err:#}");
    let bad_input = err.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<CheckpointError>()
            || e.is::<DataError>()
            || e.is::<UnknownArch>()
    });
    if bad_input {
        2
    } else {
        1
    }
}
