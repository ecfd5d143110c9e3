//! Kernel benchmark (filled below).
