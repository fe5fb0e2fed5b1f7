//! The VOC challenge's result files ("comp4": trained on any data): one text file per class,
//! `comp4_det_<split>_<class>.txt`, each line `<image id> <score> <xmin> <ymin> <xmax> <ymax>`
//! in the devkit's 1-based inclusive pixel coordinates.
//!
//! Reading treats the folder as untrusted: each file is opened through `datasets`'
//! `input_file` (regular files only, bounded length), lines are bounded too, and a bad line
//! is an error naming `FILE:LINE` and what is wrong (a field count other than 6, a value
//! that is not a finite number, a box with negative width or height, an image id that is
//! not in the split). A file named for a class the dataset does not have is an error, since
//! a misspelt class name would otherwise score that class 0 without a word. A class with no
//! file has no detections (the caller is told which, to warn). Other files are ignored.
//!
//! Writing turns this project's 0-based continuous boxes into 1-based ones as the devkit
//! reads them (`xmin = x1 + 1`, `xmax = x2`; GluonCV, whose boxes are 0-based inclusive,
//! writes `x + 1` for all four), with every number in its shortest exact decimal form, so
//! reading the files back gives the same boxes and scores bit for bit.

use super::voc::{continuous_box, devkit_box, ClassDetections, DevkitBox, VocEvaluator};
use super::ImageDetections;
use datasets::input_file::open_regular;
use datasets::DataError;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The longest comp4 file read (VOC07 test with 100 detections per image and class is
/// about 50 MB a class).
pub const MAX_COMP4_FILE_BYTES: u64 = 1 << 30;

/// The longest line read (an id and five numbers).
pub const MAX_COMP4_LINE_BYTES: u64 = 4096;

pub fn file_name(split: &str, class: &str) -> String {
    format!("comp4_det_{split}_{class}.txt")
}

#[derive(Debug, thiserror::Error)]
pub enum Comp4Error {
    /// A line is malformed or names an image outside the split.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The file or folder as a whole is wrong (unknown class, not readable).
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] DataError),
}

impl Comp4Error {
    /// Whether the input is at fault (everything but a failed write).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Comp4Error::Data(e) => !e.is_bug(),
            _ => true,
        }
    }
}

/// What reading a folder found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comp4Summary {
    pub files: usize,
    pub detections: usize,
    /// Classes without a file (no detections).
    pub missing_classes: Vec<String>,
}

/// Reads `dir`'s comp4 files for `split` into `evaluator`, whose images must already be
/// added (ids are looked up there). Files are parsed in parallel, each line straight into
/// its class's compact list (48 bytes a detection, about a line's length), which the
/// evaluator then takes over whole: a folder costs about its size in memory, not a copy per
/// stage. Each class keeps its line order (which decides ties).
pub fn read_dir(
    dir: &Path,
    split: &str,
    evaluator: &mut VocEvaluator,
) -> Result<Comp4Summary, Comp4Error> {
    let files = class_files(dir, split, evaluator.classes())?;
    let parsed: Vec<Option<ClassDetections>> = files
        .par_iter()
        .map(|path| {
            path.as_ref()
                .map(|path| read_file(path, split, evaluator))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let mut summary = Comp4Summary::default();
    for (class, detections) in parsed.into_iter().enumerate() {
        let Some(detections) = detections else {
            summary
                .missing_classes
                .push(evaluator.classes()[class].clone());
            continue;
        };
        summary.files += 1;
        summary.detections += detections.len();
        evaluator
            .add_class_detections(class, detections)
            .expect("ids, classes and values were checked while parsing");
    }
    Ok(summary)
}

/// Each class's file in `dir`, if present; a `comp4_det_<split>_*.txt` file of no known
/// class is an error.
fn class_files(
    dir: &Path,
    split: &str,
    classes: &[String],
) -> Result<Vec<Option<PathBuf>>, Comp4Error> {
    let listing = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let prefix = format!("comp4_det_{split}_");
    let mut files = vec![None; classes.len()];
    for entry in listing {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        let Some(class) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".txt"))
        else {
            continue;
        };
        match classes.iter().position(|c| c == class) {
            Some(index) => files[index] = Some(entry.path()),
            None => {
                return Err(Comp4Error::File {
                    path: entry.path(),
                    message: format!(
                        "\"{}\" is not a class of this dataset (its classes: {})",
                        class.escape_debug(),
                        classes.join(", ")
                    ),
                })
            }
        }
    }
    Ok(files)
}

