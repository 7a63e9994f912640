//! Host conformance: the real Paperclip worker manager (`@paperclipai/server` 2026.916.1, run by
//! the pinned Node 24) loads the packaged plugin through its worker shim and checks every item of
//! the protocol's conformance checklist against the local stack.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bridge_tests::harness::plugin_package::{assemble, workspace_binary};
use bridge_tests::harness::{LocalStack, ProcessGroup, StackOptions, conformance};

/// Upper bound for the whole script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn the_real_worker_manager_drives_the_packaged_plugin() {
    let work_dir = tempfile::Builder::new()
        .prefix("host-conformance-")
        .tempdir()
        .expect("temporary directory");
    let package = assemble(
        &work_dir.path().join("package"),
        env!("CARGO_BIN_EXE_paperclip-cloudflare-bridge").as_ref(),
    )
    .expect("package assembled");
    let local_sandbox = workspace_binary("bridge-tests", "local-sandbox").expect("local-sandbox");
    let mut stack = LocalStack::start(&StackOptions::new(
        local_sandbox,
        work_dir.path().join("stack"),
    ))
    .unwrap_or_else(|error| panic!("{error}"));
    let output_path = work_dir.path().join("conformance.out");
    let output = std::fs::File::create(&output_path).expect("output file");
    let mut command = conformance::command(&stack, &package, 0).expect("conformance script");
    command
        .env("PAPERCLIP_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("output file"))
        .stderr(output);
    let mut script = ProcessGroup::spawn("host conformance script", command).expect("node starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = script.exit_status().expect("waitable") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    script.stop(Duration::from_secs(5));
    let mut text = String::new();
    std::fs::File::open(&output_path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .expect("output readable");
    let summary = text
        .lines()
        .find_map(|line| line.strip_prefix("CONFORMANCE_RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no result (status {status:?}):\n{text}\n{}",
                stack.bridge_log()
            )
        });
    let summary: serde_json::Value = serde_json::from_str(summary).expect("result JSON");
    let failures: Vec<String> = summary["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|result| result["ok"] != true)
        .map(|result| {
            format!(
                "{}: {}",
                result["name"],
                result["error"].as_str().unwrap_or_default()
            )
        })
        .collect();
    eprintln!("conformance measurements: {}", summary["measurements"]);
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n{}\n\nscript output:\n{text}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        status.is_some_and(|status| status.success()),
        "script status {status:?}"
    );
    assert!(
        summary["results"].as_array().map_or(0, Vec::len) >= 20,
        "checks went missing: {summary}"
    );
    stack.stop();
}
