//! Data: datasets, augmentation and BEiT masking.

pub mod augment;
pub mod dataset;
pub mod masking;
pub mod segmentation;
