//! Writes scenes in the three layouts; see design.md's `datasets synth`.

use super::scene::{Scene, SceneObject, FIRST_ITEM_LABEL, SCENE_IGNORE};
use super::{SynthConfig, SynthSplit};
use crate::error::{DataError, Result};
use crate::formats::class_list;
use crate::formats::records::IGNORE_LABEL;
use crate::formats::voc::annotation_xml;
use crate::input::label_png::{encode_mask, MaskEncoding};
use std::path::{Path, PathBuf};

/// The file that marks a folder as written by this generator (and so safe to replace).
const MARKER: &str = "synth.json";

/// What the per-split files need to know about a written scene.
pub struct WrittenScene {
    pub number: usize,
    pub objects: Vec<SceneObject>,
    /// COCO annotations' compressed RLE strings, one per object.
    pub rle: Vec<String>,
    pub size: usize,
}

pub struct Layout {
    out: PathBuf,
    voc: PathBuf,
    ade: PathBuf,
    coco: PathBuf,
    class_names: Vec<String>,
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| DataError::io(path, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| DataError::io(path, e))
}

/// The same JPEG in three folders: a hard link where the file system allows, else a copy.
/// (The folders are new: `Layout::create` removed any earlier output.)
fn link_or_copy(from: &Path, to: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        write(to, bytes)?;
    }
    Ok(())
}

impl Layout {
    /// Creates the folders; an earlier synthetic dataset there is replaced, anything else
    /// in the way is refused.
    pub fn create(out: &Path, class_names: &[&str]) -> Result<Self> {
        let voc = out.join("VOCdevkit").join("VOC2007");
        let ade = out.join("ADEChallengeData2016");
        let coco = out.join("coco");
        let ours = out.join(MARKER).is_file();
        for top in [out.join("VOCdevkit"), ade.clone(), coco.clone()] {
            if top.exists() {
                if !ours {
                    return Err(DataError::invalid(
                        &top,
                        format!("already exists and was not written by `datasets synth` (no {MARKER} beside it); choose another --out"),
                    ));
                }
                std::fs::remove_dir_all(&top).map_err(|e| DataError::io(&top, e))?;
            }
        }
        for dir in [
            "JPEGImages",
            "Annotations",
            "SegmentationClass",
            "ImageSets/Main",
            "ImageSets/Segmentation",
        ] {
            create_dir(&voc.join(dir))?;
        }
        for split in ["training", "validation"] {
            create_dir(&ade.join("images").join(split))?;
            create_dir(&ade.join("annotations").join(split))?;
        }
        create_dir(&coco.join("annotations"))?;
        for split in SynthSplit::ALL {
            create_dir(&coco.join("images").join(split.name()))?;
        }
        class_list::write(&voc, class_names)?;
        let mut with_background = vec!["background"];
        with_background.extend_from_slice(class_names);
        class_list::write(&ade, &with_background)?;
        Ok(Layout {
            out: out.to_path_buf(),
            voc,
            ade,
            coco,
            class_names: class_names.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn voc_id(number: usize) -> String {
        format!("{number:06}")
    }

    /// ADE20K's own naming; the test split has no ADE20K copy (the benchmark has none).
    fn ade_stem(split: SynthSplit, index: usize) -> Option<String> {
        match split {
            SynthSplit::Train => Some(format!("ADE_train_{:08}", index + 1)),
            SynthSplit::Val => Some(format!("ADE_val_{:08}", index + 1)),
            SynthSplit::Test => None,
        }
    }

    fn ade_folder(split: SynthSplit) -> &'static str {
        match split {
            SynthSplit::Train => "training",
            _ => "validation",
        }
    }

    pub fn write_scene(
        &self,
        config: &SynthConfig,
        split: SynthSplit,
        index: usize,
        scene: &Scene,
    ) -> Result<WrittenScene> {
        let number = config.scene_number(split, index);
        let id = Self::voc_id(number);
        let size = scene.size;

        let jpeg_path = self.voc.join("JPEGImages").join(format!("{id}.jpg"));
        let jpeg = encode_jpeg(&scene.rgb, size, config.jpeg_quality)
            .map_err(|e| DataError::invalid(&jpeg_path, format!("cannot encode JPEG ({e})")))?;
        write(&jpeg_path, &jpeg)?;

        let objects: Vec<(String, [u32; 4], bool)> = scene
            .objects
            .iter()
            .map(|o| {
                let [x0, y0, x1, y1] = o.bounds;
                // 0-based inclusive pixels -> continuous [x0, x1 + 1], written 1-based.
                (
                    self.class_names[o.class].clone(),
                    [x0, y0, x1 + 1, y1 + 1],
                    o.difficult,
                )
            })
            .collect();
        let xml = annotation_xml(
            "VOC2007",
            &format!("{id}.jpg"),
            size as u32,
            size as u32,
            &objects,
        );
        write(
            &self.voc.join("Annotations").join(format!("{id}.xml")),
            xml.as_bytes(),
        )?;

        let voc_mask: Vec<u8> = scene
            .labels
            .iter()
            .map(|&l| {
                if l == SCENE_IGNORE {
                    IGNORE_LABEL
                } else {
                    l - 1
                }
            })
            .collect();
        let mask_path = self.voc.join("SegmentationClass").join(format!("{id}.png"));
        let png = encode_mask(&voc_mask, size, size, MaskEncoding::VocPalette)
            .map_err(|e| DataError::invalid(&mask_path, format!("cannot encode PNG ({e})")))?;
        write(&mask_path, &png)?;

        if let Some(stem) = Self::ade_stem(split, index) {
            let folder = Self::ade_folder(split);
            link_or_copy(
                &jpeg_path,
                &self
                    .ade
                    .join("images")
                    .join(folder)
                    .join(format!("{stem}.jpg")),
                &jpeg,
            )?;
            let path = self
                .ade
                .join("annotations")
                .join(folder)
                .join(format!("{stem}.png"));
            let png = encode_mask(&scene.labels, size, size, MaskEncoding::Grayscale)
                .map_err(|e| DataError::invalid(&path, format!("cannot encode PNG ({e})")))?;
            write(&path, &png)?;
        }
        link_or_copy(
            &jpeg_path,
            &self
                .coco
                .join("images")
                .join(split.name())
                .join(format!("{id}.jpg")),
            &jpeg,
        )?;

        let rle = scene
            .objects
            .iter()
            .map(|o| coco_rle(&scene.instances, size, o.instance))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                DataError::invalid(&jpeg_path, format!("cannot encode an RLE mask ({e})"))
            })?;
        Ok(WrittenScene {
            number,
            objects: scene.objects.clone(),
            rle,
            size,
        })
    }

