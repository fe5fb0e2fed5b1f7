//! Pascal VOC in its official layout: `VOCdevkit/VOC20xx/{JPEGImages, Annotations,
//! ImageSets/{Main,Segmentation}, SegmentationClass}`.
//!
//! A VOC root is a VOC20xx folder, a VOCdevkit folder, or the folder the VOC tars were
//! unpacked in (holding `VOCdevkit/`). Several years combine into one dataset (the paper
//! trains on VOC2007+2012 trainval): under a VOCdevkit, every VOC20xx folder that has the
//! split's list is used, except for `test`, which is VOC2007's alone (VOC07 test).
//! Annotations are parsed when an entry is read, as torchvision does, so opening is cheap;
//! opening only checks that every listed image has its annotation file, since a folder
//! without them (the VOC2012 test tar's) must be refused, not mixed in.

use crate::error::{DataError, Result};
use crate::formats::class_list;
use crate::formats::records::{DetectionRecord, GroundTruthBox, LabelMap, IGNORE_LABEL};
use crate::input::dataset_id::check_plain_id;
use crate::input::file::read_text_bounded;
use crate::input::label_png::{read_mask, RawMask};
use crate::input::limits::MAX_TEXT_FILE_BYTES;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The 20 VOC classes in their standard order (the devkit's, torchvision's and GluonCV's).
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// Which of VOC's tasks a split list belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocTask {
    /// `ImageSets/Main/<split>.txt`, boxes from `Annotations/`.
    Detection,
    /// `ImageSets/Segmentation/<split>.txt`, masks from `SegmentationClass/`.
    Segmentation,
}

impl VocTask {
    fn list_dir(self) -> &'static str {
        match self {
            VocTask::Detection => "Main",
            VocTask::Segmentation => "Segmentation",
        }
    }
}

/// One image of a (possibly combined) VOC dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct VocEntry {
    /// The VOC20xx folder it belongs to.
    pub year_dir: PathBuf,
    pub id: String,
    /// The list file and line (1-based) that named it, for error messages.
    pub list_file: PathBuf,
    pub line: usize,
}

impl VocEntry {
    pub fn image_path(&self) -> PathBuf {
        self.year_dir
            .join("JPEGImages")
            .join(format!("{}.jpg", self.id))
    }

    pub fn annotation_path(&self) -> PathBuf {
        self.year_dir
            .join("Annotations")
            .join(format!("{}.xml", self.id))
    }

    pub fn mask_path(&self) -> PathBuf {
        self.year_dir
            .join("SegmentationClass")
            .join(format!("{}.png", self.id))
    }

    /// Refuses ids that would leave the dataset folder (the error names the list file).
    pub fn check_id(&self) -> Result<()> {
        match check_plain_id(&self.id) {
            Some(why) => Err(DataError::invalid(
                &self.list_file,
                format!("line {}: {why}", self.line),
            )),
            None => Ok(()),
        }
    }
}

