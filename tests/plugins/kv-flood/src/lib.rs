//! Writes kv keys until the host refuses, then answers how many it wrote and why it stopped.
//!
//! The message text says what to write: `PREFIX` writes `PREFIX:0`, `PREFIX:1`, … (1 KiB each)
//! until a write fails; `PREFIX COUNT` writes at most `COUNT` of them; `free PREFIX` deletes
//! `PREFIX:0`, `PREFIX:1`, … until one is missing.

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct KvFlood;

impl Plugin for KvFlood {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let text = msg.text().unwrap_or("flood");
        let words: Vec<&str> = text.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["free", prefix] => free(prefix),
            [prefix, count] => match count.parse() {
                Ok(count) => flood(prefix, count),
                Err(_) => format!("not a count: {count}"),
            },
            [prefix] => flood(prefix, u64::MAX),
            _ => "say PREFIX [COUNT] or free PREFIX".to_owned(),
        };
        Ok(Reply::text(answer).into())
    }
}

fn flood(prefix: &str, count: u64) -> String {
    let block = vec![7u8; 1024];
    for n in 0..count {
        if let Err(e) = wxhost_sdk::kv::set(&format!("{prefix}:{n}"), &block, None) {
            return format!("wrote {n} keys, then: {e}");
        }
    }
    format!("wrote {count} keys")
}

fn free(prefix: &str) -> String {
    for n in 0u64.. {
        match wxhost_sdk::kv::delete(&format!("{prefix}:{n}")) {
            Ok(true) => {}
            Ok(false) => return format!("freed {n} keys"),
            Err(e) => return format!("freed {n} keys, then: {e}"),
        }
    }
    unreachable!("u64 keys run out")
}

wxhost_sdk::export!(KvFlood);
