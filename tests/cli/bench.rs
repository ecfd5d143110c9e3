//! `beitlab bench train --profile` and `--profile-grids` as a user types them: the per-kernel table, and the
//! same launches split by launch grid (each row naming its grid).

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
