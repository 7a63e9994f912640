//! `cargo xtask <command>`: everything needed to set up, build, run and test the project on a
//! fresh machine, without Docker, a Cloudflare account or downloads outside the package registries.

mod bench;
mod build;
mod chaos;
mod command;
mod package;
mod plugin_host;
mod setup;
mod stack;
mod test;
mod tools;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup   install what is missing: wasm32 target, npm packages, worker-build, wasm-bindgen-cli
  build   build the bridge Worker (bridge-worker/build/) with the pinned tools
  dev     start the local stack and keep it up until Ctrl-C; writes target/local-stack.env
  demo    set up, build, start the local stack and a real Paperclip server, install the plugin
          and run one agent heartbeat in a sandbox (--keep: stay up afterwards until Ctrl-C;
          --no-host: drive the plugin alone, without the Paperclip server)
  package build the plugin's npm package (directory and tarball) with the optimised binary
  manifest  rewrite plugin/npm/dist/manifest.js from the binary's manifest
  bench   measure every performance target (DESIGN §10) and print pass/fail; writes
          target/bench/bench.json (`bench exec`: only round trips, DO calls and streaming;
          `bench sync`: only native file sync; `bench compare <dir> [rounds]`: the 64 MiB
          stream and the exec overhead of this work tree's Worker against the Worker build
          in <dir>, A/B in alternating rounds)
  chaos   the fault suite at full scale (container death, workerd restart, gone and slow
          clients, 64 leases x 8 concurrent commands, a misbehaving bridge under the plugin);
          prints what each case measured, writes target/chaos/chaos.json (`test` runs the same
          cases scaled down)
  test    setup, then fmt, clippy (native + wasm32), unit and end-to-end tests, deploy dry run
  ci      the same as test (what .ci/run runs)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["setup"] => setup::run(),
        ["build"] => build::run(),
        ["dev"] => stack::dev(),
        ["demo"] => setup::run().and_then(|()| stack::demo(false)),
        ["demo", "--keep"] => setup::run().and_then(|()| stack::demo(true)),
        ["demo", "--no-host"] => setup::run().and_then(|()| stack::demo_plugin_only()),
        ["package"] => package::run(),
        ["manifest"] => package::manifest(),
        ["bench", ..] if cfg!(debug_assertions) => bench::run_optimised(&args),
        ["bench"] => setup::run().and_then(|()| bench::run()),
        ["bench", "sync"] => setup::run().and_then(|()| bench::run_sync()),
        ["bench", "exec"] => setup::run().and_then(|()| bench::run_exec()),
        ["bench", "compare", baseline] => {
            setup::run().and_then(|()| bench::compare::run(&repo_path(baseline), None))
        }
        ["bench", "compare", baseline, rounds] => {
            setup::run().and_then(|()| bench::compare::run(&repo_path(baseline), Some(rounds)))
        }
        ["chaos"] => setup::run().and_then(|()| chaos::run()),
        ["test" | "ci"] => setup::run().and_then(|()| test::run()),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A path given on the command line: as it is when absolute, else from the repository root,
/// where `cargo xtask` runs the optimised bench.
fn repo_path(path: &str) -> std::path::PathBuf {
    tools::repo_root().join(path)
}
