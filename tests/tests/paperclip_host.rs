//! The real Paperclip host end to end: a `paperclipai` server installs the packaged plugin from
//! its local path and drives it, through its own HTTP API, exactly as an operator's board does —
//! probes, the adapter's environment test, and whole heartbeat runs of a fake Codex agent
//! against the bridge on the local stack.
//!
//! One server, one local stack and one plugin install serve every scenario (a cold server takes
//! seconds to initialise its database), so this binary has its own `main`: it starts them on the
//! main thread, runs each scenario as a task (a panic fails that scenario only), stops everything
//! and checks that no process outlived it. Arguments that are not flags select scenarios by
//! substring, as libtest's filters do.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_tests::harness::plugin_package::{assemble, workspace_binary};
use bridge_tests::local_sandbox::{SANDBOX_ID_VAR, processes_with_cmdline, processes_with_env};
use bridge_tests::paperclip::deployment::{PLUGIN_KEY, PROVIDER};
use bridge_tests::paperclip::{Deployment, FakeAgent, HeartbeatRun};

use bridge_protocol::api::LEASE_ENV_VAR;
use bridge_protocol::api::{
    AcquireLeaseRequest, ExecRequest, ExecResult, ExecutionStatus, LeaseDetails, LeaseResponse,
    ReleaseLeaseRequest, ResumeLeaseRequest, TerminationReceipt,
};
use bridge_protocol::routes::Route;
use serde_json::json;

#[path = "paperclip_host/native_sync.rs"]
mod native_sync;

/// Longest a heartbeat run of the fake agent may take.
const RUN_LIMIT: Duration = Duration::from_secs(120);

type Scenario = fn(Arc<Deployment>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every scenario, by name.
const SCENARIOS: [(&str, Scenario); 8] = [
    ("the_plugin_installs_and_every_probe_passes", |d| {
        Box::pin(the_plugin_installs_and_every_probe_passes(d))
    }),
    ("a_heartbeat_run_succeeds_and_its_output_is_live", |d| {
        Box::pin(a_heartbeat_run_succeeds_and_its_output_is_live(d))
    }),
    ("two_runs_on_two_environments_at_once_do_not_cross", |d| {
        Box::pin(two_runs_on_two_environments_at_once_do_not_cross(d))
    }),
    ("a_reusable_environment_resumes_its_sandbox", |d| {
        Box::pin(a_reusable_environment_resumes_its_sandbox(d))
    }),
    ("an_agent_that_exits_non_zero_fails_its_run", |d| {
        Box::pin(an_agent_that_exits_non_zero_fails_its_run(d))
    }),
    ("stopping_a_run_leaves_nothing_running", |d| {
        Box::pin(stopping_a_run_leaves_nothing_running(d))
    }),
    (
        "stopping_a_run_in_its_start_up_cancels_its_active_work",
        |d| Box::pin(stopping_a_run_in_its_start_up_cancels_its_active_work(d)),
    ),
    ("a_large_git_workspace_syncs_natively_both_ways", |d| {
        Box::pin(native_sync::a_large_git_workspace_syncs_natively_both_ways(
            d,
        ))
    }),
];

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let selected: Vec<_> = SCENARIOS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!(
        "\nrunning {} scenarios against a real Paperclip server",
        selected.len()
    );
    if selected.is_empty() {
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let package_root = tempfile::Builder::new()
        .prefix("paperclip-e2e-package-")
        .tempdir()
        .expect("temporary directory");
    let plugin = workspace_binary(
        "paperclip-cloudflare-bridge-plugin",
        "paperclip-cloudflare-bridge",
    )
    .expect("plugin binary");
    let package = assemble(&package_root.path().join("package"), &plugin).expect("package");
    let started = Instant::now();
    let deployment = match Deployment::start(
        env!("CARGO_BIN_EXE_local-sandbox").as_ref(),
        &package,
        &runtime,
    ) {
        Ok(deployment) => Arc::new(deployment),
        Err(error) => {
            eprintln!("the deployment did not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "deployment ready in {:.1} s: server {}, bridge {}",
        started.elapsed().as_secs_f64(),
        deployment.server().url(),
        deployment.stack().bridge_url()
    );
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, scenario) in selected {
        let started = Instant::now();
        let outcome = runtime.block_on(runtime.spawn(scenario(Arc::clone(&deployment))));
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({seconds:.1} s)");
            }
            Err(_) => {
                println!("test {name} ... FAILED ({seconds:.1} s)");
                failed.push(*name);
            }
        }
    }
    let instance = deployment.server().home().display().to_string();
    let package_dir = package.display().to_string();
    match Arc::try_unwrap(deployment) {
        Ok(deployment) => {
            let leaked = deployment.stop();
            if !leaked.is_empty() {
                println!("sandbox processes outlived the stack: {leaked:?}");
                failed.push("no sandbox process outlives the stack");
            }
        }
        Err(_) => failed.push("a scenario kept the deployment"),
    }
    for needle in [&instance, &package_dir] {
        let survivors = processes_with_cmdline(needle);
        if !survivors.is_empty() {
            println!("processes of {needle} outlived the server: {survivors:?}");
            failed.push("no server, database or plugin process outlives the run");
        }
    }
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed");
        ExitCode::SUCCESS
    } else {
        println!("\ntest result: FAILED. {passed} passed; failures: {failed:?}");
        ExitCode::FAILURE
    }
}

