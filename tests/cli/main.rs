//! End-to-end tests of the `beitlab` binary as a user types it: every command block of the README (shortened
//! with --steps), the quick-start script, and one's own labelled image folder through pretraining,
//! fine-tuning, evaluation, a resume after SIGKILL and loading the result in the app. Each runs the real
//! binary in a temporary folder and checks its exit status, its output and the files it wrote.

mod bench;
mod dalle;
mod experiment;
mod faults;
mod fused_tuned;
mod helpers;
mod own_data;
mod precision;
mod readme;
mod record;
mod segment;