/// A parsed annotation file, values as written (1-based inclusive pixel boxes).
#[derive(Clone, Debug, PartialEq)]
pub struct VocAnnotation {
    pub filename: Option<String>,
    pub width: u32,
    pub height: u32,
    pub objects: Vec<VocObject>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VocObject {
    pub name: String,
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
    pub difficult: bool,
    pub truncated: bool,
}

/// A VOC split, from one or several VOC20xx folders.
#[derive(Clone, Debug)]
pub struct VocDataset {
    classes: Vec<String>,
    entries: Vec<VocEntry>,
    task: VocTask,
}

/// The year folder whose test split has annotations: VOC07 test, the set every VOC07
/// protocol (the paper's Table 8, GluonCV's `VOCDetection(splits=[(2007, 'test')])`)
/// evaluates on. VOC2008-2012 test annotations were never released: the VOC2012 test tar
/// unpacks a `test.txt` into `VOC2012/` whose images have no annotations.
pub const TEST_YEAR: &str = "VOC2007";

/// Whether `dir` is one VOC20xx folder (it has images or split lists).
fn is_year_dir(dir: &Path) -> bool {
    dir.join("JPEGImages").is_dir() || dir.join("ImageSets").is_dir()
}

/// The `VOC*` year folders directly in `dir`, in name order.
fn year_subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut dirs: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        // The official devkit also holds VOCcode/, results/ and local/: a year folder is one
        // with images or split lists.
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("VOC"))
                && is_year_dir(p)
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The VOC20xx folders a VOC root stands for. The root may be one VOC20xx folder (it has
/// `JPEGImages` or `ImageSets`), a VOCdevkit folder (its VOC20xx folders, in name order),
/// or the folder the VOC tars were unpacked in (it holds `VOCdevkit/`).
pub fn year_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    if is_year_dir(root) {
        return Ok(vec![root.to_path_buf()]);
    }
    let dirs = year_subdirs(root)?;
    if !dirs.is_empty() {
        return Ok(dirs);
    }
    let devkit = root.join("VOCdevkit");
    if devkit.is_dir() {
        let dirs = year_subdirs(&devkit)?;
        if !dirs.is_empty() {
            return Ok(dirs);
        }
    }
    Err(DataError::invalid(
        root,
        "is not a VOC root: it is no VOC20xx folder (no JPEGImages), and neither it nor a VOCdevkit folder in it holds VOC20xx folders",
    ))
}

/// Whether split `split` of `task` has a list file in this VOC20xx folder.
pub fn has_split_list(year_dir: &Path, split: &str, task: VocTask) -> bool {
    split_list_path(year_dir, task, split).is_file()
}

/// The VOC20xx folders split `split` of `task` is read from, for one root. A VOC20xx folder
/// given as the root is used as it is. Under a VOCdevkit folder, `test` is VOC2007's alone
/// ([`TEST_YEAR`]), and any other split comes from every year folder that lists it (the
/// paper trains on VOC2007+2012 trainval).
pub fn split_year_dirs(root: &Path, split: &str, task: VocTask) -> Result<Vec<PathBuf>> {
    let dirs = year_dirs(root)?;
    if is_year_dir(root) {
        if !has_split_list(root, split, task) {
            return Err(missing_split_error(root, split, task));
        }
        return Ok(dirs);
    }
    if split == "test" {
        let test_year: Vec<PathBuf> = dirs
            .iter()
            .filter(|d| d.file_name().is_some_and(|n| n == TEST_YEAR))
            .cloned()
            .collect();
        return match test_year.as_slice() {
            [] => Err(DataError::invalid(
                root,
                format!(
                    "has no {TEST_YEAR} folder: the test split is {TEST_YEAR}'s (VOC07 test; the other years' test annotations were never released)"
                ),
            )),
            [voc2007, ..] if !has_split_list(voc2007, split, task) => {
                Err(missing_split_error(voc2007, split, task))
            }
            _ => Ok(test_year),
        };
    }
    let with_split: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| has_split_list(d, split, task))
        .cloned()
        .collect();
    if with_split.is_empty() {
        return Err(missing_split_error(&dirs[0], split, task));
    }
    Ok(with_split)
}

/// The error for a split without a list file in `year_dir`, naming the file expected.
pub fn missing_split_error(year_dir: &Path, split: &str, task: VocTask) -> DataError {
    DataError::invalid(
        split_list_path(year_dir, task, split),
        format!("no \"{split}\" split: this list file does not exist"),
    )
}

/// [`split_year_dirs`] of each root, in order (`voc:A+B`).
pub fn split_year_dirs_of_roots(
    roots: &[PathBuf],
    split: &str,
    task: VocTask,
) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for root in roots {
        dirs.extend(split_year_dirs(root, split, task)?);
    }
    Ok(dirs)
}

impl VocDataset {
    /// Opens split `split` (`train`, `val`, `trainval`, `test`) of a VOC root: the VOC20xx
    /// folders [`split_year_dirs`] picks.
    pub fn open(root: &Path, split: &str, task: VocTask) -> Result<Self> {
        Self::open_roots(std::slice::from_ref(&root.to_path_buf()), split, task)
    }

