//! `classes.txt`: the class names of a dataset that is not the standard one (the synthetic
//! Fashion scenes), one name per line in label order. Readers fall back to the standard list
//! (VOC's 20, ADE20K's 150) when the file is absent.

use crate::error::{DataError, Result};
use crate::input::file::read_text_bounded;
use crate::input::limits::{MAX_CLASS_LIST_BYTES, MAX_TEXT_FILE_BYTES};
use std::path::Path;

/// The file name readers look for in a VOC20xx folder or an ADEChallengeData2016 folder.
pub const CLASS_LIST_FILE: &str = "classes.txt";

/// Reads `dir/classes.txt` if it exists.
pub fn read_optional(dir: &Path) -> Result<Option<Vec<String>>> {
    let path = dir.join(CLASS_LIST_FILE);
    match read_text_bounded(&path, MAX_TEXT_FILE_BYTES, "a list of class names") {
        Ok(text) => parse(&text, &path).map(Some),
        Err(DataError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The name torchvision gives the rows of its COCO predictor that no category uses (its
/// list keeps COCO's original 91-id numbering): the one name that may repeat.
pub const UNUSED_ROW_NAME: &str = "N/A";

/// The first name `names` lists a second time, [`UNUSED_ROW_NAME`] aside. Reports, result
/// files (one comp4 file per class name) and checkpoints name classes, so two classes of one
/// name could not be told apart.
pub fn first_duplicate(names: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .filter(|name| name.as_str() != UNUSED_ROW_NAME)
        .find(|name| !seen.insert(name.as_str()))
        .map(String::as_str)
}

/// Reads a class list named on the command line (`--classes FILE`): a regular file of at most
/// [`MAX_CLASS_LIST_BYTES`], one name per line, blank lines skipped. No name may repeat but
/// torchvision's placeholder [`UNUSED_ROW_NAME`].
pub fn read(path: &Path) -> Result<Vec<String>> {
    let text = read_text_bounded(path, MAX_CLASS_LIST_BYTES, "a class list")?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(DataError::invalid(path, "lists no class names"));
    }
    if let Some(name) = first_duplicate(&names) {
        return Err(DataError::invalid(
            path,
            format!("class \"{name}\" is listed twice"),
        ));
    }
    Ok(names)
}

fn parse(text: &str, path: &Path) -> Result<Vec<String>> {
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(DataError::invalid(path, "lists no class names"));
    }
    let mut seen = std::collections::HashSet::new();
    for name in &names {
        if !seen.insert(name) {
            return Err(DataError::invalid(
                path,
                format!("class \"{name}\" is listed twice"),
            ));
        }
    }
    Ok(names)
}

/// Writes the list in the format [`read_optional`] reads.
pub fn write(dir: &Path, names: &[&str]) -> Result<()> {
    let path = dir.join(CLASS_LIST_FILE);
    let mut text = names.join("\n");
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| DataError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_are_skipped_and_duplicates_refused() {
        let p = Path::new("c.txt");
        assert_eq!(parse("a\n\n b \n", p).unwrap(), vec!["a", "b"]);
        assert_eq!(
            parse("a\nb\na\n", p).unwrap_err().to_string(),
            "c.txt: class \"a\" is listed twice"
        );
        assert_eq!(
            parse("\n", p).unwrap_err().to_string(),
            "c.txt: lists no class names"
        );
    }

    #[test]
    fn a_command_line_list_refuses_duplicates_but_torchvision_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.txt");
        std::fs::write(&path, "person\nN/A\ncar\nN/A\n").unwrap();
        assert_eq!(read(&path).unwrap(), vec!["person", "N/A", "car", "N/A"]);
        std::fs::write(&path, "person\ncar\nperson\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("classes.txt: class \"person\" is listed twice"),
            "{err}"
        );
    }
}
