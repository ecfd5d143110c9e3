//! Every command in the README's `sh` blocks, run as typed but shortened (fewer steps, masks, repetitions),
//! in order in one folder (later commands use what earlier ones wrote). Commands that open a window or a
//! browser are covered by scripts/app_screenshot.sh and web/test.sh; the test command is this run itself.

use super::helpers::{image_folder, ok_program, repo, tempdir};

/// Options whose value is shortened, and the value used.
const SHORTER: [(&str, &str); 9] = [
    ("--steps", "3"),
    ("--pretrain-steps", "3"),
    ("--finetune-steps", "3"),
    ("--tokenizer-steps", "2"),
    ("--epochs", "1"),
    ("--count", "50"),
    ("--seconds", "0.01"),
    ("--probe-images", "64"),
    // Two seeds still run the several-seed path (OUT/seed-S, mean ± std).
    ("--seeds", "2"),
];

/// The README's shell commands: `sh` code blocks, continuation lines joined, comments dropped, `&&` chains
/// split.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for raw in text.lines() {
        if raw.trim_start().starts_with("```") {
            in_block = !in_block && raw.trim() == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let code = raw.split(" #").next().unwrap_or("").trim();
        if code.starts_with('#') || code.is_empty() {
            continue;
        }
        pending.push_str(code.trim_end_matches('\\'));
        pending.push(' ');
        if !code.ends_with('\\') {
            commands.extend(
                pending
                    .split("&&")
                    .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")),
            );
            pending.clear();
        }
    }
    commands
}

/// A README command as it is run here: (program, arguments), or None for the ones covered elsewhere.
fn as_run(command: &str) -> Option<(String, Vec<String>)> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let (program, mut args): (String, Vec<String>) = match words.as_slice() {
        ["cargo", "run", "--release", "--", rest @ ..] => (
            super::helpers::binary().to_string(),
            rest.iter().map(|s| s.to_string()).collect(),
        ),
        // The app's window (scripts/app_screenshot.sh), the browser (web/test.sh), the tests themselves.
        ["cargo", "run", "--release"] | ["web/build.sh", ..] | ["scripts/test.sh", ..] => return None,
        // The converter needs torch, the `dall-e` package and OpenAI's pickles; it writes the package's tensors
        // as safetensors, the format of the committed fixture weights (which it was checked to reproduce), so the
        // fixture's stand in for its output and the commands after it run on them.
        ["python", "tools/dalle_to_safetensors.py", rest @ ..] => {
            let i = rest.iter().position(|a| *a == "--out-dir").expect("--out-dir");
            let out = std::path::Path::new(rest[i + 1]);
            return Some(("dalle-fixture".to_string(), vec![out.display().to_string()]));
        }
        ["scripts/quickstart.sh", rest @ ..] => (
            repo().join("scripts/quickstart.sh").display().to_string(),
            rest.iter().map(|s| s.to_string()).collect(),
        ),
        _ => panic!("the README command `{command}` is not covered by this test: run it here or say where it is tested"),
    };
    if program.ends_with("quickstart.sh") && !args.iter().any(|a| a == "--steps") {
        args.extend(["--steps".to_string(), "3".to_string()]);
    }
    for (option, value) in SHORTER {
        if let Some(i) = args.iter().position(|a| a == option) {
            args[i + 1] = value.to_string();
        }
    }
    Some((program, args))
}

#[test]
fn every_readme_command_runs_as_typed() {
    let dir = tempdir("readme");
    // The README's forward example reads the committed fixtures; its own-data examples read my-images/.
    std::os::unix::fs::symlink(repo().join("tests"), dir.join("tests")).unwrap();
    image_folder(
        &dir.join("my-images"),
        &["shirt", "trouser", "ankle boot"],
        20,
        0,
    );
    let commands = readme_commands();
    assert!(commands.len() >= 10, "README commands found: {commands:?}");
    let mut ran = 0;
    for c in &commands {
        let Some((program, args)) = as_run(c) else {
            continue;
        };
        if program == "dalle-fixture" {
            let out = dir.join(&args[0]);
            std::fs::create_dir_all(&out).unwrap();
            let fx = repo().join("tests/fixtures/dalle/rgb");
            for (from, to) in [
                ("encoder.safetensors", "dalle_encoder.safetensors"),
                ("decoder.safetensors", "dalle_decoder.safetensors"),
            ] {
                std::fs::copy(fx.join(from), out.join(to)).unwrap();
            }
            ran += 1;
            continue;
        }
        let out = if program.ends_with("quickstart.sh") {
            // The script builds beitlab unless told which binary to use; the tests already built it.
            let mut cmd = super::helpers::command(&dir, &program, &args);
            cmd.env("BEITLAB_BIN", super::helpers::binary());
            let o = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            eprintln!("$ {c}\n{stdout}{stderr}");
            assert!(o.status.success(), "`{c}` failed: {stderr}");
            assert!(
                !stderr
                    .lines()
                    .chain(stdout.lines())
                    .any(|l| l.starts_with("error")),
                "`{c}` printed an error line"
            );
            assert!(
                stdout.contains("top-1 accuracy"),
                "`{c}` did not report accuracy"
            );
            stdout
        } else {
            ok_program(&dir, &program, &args).stdout
        };
        assert!(!out.is_empty(), "`{c}` printed nothing");
        // Every file or folder the command was told to write exists.
        for flag in ["--out", "--output", "--runs"] {
            if let Some(i) = args.iter().position(|a| a == flag) {
                let p = dir.join(&args[i + 1]);
                assert!(p.exists(), "`{c}` did not write {}", p.display());
            }
        }
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} README commands ran");
}