/// The host's whole set-up path: install (done by the deployment), the driver's capabilities,
/// an unsaved and a saved probe, and the `codex_local` adapter's environment test (3 executes).
async fn the_plugin_installs_and_every_probe_passes(deployment: Arc<Deployment>) {
    let api = deployment.api();
    let company = deployment.company();
    assert_eq!(deployment.plugin().status, "ready");
    assert_eq!(deployment.plugin().plugin_key, PLUGIN_KEY);

    let unsaved = api
        .probe_config(company, PROVIDER, &deployment.bridge_config(&json!({})))
        .await
        .expect("unsaved probe");
    assert!(unsaved.ok, "unsaved probe: {unsaved:?}");
    assert!(
        unsaved.summary.contains("ran pwd in /workspace/paperclip"),
        "{}",
        unsaved.summary
    );

    let environment = deployment
        .create_environment("probes", &json!({}))
        .await
        .expect("environment");
    let saved = api
        .probe_environment(company, &environment)
        .await
        .expect("saved probe");
    assert!(saved.ok, "saved probe: {saved:?}");
    let lease = saved.details["providerLeaseId"]
        .as_str()
        .unwrap_or_default();
    assert!(lease.starts_with("pc-"), "saved probe: {saved:?}");

    let test = api
        .test_codex_adapter(company, &environment, "sh")
        .await
        .expect("adapter test");
    assert_eq!(test.status, "pass", "{test:?}");
    let checks: BTreeSet<&str> = test
        .checks
        .iter()
        .map(|check| check.code.as_str())
        .collect();
    for expected in ["codex_cwd_valid", "codex_command_resolvable"] {
        assert!(checks.contains(expected), "missing {expected}: {test:?}");
    }
    let resolvable = test
        .checks
        .iter()
        .find(|check| check.code == "codex_command_resolvable")
        .map(|check| check.message.as_str());
    assert_eq!(resolvable, Some("Command is executable: sh"));
}

/// A full heartbeat run: the host syncs the workspace, starts its callback bridge in the
/// background, runs the agent and polls the bridge; it must end `succeeded` with the agent's
/// message, and the agent's output must reach the run's log while the agent still works.
async fn a_heartbeat_run_succeeds_and_its_output_is_live(deployment: Arc<Deployment>) {
    let (_, agent) = environment_with_agent(
        &deployment,
        "heartbeat",
        "Live agent",
        &FakeAgent {
            message: Some("live run done".into()),
            work_seconds: 3,
            ..FakeAgent::default()
        },
    )
    .await;
    let requests_before = deployment.bridge_requests().len();
    let run_id = deployment
        .api()
        .invoke_heartbeat(&agent)
        .await
        .expect("invoke");
    let mut seen_while_running = None;
    let run = deployment
        .follow_run(&run_id, RUN_LIMIT, |entry, state| {
            if entry.chunk.contains("fake agent at work") && !state.is_final() {
                seen_while_running.get_or_insert_with(Instant::now);
            }
        })
        .await
        .expect("the run ends");
    let finished = Instant::now();
    assert_succeeded(&run, "live run done");
    let seen = seen_while_running.expect("the agent's output appeared in the log while it ran");
    assert!(
        finished - seen >= Duration::from_secs(2),
        "the output appeared only {:?} before the run ended",
        finished - seen
    );
    println!(
        "    one heartbeat run made {} bridge requests",
        deployment.bridge_requests().len() - requests_before
    );
}

