//! The lease Durable Object: one per lease, the single writer of its record. Every command runs
//! under one lock, so lifecycle operations on a lease never interleave (two concurrent acquires of
//! a reusable lease get one sandbox), and an alarm reaps sandboxes whose lease was abandoned. What
//! it decides is `lease::object`'s; this is the glue to storage, the alarm and the `Sandbox`
//! binding. It also runs each exec itself (`ExecOrder`, driven by `edge::exec`), journaling its
//! start and end under the same lock without a call of its own: an exec costs the Worker one
//! call to this object.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::lock::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use worker::{DurableObject, Env, Method, Request, RequestInit, Response, State, durable_object};

use super::exec::{self, Journal, StreamSigner};
use super::handlers::Answer;
use super::http::{self, Reply};
use super::replay_guard::NonceTable;
use super::sandbox_stub::{Sandbox, with_deadline};
use crate::config::{DEFAULT_LEASE_IDLE_TTL_SECONDS, lease_idle_ttl_seconds};
use crate::error::BridgeError;
use crate::exec::ExecPlan;
use crate::lease::LeaseRecord;
use crate::lease::object::{LeaseObjectLogic, LeaseStorage, SandboxCalls};
use crate::lease::protocol::{
    ExecOrder, ExecutionEnded, ExecutionTicket, LeaseCommand, LeaseRequest,
};
use crate::lease::record::StoredRecord;
use crate::replay::NonceClaim;
use crate::sandbox::{ExecOutput, SandboxConfiguration, SandboxId};
use bridge_protocol::api::{CancelResponse, ErrorBody, ExecutionStatus};

/// Binding name of the lease namespace in `wrangler.toml`.
const BINDING: &str = "LEASES";
/// Storage key of the record.
const RECORD_KEY: &str = "lease";
/// When a reaper run fails, the next one comes this much later.
const REAPER_RETRY_MS: u64 = 60_000;

/// Path of an [`ExecOrder`]; every [`LeaseRequest`] is posted to `/`.
const EXEC_PATH: &str = "/exec";

/// Sends `command` to the object of `lease_id` and decodes its reply.
pub async fn send<R: DeserializeOwned>(
    env: &Env,
    lease_id: &str,
    command: LeaseCommand,
) -> Result<R, BridgeError> {
    let request = LeaseRequest {
        lease_id: lease_id.to_owned(),
        command,
    };
    let response = post(env, lease_id, "/", &request).await?;
    let status = response.status_code();
    let bytes = http::whole_body(&response)
        .await
        .map_err(unreachable_object)?;
    if status == 200 {
        serde_json::from_slice(&bytes)
            .map_err(|error| BridgeError::Internal(format!("lease object reply: {error}")))
    } else {
        let body: ErrorBody = serde_json::from_slice(&bytes).map_err(|error| {
            BridgeError::Internal(format!("lease object error ({status}): {error}"))
        })?;
        Err(BridgeError::Relayed { status, body })
    }
}

/// Has the object of `lease_id` run `order` and returns its answer as it is: a JSON reply for the
/// Worker to sign, or the exec's event stream.
pub async fn execute(
    env: &Env,
    lease_id: &str,
    order: &ExecOrder,
) -> Result<Response, BridgeError> {
    post(env, lease_id, EXEC_PATH, order).await
}

