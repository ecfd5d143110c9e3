//! The `beitlab` binary: parse the command line, hand it to the library.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use clap::Parser;
    give_headless_machines_a_runtime_dir();
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

/// On a headless Linux machine XDG_RUNTIME_DIR is often unset, and the Vulkan loader's window-system probing
/// then prints "error: XDG_RUNTIME_DIR is invalid or not set" although nothing failed. Point an unset or empty one at a private
/// folder of our own (no display socket is there, so the probe fails quietly); a set value is left alone.
#[cfg(not(target_arch = "wasm32"))]
fn give_headless_machines_a_runtime_dir() {
    if !cfg!(target_os = "linux")
        || std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| !v.is_empty())
    {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("beitlab-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // Only a folder of our own, closed to others, will do.
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0 => {}
            _ => return,
        }
        // Single-threaded here: nothing else reads the environment yet.
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

/// In the browser: start the app on the page's canvas (see `web/index.html`).
#[cfg(target_arch = "wasm32")]
fn main() {
    beitlab::app::web::start();
}
