//! The request loop: reads host lines, answers each request from its own task (so a slow
//! `environmentExecute` never delays a short call), and writes every line through one writer.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::framing::LineReader;
use super::message::{IncomingMessage, Invocation, OutgoingMessage, RpcError, codes};

/// Lines queued for the writer before handlers wait (backpressure on large outputs).
const WRITER_QUEUE: usize = 256;
/// How long queued lines get to reach the host when the loop ends.
const FINAL_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// A host request, as handlers see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method name.
    pub method: String,
    /// Parameters.
    pub params: Value,
    /// The invocation context, when the host sent one.
    pub invocation: Option<Invocation>,
}

/// Sends notifications to the host, in order with the responses.
#[derive(Debug, Clone)]
pub struct Notifier {
    lines: mpsc::Sender<OutgoingMessage>,
}

impl Notifier {
    /// Queues a notification; waits while the writer is behind.
    pub async fn notify(&self, method: &'static str, params: Value, invocation_id: &str) {
        let message = OutgoingMessage::Notification {
            jsonrpc: "2.0",
            method,
            params,
            paperclip_invocation_id: invocation_id.to_owned(),
        };
        if self.lines.send(message).await.is_err() {
            tracing::debug!("the host is gone; a notification was dropped");
        }
    }
}

/// What serves the methods.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        &self,
        request: Request,
        notifier: Notifier,
    ) -> impl Future<Output = Result<Value, RpcError>> + Send;
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The host asked (`shutdown`).
    Shutdown,
    /// stdin reached end of file: the host (or the shim) is gone.
    EndOfInput,
}

/// Serves `input` until `shutdown` or end of input; every line written to `output` is one whole
/// JSON message.
pub async fn serve<R, W, H>(input: R, output: W, handler: Arc<H>) -> std::io::Result<Exit>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let (lines, queue) = mpsc::channel(WRITER_QUEUE);
    let writer = tokio::spawn(write_lines(queue, output));
    let mut reader = LineReader::new(input);
    let exit = loop {
        let Some(line) = reader.next_line().await? else {
            break Exit::EndOfInput;
        };
        match parse(&line) {
            Parsed::Request { id, request } if request.method == "shutdown" => {
                respond(&lines, id, Ok(Value::Null)).await;
                break Exit::Shutdown;
            }
            Parsed::Request { id, request } => {
                let handler = Arc::clone(&handler);
                let notifier = Notifier {
                    lines: lines.clone(),
                };
                let lines = lines.clone();
                tokio::spawn(async move {
                    let outcome = handler.handle(request, notifier).await;
                    respond(&lines, id, outcome).await;
                });
            }
            Parsed::Invalid { code, message } => {
                respond(&lines, Value::Null, Err(RpcError::new(code, message))).await;
            }
            Parsed::Ignored => {}
        }
    };
    drop(lines);
    // Requests still running keep the writer alive; give what is queued a moment to reach the
    // host, then leave (the host waits 10 s after `shutdown`, and after EOF nobody is reading).
    if tokio::time::timeout(FINAL_FLUSH, writer).await.is_err() {
        tracing::debug!("left with requests still running");
    }
    Ok(exit)
}

async fn respond(
    lines: &mpsc::Sender<OutgoingMessage>,
    id: Value,
    outcome: Result<Value, RpcError>,
) {
    if lines
        .send(OutgoingMessage::response(id, outcome))
        .await
        .is_err()
    {
        tracing::debug!("the host is gone; a response was dropped");
    }
}

/// Writes queued messages, flushing whenever the queue runs empty.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut queue: mpsc::Receiver<OutgoingMessage>,
    output: W,
) -> std::io::Result<()> {
    let mut output = BufWriter::with_capacity(256 * 1024, output);
    while let Some(message) = queue.recv().await {
        output.write_all(&message.to_line()).await?;
        while let Ok(message) = queue.try_recv() {
            output.write_all(&message.to_line()).await?;
        }
        output.flush().await?;
    }
    output.flush().await
}

/// A host line, classified.
#[derive(Debug)]
enum Parsed {
    Request { id: Value, request: Request },
    Invalid { code: i64, message: String },
    Ignored,
}

