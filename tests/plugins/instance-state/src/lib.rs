//! Counts, in a global, the calls its instance has served and answers `instance call #N`:
//! tests see whether the host kept the instance. `panic` panics (a trap), `fail` returns an
//! error value, `grow N` keeps N MiB more memory allocated.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

static CALLS: AtomicU32 = AtomicU32::new(0);
static HELD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// The plugin.
pub struct InstanceState;

impl Plugin for InstanceState {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let text = msg.text().unwrap_or_default();
        match text.split_once(' ').unwrap_or((text, "")) {
            ("panic", _) => panic!("asked to panic in instance call #{calls}"),
            ("fail", _) => {
                return Err(wxhost_sdk::Error::msg(format!(
                    "asked to fail in instance call #{calls}"
                )));
            }
            ("grow", mib) => {
                let mib: usize = mib.trim().parse().unwrap_or(1);
                let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
                held.push(vec![1; mib << 20]);
            }
            _ => {}
        }
        Ok(Reply::text(format!("instance call #{calls}")).into())
    }
}

wxhost_sdk::export!(InstanceState);
