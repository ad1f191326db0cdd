//! The WeChat Official Account callback protocol, with no I/O: signatures, the message cipher,
//! the message model, passive replies, the replay guard, and an account's view of a push.
//!
//! Everything here is a pure function of its inputs (time and randomness are parameters), so the
//! published test vectors, property tests and the fuzzer drive it directly.

pub mod crypto;
mod error;
pub mod message;
pub mod push;
pub mod replay;
pub mod reply;
pub mod signature;
pub mod xml;

pub use crypto::{AesKey, EnvelopeParams, MessageCipher};
pub use error::{Error, Result};
pub use message::{Content, Event, Message};
pub use push::{Account, CallbackQuery, Inbound, Mode};
pub use replay::TimestampWindow;
pub use reply::{Article, Reply, ReplyMessage};

/// How long WeChat waits for the answer to a push before it gives up on that attempt.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How many times WeChat sends a push it gets no answer to: the first attempt and its
/// retries, each sent when the one before timed out.
pub const ATTEMPTS: u32 = 3;
