//! The datasets as they lie on disk (VOC, COCO, ADE20K, Fashion-MNIST, ImageNet folders), the
//! `KIND:PATH` spec that names one, and the records their readers hand on.

pub mod ade20k;
pub mod class_list;
pub mod coco;
pub mod fashion_mnist;
pub mod image_folder;
pub mod records;
pub mod spec;
pub mod voc;
