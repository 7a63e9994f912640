//! The lease object's sequencing, over in-memory fakes that record every call in one log and fail
//! on demand.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use bridge_protocol::api::{AcquireLeaseRequest, ExecutionStatus, LeaseState, TerminationState};

use super::*;
use crate::lease::AcquirePlan;

/// What happened, in order, across storage and sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A record was stored: its state and the journal's statuses.
    Stored(LeaseState, Vec<(String, ExecutionStatus)>),
    Configured,
    CheckedSentinel,
    Prepared,
    /// The kill script of one execution.
    Killed(String),
    /// The kill script of everything the lease's commands started.
    KilledLease,
    Destroyed,
}

type Log = Rc<RefCell<Vec<Event>>>;

struct FakeStorage {
    record: RefCell<Option<LeaseRecord>>,
    nonces: RefCell<BTreeSet<String>>,
    alarm: Cell<Option<u64>>,
    clock: Cell<u64>,
    log: Log,
}

impl LeaseStorage for &FakeStorage {
    async fn load(&self) -> Result<Option<LeaseRecord>, BridgeError> {
        Ok(self.record.borrow().clone())
    }

    async fn store(&self, record: &LeaseRecord) -> Result<(), BridgeError> {
        let journal = record
            .journal
            .iter()
            .map(|entry| (entry.record.execution_id.clone(), entry.record.status))
            .collect();
        self.log
            .borrow_mut()
            .push(Event::Stored(record.state, journal));
        *self.record.borrow_mut() = Some(record.clone());
        Ok(())
    }

    async fn claim_nonce(&self, claim: &NonceClaim) -> Result<bool, BridgeError> {
        Ok(self.nonces.borrow_mut().insert(claim.nonce.clone()))
    }

    async fn wake_by(&self, deadline_ms: u64) -> Result<(), BridgeError> {
        let earlier = self
            .alarm
            .get()
            .map_or(deadline_ms, |set| set.min(deadline_ms));
        self.alarm.set(Some(earlier));
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.clock.get()
    }
}

/// A sandbox whose answers the test sets.
struct FakeSandbox {
    holds_sentinel: Cell<bool>,
    prepare_exit: Cell<Option<i32>>,
    configure_fails: Cell<bool>,
    kill_exit: Cell<Option<i32>>,
    log: Log,
}

impl SandboxCalls for &FakeSandbox {
    async fn configure(
        &self,
        _lease_id: &str,
        _configuration: &SandboxConfiguration,
        _timeout_ms: u64,
    ) -> Result<(), BridgeError> {
        if self.configure_fails.get() {
            return Err(SandboxError::Unavailable("no capacity".into()).into());
        }
        self.log.borrow_mut().push(Event::Configured);
        Ok(())
    }

    async fn run_script(
        &self,
        lease_id: &str,
        script: &str,
        _timeout_ms: u64,
    ) -> Result<ExecOutput, BridgeError> {
        let (event, exit_code) = if script.contains(&format!("PAPERCLIP_BRIDGE_LEASE={lease_id}")) {
            (Event::KilledLease, self.kill_exit.get())
        } else if script.contains("procs()") {
            let id = script
                .split("/exec/")
                .nth(1)
                .and_then(|rest| rest.split('\'').next())
                .unwrap_or_default()
                .to_owned();
            (Event::Killed(id), self.kill_exit.get())
        } else if script.starts_with("set -e; mkdir") {
            self.holds_sentinel.set(true);
            (Event::Prepared, self.prepare_exit.get())
        } else {
            let holds = self.holds_sentinel.get();
            (Event::CheckedSentinel, Some(if holds { 0 } else { 1 }))
        };
        self.log.borrow_mut().push(event);
        Ok(ExecOutput {
            exit_code,
            stdout: String::new(),
            stderr: "from the fake".into(),
        })
    }

    async fn destroy(&self, _lease_id: &str, _timeout_ms: u64) -> Result<(), BridgeError> {
        self.holds_sentinel.set(false);
        self.log.borrow_mut().push(Event::Destroyed);
        Ok(())
    }
}

/// Storage, sandbox and their shared log.
struct World {
    storage: FakeStorage,
    sandbox: FakeSandbox,
    log: Log,
}

