//! The `beitlab` binary: parse the command line, hand it to the library.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use clap::Parser;
    let args = match beitlab::cli::expand_config(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cli = beitlab::cli::Cli::parse_from(args);
    std::process::exit(beitlab::cli::run(cli));
}

/// In the browser: start the app on the page's canvas (see `web/index.html`).
#[cfg(target_arch = "wasm32")]
fn main() {
    beitlab::app::web::start();
}
