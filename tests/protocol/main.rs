//! Integration tests of the protocol core: published vectors, every message and reply type,
//! the account's view of a push in each mode, hostile inputs, and property tests.

mod hostile;
mod messages;
mod properties;
mod push;
mod replies;
mod sdk_replies;
mod vectors;