impl World {
    fn new() -> Self {
        let log = Log::default();
        Self {
            storage: FakeStorage {
                nonces: RefCell::default(),
                record: RefCell::new(None),
                alarm: Cell::new(None),
                clock: Cell::new(1_000_000),
                log: Rc::clone(&log),
            },
            sandbox: FakeSandbox {
                holds_sentinel: Cell::new(false),
                prepare_exit: Cell::new(Some(0)),
                configure_fails: Cell::new(false),
                kill_exit: Cell::new(Some(10)),
                log: Rc::clone(&log),
            },
            log,
        }
    }

    fn logic(&self) -> LeaseObjectLogic<&FakeStorage, &FakeSandbox> {
        LeaseObjectLogic::new(&self.storage, &self.sandbox, 3_600_000)
    }

    /// The log since the last call, emptied.
    fn take_log(&self) -> Vec<Event> {
        std::mem::take(&mut *self.log.borrow_mut())
    }

    fn record(&self) -> LeaseRecord {
        self.storage.record.borrow().clone().expect("a record")
    }

    fn advance(&self, ms: u64) {
        self.storage.clock.set(self.storage.clock.get() + ms);
    }
}

fn plan(reusable: bool) -> AcquirePlan {
    AcquirePlan::from_request(&AcquireLeaseRequest {
        environment_id: "env-1".into(),
        run_id: "run-1".into(),
        reuse_lease: reusable,
        keep_alive: reusable,
        ..AcquireLeaseRequest::default()
    })
    .expect("valid plan")
}

