//! Reading untrusted files: opened only if they are regular files within their size bound,
//! names from list files checked before they become paths, and decoded into pixels, label
//! values or arrays only after their headers have been checked against the limits.

pub mod dataset_id;
pub mod file;
pub mod idx;
pub mod image_header;
pub mod image_io;
pub mod label_png;
pub mod limits;
