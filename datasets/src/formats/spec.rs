//! Dataset specs, `KIND:PATH`, as every command takes them (`--data SPEC`).

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSpec {
    /// `voc:ROOT`: a VOCdevkit folder (every VOC20xx in it that has the split) or one
    /// VOC20xx folder. `voc:A+B` combines folders explicitly (e.g. `VOC2007+VOC2012`
    /// given as paths).
    Voc { roots: Vec<PathBuf> },
    /// `ade20k:ROOT`: an ADEChallengeData2016 folder.
    Ade20k { root: PathBuf },
    /// `coco:ANNOTATIONS.json[:IMAGES]`.
    Coco {
        annotations: PathBuf,
        images: Option<PathBuf>,
    },
    /// `fashion-mnist:DIR`: a folder with the four IDX files (`{train,t10k}-*-ubyte.gz`).
    FashionMnist { dir: PathBuf },
    /// `imagenet:ROOT`: `ROOT/train/<class>/*` and `ROOT/val/<class>/*` (JPEG or PNG).
    ImageNet { root: PathBuf },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("dataset spec \"{0}\" has no KIND: prefix (expected voc:ROOT, ade20k:ROOT, coco:ANNOTATIONS.json[:IMAGES], fashion-mnist:DIR or imagenet:ROOT)")]
    MissingKind(String),
    #[error("dataset spec \"{spec}\": unknown kind \"{kind}\" (expected voc, ade20k, coco, fashion-mnist or imagenet)")]
    UnknownKind { spec: String, kind: String },
    #[error("dataset spec \"{0}\" has an empty path")]
    EmptyPath(String),
}

impl DatasetSpec {
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| SpecError::MissingKind(spec.to_string()))?;
        if rest.is_empty() {
            return Err(SpecError::EmptyPath(spec.to_string()));
        }
        match kind {
            "voc" => Ok(DatasetSpec::Voc {
                roots: rest.split('+').map(PathBuf::from).collect(),
            }),
            "ade20k" => Ok(DatasetSpec::Ade20k {
                root: PathBuf::from(rest),
            }),
            "coco" => {
                // The image folder follows the last ':' after ".json" (paths may hold ':').
                let (annotations, images) = match rest.rfind(".json:") {
                    Some(at) => (&rest[..at + 5], Some(PathBuf::from(&rest[at + 6..]))),
                    None => (rest, None),
                };
                Ok(DatasetSpec::Coco {
                    annotations: PathBuf::from(annotations),
                    images,
                })
            }
            "fashion-mnist" => Ok(DatasetSpec::FashionMnist {
                dir: PathBuf::from(rest),
            }),
            "imagenet" => Ok(DatasetSpec::ImageNet {
                root: PathBuf::from(rest),
            }),
            other => Err(SpecError::UnknownKind {
                spec: spec.to_string(),
                kind: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Voc { roots } => {
                let joined: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                write!(f, "voc:{}", joined.join("+"))
            }
            DatasetSpec::Ade20k { root } => write!(f, "ade20k:{}", root.display()),
            DatasetSpec::Coco {
                annotations,
                images,
            } => {
                write!(f, "coco:{}", annotations.display())?;
                match images {
                    Some(images) => write!(f, ":{}", images.display()),
                    None => Ok(()),
                }
            }
            DatasetSpec::FashionMnist { dir } => write!(f, "fashion-mnist:{}", dir.display()),
            DatasetSpec::ImageNet { root } => write!(f, "imagenet:{}", root.display()),
        }
    }
}

impl std::str::FromStr for DatasetSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        DatasetSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            DatasetSpec::parse("voc:data/VOCdevkit").unwrap(),
            DatasetSpec::Voc {
                roots: vec!["data/VOCdevkit".into()]
            }
        );
        assert_eq!(
            DatasetSpec::parse("voc:d/VOC2007+d/VOC2012").unwrap(),
            DatasetSpec::Voc {
                roots: vec!["d/VOC2007".into(), "d/VOC2012".into()]
            }
        );
        assert_eq!(
            DatasetSpec::parse("coco:a/instances_val.json:imgs").unwrap(),
            DatasetSpec::Coco {
                annotations: "a/instances_val.json".into(),
                images: Some("imgs".into())
            }
        );
        assert_eq!(
            DatasetSpec::parse("coco:a/instances_val.json")
                .unwrap()
                .to_string(),
            "coco:a/instances_val.json"
        );
        assert_eq!(
            DatasetSpec::parse("ade20k:x").unwrap(),
            DatasetSpec::Ade20k { root: "x".into() }
        );
        let fashion =
            DatasetSpec::parse("fashion-mnist:/usr/share/datasets/fashion-mnist").unwrap();
        assert_eq!(
            fashion,
            DatasetSpec::FashionMnist {
                dir: "/usr/share/datasets/fashion-mnist".into()
            }
        );
        assert_eq!(
            fashion.to_string(),
            "fashion-mnist:/usr/share/datasets/fashion-mnist"
        );
        assert_eq!(
            DatasetSpec::parse("imagenet:/data/imagenet").unwrap(),
            DatasetSpec::ImageNet {
                root: "/data/imagenet".into()
            }
        );
    }

    #[test]
    fn errors_say_what_is_expected() {
        assert_eq!(
            DatasetSpec::parse("foo:x").unwrap_err().to_string(),
            "dataset spec \"foo:x\": unknown kind \"foo\" (expected voc, ade20k, coco, fashion-mnist or imagenet)"
        );
        assert!(matches!(
            DatasetSpec::parse("data").unwrap_err(),
            SpecError::MissingKind(_)
        ));
    }
}