/// Two agents on two environments run at the same time; each result carries only its own
/// agent's message, and each run had a sandbox of its own.
async fn two_runs_on_two_environments_at_once_do_not_cross(deployment: Arc<Deployment>) {
    let mut agents = Vec::new();
    for name in ["alpha", "bravo"] {
        let (environment, agent) = environment_with_agent(
            &deployment,
            &format!("concurrent-{name}"),
            &format!("Agent {name}"),
            &FakeAgent {
                message: Some(format!("message from {name}")),
                work_seconds: 2,
                ..FakeAgent::default()
            },
        )
        .await;
        agents.push((name, environment, agent));
    }
    let mut runs = Vec::new();
    for (_, _, agent) in &agents {
        runs.push(
            deployment
                .api()
                .invoke_heartbeat(agent)
                .await
                .expect("invoke"),
        );
    }
    let (first, second) = tokio::join!(
        deployment.follow_run(&runs[0], RUN_LIMIT, |_, _| {}),
        deployment.follow_run(&runs[1], RUN_LIMIT, |_, _| {}),
    );
    let results = [first.expect("run alpha"), second.expect("run bravo")];
    let mut leases = Vec::new();
    for ((name, environment, _), run) in agents.iter().zip(&results) {
        assert_succeeded(run, &format!("message from {name}"));
        let other = if *name == "alpha" { "bravo" } else { "alpha" };
        assert!(
            !run.summary().unwrap_or_default().contains(other),
            "{name}'s result mentions {other}: {run:?}"
        );
        let lease = deployment
            .api()
            .leases(environment)
            .await
            .expect("leases")
            .into_iter()
            .find(|lease| lease.heartbeat_run_id.as_deref() == Some(run.id.as_str()))
            .and_then(|lease| lease.provider_lease_id)
            .expect("the run's lease");
        leases.push(lease);
    }
    assert_ne!(leases[0], leases[1], "both runs used one sandbox");
}

/// `reusableLeases` as the host uses it: runs of one issue share an execution workspace, on an
/// environment with `reuseLease` and `keepAlive`. Run 2 resumes run 1's sandbox (the host calls
/// `environmentResumeLease` with run 1's provider lease, and the agent finds what run 1 left); a
/// sandbox wiped behind the host's back makes the resume report the lease gone, and the host
/// destroys it, acquires a fresh one, and the run still succeeds.
async fn a_reusable_environment_resumes_its_sandbox(deployment: Arc<Deployment>) {
    let api = deployment.api();
    let company = deployment.company();
    api.enable_isolated_workspaces()
        .await
        .expect("isolated workspaces");
    let environment = deployment
        .create_environment(
            "reusable",
            &json!({ "reuseLease": true, "keepAlive": true }),
        )
        .await
        .expect("environment");
    let project = api.create_project(company, "Reuse").await.expect("project");
    let agent = deployment
        .create_agent(
            "Reusing agent",
            &environment,
            &FakeAgent {
                message: Some("reused".into()),
                ..FakeAgent::default()
            },
        )
        .await
        .expect("agent");
    let issue = api
        .create_issue(company, &project, &agent, "Work in one sandbox")
        .await
        .expect("issue");
    let run_on_issue = || async {
        let run_id = api
            .invoke_heartbeat_on_issue(&agent, &issue)
            .await
            .expect("invoke");
        let run = deployment
            .follow_run(&run_id, RUN_LIMIT, |_, _| {})
            .await
            .expect("the run ends");
        let lease = deployment
            .settled_lease(&environment, &run_id, RUN_LIMIT)
            .await
            .expect("the host lets go of the lease");
        (run, lease)
    };
    let resumes = || {
        deployment
            .bridge_requests()
            .iter()
            .filter(|request| request.ends_with("/leases/resume"))
            .count()
    };

    let (first, first_lease) = run_on_issue().await;
    assert_succeeded(&first, "previous run none");
    assert_eq!(
        first_lease.acquisition(),
        Some("created"),
        "{first_lease:?}"
    );
    let provider_lease = first_lease
        .provider_lease_id
        .clone()
        .expect("provider lease");
    assert_eq!(provider_lease, format!("pc-env-{environment}"));

    let resumes_before = resumes();
    let (second, second_lease) = run_on_issue().await;
    assert_succeeded(&second, &format!("previous run {}", first.id));
    assert_eq!(
        second_lease.provider_lease_id.as_ref(),
        Some(&provider_lease)
    );
    assert_eq!(
        second_lease.acquisition(),
        Some("resumed"),
        "{second_lease:?}"
    );
    assert!(resumes() > resumes_before, "the host never called resume");

    let sandbox = deployment
        .sandbox_of_run(&second.id)
        .expect("the reused sandbox");
    deployment
        .stack()
        .local_sandbox()
        .wipe(&sandbox)
        .await
        .expect("wipe");
    let (third, third_lease) = run_on_issue().await;
    assert_succeeded(&third, "previous run none");
    assert_eq!(
        third_lease.acquisition(),
        Some("replacement"),
        "{third_lease:?}"
    );
}

