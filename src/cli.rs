//! The command line (placeholder filled below).