    /// Opens split `split` of several roots combined in order (`voc:A+B`).
    pub fn open_roots(roots: &[PathBuf], split: &str, task: VocTask) -> Result<Self> {
        Self::open_years(&split_year_dirs_of_roots(roots, split, task)?, split, task)
    }

    /// Opens split `split` of exactly these VOC20xx folders, in this order. An id listed
    /// twice in a list file is an error (it would be trained on twice as often), and so is a
    /// folder whose list names images without annotations (see
    /// [`Self::open_years_reporting_problems`]).
    pub fn open_years(year_dirs: &[PathBuf], split: &str, task: VocTask) -> Result<Self> {
        let (dataset, mut problems) = Self::open_years_reporting_problems(year_dirs, split, task)?;
        match problems.is_empty() {
            true => Ok(dataset),
            false => Err(problems.swap_remove(0)),
        }
    }

    /// As [`Self::open_years`], but problems are reported rather than fatal, so that
    /// `check` can go on and list every one: an id listed twice is kept once (its first
    /// line); a folder whose list names images without an annotation file is one problem
    /// (naming the folder and how many are missing; the first problem of that folder) and
    /// those images are left out. Never are some of a split's images silently dropped or a
    /// folder without annotations mixed in: the loaders refuse on any of these.
    pub fn open_years_reporting_problems(
        year_dirs: &[PathBuf],
        split: &str,
        task: VocTask,
    ) -> Result<(Self, Vec<DataError>)> {
        let mut classes: Option<(Vec<String>, PathBuf)> = None;
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for dir in year_dirs {
            let dir_classes = class_list::read_optional(dir)?
                .unwrap_or_else(|| VOC_CLASSES.iter().map(|s| s.to_string()).collect());
            match &classes {
                Some((known, first)) if *known != dir_classes => {
                    return Err(DataError::invalid(
                        dir,
                        format!(
                            "its classes differ from those of {}, so the two cannot be combined",
                            first.display()
                        ),
                    ))
                }
                Some(_) => {}
                None => classes = Some((dir_classes, dir.clone())),
            }
            let list_file = split_list_path(dir, task, split);
            let (listed, listed_twice) = read_split_list(&list_file, dir)?;
            let (annotated, missing) = annotated_entries(listed, task);
            problems.extend(missing_annotations_problem(
                dir,
                &list_file,
                &missing,
                annotated.len(),
                task,
            ));
            entries.extend(annotated);
            problems.extend(listed_twice);
        }
        let (classes, _) = classes
            .ok_or_else(|| DataError::invalid(Path::new("voc"), "no VOC20xx folder given"))?;
        let dataset = VocDataset {
            classes,
            entries,
            task,
        };
        Ok((dataset, problems))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn task(&self) -> VocTask {
        self.task
    }

    /// The object classes (no background), in label order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The segmentation classes: background, then the object classes (VOC mask values).
    pub fn segmentation_classes(&self) -> Vec<String> {
        std::iter::once("background".to_string())
            .chain(self.classes.iter().cloned())
            .collect()
    }

    pub fn entries(&self) -> &[VocEntry] {
        &self.entries
    }

    /// Keeps the first `n` entries of the list (quick runs: `data.max_*_samples`, `--max-samples`).
    pub fn truncate(&mut self, n: usize) {
        self.entries.truncate(n);
    }

    /// Parses entry `index`'s annotation file.
    pub fn read_annotation(&self, index: usize) -> Result<VocAnnotation> {
        let entry = &self.entries[index];
        entry.check_id()?;
        let path = entry.annotation_path();
        let text = read_text_bounded(&path, MAX_TEXT_FILE_BYTES, "a VOC XML annotation")?;
        parse_annotation(&text, &path)
    }

    /// Entry `index` with its boxes in this crate's convention, every object checked (the
    /// first bad object is the error).
    pub fn detection_record(&self, index: usize) -> Result<DetectionRecord> {
        let (record, mut problems) = self.detection_record_with_problems(index)?;
        match problems.is_empty() {
            true => Ok(record),
            false => Err(problems.swap_remove(0)),
        }
    }

    /// Entry `index` with its good objects, and a problem for each bad one (for `check`,
    /// which lists them all). The error is for an annotation that cannot be read at all.
    pub fn detection_record_with_problems(
        &self,
        index: usize,
    ) -> Result<(DetectionRecord, Vec<DataError>)> {
        let entry = &self.entries[index];
        let annotation = self.read_annotation(index)?;
        let path = entry.annotation_path();
        let mut objects = Vec::with_capacity(annotation.objects.len());
        let mut problems = Vec::new();
        for (i, object) in annotation.objects.iter().enumerate() {
            match to_ground_truth(object, i + 1, &self.classes, &annotation) {
                Ok(gt) => objects.push(gt),
                Err(message) => problems.push(DataError::invalid(&path, message)),
            }
        }
        let record = DetectionRecord {
            id: entry.id.clone(),
            image_path: entry.image_path(),
            width: annotation.width,
            height: annotation.height,
            objects,
        };
        Ok((record, problems))
    }

    /// Entry `index`'s class mask: VOC values are train ids already (0 background,
    /// 1..=K classes, 255 boundary), so they are only checked.
    pub fn read_label_map(&self, index: usize) -> Result<LabelMap> {
        let entry = &self.entries[index];
        entry.check_id()?;
        let path = entry.mask_path();
        let RawMask {
            width,
            height,
            values,
        } = read_mask(&path)?;
        let last_class = self.classes.len();
        if let Some(at) = values
            .iter()
            .position(|&v| v as usize > last_class && v != IGNORE_LABEL)
        {
            return Err(DataError::invalid(
                &path,
                format!(
                    "value {} at pixel ({}, {}) is neither a class (0..={last_class}) nor 255 (boundary)",
                    values[at],
                    at % width,
                    at / width
                ),
            ));
        }
        Ok(LabelMap {
            width,
            height,
            labels: values,
        })
    }
}

/// Splits listed entries into those with their annotation file (the XML for detection, the
/// mask for segmentation) and those without. An id that would leave the folder counts as
/// annotated here: reading it names that problem with its line.
fn annotated_entries(listed: Vec<VocEntry>, task: VocTask) -> (Vec<VocEntry>, Vec<VocEntry>) {
    listed
        .into_iter()
        .partition(|entry| entry.check_id().is_err() || annotation_file(entry, task).is_file())
}

fn annotation_file(entry: &VocEntry, task: VocTask) -> PathBuf {
    match task {
        VocTask::Detection => entry.annotation_path(),
        VocTask::Segmentation => entry.mask_path(),
    }
}

/// One problem for a year folder whose split list names images without annotations, with
/// how many and the first one.
fn missing_annotations_problem(
    year_dir: &Path,
    list_file: &Path,
    missing: &[VocEntry],
    annotated: usize,
    task: VocTask,
) -> Option<DataError> {
    let first = missing.first()?;
    let list = list_file.strip_prefix(year_dir).unwrap_or(list_file);
    let first_file = annotation_file(first, task);
    let first_file = first_file.strip_prefix(year_dir).unwrap_or(&first_file);
    Some(DataError::invalid(
        year_dir,
        format!(
            "{} of the {} images listed in {} have no annotation file (the first: {}), so this split cannot be read from this folder",
            missing.len(),
            missing.len() + annotated,
            list.display(),
            first_file.display()
        ),
    ))
}

fn split_list_path(year_dir: &Path, task: VocTask, split: &str) -> PathBuf {
    year_dir
        .join("ImageSets")
        .join(task.list_dir())
        .join(format!("{split}.txt"))
}

/// Reads a split list: the first word of each non-empty line is an id. An id listed again
/// is left out and reported (as the second value).
fn read_split_list(list_file: &Path, year_dir: &Path) -> Result<(Vec<VocEntry>, Vec<DataError>)> {
    let text = read_text_bounded(list_file, MAX_TEXT_FILE_BYTES, "a VOC split list")?;
    let mut first_line = HashMap::new();
    let mut entries = Vec::new();
    let mut duplicates = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(id) = line.split_whitespace().next() else {
            continue;
        };
        let line = i + 1;
        if let Some(&first) = first_line.get(id) {
            duplicates.push(DataError::invalid(
                list_file,
                format!(
                    "line {line}: id \"{}\" is listed twice (first on line {first})",
                    id.escape_debug()
                ),
            ));
            continue;
        }
        first_line.insert(id, line);
        entries.push(VocEntry {
            year_dir: year_dir.to_path_buf(),
            id: id.to_string(),
            list_file: list_file.to_path_buf(),
            line,
        });
    }
    Ok((entries, duplicates))
}

