//! Writes kv keys until the host refuses, then answers how many it wrote and why it stopped.

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct KvFlood;

impl Plugin for KvFlood {
    fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let block = vec![7u8; 1024];
        for n in 0u64.. {
            if let Err(e) = wxhost_sdk::kv::set(&format!("flood:{n}"), &block, None) {
                return Ok(Reply::text(format!("wrote {n} keys, then: {e}")).into());
            }
        }
        Ok(Outcome::Pass)
    }
}

wxhost_sdk::export!(KvFlood);