/// Posts `message` as JSON to `path` of the object of `lease_id`.
async fn post(
    env: &Env,
    lease_id: &str,
    path: &str,
    message: &impl Serialize,
) -> Result<Response, BridgeError> {
    let stub = env
        .durable_object(BINDING)
        .and_then(|namespace| namespace.get_by_name(lease_id))
        .map_err(unreachable_object)?;
    let body = serde_json::to_string(message)
        .map_err(|error| BridgeError::Internal(format!("lease object: {error}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request = Request::new_with_init(&format!("https://lease{path}"), &init)
        .map_err(unreachable_object)?;
    stub.fetch_with_request(request)
        .await
        .map_err(unreachable_object)
}

fn unreachable_object(error: worker::Error) -> BridgeError {
    BridgeError::Internal(format!("lease object: {error}"))
}

/// One lease.
#[durable_object]
pub struct LeaseObject {
    core: Rc<LeaseCore>,
}

/// The object's state, shared with the executions it runs (a streamed one outlives `fetch`).
struct LeaseCore {
    state: State,
    env: Env,
    serial: Mutex<()>,
    /// When the alarm is known to be set for (in this instance's lifetime); an earlier alarm
    /// re-arms itself, so a later deadline needs no storage write.
    armed_at: Cell<Option<u64>>,
    /// The record as last read or written by this instance.
    record: RefCell<Option<LeaseRecord>>,
    nonces: NonceTable,
    /// How long an abandoned lease lives, read once: vars are fixed for an instance's life.
    idle_ttl_ms: u64,
}

impl DurableObject for LeaseObject {
    fn new(state: State, env: Env) -> Self {
        let idle_ttl_seconds = lease_idle_ttl_seconds(|name| http::var(&env, name))
            .unwrap_or(DEFAULT_LEASE_IDLE_TTL_SECONDS);
        Self {
            core: Rc::new(LeaseCore {
                state,
                env,
                serial: Mutex::new(()),
                armed_at: Cell::new(None),
                record: RefCell::new(None),
                nonces: NonceTable::default(),
                idle_ttl_ms: idle_ttl_seconds * 1000,
            }),
        }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        let message = request.bytes().await?;
        if request.path() == EXEC_PATH {
            return match serde_json::from_slice::<ExecOrder>(&message) {
                Ok(order) => self.execute(order).await,
                Err(error) => http::respond(
                    Reply::error(&BridgeError::Internal(format!(
                        "malformed exec order: {error}"
                    ))),
                    None,
                ),
            };
        }
        let core = &self.core;
        let reply = match serde_json::from_slice::<LeaseRequest>(&message) {
            Ok(request) => {
                let _serial = core.serial.lock().await;
                core.logic().handle(request).await.map_or_else(
                    |error| Reply::error(&error),
                    |body| Reply::encoded(200, body),
                )
            }
            Err(error) => Reply::error(&BridgeError::Internal(format!(
                "malformed lease command: {error}"
            ))),
        };
        http::respond(reply, None)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let core = &self.core;
        let _serial = core.serial.lock().await;
        core.armed_at.set(None);
        if let Err(error) = core.logic().reap().await {
            worker::console_error!("lease reaper: {error}; trying again in a minute");
            let storage = core.storage();
            if let Err(error) = storage.wake_by(storage.now_ms() + REAPER_RETRY_MS).await {
                worker::console_error!("lease reaper: {error}");
            }
        }
        Response::empty()
    }
}

impl LeaseObject {
    /// Runs an exec, journaled by this object; the answer is unsigned (the Worker signs JSON) or
    /// the stream, whose terminal event is signed here.
    async fn execute(&self, order: ExecOrder) -> worker::Result<Response> {
        let env = &self.core.env;
        let journal = ObjectJournal(Rc::clone(&self.core));
        let answer = async {
            let config = http::config(env)?;
            match order.stream_key {
                None => {
                    let result = exec::run_to_completion(
                        env,
                        journal,
                        order.request,
                        order.nonce,
                        config.max_output_bytes,
                    )
                    .await?;
                    Reply::json(200, &result).map(Answer::Json)
                }
                Some(key_id) => {
                    let secret = config.verifier.secret(&key_id).cloned().ok_or_else(|| {
                        BridgeError::Internal(format!("no key {key_id} to sign the stream with"))
                    })?;
                    let signer = StreamSigner {
                        secret,
                        nonce: order.nonce.nonce.clone(),
                    };
                    exec::run_streaming(env, journal, order.request, order.nonce, signer)
                        .await
                        .map(Answer::Stream)
                }
            }
        };
        match answer.await {
            Ok(Answer::Json(reply)) => http::respond(reply, None),
            Ok(Answer::Stream(response)) => Ok(response),
            Err(error) => http::respond(Reply::error(&error), None),
        }
    }
}

impl LeaseCore {
    fn logic(&self) -> LeaseObjectLogic<ObjectStorage<'_>, SandboxBinding<'_>> {
        LeaseObjectLogic::new(
            self.storage(),
            SandboxBinding::new(&self.env),
            self.idle_ttl_ms,
        )
    }

    fn storage(&self) -> ObjectStorage<'_> {
        ObjectStorage {
            state: &self.state,
            armed_at: &self.armed_at,
            record: &self.record,
            nonces: &self.nonces,
        }
    }
}

/// The journal of the executions the object runs itself: its own logic, under its lock, so an
/// execution's end is recorded before any later command can observe the lease.
struct ObjectJournal(Rc<LeaseCore>);

impl Journal for ObjectJournal {
    async fn begin(
        &self,
        plan: &ExecPlan,
        nonce: NonceClaim,
    ) -> Result<ExecutionTicket, BridgeError> {
        let _serial = self.0.serial.lock().await;
        self.0
            .logic()
            .begin_execution(
                &plan.lease_id,
                &nonce,
                &plan.execution_id,
                &plan.argv[0],
                plan.timeout_ms,
            )
            .await
    }

    async fn end(
        &self,
        plan: &ExecPlan,
        status: ExecutionStatus,
        exit_code: Option<i32>,
        sandbox_lost: bool,
    ) -> Result<ExecutionEnded, BridgeError> {
        let _serial = self.0.serial.lock().await;
        self.0
            .logic()
            .end_execution(
                &plan.lease_id,
                &plan.execution_id,
                status,
                exit_code,
                sandbox_lost,
            )
            .await
    }

    async fn cancel(&self, plan: &ExecPlan) -> Result<CancelResponse, BridgeError> {
        let _serial = self.0.serial.lock().await;
        self.0
            .logic()
            .cancel(&plan.lease_id, &plan.execution_id)
            .await
    }
}

/// The object's SQLite-backed storage and alarm.
struct ObjectStorage<'a> {
    state: &'a State,
    armed_at: &'a Cell<Option<u64>>,
    record: &'a RefCell<Option<LeaseRecord>>,
    nonces: &'a NonceTable,
}

impl LeaseStorage for ObjectStorage<'_> {
    /// The record as this instance last read or wrote it: the object is its only writer, so
    /// storage is read once per instance.
    async fn load(&self) -> Result<Option<LeaseRecord>, BridgeError> {
        if let Some(record) = self.record.borrow().as_ref() {
            return Ok(Some(record.clone()));
        }
        let stored: Option<StoredRecord> = self
            .state
            .storage()
            .get(RECORD_KEY)
            .await
            .map_err(|error| internal(&format!("reading the lease record: {error}")))?;
        let stored = stored
            .map(StoredRecord::into_record)
            .transpose()
            .map_err(|error| internal(&format!("reading the lease record: {error}")))?;
        self.record.replace(stored.clone());
        Ok(stored)
    }

    async fn store(&self, record: &LeaseRecord) -> Result<(), BridgeError> {
        let text = StoredRecord::encode(record)
            .map_err(|error| internal(&format!("encoding the lease record: {error}")))?;
        self.state
            .storage()
            .put_raw(RECORD_KEY, text)
            .await
            .map_err(|error| internal(&format!("writing the lease record: {error}")))?;
        self.record.replace(Some(record.clone()));
        Ok(())
    }

    async fn claim_nonce(&self, claim: &NonceClaim) -> Result<bool, BridgeError> {
        self.nonces
            .claim(&self.state.storage().sql(), claim)
            .map_err(|error| internal(&format!("claiming the request nonce: {error}")))
    }

    /// Schedules the alarm at an absolute time (an `i64` would mean an offset to workers-rs),
    /// unless it is already set for no later than that.
    async fn wake_by(&self, deadline_ms: u64) -> Result<(), BridgeError> {
        if self
            .armed_at
            .get()
            .is_some_and(|armed| armed <= deadline_ms)
        {
            return Ok(());
        }
        let at = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(deadline_ms as f64));
        self.state
            .storage()
            .set_alarm(worker::ScheduledTime::new(at))
            .await
            .map_err(|error| internal(&format!("arming the reaper: {error}")))?;
        self.armed_at.set(Some(deadline_ms));
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        http::unix_millis()
    }
}

