//! Data: masking (and, to come, datasets and augmentation).

pub mod masking;
