//! Running one command: validating the request, following its output, and concluding it. The
//! wasm glue only moves bytes between the container's stream and the client.

mod conclusion;
mod end_record;
mod output;
mod plan;

pub use conclusion::{Conclusion, Unconcluded};
pub use end_record::EndRecord;
pub use output::{Chunk, Ending, OutputTracker};
pub use plan::{ExecPlan, is_shell_identifier};
