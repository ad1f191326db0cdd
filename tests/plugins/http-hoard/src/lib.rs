//! Makes the host hold wasi:http resources, on command, and keeps them (in a global, so they
//! outlive the call if the host keeps the instance); answers `call #N: held M` (N counts the
//! calls its instance served, M the resources it holds):
//!   `fields N BYTES`     N fields, each with one header of BYTES bytes
//!   `empty N`            N empty fields
//!   `clone N BYTES`      one fields with a header of BYTES bytes, cloned N times
//!   `authority N BYTES`  N outgoing requests with an authority of BYTES bytes
//!   `bodies N`           N outgoing requests with their bodies taken
//!   `hoard BYTES`        fields of BYTES bytes, kept, until the host stops it
//!   `churn BYTES`        fields of BYTES bytes, each dropped at once, until the host stops it
//!   `drop`               lets go of everything held

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct HttpHoard;

impl Plugin for HttpHoard {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let text = msg.text().unwrap_or_default();
        let mut words = text.split_whitespace();
        let command = words.next().unwrap_or_default();
        let mut number = || {
            words
                .next()
                .and_then(|w| w.parse::<usize>().ok())
                .unwrap_or(1)
        };
        let (first, second) = (number(), number());
        let (n, bytes) = match command {
            "hoard" | "churn" => (1, first),
            _ => (first, second),
        };
        let (calls, held) = hoard::run(command, n, bytes)
            .map_err(|e| wxhost_sdk::Error::msg(format!("{command}: {e}")))?;
        Ok(Reply::text(format!("call #{calls}: held {held}")).into())
    }
}

#[cfg(target_arch = "wasm32")]
mod hoard {
    use std::cell::{Cell, RefCell};

    use wasip2::http::types::{Fields, OutgoingBody, OutgoingRequest};

    /// What the instance holds (dropping one lets go of its resources).
    #[allow(dead_code)]
    enum Held {
        Fields(Fields),
        Request(OutgoingRequest),
        Body(OutgoingBody, OutgoingRequest),
    }

    thread_local! {
        static CALLS: Cell<usize> = const { Cell::new(0) };
        static HOARD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
    }

    fn header(bytes: usize) -> Result<Fields, String> {
        let fields = Fields::new();
        fields
            .append("x-hoard", &vec![b'a'; bytes])
            .map_err(|e| format!("append: {e:?}"))?;
        Ok(fields)
    }

    /// Runs `command`; the calls this instance served and the resources it holds.
    pub fn run(command: &str, n: usize, bytes: usize) -> Result<(usize, usize), String> {
        let calls = CALLS.get() + 1;
        CALLS.set(calls);
        HOARD.with_borrow_mut(|held| {
            act(held, command, n, bytes)?;
            Ok((calls, held.len()))
        })
    }

    fn act(held: &mut Vec<Held>, command: &str, n: usize, bytes: usize) -> Result<(), String> {
        match command {
            "fields" => {
                for _ in 0..n {
                    held.push(Held::Fields(header(bytes)?));
                }
            }
            "empty" => {
                for _ in 0..n {
                    held.push(Held::Fields(Fields::new()));
                }
            }
            "clone" => {
                let first = header(bytes)?;
                for _ in 0..n {
                    held.push(Held::Fields(first.clone()));
                }
                held.push(Held::Fields(first));
            }
            "authority" => {
                let authority = "a".repeat(bytes);
                for _ in 0..n {
                    let request = OutgoingRequest::new(Fields::new());
                    request
                        .set_authority(Some(&authority))
                        .map_err(|()| "set_authority refused".to_owned())?;
                    held.push(Held::Request(request));
                }
            }
            "bodies" => {
                for _ in 0..n {
                    let request = OutgoingRequest::new(Fields::new());
                    let body = request.body().map_err(|()| "body refused".to_owned())?;
                    held.push(Held::Body(body, request));
                }
            }
            "hoard" => loop {
                held.push(Held::Fields(header(bytes)?));
            },
            "churn" => loop {
                drop(header(bytes)?);
            },
            "drop" => held.clear(),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod hoard {
    /// Natively there is no wasi:http: nothing is held.
    pub fn run(_command: &str, _n: usize, _bytes: usize) -> Result<(usize, usize), String> {
        Ok((1, 0))
    }
}

wxhost_sdk::export!(HttpHoard);
