//! Claims on request nonces (DESIGN §4): a nonce is remembered until its request could no longer
//! pass the clock check, so a second use within that window is refused.
//!
//! Execution requests (`/exec`, `/files/*`) name their lease in the signed request, so a replay can
//! only ever target that lease: their nonce is claimed by the lease's own object, in the same call
//! that journals the execution. Every other request is claimed by the sharded replay guard.

use serde::{Deserialize, Serialize};

use bridge_protocol::auth::Nonce;

/// A request to remember a nonce until `remember_until` (Unix seconds); `now` lets the store drop
/// nonces that expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NonceClaim {
    /// The request's nonce.
    pub nonce: String,
    /// Until when it must be remembered.
    pub remember_until: u64,
    /// The time of the claim.
    pub now: u64,
}

impl NonceClaim {
    /// The claim of `nonce` at `now`, remembered for `window_seconds`.
    pub fn new(nonce: &Nonce, now: u64, window_seconds: u64) -> Self {
        Self {
            nonce: nonce.to_string(),
            remember_until: now.saturating_add(window_seconds),
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_lasts_for_the_window() {
        let nonce = Nonce::parse("0123456789abcdef").expect("valid");
        let claim = NonceClaim::new(&nonce, 1_000, 600);
        assert_eq!(claim.remember_until, 1_600);
        assert_eq!(
            serde_json::to_string(&claim).expect("serialisable"),
            r#"{"nonce":"0123456789abcdef","rememberUntil":1600,"now":1000}"#
        );
    }
}
