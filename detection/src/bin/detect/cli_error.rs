//! One sentence on stderr per failure; exit 2 for bad input, 1 for failures at run time.

use backbones::CheckpointError;
use std::io::ErrorKind;

/// Marks an error as the user's input being wrong (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// A checkpoint or state dict that cannot be read or does not fit is bad input; an I/O
/// failure other than a missing or unreadable file (a full disk while writing) is not.
fn checkpoint_is_bad_input(e: &CheckpointError) -> bool {
    match e {
        CheckpointError::Io { source, .. } => matches!(
            source.kind(),
            ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::IsADirectory
        ),
        _ => true,
    }
}

fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(c) = e.downcast_ref::<CheckpointError>() {
        return checkpoint_is_bad_input(c);
    }
    if let Some(d) = e.downcast_ref::<datasets::DataError>() {
        // A panic caught in a loader worker is ours to fix, not the data's.
        return !d.is_bug();
    }
    e.is::<BadInput>()
}

/// Messages quote what files contain (names, keys, values); a newline or a terminal escape
/// in a hostile file must not break the one-line error or reach the terminal raw.
fn escape_controls(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<char>>(),
            false => vec![c],
        })
        .collect()
}

/// Prints the error and its causes as one line (skipping causes the message already quotes)
/// and returns the exit status.
pub fn report(program: &str, err: &anyhow::Error) -> i32 {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    eprintln!("{program}: {}", escape_controls(&message));
    match err.chain().any(is_bad_input) {
        true => 2,
        false => 1,
    }
}
