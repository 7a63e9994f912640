//! Leases: their ids, settings, record and state machine, the messages between the Worker and a
//! lease's Durable Object, and that object's logic over the sandbox and storage it needs — all
//! pure; `edge::lease_object` is its thin glue.

pub mod id;
pub mod object;
pub mod protocol;
pub mod record;
pub mod settings;

pub use record::LeaseRecord;
pub use settings::AcquirePlan;