    /// The split lists (VOC), and the split's COCO JSON.
    pub fn write_split_files(&self, split: SynthSplit, scenes: &[WrittenScene]) -> Result<()> {
        let mut list = String::with_capacity(scenes.len() * 7);
        for s in scenes {
            list.push_str(&Self::voc_id(s.number));
            list.push('\n');
        }
        for task in ["Main", "Segmentation"] {
            let path = self
                .voc
                .join("ImageSets")
                .join(task)
                .join(format!("{}.txt", split.name()));
            write(&path, list.as_bytes())?;
        }
        self.write_class_lists(split.name(), scenes)?;
        self.write_coco(split, scenes)
    }

    /// VOC's per-class lists, `<class>_<split>.txt`: each id with 1 (the class is present),
    /// 0 (present, only as difficult objects) or -1 (absent), as the devkit writes them.
    fn write_class_lists(&self, split: &str, scenes: &[WrittenScene]) -> Result<()> {
        for (class, name) in self.class_names.iter().enumerate() {
            let mut list = String::with_capacity(scenes.len() * 10);
            for s in scenes {
                let of_class = s.objects.iter().filter(|o| o.class == class);
                let flag = match (of_class.clone().any(|o| !o.difficult), of_class.count() > 0) {
                    (true, _) => " 1",
                    (false, true) => " 0",
                    (false, false) => "-1",
                };
                list.push_str(&Self::voc_id(s.number));
                list.push(' ');
                list.push_str(flag);
                list.push('\n');
            }
            let path = self
                .voc
                .join("ImageSets/Main")
                .join(format!("{name}_{split}.txt"));
            write(&path, list.as_bytes())?;
        }
        Ok(())
    }