fn read_file(
    path: &Path,
    split: &str,
    evaluator: &VocEvaluator,
) -> Result<ClassDetections, Comp4Error> {
    let (file, _) = open_regular(path, MAX_COMP4_FILE_BYTES, "a comp4 detection file")?;
    let mut reader = BufReader::new(file.take(MAX_COMP4_FILE_BYTES + 1));
    let mut detections = ClassDetections::default();
    let mut line = Vec::new();
    let mut read = 0u64;
    for number in 1.. {
        line.clear();
        let n = (&mut reader)
            .take(MAX_COMP4_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        let bad = |message: String| Comp4Error::Line {
            path: path.to_path_buf(),
            line: number,
            message,
        };
        if read > MAX_COMP4_FILE_BYTES {
            return Err(bad(format!(
                "the file grew past {MAX_COMP4_FILE_BYTES} bytes while it was read"
            )));
        }
        if line.len() as u64 > MAX_COMP4_LINE_BYTES {
            return Err(bad(format!(
                "longer than {MAX_COMP4_LINE_BYTES} bytes (expected \"<id> <score> <xmin> <ymin> <xmax> <ymax>\")"
            )));
        }
        let text = std::str::from_utf8(&line).map_err(|_| bad("not UTF-8 text".into()))?;
        if text.trim().is_empty() {
            continue;
        }
        let (id, score, bbox) = parse_line(text).map_err(&bad)?;
        let image = evaluator.image_index(id).ok_or_else(|| {
            bad(format!(
                "image id \"{}\" is not in the \"{split}\" split",
                id.escape_debug()
            ))
        })?;
        detections.push(image, bbox, score);
    }
    detections.shrink_to_fit();
    Ok(detections)
}

/// One line: `<id> <score> <xmin> <ymin> <xmax> <ymax>`.
fn parse_line(text: &str) -> Result<(&str, f64, DevkitBox), String> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [id, score, xmin, ymin, xmax, ymax] = fields[..] else {
        return Err(format!(
            "{} fields where 6 were expected: \"<id> <score> <xmin> <ymin> <xmax> <ymax>\"",
            fields.len()
        ));
    };
    let number = |name: &str, text: &str| -> Result<f64, String> {
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(format!(
                "{name} is \"{}\", not a finite number",
                text.escape_debug()
            )),
            Err(_) => Err(format!(
                "{name} is \"{}\", not a number",
                text.escape_debug()
            )),
        }
    };
    let score = number("the score", score)?;
    let bbox = [
        number("xmin", xmin)?,
        number("ymin", ymin)?,
        number("xmax", xmax)?,
        number("ymax", ymax)?,
    ];
    // In 1-based inclusive coordinates a box one pixel wide has xmax = xmin; narrower than
    // nothing (xmax < xmin - 1) is a negative width in any convention, most likely
    // "x y w h" written where corners belong.
    if bbox[2] < bbox[0] - 1.0 || bbox[3] < bbox[1] - 1.0 {
        return Err(format!(
            "box ({}, {}, {}, {}) has a negative width or height (expected xmin ymin xmax ymax)",
            bbox[0], bbox[1], bbox[2], bbox[3]
        ));
    }
    Ok((id, score, bbox))
}

/// Writes one comp4 file per class into `dir` (each atomically; a class without detections
/// gets an empty file, as the devkit expects every class's file). `images` pairs each
/// image id with its detections.
pub fn write_dir(
    dir: &Path,
    split: &str,
    classes: &[String],
    images: &[(&str, &ImageDetections)],
) -> std::io::Result<()> {
    let mut texts = vec![String::new(); classes.len()];
    for (id, detections) in images {
        detections
            .check(classes.len())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        for ((bbox, &score), &class) in detections
            .boxes
            .iter()
            .zip(&detections.scores)
            .zip(&detections.classes)
        {
            let [x1, y1, x2, y2] = devkit_box(*bbox);
            // `{}` prints the shortest decimal that reads back as the same value.
            let _ = writeln!(texts[class], "{id} {score} {x1} {y1} {x2} {y2}");
        }
    }
    std::fs::create_dir_all(dir)?;
    for (class, text) in classes.iter().zip(&texts) {
        engine::atomic_write::write(&dir.join(file_name(split, class)), text.as_bytes())?;
    }
    Ok(())
}

/// A comp4 box back in this project's 0-based continuous coordinates, as f32 (what a model
/// gave before [`write_dir`]).
pub fn model_box(devkit: [f64; 4]) -> [f32; 4] {
    continuous_box(devkit).map(|v| v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_bad_ones_say_what_is_wrong() {
        let (id, score, bbox) = parse_line("000005 0.75 1 2.5 10 20\n").unwrap();
        assert_eq!(id, "000005");
        assert_eq!(bbox, [1.0, 2.5, 10.0, 20.0]);
        assert_eq!(score, 0.75);
        let err = |line: &str| parse_line(line).unwrap_err();
        assert!(err("000005 0.75 1 2 10").starts_with("5 fields where 6 were expected"));
        assert_eq!(
            err("000005 nan 1 2 10 20"),
            "the score is \"nan\", not a finite number"
        );
        assert_eq!(
            err("000005 0.5 1 2 inf 20"),
            "xmax is \"inf\", not a finite number"
        );
        assert_eq!(err("000005 0.5 1 2 x 20"), "xmax is \"x\", not a number");
        assert!(err("000005 0.5 10 10 5 20").contains("negative width or height"));
        // One pixel wide, and a sub-pixel box from a model (x2 - x1 = 0.5 in 0-based terms).
        assert!(parse_line("a 0.5 10 10 10 10").is_ok());
        assert!(parse_line("a 0.5 10.5 10 10 10").is_ok());
    }
}
