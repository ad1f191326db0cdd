//! Helpers shared by wxhost's integration tests: the published vectors, sample accounts and
//! pushes, and a raw AES-CBC encryptor for building hostile ciphertexts independently of wxhost.

use std::path::{Path, PathBuf};

/// Paths of the example and misbehaving plugins, built for wasm32-wasip2.
pub use wxhost_test_plugins as plugins;

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use serde_json::Value;
use wxhost::wechat::{self, Account, CallbackQuery, EnvelopeParams, Message, Mode};

/// The test vectors committed with the tests (a copy of `../shared/vectors/wechat-crypto.json`).
pub fn vectors_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/wechat-crypto.json")
}

/// The published WeChat crypto test vectors.
pub fn vectors() -> Value {
    let text = std::fs::read_to_string(vectors_path()).expect("vectors file is readable");
    serde_json::from_str(&text).expect("vectors file is JSON")
}

/// A string field of a vector.
pub fn field<'a>(vector: &'a Value, name: &str) -> &'a str {
    vector[name]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {name} is a string"))
}

/// The sample account's appid, token, key and original id.
pub const APPID: &str = "wxb11529c136998cb6";
/// The sample token.
pub const TOKEN: &str = "pamtest";
/// The sample EncodingAESKey.
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
/// The sample original id.
pub const ORIGINAL_ID: &str = "gh_3f2ea8b5c1d0";
/// A fixed "now" for deterministic tests.
pub const NOW: i64 = 1_700_000_000;

/// The sample account in `mode`.
pub fn account(mode: Mode) -> Account {
    Account::new(APPID, TOKEN, Some(AES_KEY), mode).expect("sample account is valid")
}

/// Fixed envelope parameters stamped [`NOW`].
pub fn params() -> EnvelopeParams {
    EnvelopeParams {
        random: *b"0123456789abcdef",
        nonce: "1357924680".into(),
        timestamp: NOW,
    }
}

/// A text message from `o_user` to the sample account.
pub fn text_message(content: &str) -> Message {
    Message::parse(&format!(
        "<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>\
         <FromUserName><![CDATA[o_user]]></FromUserName><CreateTime>{NOW}</CreateTime>\
         <MsgType><![CDATA[text]]></MsgType><Content>{}</Content><MsgId>1234567890123456</MsgId></xml>",
        cdata(content)
    ))
    .expect("sample text message parses")
}

/// `text` as a CDATA section, `]]>` split.
pub fn cdata(text: &str) -> String {
    let mut out = String::new();
    wechat::xml::push_cdata(&mut out, text);
    out
}

/// Encrypts an arbitrary plaintext (already padded to 16 bytes) with the sample key, the way a
/// hostile sender who knows the key could, returning base64.
pub fn encrypt_raw(plain: &[u8]) -> String {
    let key = wechat_key_bytes();
    let ciphertext = cbc::Encryptor::<Aes256>::new(&key.into(), &key[..16].try_into().expect("16"))
        .encrypt_padded_vec::<NoPadding>(plain);
    STANDARD.encode(ciphertext)
}

/// The sample EncodingAESKey decoded independently of wxhost (base64 with the trailing bits).
pub fn wechat_key_bytes() -> [u8; 32] {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    engine
        .decode(format!("{AES_KEY}="))
        .expect("sample key decodes")
        .try_into()
        .expect("32 bytes")
}

/// A safe-mode push carrying `encrypt`, signed correctly (so tampering reaches the decryptor).
pub fn signed_encrypted_push(encrypt: &str) -> (CallbackQuery, String) {
    let ts = NOW.to_string();
    let nonce = "42";
    let query = CallbackQuery {
        signature: Some(wechat::signature::signature(TOKEN, &ts, nonce)),
        timestamp: Some(ts.clone()),
        nonce: Some(nonce.into()),
        encrypt_type: Some("aes".into()),
        msg_signature: Some(wechat::signature::msg_signature(TOKEN, &ts, nonce, encrypt)),
        ..CallbackQuery::default()
    };
    let body = format!(
        "<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    (query, body)
}

/// A plaintext push with a valid signature.
pub fn signed_plain_query() -> CallbackQuery {
    let ts = NOW.to_string();
    CallbackQuery {
        signature: Some(wechat::signature::signature(TOKEN, &ts, "42")),
        timestamp: Some(ts),
        nonce: Some("42".into()),
        ..CallbackQuery::default()
    }
}
