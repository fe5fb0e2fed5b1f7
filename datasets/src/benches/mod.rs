//! Loader throughput (`datasets bench` and the classification loader's bench): images per
//! second through decoding, augmentation and collation.

pub mod classification;
pub mod transfer;
