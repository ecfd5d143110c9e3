//! `beitlab bench train --profile` and `--profile-grids` as a user types them: the per-kernel table, and the
//! same launches split by launch grid (each row naming its grid); `beitlab bench kernels` with its adapter
//! probes and, on the software driver, each product's share of the multiply-add probe.
//! `beitlab bench segment`: a pyramid-head step as JSON and profiled (its convolutions as products here).

use super::helpers::{ok, tempdir};

/// The profile's rows (after its header line) from `bench train` output: (kernel, launches).
fn profile_rows(stdout: &str) -> Vec<(String, usize)> {
    stdout
        .lines()
        .skip_while(|l| {
            l.split_whitespace().collect::<Vec<_>>() != ["kernel", "launches", "ms/step", "share"]
        })
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert!(cols.len() >= 4, "not a profile row: {l}");
            let launches = cols[cols.len() - 3].parse().unwrap();
            (cols[..cols.len() - 3].join(" "), launches)
        })
        .collect()
}

/// The `N dispatches per step` of the summary line.
fn dispatches(stdout: &str) -> usize {
    let before = stdout.split(" dispatches per step").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_step_profile_sums_per_kernel_and_per_kernel_and_grid() {
    let dir = tempdir("bench-profile");
    let args = [
        "bench", "train", "--preset", "micro", "--batch", "2", "--steps", "1",
    ];
    let by_kernel = ok(&dir, &[&args[..], &["--profile"]].concat()).stdout;
    let by_grid = ok(&dir, &[&args[..], &["--profile-grids"]].concat()).stdout;
    let (kernels, grids) = (profile_rows(&by_kernel), profile_rows(&by_grid));
    for (out, rows) in [(&by_kernel, &kernels), (&by_grid, &grids)] {
        let launches: usize = rows.iter().map(|(_, n)| n).sum();
        assert_eq!(launches, dispatches(out), "{out}");
    }
    assert!(kernels.iter().all(|(k, _)| !k.contains('[')), "{by_kernel}");
    assert!(
        grids
            .iter()
            .all(|(k, _)| k.contains(" [") && k.ends_with(']')),
        "{by_grid}"
    );
    assert!(grids.len() > kernels.len(), "{by_grid}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The `bench kernels` table row whose kernel column is `kernel`, split into columns.
fn kernel_row<'a>(stdout: &'a str, kernel: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find(|l| l.get(7..).is_some_and(|rest| rest.starts_with(kernel)))
        .unwrap_or_else(|| panic!("no {kernel} row in:\n{stdout}"));
    line.split_whitespace().collect()
}

#[test]
fn bench_kernels_prints_the_probes_and_shares_of_the_multiply_add_probe() {
    let dir = tempdir("bench-kernels");
    let out = ok(
        &dir,
        &[
            "bench",
            "kernels",
            "--preset",
            "tiny",
            "--batch",
            "1",
            "--seconds",
            "0.001",
        ],
    )
    .stdout;
    let probe = kernel_row(&out, "probe multiply-add");
    let gflops: f64 = probe[probe.len() - 3].parse().unwrap();
    assert!(gflops > 0.0, "{out}");
    for reads in ["probe read f32", "probe read vec4"] {
        let row = kernel_row(&out, reads);
        let gbps: f64 = row[row.len() - 1].parse().unwrap();
        assert!(gbps > 0.0, "{out}");
    }
    // The test driver is a software adapter: the table's peak is the probe's own rate.
    assert!(
        out.contains("of peak: against the multiply-add probe"),
        "{out}"
    );
    assert_eq!(probe[probe.len() - 1], "100.0%", "{out}");
    let qkv = kernel_row(&out, "linear_forward qkv");
    let (qkv_gflops, share): (f64, f64) = (
        qkv[qkv.len() - 3].parse().unwrap(),
        qkv[qkv.len() - 1].trim_end_matches('%').parse().unwrap(),
    );
    let expected = 100.0 * qkv_gflops / gflops;
    assert!(
        (share - expected).abs() <= 0.1 + 0.01 * expected,
        "{share} against {expected}: {out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_segment_times_a_pyramid_step_and_profiles_its_convolutions_as_products() {
    let dir = tempdir("bench-segment");
    let args = [
        "bench",
        "segment",
        "--preset",
        "micro",
        "--image-size",
        "28",
        "--head",
        "pyramid",
        "--batch",
        "2",
        "--steps",
        "1",
    ];
    let json = ok(&dir, &[&args[..], &["--json"]].concat()).stdout;
    let r: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(r["head"], "pyramid", "{r}");
    assert_eq!(r["classes"], 11, "{r}");
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["gpu_buffer_mib"].as_f64().unwrap() > 0.0, "{r}");
    let profiled = ok(&dir, &[&args[..], &["--profile"]].concat()).stdout;
    let rows = profile_rows(&profiled);
    let launches: usize = rows.iter().map(|(_, n)| n).sum();
    assert_eq!(launches, dispatches(&profiled), "{profiled}");
    assert_eq!(
        launches as u64,
        r["dispatches_per_step"].as_u64().unwrap(),
        "{profiled}"
    );
    // The software driver runs the head's convolutions as columns times weights.
    assert!(
        rows.iter()
            .any(|(k, _)| k.starts_with("conv_columns::image_to_columns")),
        "{profiled}"
    );
    assert!(!rows.iter().any(|(k, _)| k == "conv::conv2d"), "{profiled}");
    // A usage error: clap's exit status 2, naming the choices.
    let out = super::helpers::command(
        &dir,
        super::helpers::binary(),
        &super::helpers::strings(&["bench", "segment", "--head", "upernet"]),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown head `upernet`: linear or pyramid"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