/// Drives a future of the fakes, which never wait, to completion.
fn run<F: Future>(future: F) -> F::Output {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// The claim of a request nonce.
fn nonce(value: &str) -> NonceClaim {
    NonceClaim {
        nonce: value.to_owned(),
        remember_until: 2_000,
        now: 1_000,
    }
}

/// A world with an active lease of `plan`.
fn acquired(plan: &AcquirePlan) -> World {
    let world = World::new();
    run(world.logic().acquire(plan.clone())).expect("acquired");
    world.take_log();
    world
}

fn stored_states(log: &[Event]) -> Vec<LeaseState> {
    log.iter()
        .filter_map(|event| match event {
            Event::Stored(state, _) => Some(*state),
            _ => None,
        })
        .collect()
}

#[test]
fn acquire_prepares_a_fresh_sandbox_and_is_idempotent() {
    let world = World::new();
    let plan = plan(false);
    let lease = run(world.logic().acquire(plan.clone())).expect("acquired");
    assert!(!lease.resumed);
    let log = world.take_log();
    assert_eq!(
        stored_states(&log),
        [LeaseState::Acquiring, LeaseState::Active]
    );
    assert!(log.contains(&Event::Configured) && log.contains(&Event::Prepared));
    assert!(world.storage.alarm.get().is_some(), "the reaper is armed");

    let again = run(world.logic().acquire(plan)).expect("same lease");
    assert_eq!(again.provider_lease_id, lease.provider_lease_id);
    assert_eq!(world.take_log(), [], "a repeated acquire touches nothing");
}

#[test]
fn an_acquire_failing_half_way_destroys_what_it_created() {
    let world = World::new();
    world.sandbox.prepare_exit.set(Some(1));
    let error = run(world.logic().acquire(plan(false))).expect_err("prepare failed");
    assert!(error.to_string().contains("exit code Some(1)"), "{error}");
    let log = world.take_log();
    assert_eq!(
        log.last(),
        Some(&Event::Stored(LeaseState::Destroyed, Vec::new()))
    );
    assert!(log.contains(&Event::Destroyed), "{log:?}");
    let record = world.record();
    assert!(
        record
            .end_reason
            .is_some_and(|reason| reason.starts_with("acquire failed")),
    );

    let world = World::new();
    world.sandbox.configure_fails.set(true);
    run(world.logic().acquire(plan(false))).expect_err("configure failed");
    assert!(world.take_log().contains(&Event::Destroyed));
}

#[test]
fn a_reusable_lease_is_reattached_while_its_sandbox_holds_the_sentinel() {
    let reusable = plan(true);
    let world = acquired(&reusable);
    run(world.logic().release(&reusable.lease_id, false, false)).expect("kept warm");
    world.take_log();
    let lease = run(world.logic().acquire(reusable.clone())).expect("reattached");
    assert!(lease.resumed);
    let log = world.take_log();
    assert!(log.contains(&Event::CheckedSentinel) && !log.contains(&Event::Prepared));

    run(world.logic().release(&reusable.lease_id, false, false)).expect("kept warm");
    world.sandbox.holds_sentinel.set(false);
    world.sandbox.prepare_exit.set(Some(1));
    world.take_log();
    run(world.logic().acquire(reusable)).expect_err("recreating fails");
    let log = world.take_log();
    assert_eq!(
        stored_states(&log),
        [
            LeaseState::Lost,
            LeaseState::Acquiring,
            LeaseState::Destroyed
        ]
    );
    assert!(
        !log.contains(&Event::Destroyed),
        "a reusable sandbox being recreated is not destroyed on failure"
    );
}

#[test]
fn resume_checks_the_sentinel_first() {
    let reusable = plan(true);
    let world = acquired(&reusable);
    run(world.logic().release(&reusable.lease_id, false, false)).expect("kept warm");
    let lease = run(world
        .logic()
        .resume(&reusable.lease_id, Some(true), None, 5_000))
    .expect("resumed");
    assert!(lease.resumed);
    assert_eq!(world.record().state, LeaseState::Active);

    run(world.logic().release(&reusable.lease_id, false, false)).expect("kept warm");
    world.sandbox.holds_sentinel.set(false);
    world.take_log();
    let error = run(world.logic().resume(&reusable.lease_id, None, None, 5_000))
        .expect_err("sentinel gone");
    assert!(matches!(error, BridgeError::SandboxStateLost(_)), "{error}");
    assert_eq!(world.record().state, LeaseState::Lost);
    assert!(!world.take_log().contains(&Event::Configured));
}

#[test]
fn a_replayed_nonce_journals_nothing_and_an_unknown_lease_claims_nothing() {
    let ephemeral = plan(false);
    let world = acquired(&ephemeral);
    let logic = world.logic();
    run(logic.begin_execution(&ephemeral.lease_id, &nonce("n1"), "x1", "true", 1_000))
        .expect("journaled");
    let error = run(logic.begin_execution(&ephemeral.lease_id, &nonce("n1"), "x2", "true", 1_000))
        .expect_err("replayed");
    assert!(
        matches!(
            error,
            BridgeError::Unauthorized(AuthRejection::ReplayedNonce)
        ),
        "{error}"
    );
    let journaled: Vec<_> = world
        .record()
        .journal
        .iter()
        .map(|entry| entry.record.execution_id.clone())
        .collect();
    assert_eq!(journaled, ["x1"]);

    let empty = World::new();
    let error = run(empty
        .logic()
        .begin_execution("pcl-none", &nonce("n2"), "x3", "true", 1_000))
    .expect_err("no such lease");
    assert!(matches!(error, BridgeError::LeaseNotFound(_)), "{error}");
    assert!(empty.storage.nonces.borrow().is_empty());
}

#[test]
fn release_records_cancellations_before_killing_then_destroys() {
    let ephemeral = plan(false);
    let world = acquired(&ephemeral);
    let logic = world.logic();
    run(logic.begin_execution(&ephemeral.lease_id, &nonce("n1"), "x1", "sleep", 60_000))
        .expect("journaled");
    world.take_log();
    let receipt = run(logic.release(&ephemeral.lease_id, true, false)).expect("released");
    assert_eq!(receipt.state, TerminationState::Destroyed);
    let log = world.take_log();
    assert_eq!(
        log,
        [
            Event::Stored(
                LeaseState::Active,
                vec![("x1".into(), ExecutionStatus::Cancelled)]
            ),
            Event::Killed("x1".into()),
            Event::Destroyed,
            Event::Stored(
                LeaseState::Destroyed,
                vec![("x1".into(), ExecutionStatus::Cancelled)]
            ),
        ],
        "save, then kill, then destroy"
    );
}

#[test]
fn release_keeps_a_reusable_lease_warm_and_cancel_active_work_clears_it() {
    let reusable = plan(true);
    let world = acquired(&reusable);
    let logic = world.logic();
    let receipt = run(logic.release(&reusable.lease_id, false, false)).expect("released");
    assert_eq!(receipt.state, TerminationState::Stopped);
    let log = world.take_log();
    assert!(!log.contains(&Event::Destroyed) && !log.contains(&Event::KilledLease));
    assert_eq!(world.record().state, LeaseState::Released);

    run(logic.resume(&reusable.lease_id, None, None, 5_000)).expect("resumed");
    world.take_log();
    let receipt = run(logic.release(&reusable.lease_id, true, false)).expect("released");
    assert_eq!(receipt.state, TerminationState::Stopped);
    let log = world.take_log();
    assert_eq!(
        log.first(),
        Some(&Event::KilledLease),
        "background work dies before the receipt: {log:?}"
    );
    assert!(!log.contains(&Event::Destroyed));

    run(logic.resume(&reusable.lease_id, None, None, 5_000)).expect("resumed");
    world.take_log();
    let receipt = run(logic.release(&reusable.lease_id, false, true)).expect("destroyed");
    assert_eq!(receipt.state, TerminationState::Destroyed);
    assert!(world.take_log().contains(&Event::Destroyed));
}

#[test]
fn a_kill_that_cannot_be_confirmed_fails_the_release() {
    let ephemeral = plan(false);
    let world = acquired(&ephemeral);
    let logic = world.logic();
    run(logic.begin_execution(&ephemeral.lease_id, &nonce("n1"), "x1", "sleep", 60_000))
        .expect("journaled");
    world.sandbox.kill_exit.set(Some(12));
    world.take_log();
    let error = run(logic.release(&ephemeral.lease_id, false, false)).expect_err("unconfirmed");
    assert!(error.to_string().contains("could not confirm"), "{error}");
    assert!(
        !world.take_log().contains(&Event::Destroyed),
        "no receipt without a confirmed kill"
    );
}

#[test]
fn destroy_is_idempotent() {
    let ephemeral = plan(false);
    let world = World::new();
    let receipt = run(world.logic().destroy(&ephemeral.lease_id)).expect("nothing to destroy");
    assert_eq!(receipt.state, TerminationState::Destroyed);
    assert_eq!(world.take_log(), []);

    let world = acquired(&ephemeral);
    run(world.logic().destroy(&ephemeral.lease_id)).expect("destroyed");
    assert!(world.take_log().contains(&Event::Destroyed));
    let again = run(world.logic().destroy(&ephemeral.lease_id)).expect("again");
    assert_eq!(again.state, TerminationState::Destroyed);
    assert_eq!(world.take_log(), [], "a second destroy calls nothing");
}

#[test]
fn the_reaper_kills_abandoned_commands_and_destroys_idle_leases() {
    let ephemeral = plan(false);
    let world = acquired(&ephemeral);
    let logic = world.logic();
    run(logic.begin_execution(&ephemeral.lease_id, &nonce("n1"), "x1", "sleep", 1_000))
        .expect("journaled");
    world.take_log();
    run(logic.reap()).expect("nothing due");
    assert!(
        !world
            .take_log()
            .iter()
            .any(|event| matches!(event, Event::Killed(_)))
    );

    world.advance(1_000 + EXECUTION_SLACK_MS + 1);
    run(logic.reap()).expect("reaped");
    let log = world.take_log();
    assert_eq!(log.first(), Some(&Event::Killed("x1".into())));
    assert_eq!(
        world.record().journal[0].record.status,
        ExecutionStatus::TimedOut
    );
    assert!(!log.contains(&Event::Destroyed), "not idle for an hour yet");

    world.advance(3_600_000);
    run(logic.reap()).expect("reaped");
    assert!(world.take_log().contains(&Event::Destroyed));
    let record = world.record();
    assert_eq!(record.state, LeaseState::Destroyed);
    assert!(
        record
            .end_reason
            .is_some_and(|reason| reason.starts_with("reaped"))
    );
}
