//! Native file sync through the real host: a git workspace of ≥ 50 MiB in ≥ 2,000 files goes into
//! the sandbox through `environmentSyncIn`, arrives byte-exact, and the agent's commit, edits,
//! new file and deletion come back through `environmentSyncOut` byte-exact.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use bridge_tests::paperclip::workspace::{git, make_git_workspace, tree_digests};
use bridge_tests::paperclip::{Deployment, FakeAgent};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{RUN_LIMIT, assert_succeeded};

/// Files of the workspace.
const FILES: usize = 2_000;
/// Bytes of each (2,000 × 26 KiB = 50.8 MiB).
const FILE_BYTES: usize = 26 * 1024;

/// What the fake agent does: records the tree it was given, then commits an edit, a new file and a
/// deletion, and leaves one more edit uncommitted. The host puts a `git` wrapper first on the
/// agent's PATH that blanks the committer identity; the commit bypasses it.
const WORK: &str = "find . -type f ! -path './.git/*' ! -path './.paperclip-runtime/*' \
    | LC_ALL=C sort | xargs sha256sum > /workspace/.fake-codex/given.sha256 \
    && printf agent-was-here > src/new-by-agent.txt \
    && printf modified-by-agent > src/d00/f0000.bin \
    && rm src/d00/f0001.bin \
    && git add -A \
    && PATH=/usr/local/bin:/usr/bin:/bin \
       GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@example.invalid \
       GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@example.invalid \
       git commit -q -m agent-change \
    && printf uncommitted-by-agent > src/d01/f0050.bin";

/// Parses `sha256sum` output (`<hex>  <path>`).
fn parse_digests(listing: &str) -> BTreeMap<String, String> {
    listing
        .lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(digest, path)| (path.to_owned(), digest.to_owned()))
        .collect()
}

/// The scenario.
pub async fn a_large_git_workspace_syncs_natively_both_ways(deployment: Arc<Deployment>) {
    let repo_dir = tempfile::Builder::new()
        .prefix("native-sync-repo-")
        .tempdir()
        .expect("scratch");
    let repo = repo_dir.path().to_path_buf();
    make_git_workspace(&repo, FILES, FILE_BYTES).expect("workspace");
    let before = tree_digests(&repo).expect("digests");
    let total: usize = FILES * FILE_BYTES;
    assert!(
        before.len() > FILES && total >= 50 << 20,
        "the workspace is large enough"
    );

    let api = deployment.api();
    let company = deployment.company();
    let environment = deployment
        .create_environment(
            "native-sync",
            &json!({ "reuseLease": true, "keepAlive": true }),
        )
        .await
        .expect("environment");
    let project = api
        .create_project_in(company, "Native sync", &repo.display().to_string())
        .await
        .expect("project");
    let agent = deployment
        .create_agent(
            "Syncing agent",
            &environment,
            &FakeAgent {
                message: Some("synced".into()),
                work: Some(WORK.to_owned()),
                ..FakeAgent::default()
            },
        )
        .await
        .expect("agent");
    let issue = api
        .create_issue(company, &project, &agent, "Change the workspace")
        .await
        .expect("issue");
    let requests_before = deployment.bridge_requests().len();
    let log_before = deployment.server().log().len();
    let run_id = api
        .invoke_heartbeat_on_issue(&agent, &issue)
        .await
        .expect("invoke");
    let mut run_log = String::new();
    let run = deployment
        .follow_run(&run_id, RUN_LIMIT, |entry, _| {
            run_log.push_str(&entry.chunk)
        })
        .await
        .expect("the run ends");
    deployment
        .settled_lease(&environment, &run_id, RUN_LIMIT)
        .await
        .expect("the host lets go of the lease");
    if run.status != "succeeded" {
        let tail: String = run_log
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!("the run failed ({:?}); its log ends:\n{tail}", run.error);
    }
    assert_succeeded(&run, "synced");

    let requests = deployment.bridge_requests()[requests_before..].to_vec();
    let count = |suffix: &str| {
        requests
            .iter()
            .filter(|request| request.ends_with(suffix))
            .count()
    };
    let (uploads, downloads, execs) = (
        count("/files/upload"),
        count("/files/download"),
        count("/exec"),
    );
    println!(
        "    native sync run: {uploads} uploads, {downloads} downloads, {execs} execs, {} requests",
        requests.len()
    );
    assert!(uploads >= 2, "the workspace went up natively: {requests:?}");
    assert!(
        downloads >= 2,
        "bundle and workspace came back natively: {requests:?}"
    );
    let log = deployment.server().log()[log_before..].to_owned();
    assert!(
        log.contains("sync-in") && log.contains("git-workspace-upload.tar"),
        "the plugin's sync-in progress is in the host's log"
    );

    let sandbox = deployment
        .sandbox_of_run(&run.id)
        .expect("the run's sandbox is kept warm");
    let sandbox_root = deployment
        .stack()
        .local_sandbox()
        .state_dir()
        .join(&sandbox);
    let given = fs::read_to_string(sandbox_root.join("workspace/.fake-codex/given.sha256"))
        .expect("the agent recorded the tree it was given");
    assert_eq!(
        parse_digests(&given),
        before,
        "the sandbox got the host's tree, byte for byte"
    );

    let sandbox_after = tree_digests(&sandbox_root.join("workspace/paperclip")).expect("digests");
    let host_after = tree_digests(&repo).expect("digests");
    assert_eq!(
        host_after, sandbox_after,
        "the host tree equals the sandbox tree after the restore"
    );
    let sha = |text: &str| hex::encode(Sha256::digest(text));
    assert_eq!(host_after["./src/new-by-agent.txt"], sha("agent-was-here"));
    assert_eq!(host_after["./src/d00/f0000.bin"], sha("modified-by-agent"));
    assert_eq!(
        host_after["./src/d01/f0050.bin"],
        sha("uncommitted-by-agent")
    );
    assert!(
        !host_after.contains_key("./src/d00/f0001.bin"),
        "the deletion came back"
    );
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s"])
            .expect("git log")
            .trim(),
        "agent-change",
        "the agent's commit was imported into the host repository"
    );
}
