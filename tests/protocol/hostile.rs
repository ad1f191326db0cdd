//! Hostile inputs through a safe-mode or plain account: each gets its specific error, never a
//! panic. Tampered ciphertexts carry a valid msg_signature so they reach the decryptor.

use wxhost::wechat::{Error, Mode, xml};
use wxhost_tests::{APPID, NOW, account, encrypt_raw, signed_encrypted_push, signed_plain_query};

/// `random ‖ declared length ‖ msg ‖ appid`, then `pad` bytes of value `pad_value`.
fn plaintext(declared: u32, msg: &[u8], appid: &[u8], pad_value: u8, pad: usize) -> Vec<u8> {
    let mut v = b"RANDOMRANDOMRAND".to_vec();
    v.extend_from_slice(&declared.to_be_bytes());
    v.extend_from_slice(msg);
    v.extend_from_slice(appid);
    v.resize(v.len() + pad, pad_value);
    v
}

fn open_encrypted(encrypt: &str) -> Result<(), Error> {
    let (query, body) = signed_encrypted_push(encrypt);
    account(Mode::Safe)
        .open(&query, body.as_bytes(), NOW)
        .map(|_| ())
}

fn open_plain(body: &[u8]) -> Result<(), Error> {
    account(Mode::Plain)
        .open(&signed_plain_query(), body, NOW)
        .map(|_| ())
}

const MSG: &[u8] = b"<xml><ToUserName>gh_3f2ea8b5c1d0</ToUserName></xml>";
/// MSG's length: with the 20-byte header and the 18-byte appid, 89 bytes, 7 of padding.
const LEN: u32 = 51;

#[test]
fn the_well_formed_baseline_opens() {
    let good = plaintext(LEN, MSG, APPID.as_bytes(), 7, 7);
    assert_eq!(
        open_encrypted(&encrypt_raw(&good)),
        Err(Error::MissingField("MsgType"))
    );
}

#[test]
fn truncated_base64() {
    let good = encrypt_raw(&plaintext(LEN, MSG, APPID.as_bytes(), 7, 7));
    assert!(matches!(
        open_encrypted(&good[..good.len() - 2]),
        Err(Error::Base64(_))
    ));
}

#[test]
fn ciphertext_not_a_multiple_of_16() {
    use base64::Engine as _;
    let enc = base64::engine::general_purpose::STANDARD.encode([7u8; 40]);
    assert_eq!(open_encrypted(&enc), Err(Error::CiphertextLength(40)));
}

#[test]
fn pad_zero() {
    let mut p = plaintext(LEN, MSG, APPID.as_bytes(), 6, 6);
    p.push(0);
    assert_eq!(
        open_encrypted(&encrypt_raw(&p)),
        Err(Error::InvalidPadding(0))
    );
}

#[test]
fn pad_33() {
    let p = plaintext(LEN, MSG, APPID.as_bytes(), 33, 39); // 89 + 39 = 128
    assert_eq!(
        open_encrypted(&encrypt_raw(&p)),
        Err(Error::InvalidPadding(33))
    );
}

#[test]
fn unequal_pad_bytes() {
    let mut p = plaintext(LEN, MSG, APPID.as_bytes(), 7, 7);
    p[90] = 6;
    assert_eq!(
        open_encrypted(&encrypt_raw(&p)),
        Err(Error::InconsistentPadding(7))
    );
}

#[test]
fn length_field_past_the_end() {
    let p = plaintext(LEN + 20, MSG, APPID.as_bytes(), 7, 7);
    assert_eq!(
        open_encrypted(&encrypt_raw(&p)),
        Err(Error::LengthOutOfBounds {
            declared: 71,
            available: 69
        })
    );
}

#[test]
fn appid_mismatch() {
    let p = plaintext(LEN, MSG, b"wx0000000000000000", 7, 7);
    let err = open_encrypted(&encrypt_raw(&p)).expect_err("appid checked");
    assert_eq!(
        err,
        Error::AppIdMismatch {
            expected: APPID.into(),
            found: "wx0000000000000000".into()
        }
    );
    assert_eq!(err.code(), -40005);
}

#[test]
fn invalid_utf8_in_the_decrypted_message() {
    let mut msg = MSG.to_vec();
    msg[10] = 0xff;
    let p = plaintext(LEN, &msg, APPID.as_bytes(), 7, 7);
    assert_eq!(
        open_encrypted(&encrypt_raw(&p)),
        Err(Error::InvalidUtf8("decrypted message"))
    );
}

#[test]
fn invalid_utf8_body() {
    assert_eq!(
        open_plain(b"<xml><Content>\xff\xfe</Content></xml>"),
        Err(Error::InvalidUtf8("body"))
    );
    // A multibyte character cut in half at the end of the body.
    let mut body = "<xml><Content>中".as_bytes().to_vec();
    body.pop();
    assert_eq!(open_plain(&body), Err(Error::InvalidUtf8("body")));
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol9 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol9;</Content></xml>"#;

const EXTERNAL_ENTITY: &str = r#"<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content></xml>"#;

#[test]
fn billion_laughs_in_plaintext_and_inside_the_ciphertext() {
    let forbidden = Err(Error::XmlForbidden("DTD (<!DOCTYPE>)".into()));
    assert_eq!(open_plain(BILLION_LAUGHS.as_bytes()), forbidden);
    let len = u32::try_from(BILLION_LAUGHS.len()).expect("small");
    let mut p = plaintext(len, BILLION_LAUGHS.as_bytes(), APPID.as_bytes(), 0, 0);
    let pad = 32 - p.len() % 32;
    p.resize(p.len() + pad, u8::try_from(pad).expect("pad"));
    assert_eq!(open_encrypted(&encrypt_raw(&p)), forbidden);
}

#[test]
fn external_entity() {
    assert!(matches!(
        open_plain(EXTERNAL_ENTITY.as_bytes()),
        Err(Error::XmlForbidden(_))
    ));
    // An undeclared entity without a DTD is refused too, not silently dropped.
    assert!(matches!(
        open_plain(b"<xml><ToUserName>gh</ToUserName><Content>&xxe;</Content></xml>"),
        Err(Error::XmlForbidden(_))
    ));
}

#[test]
fn ten_megabyte_body() {
    let body = format!(
        "<xml><Content>{}</Content></xml>",
        "A".repeat(10 * 1024 * 1024)
    );
    assert_eq!(
        open_plain(body.as_bytes()),
        Err(Error::BodyTooLarge {
            len: body.len(),
            limit: xml::MAX_DOCUMENT_BYTES
        })
    );
}

#[test]
fn garbage_bodies_are_xml_errors() {
    for body in [
        &b""[..],
        b"not xml",
        b"<xml>",
        b"<xml><a></b></xml>",
        b"\x00\x01\x02",
    ] {
        let err = open_plain(body).expect_err("garbage refused");
        assert_eq!(err.code(), -40002, "{body:?}: {err}");
        assert!(err.is_bad_request());
    }
}