    fn write_coco(&self, split: SynthSplit, scenes: &[WrittenScene]) -> Result<()> {
        use serde_json::json;
        let mut images = Vec::with_capacity(scenes.len());
        let mut annotations = Vec::new();
        for s in scenes {
            images.push(json!({
                "id": s.number,
                "file_name": format!("{}.jpg", Self::voc_id(s.number)),
                "width": s.size,
                "height": s.size,
            }));
            for (o, rle) in s.objects.iter().zip(&s.rle) {
                let [x0, y0, x1, y1] = o.bounds;
                annotations.push(json!({
                    "id": annotations.len() + 1,
                    "image_id": s.number,
                    "category_id": o.class + 1,
                    "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                    "area": o.visible_pixels,
                    "iscrowd": 0,
                    "segmentation": {"size": [s.size, s.size], "counts": rle},
                }));
            }
        }
        let categories: Vec<_> = self
            .class_names
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"id": i + 1, "name": name, "supercategory": "item"}))
            .collect();
        let doc = json!({
            "info": {"description": "Fashion scenes (datasets synth)", "version": "1.0"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        });
        let path = self
            .coco
            .join("annotations")
            .join(format!("instances_{}.json", split.name()));
        let text =
            serde_json::to_vec(&doc).map_err(|e| DataError::invalid(&path, e.to_string()))?;
        write(&path, &text)
    }

    /// VOC's trainval list and the marker with the parameters.
    pub fn finish(&self, config: &SynthConfig) -> Result<()> {
        let main_lists = self
            .class_names
            .iter()
            .map(|c| ("Main", format!("{c}_")))
            .chain([("Main", String::new()), ("Segmentation", String::new())]);
        for (task, prefix) in main_lists {
            let dir = self.voc.join("ImageSets").join(task);
            let mut trainval = Vec::new();
            for split in ["train", "val"] {
                let path = dir.join(format!("{prefix}{split}.txt"));
                trainval.extend(std::fs::read(&path).map_err(|e| DataError::io(&path, e))?);
            }
            write(&dir.join(format!("{prefix}trainval.txt")), &trainval)?;
        }
        let marker = serde_json::json!({
            "generator": "datasets synth",
            "train": config.train,
            "val": config.val,
            "test": config.test,
            "size": config.size,
            "seed": config.seed,
            "classes": self.class_names,
        });
        write(
            &self.out.join(MARKER),
            serde_json::to_string_pretty(&marker)
                .unwrap_or_default()
                .as_bytes(),
        )
    }
}

/// `jpeg-encoder` (SIMD) rather than `image`'s encoder: JPEG encoding is most of the cost of
/// a scene, and this one takes about half the time. Its 4:2:0 default matches libjpeg's.
fn encode_jpeg(
    rgb: &[u8],
    size: usize,
    quality: u8,
) -> std::result::Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let mut out = Vec::with_capacity(size * size / 2);
    jpeg_encoder::Encoder::new(&mut out, quality).encode(
        rgb,
        size as u16,
        size as u16,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

/// COCO's compressed RLE of one instance's visible pixels (column-major, as COCO counts).
fn coco_rle(instances: &[u8], size: usize, instance: u8) -> hotcoco::error::Result<String> {
    let mut column_major = vec![0u8; size * size];
    for (i, &v) in instances.iter().enumerate() {
        if v == instance {
            let (x, y) = (i % size, i / size);
            column_major[x * size + y] = 1;
        }
    }
    let rle = hotcoco::mask::encode(&column_major, size as u32, size as u32)?;
    Ok(hotcoco::mask::rle_to_string(&rle))
}

// The VOC mask is the scene label minus one: item labels must follow background directly.
const _: () = assert!(FIRST_ITEM_LABEL == 2);