/// Parses an annotation file's text; `path` only names it in errors.
pub fn parse_annotation(text: &str, path: &Path) -> Result<VocAnnotation> {
    let invalid = |message: String| DataError::invalid(path, message);
    let doc =
        roxmltree::Document::parse(text).map_err(|e| invalid(format!("malformed XML ({e})")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "annotation" {
        return Err(invalid(format!(
            "the root element is <{}>, not <annotation>",
            root.tag_name().name()
        )));
    }
    let size = child(root, "size").ok_or_else(|| invalid("missing <size>".into()))?;
    let width = number(size, "size", "width").map_err(&invalid)?;
    let height = number(size, "size", "height").map_err(&invalid)?;
    let whole_pixels = |v: f64| (1.0..=u32::MAX as f64).contains(&v) && v.fract() == 0.0;
    if !whole_pixels(width) || !whole_pixels(height) {
        return Err(invalid(format!(
            "<size> gives {width}x{height}, not a positive whole number of pixels"
        )));
    }
    let mut objects = Vec::new();
    for (i, object) in root
        .children()
        .filter(|n| n.has_tag_name("object"))
        .enumerate()
    {
        objects.push(parse_object(object, i + 1).map_err(&invalid)?);
    }
    Ok(VocAnnotation {
        filename: child_text(root, "filename").map(str::to_string),
        width: width as u32,
        height: height as u32,
        objects,
    })
}

fn parse_object(
    object: roxmltree::Node,
    number_in_file: usize,
) -> std::result::Result<VocObject, String> {
    let context = |message: String| format!("object {number_in_file}: {message}");
    let name = child_text(object, "name")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| context("missing <name>".into()))?;
    let bndbox = child(object, "bndbox").ok_or_else(|| context("missing <bndbox>".into()))?;
    let coordinate = |tag: &str| number(bndbox, "bndbox", tag).map_err(context);
    Ok(VocObject {
        xmin: coordinate("xmin")?,
        ymin: coordinate("ymin")?,
        xmax: coordinate("xmax")?,
        ymax: coordinate("ymax")?,
        difficult: flag(object, "difficult").map_err(context)?,
        truncated: flag(object, "truncated").map_err(context)?,
        name,
    })
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(tag))
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
    child(node, tag).and_then(|n| n.text())
}

