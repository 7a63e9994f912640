//! NDJSON framing: one JSON value per line, `\n` or `\r\n`, blank lines ignored, lines of any
//! length (the host sends multi-megabyte `stdin` payloads inline).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads host lines one at a time.
pub struct LineReader<R> {
    input: R,
    buffer: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            buffer: Vec::new(),
        }
    }

    /// The next non-blank line without its terminator, or `None` at end of input. A final line
    /// without a newline still counts.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            self.buffer.clear();
            if self.input.read_until(b'\n', &mut self.buffer).await? == 0 {
                return Ok(None);
            }
            let mut line = std::mem::take(&mut self.buffer);
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().any(|byte| !byte.is_ascii_whitespace()) {
                return Ok(Some(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, BufReader, ReadBuf};

    use super::*;

    /// Hands out its data a few bytes per read, like a pipe under load.
    struct Trickle {
        data: Vec<u8>,
        position: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _context: &mut Context<'_>,
            buffer: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let end = (self.position + self.step)
                .min(self.data.len())
                .min(self.position + buffer.remaining());
            let chunk = self.data[self.position..end].to_vec();
            buffer.put_slice(&chunk);
            self.position = end;
            Poll::Ready(Ok(()))
        }
    }

    async fn lines(data: &[u8], step: usize) -> Vec<Vec<u8>> {
        let mut reader = LineReader::new(BufReader::new(Trickle {
            data: data.to_vec(),
            position: 0,
            step,
        }));
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.expect("readable") {
            lines.push(line);
        }
        lines
    }

    #[tokio::test]
    async fn splits_lines_whatever_the_read_sizes() {
        let data = b"{\"a\":1}\r\n\n  \n{\"b\":\"x\\ny\"}\n{\"c\":3}";
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(
                lines(data, step).await,
                vec![
                    b"{\"a\":1}".to_vec(),
                    b"{\"b\":\"x\\ny\"}".to_vec(),
                    b"{\"c\":3}".to_vec()
                ],
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn reads_huge_lines_whole() {
        let payload = "x".repeat(12 * 1024 * 1024);
        let data = format!("{{\"stdin\":\"{payload}\"}}\n{{}}\n");
        let read = lines(data.as_bytes(), 1 << 20).await;
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].len(), payload.len() + 12);
    }
}
