//! Calls into the `Sandbox` Durable Object of `@cloudflare/sandbox` over JS RPC.
//!
//! The SDK's `getSandbox()` fires `configure` without awaiting it; here every call is awaited, every
//! option is a plain JS object, and every call runs under a deadline of the bridge's own.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures_util::future::{Either, select};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use worker::{Delay, Env};

use crate::error::BridgeError;
use crate::sandbox::{
    ExecOptions, ExecOutput, SESSIONLESS, SandboxConfiguration, SandboxError, SandboxId,
};

/// Binding name of the `Sandbox` namespace in `wrangler.toml`.
const BINDING: &str = "Sandbox";

#[wasm_bindgen]
extern "C" {
    /// The raw RPC stub of one `Sandbox` object.
    #[wasm_bindgen(extends = js_sys::Object)]
    type SandboxStub;

    #[wasm_bindgen(method, catch)]
    fn configure(this: &SandboxStub, configuration: &JsValue) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = execWithSessionToken)]
    fn exec_with_session_token(
        this: &SandboxStub,
        command: &str,
        session_id: &str,
        options: &JsValue,
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = execStreamWithSessionToken)]
    fn exec_stream_with_session_token(
        this: &SandboxStub,
        command: &str,
        session_id: &str,
        options: &JsValue,
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = writeFile)]
    fn write_file(
        this: &SandboxStub,
        path: &str,
        content: &str,
        options: &JsValue,
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = deleteFile)]
    fn delete_file(
        this: &SandboxStub,
        path: &str,
        session_id: &str,
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn destroy(this: &SandboxStub) -> Result<js_sys::Promise, JsValue>;
}

/// Options of `writeFile`: sessionless, so no shell session is created for it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WriteOptions {
    session_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

/// One sandbox, addressed by id.
pub struct Sandbox {
    id: SandboxId,
    stub: SandboxStub,
}

impl Sandbox {
    /// The stub of sandbox `id`; nothing is called yet.
    pub fn open(env: &Env, id: SandboxId) -> Result<Self, BridgeError> {
        let stub = env
            .durable_object(BINDING)
            .and_then(|namespace| namespace.get_by_name(id.as_str()))
            .map_err(|error| {
                BridgeError::Internal(format!("the {BINDING} Durable Object binding: {error}"))
            })?
            .into_rpc::<SandboxStub>();
        Ok(Self { id, stub })
    }

    /// The sandbox id.
    pub fn id(&self) -> &SandboxId {
        &self.id
    }

    /// Applies name, keepAlive and sleepAfter, and waits until the object stored them.
    pub async fn configure(
        &self,
        configuration: &SandboxConfiguration,
    ) -> Result<(), SandboxError> {
        call(self.stub.configure(&to_js(configuration)?))
            .await
            .map(drop)
    }

    /// Runs `command` in `session_id` and returns its result.
    pub async fn exec(
        &self,
        command: &str,
        session_id: &str,
        options: &ExecOptions,
    ) -> Result<ExecOutput, SandboxError> {
        let result = call(
            self.stub
                .exec_with_session_token(command, session_id, &to_js(options)?),
        )
        .await?;
        serde_wasm_bindgen::from_value(result)
            .map_err(|error| SandboxError::Protocol(format!("exec result: {error}")))
    }

    /// Runs `command` sessionless with `env` added to its initial environment, and returns the
    /// container's event stream as it is produced.
    pub async fn exec_stream(
        &self,
        command: &str,
        env: BTreeMap<String, String>,
    ) -> Result<worker::web_sys::ReadableStream, SandboxError> {
        let options = ExecOptions {
            env: Some(env),
            ..ExecOptions::default()
        };
        let stream = call(self.stub.exec_stream_with_session_token(
            command,
            SESSIONLESS,
            &to_js(&options)?,
        ))
        .await?;
        stream
            .dyn_into::<worker::web_sys::ReadableStream>()
            .map_err(|_| SandboxError::Protocol("execStream did not return a stream".into()))
    }

    /// Runs a short sessionless script and returns its exit code.
    pub async fn run_script(&self, script: &str) -> Result<ExecOutput, SandboxError> {
        self.exec(script, SESSIONLESS, &ExecOptions::default())
            .await
    }

    /// Writes a text file (parent directories are created).
    pub async fn write_file(&self, path: &str, content: &str) -> Result<(), SandboxError> {
        self.start_write(path, content, None)?.finish().await
    }

    /// Starts writing `base64`'s bytes to a file (parent directories are created; the container
    /// decodes). The call is on its way when this returns, whether or not the write is awaited
    /// yet, so the caller can prepare the next one meanwhile.
    pub fn start_write_base64(
        &self,
        path: &str,
        base64: &str,
    ) -> Result<PendingWrite, SandboxError> {
        self.start_write(path, base64, Some("base64"))
    }

    fn start_write(
        &self,
        path: &str,
        content: &str,
        encoding: Option<&'static str>,
    ) -> Result<PendingWrite, SandboxError> {
        let options = to_js(&WriteOptions {
            session_id: SESSIONLESS,
            encoding,
        })?;
        let promise = self
            .stub
            .write_file(path, content, &options)
            .map_err(rpc_error)?;
        Ok(PendingWrite(JsFuture::from(promise)))
    }

    /// Deletes a file.
    pub async fn delete_file(&self, path: &str) -> Result<(), SandboxError> {
        call(self.stub.delete_file(path, SESSIONLESS))
            .await
            .map(drop)
    }

    /// Stops the container and forgets its filesystem.
    pub async fn destroy(&self) -> Result<(), SandboxError> {
        call(self.stub.destroy()).await.map(drop)
    }
}

/// A `writeFile` call under way.
pub struct PendingWrite(JsFuture);

impl PendingWrite {
    /// Waits for the write to be done.
    pub async fn finish(self) -> Result<(), SandboxError> {
        self.0.await.map(drop).map_err(rpc_error)
    }
}

/// Runs `future` for at most `timeout_ms`; the bridge never waits on the SDK without a bound.
pub async fn with_deadline<T>(
    timeout_ms: u64,
    future: impl Future<Output = Result<T, SandboxError>>,
) -> Result<T, SandboxError> {
    let deadline = Delay::from(Duration::from_millis(timeout_ms));
    match select(Box::pin(future), deadline).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(SandboxError::Timeout(timeout_ms)),
    }
}

async fn call(promise: Result<js_sys::Promise, JsValue>) -> Result<JsValue, SandboxError> {
    let promise = promise.map_err(rpc_error)?;
    JsFuture::from(promise).await.map_err(rpc_error)
}

/// Serialises options as plain JS objects (a `HashMap` would become a `Map` the SDK ignores).
fn to_js(value: &impl Serialize) -> Result<JsValue, SandboxError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|error| SandboxError::Protocol(format!("cannot encode RPC options: {error}")))
}

fn rpc_error(error: JsValue) -> SandboxError {
    SandboxError::from_rpc_message(&js_message(&error))
}

/// The message of a thrown JS value (an `Error`'s message, a string, or its debug form).
pub fn js_message(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"))
}