fn number(node: roxmltree::Node, parent: &str, tag: &str) -> std::result::Result<f64, String> {
    let text = child_text(node, tag)
        .map(str::trim)
        .ok_or_else(|| format!("missing <{parent}>/<{tag}>"))?;
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("<{parent}>/<{tag}> is \"{text}\", not a number"))
}

/// VOC's 0/1 flags; absent means 0 (some VOC2012 objects have no `<difficult>`).
fn flag(node: roxmltree::Node, tag: &str) -> std::result::Result<bool, String> {
    match child_text(node, tag).map(str::trim) {
        None | Some("") | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(format!("<{tag}> is \"{other}\", not 0 or 1")),
    }
}

/// Checks one object against the class list and the image size, and converts its 1-based
/// inclusive box to 0-based continuous coordinates.
fn to_ground_truth(
    object: &VocObject,
    number_in_file: usize,
    classes: &[String],
    annotation: &VocAnnotation,
) -> std::result::Result<GroundTruthBox, String> {
    let class = classes
        .iter()
        .position(|c| *c == object.name)
        .ok_or_else(|| {
            format!(
                "object {number_in_file}: unknown class \"{}\" (not one of the {} classes)",
                object.name,
                classes.len()
            )
        })?;
    let VocObject {
        xmin,
        ymin,
        xmax,
        ymax,
        ..
    } = *object;
    let described = format!(
        "object {number_in_file} ({}): box ({xmin}, {ymin}, {xmax}, {ymax})",
        object.name
    );
    if xmax < xmin || ymax < ymin {
        return Err(format!("{described} is empty (max below min)"));
    }
    let (w, h) = (annotation.width as f64, annotation.height as f64);
    if xmin < 1.0 || ymin < 1.0 || xmax > w || ymax > h {
        return Err(format!(
            "{described} lies outside the {}x{} image (VOC boxes are 1-based: 1..={} x 1..={})",
            annotation.width, annotation.height, annotation.width, annotation.height
        ));
    }
    Ok(GroundTruthBox {
        bbox: [
            (xmin - 1.0) as f32,
            (ymin - 1.0) as f32,
            xmax as f32,
            ymax as f32,
        ],
        class,
        difficult: object.difficult,
        truncated: object.truncated,
        crowd: false,
    })
}

