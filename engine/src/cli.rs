//! How every command of the project reports a failure: one sentence on stderr, exit status 2
//! for bad input (a file or flag the user gave is wrong) and 1 for failures at run time. Each
//! binary adds the errors of its own crate through `also_bad_input`.

use crate::checkpoint::CheckpointError;
use crate::fit::TrainInputError;
use crate::run_dir::RunDirError;
use datasets::DataError;
use std::io::ErrorKind;

/// Marks an error as the user's input being wrong (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Reading a file the user named that is absent or unreadable is bad input; an I/O failure
/// while writing (a full disk) is a failure at run time.
pub fn io_is_bad_input(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::IsADirectory
    )
}

pub fn checkpoint_is_bad_input(e: &CheckpointError) -> bool {
    match e {
        CheckpointError::Io { source, .. } => io_is_bad_input(source),
        _ => true,
    }
}

/// Whether an error of `datasets` or the engine is the user's input being wrong.
pub fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(c) = e.downcast_ref::<CheckpointError>() {
        return checkpoint_is_bad_input(c);
    }
    if let Some(r) = e.downcast_ref::<RunDirError>() {
        return match r {
            RunDirError::Invalid { .. } => true,
            RunDirError::Checkpoint(c) => checkpoint_is_bad_input(c),
            RunDirError::Io { .. } => false,
        };
    }
    if let Some(d) = e.downcast_ref::<DataError>() {
        // A panic caught in a loader worker is ours to fix, not the data's.
        return !d.is_bug();
    }
    e.is::<BadInput>()
        || e.is::<TrainInputError>()
        || e.is::<datasets::loader::InvalidLoaderConfig>()
        || e.is::<datasets::spec::SpecError>()
        || e.is::<crate::data_parallel::LaunchError>()
}

/// Messages quote what files contain (names, keys, values); a newline or a terminal escape in
/// a hostile file must not break the one-line error or reach the terminal raw.
pub fn escape_controls(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Prints the error and its causes as one line (skipping causes the message already quotes)
/// and returns the exit status; `also_bad_input` names the calling crate's own input errors.
pub fn report(
    program: &str,
    err: &anyhow::Error,
    also_bad_input: fn(&(dyn std::error::Error + 'static)) -> bool,
) -> i32 {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    eprintln!("{program}: {}", escape_controls(&message));
    if err.chain().any(|e| is_bad_input(e) || also_bad_input(e)) {
        2
    } else {
        1
    }
}

/// A warning line on stderr, escaped like errors.
pub fn warn(program: &str, message: &str) {
    eprintln!("{program}: warning: {}", escape_controls(message));
}
