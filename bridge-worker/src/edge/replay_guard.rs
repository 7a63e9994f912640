//! The nonce cache of DESIGN §4 in Durable Object storage, sharded by nonce so no object is hot,
//! for the requests whose nonce no lease object claims (see `crate::replay`).
//!
//! Isolate memory is per isolate and may be evicted at any time, so it cannot prove a nonce is new;
//! a Durable Object is the single writer that can.

use std::cell::Cell;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use worker::{
    DurableObject, Env, Method, Request, RequestInit, Response, SqlStorage, SqlStorageValue, State,
    durable_object,
};

use super::http;
use crate::error::BridgeError;
use crate::replay::NonceClaim;
use bridge_protocol::auth::AuthRejection;

/// Binding name of the replay guard namespace in `wrangler.toml`.
const BINDING: &str = "REPLAY_GUARD";
/// Number of shards; nonces are random, so load spreads evenly.
const SHARDS: u8 = 16;

/// Whether the nonce was new.
#[derive(Serialize, Deserialize)]
struct NonceVerdict {
    fresh: bool,
}

/// Claims a nonce with the shard that owns it; fails with `replayed_nonce` if it was seen before.
pub async fn claim(env: &Env, claim: &NonceClaim) -> Result<(), BridgeError> {
    let internal = |error: worker::Error| BridgeError::Internal(format!("replay guard: {error}"));
    let shard = Sha256::digest(claim.nonce.as_bytes())[0] % SHARDS;
    let stub = env
        .durable_object(BINDING)
        .and_then(|namespace| namespace.get_by_name(&format!("replay-{shard:x}")))
        .map_err(internal)?;
    let body = serde_json::to_string(claim)
        .map_err(|error| BridgeError::Internal(format!("replay guard: {error}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request = Request::new_with_init("https://replay-guard/claim", &init).map_err(internal)?;
    let response = stub.fetch_with_request(request).await.map_err(internal)?;
    let body = http::whole_body(&response).await.map_err(internal)?;
    let verdict: NonceVerdict = serde_json::from_slice(&body)
        .map_err(|error| BridgeError::Internal(format!("replay guard reply: {error}")))?;
    if verdict.fresh {
        Ok(())
    } else {
        Err(AuthRejection::ReplayedNonce.into())
    }
}

/// The nonces an object remembers, in its SQLite storage. Shared by the guard's shards and the
/// lease objects.
#[derive(Default)]
pub(super) struct NonceTable {
    /// Whether this instance has made sure the table and its index exist.
    ready: Cell<bool>,
}

impl NonceTable {
    /// Remembers `claim`'s nonce, forgetting expired ones; `false` if it was remembered already.
    /// Expired nonces are found through an index, so a busy object does not scan every nonce of
    /// its window on each claim.
    pub(super) fn claim(&self, sql: &SqlStorage, claim: &NonceClaim) -> worker::Result<bool> {
        if !self.ready.get() {
            sql.exec(
                "CREATE TABLE IF NOT EXISTS seen_nonces (nonce TEXT PRIMARY KEY, remember_until INTEGER NOT NULL)",
                None,
            )?;
            sql.exec(
                "CREATE INDEX IF NOT EXISTS seen_nonces_by_expiry ON seen_nonces (remember_until)",
                None,
            )?;
            self.ready.set(true);
        }
        sql.exec(
            "DELETE FROM seen_nonces WHERE remember_until < ?",
            vec![seconds(claim.now)?],
        )?;
        let claimed = sql
            .exec(
                "INSERT INTO seen_nonces (nonce, remember_until) VALUES (?, ?) \
                 ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                vec![claim.nonce.clone().into(), seconds(claim.remember_until)?],
            )?
            .raw()
            .count();
        Ok(claimed == 1)
    }
}

/// One shard of the nonce cache (SQLite-backed).
#[durable_object]
pub struct ReplayGuard {
    state: State,
    nonces: NonceTable,
}

impl DurableObject for ReplayGuard {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            nonces: NonceTable::default(),
        }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        let claim: NonceClaim = serde_json::from_slice(&request.bytes().await?)?;
        let fresh = self.nonces.claim(&self.state.storage().sql(), &claim)?;
        Response::from_json(&NonceVerdict { fresh })
    }
}

/// A Unix time as an SQL integer.
fn seconds(value: u64) -> worker::Result<SqlStorageValue> {
    let value = i64::try_from(value).map_err(|_| worker::Error::from("time out of range"))?;
    SqlStorageValue::try_from_i64(value)
}