/// An agent command that exits 3 fails the run with that exit code; it is never a success.
async fn an_agent_that_exits_non_zero_fails_its_run(deployment: Arc<Deployment>) {
    let (_, agent) = environment_with_agent(
        &deployment,
        "failing",
        "Failing agent",
        &FakeAgent {
            exit_code: 3,
            ..FakeAgent::default()
        },
    )
    .await;
    let run_id = deployment
        .api()
        .invoke_heartbeat(&agent)
        .await
        .expect("invoke");
    let run = deployment
        .follow_run(&run_id, RUN_LIMIT, |_, _| {})
        .await
        .expect("the run ends");
    assert_eq!(run.status, "failed", "{run:?}");
    assert_eq!(run.exit_code, Some(3), "{run:?}");
    assert_eq!(run.error_code.as_deref(), Some("adapter_failed"), "{run:?}");
}

/// The board's Stop on a running agent: the run ends `cancelled` at once. With the Codex CLI
/// engine the host tells the provider nothing at that moment (it sends `cancelActiveWork` only
/// when it stops an ACP engine's start-up) and waits for the agent's execute to return before it
/// releases the lease; once it has, nothing of the run may be left in the sandbox.
async fn stopping_a_run_leaves_nothing_running(deployment: Arc<Deployment>) {
    let (environment, agent) = environment_with_agent(
        &deployment,
        "stopping",
        "Stopped agent",
        &FakeAgent {
            message: Some("should never be seen".into()),
            work_seconds: 6,
            ..FakeAgent::default()
        },
    )
    .await;
    let api = deployment.api();
    let run_id = api.invoke_heartbeat(&agent).await.expect("invoke");
    let mut offset = 0;
    let started = Instant::now();
    'wait: loop {
        let page = api.run_log(&run_id, offset).await.expect("log");
        offset = page.next_offset;
        if page
            .entries
            .iter()
            .any(|entry| entry.chunk.contains("fake agent at work"))
        {
            break 'wait;
        }
        assert!(started.elapsed() < RUN_LIMIT, "the agent never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sandbox = deployment
        .sandbox_of_run(&run_id)
        .expect("the agent's sandbox");
    assert!(
        !processes_with_env(&[(SANDBOX_ID_VAR, &sandbox)]).is_empty(),
        "the agent runs in its sandbox"
    );
    let stopping = Instant::now();
    let cancelled = api.cancel_run(&run_id).await.expect("cancel");
    assert_eq!(cancelled.status, "cancelled", "{cancelled:?}");
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let lease = deployment
        .settled_lease(&environment, &run_id, RUN_LIMIT)
        .await
        .expect("the host lets go of the lease");
    assert_eq!(lease.status, "expired", "{lease:?}");
    assert_eq!(
        lease.metadata["remoteExecutionTermination"]["state"], "destroyed",
        "the host recorded the provider's termination receipt: {lease:?}"
    );
    let left = processes_with_env(&[(SANDBOX_ID_VAR, &sandbox)]);
    assert!(
        left.is_empty(),
        "processes of the stopped run's sandbox outlived its lease: {left:?}"
    );
    let run = api.run(&run_id).await.expect("run");
    assert_eq!(run.status, "cancelled", "{run:?}");
    assert!(
        run.summary()
            .is_none_or(|summary| !summary.contains("should never be seen")),
        "a stopped run reported the agent's message: {run:?}"
    );
}

/// The lock directory of the host's process-session script sync: while it exists without an
/// owner, the sync waits for it (30 s, then fails), inside the ACP engine's start-up.
const PROCESS_SESSION_LOCK: &str = "/workspace/paperclip/.paperclip-runtime/codex_local/process-sessions/.paperclip-process-session-script.lock";

/// The one stop that reaches the provider: the ACP engine's start-up, stopped from the board.
/// The host then releases the lease with `cancelActiveWork` and waits for the receipt before it
/// answers the Stop; the bridge kills the commands in flight and everything the lease's commands
/// left running in the background, keeps the reusable sandbox warm, and answers only then. The
/// test prepares the sandbox through the bridge first: a lock that holds a start-up step (so the
/// stop lands while start-up runs) and a background process, as an earlier command leaves one.
async fn stopping_a_run_in_its_start_up_cancels_its_active_work(deployment: Arc<Deployment>) {
    let api = deployment.api();
    let environment = deployment
        .create_environment(
            "stopping-start-up",
            &json!({ "reuseLease": true, "keepAlive": true }),
        )
        .await
        .expect("environment");
    let provider_lease = format!("pc-env-{environment}");
    let bridge = deployment.bridge_client().expect("bridge client");
    let prepared: LeaseResponse = bridge
        .post(
            Route::AcquireLease,
            &AcquireLeaseRequest {
                environment_id: environment.clone(),
                run_id: "prepare".into(),
                reuse_lease: true,
                keep_alive: true,
                ..AcquireLeaseRequest::default()
            },
        )
        .await
        .expect("acquire");
    assert_eq!(prepared.provider_lease_id, provider_lease);
    let prepare = ExecRequest {
        provider_lease_id: provider_lease.clone(),
        command: "sh".into(),
        args: vec![
            "-c".into(),
            format!(
                "mkdir -p '{PROCESS_SESSION_LOCK}' && nohup sleep 619.1 >/dev/null 2>&1 </dev/null &"
            ),
        ],
        ..ExecRequest::default()
    };
    let made: ExecResult = bridge.post(Route::Exec, &prepare).await.expect("prepare");
    assert_eq!(made.exit_code, Some(0), "{made:?}");
    let _: TerminationReceipt = bridge
        .post(
            Route::ReleaseLease,
            &ReleaseLeaseRequest {
                provider_lease_id: provider_lease.clone(),
                cancel_active_work: false,
                destroy: false,
            },
        )
        .await
        .expect("release");

    let agent = deployment
        .create_agent(
            "ACP agent",
            &environment,
            &FakeAgent {
                acp: true,
                ..FakeAgent::default()
            },
        )
        .await
        .expect("agent");
    let run_id = api.invoke_heartbeat(&agent).await.expect("invoke");
    let started = Instant::now();
    while processes_with_cmdline(".paperclip-process-session-script.lock").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the start-up never reached the process-session sync: {:?}",
            api.run(&run_id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease_processes = [(LEASE_ENV_VAR, provider_lease.as_str())];
    assert!(!processes_with_env(&lease_processes).is_empty());
    assert!(
        !processes_with_cmdline("sleep 619.1").is_empty(),
        "the earlier command's background process runs"
    );

    let stopped = api
        .cancel_run(&run_id)
        .await
        .expect("the stop is confirmed");
    assert_eq!(stopped.status, "cancelled", "{stopped:?}");
    let left = processes_with_env(&lease_processes);
    assert!(
        left.is_empty(),
        "processes of the lease were alive when the host had the receipt: {left:?}"
    );
    let lease = deployment
        .settled_lease(&environment, &run_id, RUN_LIMIT)
        .await
        .expect("the host lets go of the lease");
    assert_eq!(lease.status, "released", "{lease:?}");
    assert_eq!(
        lease.metadata["remoteExecutionTermination"]["state"], "stopped",
        "{lease:?}"
    );
    let details: LeaseDetails = bridge
        .fetch(Route::InspectLease(provider_lease.clone()))
        .await
        .expect("inspect");
    assert!(
        details
            .executions
            .iter()
            .any(|execution| execution.status == ExecutionStatus::Cancelled),
        "the release cancelled no execution: {:?}",
        details.executions
    );
    let _: LeaseResponse = bridge
        .post(
            Route::ResumeLease,
            &ResumeLeaseRequest {
                provider_lease_id: provider_lease.clone(),
                ..ResumeLeaseRequest::default()
            },
        )
        .await
        .expect("the sandbox stayed warm");
    let after: ExecResult = bridge
        .post(
            Route::Exec,
            &ExecRequest {
                provider_lease_id: provider_lease,
                command: "test".into(),
                args: vec!["-d".into(), PROCESS_SESSION_LOCK.into()],
                ..ExecRequest::default()
            },
        )
        .await
        .expect("exec");
    assert_eq!(after.exit_code, Some(0), "the sandbox kept its files");
}

/// A fresh environment on the bridge and a fake agent whose runs use it.
async fn environment_with_agent(
    deployment: &Deployment,
    environment: &str,
    agent: &str,
    behaviour: &FakeAgent,
) -> (String, String) {
    let environment = deployment
        .create_environment(environment, &json!({}))
        .await
        .expect("environment");
    let agent = deployment
        .create_agent(agent, &environment, behaviour)
        .await
        .expect("agent");
    (environment, agent)
}

fn assert_succeeded(run: &HeartbeatRun, message: &str) {
    assert_eq!(run.status, "succeeded", "{run:?}");
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    let summary = run.summary().unwrap_or_default();
    assert!(
        summary.contains(message),
        "summary {summary:?} lacks {message:?}"
    );
}
