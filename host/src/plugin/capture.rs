//! A guest's stdout or stderr, kept up to a cap and then silently truncated (a full pipe must
//! not make a chatty plugin's `println!` panic), so the host can log it with the plugin's name.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A capped in-memory output stream; clones share the buffer.
#[derive(Debug, Clone)]
pub struct Capture {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    cap: usize,
    dropped: usize,
}

impl Capture {
    /// A capture that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Capture {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    /// The text kept (lossy UTF-8) and how many bytes were dropped past the cap.
    pub fn take(&self) -> (String, usize) {
        match self.inner.lock() {
            Ok(mut c) => {
                let text = String::from_utf8_lossy(&c.bytes).into_owned();
                c.bytes.clear();
                (text, std::mem::take(&mut c.dropped))
            }
            Err(_) => (String::new(), 0),
        }
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only the p2 stream below is used by wasip2 guests.
        Box::new(tokio::io::sink())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if let Ok(mut c) = self.inner.lock() {
            let room = c.cap.saturating_sub(c.bytes.len());
            let kept = room.min(bytes.len());
            c.bytes.extend_from_slice(&bytes[..kept]);
            c.dropped += bytes.len() - kept;
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}