/// The `Sandbox` binding, as the lease logic and the exec driver call it: each call opens the
/// stub of the lease's sandbox (no I/O) and gives up at its deadline.
pub struct SandboxBinding<'a> {
    env: &'a Env,
}

impl<'a> SandboxBinding<'a> {
    /// The binding of this Worker's environment.
    pub fn new(env: &'a Env) -> Self {
        Self { env }
    }

    fn open(&self, lease_id: &str) -> Result<Sandbox, BridgeError> {
        Sandbox::open(self.env, SandboxId::parse(lease_id)?)
    }
}

impl SandboxCalls for SandboxBinding<'_> {
    async fn configure(
        &self,
        lease_id: &str,
        configuration: &SandboxConfiguration,
        timeout_ms: u64,
    ) -> Result<(), BridgeError> {
        let sandbox = self.open(lease_id)?;
        Ok(with_deadline(timeout_ms, sandbox.configure(configuration)).await?)
    }

    async fn run_script(
        &self,
        lease_id: &str,
        script: &str,
        timeout_ms: u64,
    ) -> Result<ExecOutput, BridgeError> {
        let sandbox = self.open(lease_id)?;
        Ok(with_deadline(timeout_ms, sandbox.run_script(script)).await?)
    }

    async fn destroy(&self, lease_id: &str, timeout_ms: u64) -> Result<(), BridgeError> {
        let sandbox = self.open(lease_id)?;
        Ok(with_deadline(timeout_ms, sandbox.destroy()).await?)
    }
}

fn internal(message: &str) -> BridgeError {
    BridgeError::Internal(message.to_owned())
}
