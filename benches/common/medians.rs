// Reading this run's medians back from criterion's results, for the
// ratio tables the suites print at the end: included (`include!`) by
// interrupt_suite.rs and async_suite.rs, which each `use` what it needs
// (`std::path::PathBuf`, `std::time::SystemTime`).

/// Where criterion wrote its results: its own rule ($CRITERION_HOME, else
/// $CARGO_TARGET_DIR/criterion, else the target directory), the last found
/// from this executable's path (`<target>/release/deps/<bench>`).
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.ancestors().nth(3)?.join("criterion"))
}

/// A row's median, in ns, if this run measured it: criterion's
/// `estimates.json`, written after `since`.
fn median_ns(dir: &std::path::Path, group: &str, row: &str, since: SystemTime) -> Option<f64> {
    // criterion's make_filename_safe, for the names used here.
    let safe = |s: &str| s.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    let path = dir
        .join(safe(group))
        .join(safe(row))
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json = std::fs::read_to_string(path).ok()?;
    let median = &json[json.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn show_ns(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
