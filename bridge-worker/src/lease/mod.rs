//! Leases: their ids, settings, record and state machine (pure), and the messages between the
//! Worker and a lease's Durable Object.

pub mod id;
pub mod protocol;
pub mod record;
pub mod settings;

pub use record::{AcquireDecision, JournalEntry, LeaseRecord};
pub use settings::{AcquirePlan, LeaseSettings};