fn parse(line: &[u8]) -> Parsed {
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(error) => {
            return Parsed::Invalid {
                code: codes::PARSE_ERROR,
                message: format!("the line is not valid JSON: {error}"),
            };
        }
    };
    if !value.is_object() {
        return Parsed::Invalid {
            code: codes::INVALID_REQUEST,
            message: "expected one JSON-RPC object per line (batches are not supported)".into(),
        };
    }
    let message: IncomingMessage = match serde_json::from_value(value) {
        Ok(message) => message,
        Err(error) => {
            return Parsed::Invalid {
                code: codes::INVALID_REQUEST,
                message: format!("not a JSON-RPC 2.0 message: {error}"),
            };
        }
    };
    if message.jsonrpc.as_deref() != Some("2.0") {
        return Parsed::Invalid {
            code: codes::INVALID_REQUEST,
            message: "jsonrpc must be \"2.0\"".into(),
        };
    }
    match (message.id, message.method) {
        (Some(id), Some(method)) if !id.is_null() => Parsed::Request {
            id,
            request: Request {
                method,
                params: message.params,
                invocation: message.paperclip_invocation,
            },
        },
        _ => Parsed::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// Echoes params; `sleep` waits for `params.ms` first; `fail` fails.
    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request, notifier: Notifier) -> Result<Value, RpcError> {
            match request.method.as_str() {
                "sleep" => {
                    let ms = request.params["ms"].as_u64().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(request.params)
                }
                "log" => {
                    if let Some(invocation) = &request.invocation {
                        notifier
                            .notify("execute.log", json!({"chunk": "hi"}), &invocation.id)
                            .await;
                    }
                    Ok(Value::Null)
                }
                "fail" => Err(RpcError::new(codes::WORKER_ERROR, "it failed")),
                _ => Ok(request.params),
            }
        }
    }

    async fn exchange(input: &str) -> (Exit, Vec<Value>) {
        let (mut host_out, plugin_in) = tokio::io::duplex(1 << 20);
        let (plugin_out, host_in) = tokio::io::duplex(1 << 20);
        host_out.write_all(input.as_bytes()).await.expect("written");
        drop(host_out);
        let exit = serve(BufReader::new(plugin_in), plugin_out, Arc::new(Echo))
            .await
            .expect("served");
        let mut lines = BufReader::new(host_in).lines();
        let mut messages = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            messages.push(serde_json::from_str(&line).expect("every line is JSON"));
        }
        (exit, messages)
    }

    #[tokio::test]
    async fn answers_bad_lines_with_null_id_errors_and_keeps_going() {
        let (exit, messages) = exchange(
            "not json\n[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}]\n{\"jsonrpc\":\"1.0\",\"id\":2,\"method\":\"x\"}\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\",\"params\":{\"v\":1}}\n",
        )
        .await;
        assert_eq!(exit, Exit::EndOfInput);
        assert_eq!(messages[0]["error"]["code"], codes::PARSE_ERROR);
        assert_eq!(messages[0]["id"], Value::Null);
        assert_eq!(messages[1]["error"]["code"], codes::INVALID_REQUEST);
        assert_eq!(messages[2]["error"]["code"], codes::INVALID_REQUEST);
        assert_eq!(
            messages[3],
            json!({"jsonrpc": "2.0", "id": 3, "result": {"v": 1}})
        );
    }

    #[tokio::test]
    async fn a_slow_request_does_not_delay_a_fast_one() {
        let (_, messages) = exchange(
            "{\"jsonrpc\":\"2.0\",\"id\":\"slow\",\"method\":\"sleep\",\"params\":{\"ms\":300}}\n{\"jsonrpc\":\"2.0\",\"id\":\"fast\",\"method\":\"sleep\",\"params\":{\"ms\":0}}\n",
        )
        .await;
        let ids: Vec<&Value> = messages.iter().map(|message| &message["id"]).collect();
        assert_eq!(ids, [&json!("fast"), &json!("slow")]);
    }

    #[tokio::test]
    async fn shutdown_answers_null_and_stops_reading() {
        let (exit, messages) = exchange(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fail\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"shutdown\",\"params\":{}}\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}\n",
        )
        .await;
        assert_eq!(exit, Exit::Shutdown);
        let by_id = |id: i64| messages.iter().find(|message| message["id"] == id);
        assert_eq!(by_id(2).expect("answered")["result"], Value::Null);
        assert!(by_id(3).is_none(), "nothing is read after shutdown");
    }

    #[tokio::test]
    async fn notifications_precede_their_response_and_host_notifications_are_ignored() {
        let (_, messages) = exchange(
            "{\"jsonrpc\":\"2.0\",\"method\":\"onEvent\",\"params\":{}}\n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"log\",\"paperclipInvocation\":{\"id\":\"inv\"}}\n",
        )
        .await;
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["method"], "execute.log");
        assert_eq!(messages[0]["paperclipInvocationId"], "inv");
        assert_eq!(messages[1]["id"], 9);
    }
}