/// Writes one annotation file in VOC's layout (what the devkit and torchvision read).
/// Boxes are 0-based continuous and become 1-based inclusive: `[x1 + 1, x2]`.
pub fn annotation_xml(
    folder: &str,
    filename: &str,
    width: u32,
    height: u32,
    objects: &[(String, [u32; 4], bool)],
) -> String {
    use std::fmt::Write;
    let mut xml = String::with_capacity(256 + objects.len() * 256);
    let _ = write!(
        xml,
        "<annotation>\n\t<folder>{folder}</folder>\n\t<filename>{filename}</filename>\n\t<source>\n\t\t<database>Fashion scenes</database>\n\t</source>\n\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>1</segmented>\n"
    );
    for (name, [x1, y1, x2, y2], difficult) in objects {
        let _ = write!(
            xml,
            "\t<object>\n\t\t<name>{}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n\t\t<difficult>{}</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{}</xmin>\n\t\t\t<ymin>{}</ymin>\n\t\t\t<xmax>{x2}</xmax>\n\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>\n",
            xml_escape(name),
            u8::from(*difficult),
            x1 + 1,
            y1 + 1,
        );
    }
    xml.push_str("</annotation>\n");
    xml
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<annotation><size><width>500</width><height>375</height></size>\
        <object><name>dog</name><difficult>1</difficult>\
        <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>500</xmax><ymax>375</ymax></bndbox></object>\
        </annotation>";

    #[test]
    fn boxes_become_zero_based_continuous() {
        let annotation = parse_annotation(XML, Path::new("a.xml")).unwrap();
        let classes: Vec<String> = VOC_CLASSES.iter().map(|s| s.to_string()).collect();
        let gt = to_ground_truth(&annotation.objects[0], 1, &classes, &annotation).unwrap();
        assert_eq!(gt.bbox, [0.0, 1.0, 500.0, 375.0]);
        assert_eq!(gt.class, 11);
        assert!(gt.difficult);
    }

    #[test]
    fn written_xml_reads_back() {
        let xml = annotation_xml(
            "VOC2007",
            "1.jpg",
            10,
            8,
            &[("cat".into(), [0, 1, 10, 8], false)],
        );
        let a = parse_annotation(&xml, Path::new("a.xml")).unwrap();
        assert_eq!((a.width, a.height), (10, 8));
        assert_eq!(
            (
                a.objects[0].xmin,
                a.objects[0].ymin,
                a.objects[0].xmax,
                a.objects[0].ymax
            ),
            (1.0, 2.0, 10.0, 8.0)
        );
    }

    #[test]
    fn cut_xml_is_malformed() {
        let err = parse_annotation(&XML[..60], Path::new("a.xml")).unwrap_err();
        assert!(
            err.to_string().starts_with("a.xml: malformed XML ("),
            "{err}"
        );
    }
}
