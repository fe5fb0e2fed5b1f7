//! Image ids and file names come from list files and JSON that anyone can edit: one that
//! climbs out of the dataset folder must be refused before it is joined to a path.

use std::path::{Component, Path};

/// Why a VOC/ADE20K id is unsafe as a file stem, or `None` when it is fine.
pub fn check_plain_id(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("empty id".to_string());
    }
    if let Some(why) = control_character(id) {
        return Some(format!("id \"{}\" {why}", id.escape_debug()));
    }
    if id.contains('/') || id.contains('\\') || id.contains("..") {
        return Some(format!(
            "id \"{id}\" would escape the dataset folder (ids may not contain path separators or \"..\")"
        ));
    }
    None
}

/// Why a relative file name (COCO's `file_name`, which may name a subfolder) is unsafe, or
/// `None` when it stays inside the folder it is joined to.
pub fn check_relative_file_name(name: &str) -> Option<String> {
    if let Some(why) = control_character(name) {
        return Some(format!("file name \"{}\" {why}", name.escape_debug()));
    }
    let path = Path::new(name);
    let escapes = name.is_empty()
        || name.contains('\\')
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    escapes.then(|| {
        format!(
            "file name \"{name}\" would escape the image folder (it must be a relative path without \"..\")"
        )
    })
}

/// A NUL byte cannot be in a path at all, and other control characters are no file name a
/// dataset uses (they are typing or encoding accidents).
fn control_character(text: &str) -> Option<&'static str> {
    if text.contains('\0') {
        Some("contains a NUL byte")
    } else if text.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(check_plain_id("000005"), None);
        assert!(check_plain_id("../etc/passwd").is_some());
        assert!(check_plain_id("a/b").is_some());
        assert!(check_plain_id("a\\b").is_some());
        assert_eq!(check_relative_file_name("val2017/01.jpg"), None);
        assert!(check_relative_file_name("../01.jpg").is_some());
        assert!(check_relative_file_name("/etc/passwd").is_some());
        assert_eq!(
            check_plain_id("0001\0.jpg").as_deref(),
            Some("id \"0001\\0.jpg\" contains a NUL byte")
        );
        assert!(check_relative_file_name("a\u{7}.jpg").is_some());
    }
}
