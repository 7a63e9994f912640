//! The nonce cache of DESIGN §4 in Durable Object storage, sharded by nonce so no object is hot.
//!
//! Isolate memory is per isolate and may be evicted at any time, so it cannot prove a nonce is new;
//! a Durable Object is the single writer that can.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use worker::{
    DurableObject, Env, Method, Request, RequestInit, Response, SqlStorageValue, State,
    durable_object,
};

use crate::error::BridgeError;
use bridge_protocol::auth::{AuthRejection, Nonce};

/// Binding name of the replay guard namespace in `wrangler.toml`.
const BINDING: &str = "REPLAY_GUARD";
/// Number of shards; nonces are random, so load spreads evenly.
const SHARDS: u8 = 16;

/// A request to remember a nonce.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NonceClaim {
    nonce: String,
    remember_until: u64,
    now: u64,
}

/// Whether the nonce was new.
#[derive(Serialize, Deserialize)]
struct NonceVerdict {
    fresh: bool,
}

/// Remembers `nonce` until `remember_until`; fails with `replayed_nonce` if it was seen before.
pub async fn claim(
    env: &Env,
    nonce: &Nonce,
    remember_until: u64,
    now: u64,
) -> Result<(), BridgeError> {
    let internal = |error: worker::Error| BridgeError::Internal(format!("replay guard: {error}"));
    let shard = Sha256::digest(nonce.as_str().as_bytes())[0] % SHARDS;
    let stub = env
        .durable_object(BINDING)
        .and_then(|namespace| namespace.get_by_name(&format!("replay-{shard:x}")))
        .map_err(internal)?;
    let claim = NonceClaim {
        nonce: nonce.to_string(),
        remember_until,
        now,
    };
    let body = serde_json::to_string(&claim)
        .map_err(|error| BridgeError::Internal(format!("replay guard: {error}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request = Request::new_with_init("https://replay-guard/claim", &init).map_err(internal)?;
    let mut response = stub.fetch_with_request(request).await.map_err(internal)?;
    let verdict: NonceVerdict = response.json().await.map_err(internal)?;
    if verdict.fresh {
        Ok(())
    } else {
        Err(AuthRejection::ReplayedNonce.into())
    }
}

/// One shard of the nonce cache (SQLite-backed).
#[durable_object]
pub struct ReplayGuard {
    state: State,
}

impl DurableObject for ReplayGuard {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        let claim: NonceClaim = request.json().await?;
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS seen_nonces (nonce TEXT PRIMARY KEY, remember_until INTEGER NOT NULL)",
            None,
        )?;
        sql.exec(
            "DELETE FROM seen_nonces WHERE remember_until < ?",
            vec![seconds(claim.now)?],
        )?;
        let claimed = sql
            .exec(
                "INSERT INTO seen_nonces (nonce, remember_until) VALUES (?, ?) \
                 ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                vec![claim.nonce.into(), seconds(claim.remember_until)?],
            )?
            .raw()
            .count();
        Response::from_json(&NonceVerdict {
            fresh: claimed == 1,
        })
    }
}

/// A Unix time as an SQL integer.
fn seconds(value: u64) -> worker::Result<SqlStorageValue> {
    let value = i64::try_from(value).map_err(|_| worker::Error::from("time out of range"))?;
    SqlStorageValue::try_from_i64(value)
}
