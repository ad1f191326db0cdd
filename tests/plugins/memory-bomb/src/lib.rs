//! Allocates 1 MiB blocks until the host refuses to grow its memory.

use wxhost_sdk::{Message, Outcome, Plugin};

/// The plugin.
pub struct MemoryBomb;

impl Plugin for MemoryBomb {
    fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let mut blocks = Vec::new();
        loop {
            blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

wxhost_sdk::export!(MemoryBomb);
