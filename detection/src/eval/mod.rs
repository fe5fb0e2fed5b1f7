//! Detection evaluation: VOC AP by the devkit's rules (`voc`, `ap`), official comp4 result
//! files (`comp4`), COCO mAP through hotcoco and COCO results JSON (`coco`), and the report
//! a command prints (`report`).

pub mod ap;
pub mod voc;
