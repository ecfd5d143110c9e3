//! `--config FILE`: a JSON object of option names and values, expanded into command-line options placed
//! before the typed ones, so typed options win.

/// Expand `--config FILE` (a JSON object of option names to values, e.g. {"batch": 64, "lr": 0.001, "no_flip": true})
/// into command-line options placed before the ones typed, so typed options win.
pub fn expand_config(args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(pos) = args
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    else {
        return Ok(args);
    };
    let (path, skip) = match args[pos].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (
            args.get(pos + 1).cloned().ok_or("--config needs a file")?,
            2,
        ),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| format!("{path}: not a JSON object of options ({e})"))?;
    let mut from_file = Vec::new();
    for (k, v) in obj {
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            serde_json::Value::Bool(true) => from_file.push(flag),
            serde_json::Value::Bool(false) | serde_json::Value::Null => {}
            serde_json::Value::String(s) => from_file.extend([flag, s]),
            serde_json::Value::Number(n) => from_file.extend([flag, n.to_string()]),
            other => {
                return Err(format!(
                    "{path}: option {k} has an unsupported value {other}"
                ))
            }
        }
    }
    // The file's options go before every typed option (right after the subcommands), so typed ones win.
    let rest: Vec<String> = args[..pos]
        .iter()
        .chain(&args[pos + skip..])
        .cloned()
        .collect();
    let first_option = rest
        .iter()
        .skip(1)
        .position(|a| a.starts_with('-'))
        .map_or(rest.len(), |i| i + 1);
    let mut out: Vec<String> = rest[..first_option].to_vec();
    out.extend(from_file);
    out.extend(rest[first_option..].iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn config_file_options_come_before_typed_ones() {
        let path = std::env::temp_dir().join(format!("beitlab-config-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"batch": 50, "lr": 0.004, "no_flip": true, "json": false}"#,
        )
        .unwrap();
        let args: Vec<String> = [
            "beitlab",
            "finetune",
            "--scratch",
            "--batch",
            "25",
            "--config",
            path.to_str().unwrap(),
            "--out",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = expand_config(args).unwrap();
        assert_eq!(
            out,
            [
                "beitlab",
                "finetune",
                "--batch",
                "50",
                "--lr",
                "0.004",
                "--no-flip",
                "--scratch",
                "--batch",
                "25",
                "--out",
                "x"
            ]
        );
        let cli = Cli::try_parse_from(&out).unwrap();
        match cli.command {
            Some(Command::Finetune(a)) => assert_eq!((a.batch, a.lr, a.no_flip), (25, 0.004, true)),
            _ => panic!("wrong command"),
        }
        std::fs::write(&path, "[1, 2]").unwrap();
        let bad = vec![
            "beitlab".to_string(),
            "finetune".into(),
            "--config".into(),
            path.to_str().unwrap().into(),
        ];
        assert!(expand_config(bad)
            .unwrap_err()
            .contains("not a JSON object"));
        std::fs::remove_file(path).ok();
    }
}
