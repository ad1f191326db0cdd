//! The wasm glue (wasm builds only): the wit-bindgen bindings of the `plugin` world and the
//! exported `handle`. The import calls are in `imports`, the conversions between the WIT
//! types and the SDK's in `convert`.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    pub_export_macro: true,
    default_bindings_module: "::wxhost_sdk::bindings",
    export_macro_name: "__export_plugin",
});

mod convert;
pub(crate) mod imports;

use std::sync::atomic::{AtomicU64, Ordering};

use self::wxhost::plugin::{raw_fields, types as wit};

/// The number of the call being handled, so that raw fields are fetched only for its message.
static CALL: AtomicU64 = AtomicU64::new(0);

/// Runs plugin `P` on a message from the host (called by the code [`crate::export!`] generates).
pub fn handle<P: crate::Plugin>(msg: Message) -> Result<Outcome, String> {
    // Importing `raw-fields` tells the host to leave `msg.fields` empty; the reference keeps
    // the import even in a plugin that never reads fields (the linker would drop it).
    core::hint::black_box(raw_fields::get as fn() -> Vec<wit::Field>);
    let call = CALL.fetch_add(1, Ordering::Relaxed) + 1;
    P::handle(&convert::message(msg, call))
        .map(convert::outcome)
        .map_err(|e| e.to_string())
}

/// Whether `call` is the call being handled (raw fields can be fetched only during it).
fn is_current_call(call: u64) -> bool {
    CALL.load(Ordering::Relaxed) == call
}
