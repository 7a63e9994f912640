//! The targets of DESIGN §10 and issue 10 against the measured values: one row each with the
//! value, the target and pass or fail. A value the bench did not produce fails.

use serde_json::{Value, json};

/// Which side of the limit passes.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtMost,
    AtLeast,
}

/// One target and what was measured for it.
#[derive(Debug)]
pub struct Check {
    name: &'static str,
    value: Option<f64>,
    bound: Bound,
    limit: f64,
}

impl Check {
    /// Whether the bench produced a value for it (a partial bench leaves some out).
    pub fn is_measured(&self) -> bool {
        self.value.is_some()
    }

    fn passes(&self) -> bool {
        self.value.is_some_and(|value| match self.bound {
            Bound::AtMost => value <= self.limit,
            Bound::AtLeast => value >= self.limit,
        })
    }

    fn target(&self) -> String {
        match self.bound {
            Bound::AtMost => format!("<= {}", self.limit),
            Bound::AtLeast => format!(">= {}", self.limit),
        }
    }
}

/// Every target, from the bench's report.
pub fn of(report: &Value) -> Vec<Check> {
    let at = |pointer: &str| report.pointer(pointer).and_then(Value::as_f64);
    let at_most = |name, pointer: &str, limit| Check {
        name,
        value: at(pointer),
        bound: Bound::AtMost,
        limit,
    };
    let at_least = |name, pointer: &str, limit| Check {
        name,
        value: at(pointer),
        bound: Bound::AtLeast,
        limit,
    };
    let wasm_kib = at("/worker/wasmGzipBytes").map(|bytes| bytes / 1024.0);
    vec![
        at_most(
            "exec overhead p50, agent shape (ms)",
            "/roundTrip/agent~1socket/overheadP50Ms",
            8.0,
        ),
        at_most(
            "exec overhead p99, agent shape (ms)",
            "/roundTrip/agent~1socket/overheadP99Ms",
            20.0,
        ),
        at_most(
            "exec overhead p50, control shape (ms)",
            "/roundTrip/control~1socket/overheadP50Ms",
            8.0,
        ),
        at_most(
            "exec overhead p99, control shape (ms)",
            "/roundTrip/control~1socket/overheadP99Ms",
            20.0,
        ),
        at_most(
            "Durable Object calls per exec besides Sandbox's",
            "/roundTrip/durableObjectCallsPerExec/besidesSandbox",
            1.0,
        ),
        at_least(
            "64 MiB SSE stream through the bridge (MiB/s)",
            "/streaming/mibPerSecond",
            100.0,
        ),
        at_least(
            "64 MiB into the host's execute.log, plugin included (MiB/s)",
            "/plugin/executeLogStream/mibPerSecond",
            90.0,
        ),
        Check {
            name: "workerd peak RSS, 64 MiB stream (MiB; 1.5 x idle + 64)",
            value: at("/streaming/workerdRssPeakMiB"),
            bound: Bound::AtMost,
            limit: at("/streaming/workerdRssLimitMiB").map_or(0.0, |limit| limit.round()),
        },
        at_most(
            "plugin peak RSS / output size, 64 MiB",
            "/plugin/stream/peakOverOutput",
            3.0,
        ),
        at_most(
            "plugin worker start, fork to initialize (ms)",
            "/plugin/forkToInitializeMs",
            30.0,
        ),
        at_most("plugin idle RSS (MiB)", "/plugin/idleRssMiB", 6.0),
        Check {
            name: "Worker upload, gzipped (KiB)",
            value: wasm_kib,
            bound: Bound::AtMost,
            limit: 400.0,
        },
        at_most(
            "100 MiB via environmentSyncIn (ms)",
            "/sync/direct100MiBMs",
            3000.0,
        ),
        at_least(
            "host fallback / native sync-in, 50 MiB workspace",
            "/sync/fallbackOverNative",
            10.0,
        ),
    ]
}

/// The checks as JSON, for `bench.json`.
pub fn json(checks: &[Check]) -> Value {
    checks
        .iter()
        .map(|check| {
            json!({
                "name": check.name,
                "value": check.value,
                "target": check.target(),
                "pass": check.passes(),
            })
        })
        .collect()
}

/// Prints the checks as a table.
pub fn print(checks: &[Check]) {
    println!(
        "\n{:<62} {:>10} {:>10}  result",
        "target", "measured", "target"
    );
    for check in checks {
        let measured = check
            .value
            .map_or_else(|| "missing".to_owned(), |value| format!("{value:.2}"));
        let result = if check.passes() { "pass" } else { "FAIL" };
        println!(
            "{:<62} {measured:>10} {:>10}  {result}",
            check.name,
            check.target()
        );
    }
}
