//! Running `beitlab` as a user would: in a folder of its own, on a headless machine (XDG_RUNTIME_DIR unset),
//! with its exit status, standard output and standard error checked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_beitlab")
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty folder for one test.
pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("beitlab-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `program args...` in `dir`, as on a headless machine where XDG_RUNTIME_DIR is not set.
pub fn command(dir: &Path, program: &str, args: &[String]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(dir)
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    c
}

/// What a finished command printed.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

/// Describe a command line for messages.
fn line(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn collect(program: &str, args: &[String], out: Output) -> (bool, Ran) {
    let ran = Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("$ {}\n{}{}", line(program, args), ran.stdout, ran.stderr);
    (out.status.success(), ran)
}

/// Run `program args` in `dir`; it must succeed and print no line that reads as an error.
pub fn ok_program(dir: &Path, program: &str, args: &[String]) -> Ran {
    let out = command(dir, program, args).output().unwrap();
    let (success, ran) = collect(program, args, out);
    assert!(success, "`{}` failed:\n{}", line(program, args), ran.stderr);
    for l in ran.stdout.lines().chain(ran.stderr.lines()) {
        let lower = l.to_lowercase();
        assert!(
            !lower.starts_with("error") && !lower.contains("panicked"),
            "`{}` succeeded but printed an error line: {l}",
            line(program, args)
        );
    }
    ran
}

/// Run `beitlab args` in `dir`; it must succeed with no error lines.
pub fn ok(dir: &Path, args: &[&str]) -> Ran {
    ok_program(dir, binary(), &strings(args))
}

/// Run `beitlab args` in `dir`; it must fail with exit code 1 and one `error: ...` line, which is returned.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let args = strings(args);
    let out = command(dir, binary(), &args).output().unwrap();
    let code = out.status.code();
    let (_, ran) = collect(binary(), &args, out);
    assert_eq!(
        code,
        Some(1),
        "`{}` should have failed",
        line(binary(), &args)
    );
    let errors: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{}", ran.stderr);
    errors[0].to_string()
}

/// Start `beitlab args` in `dir` without waiting (output discarded).
pub fn spawn(dir: &Path, args: &[&str]) -> Child {
    command(dir, binary(), &strings(args))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A labelled image folder made from the built-in data: `per_class` 28 x 28 gray PNGs in each of `classes`
/// (built-in classes 0, 1, 2, ... under the given folder names).
pub fn image_folder(dir: &Path, classes: &[&str], per_class: usize, skip: usize) {
    use beitlab::data::dataset::{Dataset, Split};
    let data = Dataset::builtin(Split::Train, 1).unwrap();
    let labels = data.labels.as_ref().unwrap();
    for (c, name) in classes.iter().enumerate() {
        let class_dir = dir.join(name);
        std::fs::create_dir_all(&class_dir).unwrap();
        let picked = (0..data.len())
            .filter(|&i| labels[i] as usize == c)
            .skip(skip)
            .take(per_class);
        for (n, i) in picked.enumerate() {
            let img = &data.images[i];
            image::GrayImage::from_raw(img.width, img.height, img.data.clone())
                .unwrap()
                .save(class_dir.join(format!("{n:03}.png")))
                .unwrap();
        }
    }
}
