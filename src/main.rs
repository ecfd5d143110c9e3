//! The `beitlab` binary: parse the command line, hand it to the library.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use clap::Parser;
    let cli = beitlab::cli::Cli::parse();
    std::process::exit(beitlab::cli::run(cli));
}

#[cfg(target_arch = "wasm32")]
fn main() {}
