//! Counts its own runs in kv (`runs`), takes `spin_ms` (setting, default 300) of wall-clock
//! time, then answers `run #N`: tests see how many times a message really ran the plugin.

use std::time::{Duration, Instant};

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct SlowCounter;

impl Plugin for SlowCounter {
    fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let runs = wxhost_sdk::kv::increment("runs", 1)?;
        let spin = Duration::from_millis(wxhost_sdk::config::get("spin_ms")?.unwrap_or(300));
        let started = Instant::now();
        while started.elapsed() < spin {
            std::hint::spin_loop();
        }
        Ok(Reply::text(format!("run #{runs}")).into())
    }
}

wxhost_sdk::export!(SlowCounter);
