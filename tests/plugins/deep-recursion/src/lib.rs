//! Recurses without end: the guest's stack overflows.

use wxhost_sdk::{Message, Outcome, Plugin};

fn depth(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 16]);
    if frame[0] == u64::MAX {
        return 0; // never true: keeps the recursion unbounded without a lint
    }
    depth(frame[3] + 1) + frame[5]
}

/// The plugin.
pub struct DeepRecursion;

impl Plugin for DeepRecursion {
    fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
        Ok(wxhost_sdk::Reply::text(depth(0).to_string()).into())
    }
}

wxhost_sdk::export!(DeepRecursion);
