//! What the fault cases share with `cargo xtask chaos`: the scale they run at and where their
//! numbers go.

use std::io::Write as _;

/// Set by `cargo xtask chaos` for the full-scale cases; `cargo test` runs them scaled down.
pub const FULL_SCALE_VAR: &str = "PCB_CHAOS_FULL";
/// Set by `cargo xtask chaos`: the file (JSON lines) the cases append their numbers to.
pub const REPORT_VAR: &str = "PCB_CHAOS_REPORT";

/// Whether the cases run at full scale.
pub fn full_scale() -> bool {
    std::env::var_os(FULL_SCALE_VAR).is_some()
}

/// Records a measurement of a fault case: printed, and appended to the report when one is asked
/// for.
pub fn report(case: &str, metric: &str, value: f64) {
    println!("chaos: {case}: {metric} = {value:.1}");
    if let Some(path) = std::env::var_os(REPORT_VAR) {
        let line = serde_json::json!({"case": case, "metric": metric, "value": value});
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"));
        appended.expect("the chaos report is writable");
    }
}
