//! Spins forever: the host must stop it at its deadline (or when its fuel runs out).

use wxhost_sdk::{Message, Outcome, Plugin};

/// The plugin.
pub struct InfiniteLoop;

impl Plugin for InfiniteLoop {
    fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

wxhost_sdk::export!(InfiniteLoop);
