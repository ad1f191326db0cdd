//! Every published vector in `tests/vectors/wechat-crypto.json`, negative cases included.

use wxhost::wechat::{
    self, AesKey, CallbackQuery, Content, Error, MessageCipher, Mode, TimestampWindow,
};
use wxhost_tests::{field, vectors};

fn cipher(vector: &serde_json::Value) -> MessageCipher {
    MessageCipher::new(
        AesKey::from_encoding_aes_key(field(vector, "encoding_aes_key")).expect("vector key"),
        field(vector, "appid"),
    )
}

/// Checks the vector's msg_signature over `encrypt`, then decrypts and parses it.
fn verify_and_open(v: &serde_json::Value, encrypt: &str) -> wechat::Message {
    wechat::signature::verify_msg_signature(
        field(v, "token"),
        field(v, "timestamp"),
        field(v, "nonce"),
        encrypt,
        field(v, "msg_signature"),
    )
    .expect("vector msg_signature verifies");
    wechat::Message::parse(&cipher(v).decrypt(encrypt).expect("decrypts"))
        .expect("decrypted message parses")
}

#[test]
fn committed_vectors_match_the_shared_copy() {
    // CI has ../shared beside the project; a fresh clone elsewhere uses the committed copy.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/wechat-crypto.json");
    if let Ok(text) = std::fs::read_to_string(shared) {
        let committed = std::fs::read_to_string(wxhost_tests::vectors_path()).expect("committed");
        assert_eq!(
            committed, text,
            "tests/vectors is out of date with ../shared/vectors"
        );
    }
}

#[test]
fn plain_signature_vector() {
    let v = &vectors()["plain_signature"];
    assert_eq!(
        wechat::signature::signature(field(v, "token"), field(v, "timestamp"), field(v, "nonce")),
        field(v, "expect")
    );
}

#[test]
fn official_account_decrypt_vector() {
    let v = &vectors()["oa_decrypt"];
    let outer = wechat::xml::parse_document(field(v, "body")).expect("vector body parses");
    let encrypt = outer.child_text("Encrypt").expect("Encrypt");
    let message = verify_and_open(v, encrypt);
    for (name, expected) in v["expect"].as_object().expect("expect object") {
        assert_eq!(message.field(name), expected.as_str(), "{name}");
    }
    assert_eq!(message.msg_id, Some(12345));
    assert_eq!(
        message.content,
        Content::Text {
            content: "hello".into(),
            biz_msg_menu_id: None
        }
    );
}

#[test]
fn official_account_vector_through_the_account() {
    let v = &vectors()["oa_decrypt"];
    let (token, ts, nonce) = (field(v, "token"), field(v, "timestamp"), field(v, "nonce"));
    let account = wechat::Account::new(
        field(v, "appid"),
        token,
        Some(field(v, "encoding_aes_key")),
        Mode::Safe,
    )
    .expect("account")
    .with_timestamp_window(TimestampWindow::disabled());
    let query = CallbackQuery {
        signature: Some(wechat::signature::signature(token, ts, nonce)),
        timestamp: Some(ts.into()),
        nonce: Some(nonce.into()),
        encrypt_type: Some("aes".into()),
        msg_signature: Some(field(v, "msg_signature").into()),
        ..CallbackQuery::default()
    };
    let inbound = account
        .open(&query, field(v, "body").as_bytes(), 0)
        .expect("vector push opens");
    assert!(inbound.encrypted);
    assert_eq!(inbound.message.from_user, "asdasdasdsadasd");

    // The same push is refused once the replay window is on (it is from 2016).
    let strict = account.with_timestamp_window(TimestampWindow::default());
    assert!(matches!(
        strict.open(&query, field(v, "body").as_bytes(), 1_700_000_000),
        Err(Error::StaleTimestamp { .. })
    ));
}

#[test]
fn official_account_vector_negatives() {
    let v = &vectors()["oa_decrypt"];
    let outer = wechat::xml::parse_document(field(v, "body")).expect("vector body parses");
    let encrypt = outer.child_text("Encrypt").expect("Encrypt");
    let bad_sig = field(&v["negative"], "bad_signature");
    assert_eq!(
        wechat::signature::verify_msg_signature(
            field(v, "token"),
            field(v, "timestamp"),
            field(v, "nonce"),
            encrypt,
            bad_sig
        ),
        Err(Error::SignatureMismatch {
            which: "msg_signature"
        })
    );
    let bad_appid = field(&v["negative"], "bad_appid");
    let wrong = MessageCipher::new(
        AesKey::from_encoding_aes_key(field(v, "encoding_aes_key")).expect("key"),
        bad_appid,
    );
    let err = wrong.decrypt(encrypt).expect_err("appid must be checked");
    assert_eq!(
        err,
        Error::AppIdMismatch {
            expected: bad_appid.into(),
            found: field(v, "appid").into()
        }
    );
    assert_eq!(err.code(), -40005);
}

#[test]
fn pad_one_decrypt_vector() {
    let v = &vectors()["pad_one_decrypt"];
    let encrypt = field(v, "encrypt");
    let message = verify_and_open(v, encrypt);
    for (name, expected) in v["expect"].as_object().expect("expect object") {
        assert_eq!(message.field(name), expected.as_str(), "{name}");
    }
    assert_eq!(message.msg_id, Some(4363689963896700987));
}

#[test]
fn multibyte_encrypt_vector() {
    let v = &vectors()["multibyte_encrypt"];
    let random: [u8; 16] = field(v, "random").as_bytes().try_into().expect("16 bytes");
    let encrypted = cipher(v)
        .encrypt_with_random(field(v, "plaintext"), &random)
        .expect("encrypts");
    assert_eq!(encrypted, field(v, "expect_encrypt"));
    assert_eq!(
        cipher(v).decrypt(&encrypted).as_deref(),
        Ok(field(v, "plaintext"))
    );
}
