//! The message cipher: EncodingAESKey decoding, strict AES-256-CBC decrypt, encrypt, and the
//! encrypted reply envelope.
//!
//! Plaintext layout: `random(16) ‖ u32 BE length ‖ msg ‖ appid`, padded with PKCS#7 to a
//! 32-byte block, encrypted with AES-256-CBC (key = the decoded EncodingAESKey, iv = key[..16]).

use std::fmt;

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use rand::CryptoRng;

use super::error::{Error, Result};
use super::signature;
use super::xml;

/// The block size of WeChat's PKCS#7 padding (not the AES block size).
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const HEADER_LEN: usize = RANDOM_LEN + 4;

/// Base64 for the EncodingAESKey: 43 characters carry 258 bits, and real keys (the official
/// sample key among them) have non-zero trailing bits, which the strict decoder rejects.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

/// A decoded EncodingAESKey. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// Decodes the 43-character EncodingAESKey shown in the WeChat admin console.
    ///
    /// ```
    /// # use wxhost::wechat::crypto::AesKey;
    /// assert!(AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").is_ok());
    /// assert!(AesKey::from_encoding_aes_key("too-short").is_err());
    /// ```
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<Self> {
        if encoding_aes_key.len() != 43 {
            return Err(Error::InvalidAesKey("must be exactly 43 characters"));
        }
        if !encoding_aes_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            return Err(Error::InvalidAesKey(
                "must contain only base64 characters (A-Z a-z 0-9 + /)",
            ));
        }
        let bytes = KEY_BASE64
            .decode(encoding_aes_key)
            .map_err(|_| Error::InvalidAesKey("is not valid base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::InvalidAesKey("does not decode to 32 bytes"))?;
        Ok(AesKey(key))
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

/// The cipher of one official account: its AES key, expanded once, and the appid every message
/// must carry. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct MessageCipher {
    /// The AES-256 key schedule; each message runs CBC over a copy of it (expanding the key
    /// again for every message showed in a profile of a push).
    aes: Aes256,
    iv: [u8; 16],
    appid: String,
}

impl fmt::Debug for MessageCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageCipher")
            .field("key", &"<redacted>")
            .field("appid", &self.appid)
            .finish()
    }
}

impl MessageCipher {
    /// A cipher for the account `appid` with the decoded key.
    pub fn new(key: AesKey, appid: impl Into<String>) -> Self {
        MessageCipher {
            aes: Aes256::new(&key.0.into()),
            iv: key.iv(),
            appid: appid.into(),
        }
    }

    /// The appid messages are checked against.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// Decrypts an `Encrypt` value into the message XML, checking everything: base64, block
    /// length, pad range and every pad byte, the length field, the appid and UTF-8. Decrypts in
    /// the decoded buffer, which becomes the message.
    pub fn decrypt(&self, encrypt: &str) -> Result<String> {
        let mut buffer = STANDARD
            .decode(encrypt)
            .map_err(|e| Error::Base64(e.to_string()))?;
        let len = buffer.len();
        if len == 0 || !len.is_multiple_of(16) {
            return Err(Error::CiphertextLength(len));
        }
        cbc::Decryptor::<Aes256>::inner_iv_init(self.aes.clone(), &self.iv.into())
            .decrypt_padded::<NoPadding>(&mut buffer)
            .map_err(|_| Error::CiphertextLength(len))?;
        let content = unpad(&buffer)?;
        let (msg, appid) = split_content(content)?;
        if appid != self.appid.as_bytes() {
            return Err(Error::AppIdMismatch {
                expected: self.appid.clone(),
                found: String::from_utf8_lossy(appid).into_owned(),
            });
        }
        let msg_len = msg.len();
        buffer.truncate(HEADER_LEN + msg_len);
        buffer.drain(..HEADER_LEN);
        String::from_utf8(buffer).map_err(|_| Error::InvalidUtf8("decrypted message"))
    }

    /// Encrypts `msg` with the given 16-byte random prefix and returns the base64 `Encrypt`
    /// value. Production callers use [`MessageCipher::seal`], which draws fresh randomness.
    pub fn encrypt_with_random(&self, msg: &str, random: &[u8; RANDOM_LEN]) -> Result<String> {
        let msg_len = u32::try_from(msg.len()).map_err(|_| Error::EncryptFailed(msg.len()))?;
        let mut plain = Vec::with_capacity(HEADER_LEN + msg.len() + self.appid.len() + PAD_BLOCK);
        plain.extend_from_slice(random);
        plain.extend_from_slice(&msg_len.to_be_bytes());
        plain.extend_from_slice(msg.as_bytes());
        plain.extend_from_slice(self.appid.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.resize(plain.len() + pad, pad as u8);
        let len = plain.len();
        let ciphertext = cbc::Encryptor::<Aes256>::inner_iv_init(self.aes.clone(), &self.iv.into())
            .encrypt_padded::<NoPadding>(&mut plain, len)
            .map_err(|_| Error::EncryptFailed(msg.len()))?;
        Ok(STANDARD.encode(ciphertext))
    }

    /// Encrypts a reply into WeChat's envelope
    /// (`<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`), signed with `token`.
    pub fn seal_with(
        &self,
        reply_xml: &str,
        token: &str,
        params: &EnvelopeParams,
    ) -> Result<String> {
        let encrypt = self.encrypt_with_random(reply_xml, &params.random)?;
        let timestamp = params.timestamp.to_string();
        let msg_signature = signature::msg_signature(token, &timestamp, &params.nonce, &encrypt);
        let mut out = String::with_capacity(encrypt.len() + 200);
        out.push_str("<xml><Encrypt>");
        xml::push_cdata(&mut out, &encrypt);
        out.push_str("</Encrypt><MsgSignature>");
        xml::push_cdata(&mut out, &msg_signature);
        out.push_str("</MsgSignature><TimeStamp>");
        out.push_str(&timestamp);
        out.push_str("</TimeStamp><Nonce>");
        xml::push_cdata(&mut out, &params.nonce);
        out.push_str("</Nonce></xml>");
        Ok(out)
    }

    /// [`MessageCipher::seal_with`] with a fresh random prefix and nonce from `rng`, stamped `now`.
    pub fn seal(
        &self,
        reply_xml: &str,
        token: &str,
        now: i64,
        rng: &mut impl CryptoRng,
    ) -> Result<String> {
        self.seal_with(reply_xml, token, &EnvelopeParams::fresh(now, rng))
    }
}

/// The per-reply values of an encrypted envelope. Each reply needs fresh ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeParams {
    /// The 16 random bytes in front of the plaintext.
    pub random: [u8; RANDOM_LEN],
    /// The nonce signed with the reply (decimal digits, as WeChat's own nonces are).
    pub nonce: String,
    /// The reply's timestamp, in seconds.
    pub timestamp: i64,
}

impl EnvelopeParams {
    /// Fresh random prefix and a 10-digit nonce from a cryptographic RNG.
    pub fn fresh(now: i64, rng: &mut impl CryptoRng) -> Self {
        let mut random = [0; RANDOM_LEN];
        rng.fill_bytes(&mut random);
        EnvelopeParams {
            random,
            nonce: format!("{:010}", rng.next_u64() % 10_000_000_000),
            timestamp: now,
        }
    }
}

/// Strips WeChat's 32-byte-block PKCS#7 padding, checking the range and every pad byte.
fn unpad(plain: &[u8]) -> Result<&[u8]> {
    let Some(&pad) = plain.last() else {
        return Err(Error::CiphertextLength(0));
    };
    if pad == 0 || usize::from(pad) > PAD_BLOCK || usize::from(pad) > plain.len() {
        return Err(Error::InvalidPadding(pad));
    }
    let (content, padding) = plain.split_at(plain.len() - usize::from(pad));
    if padding.iter().any(|&b| b != pad) {
        return Err(Error::InconsistentPadding(pad));
    }
    Ok(content)
}

/// Splits `random ‖ len ‖ msg ‖ appid` into `(msg, appid)`, bounds-checking the length field.
fn split_content(content: &[u8]) -> Result<(&[u8], &[u8])> {
    let Some(body) = content.get(HEADER_LEN..) else {
        return Err(Error::LengthOutOfBounds {
            declared: HEADER_LEN as u64,
            available: content.len(),
        });
    };
    let mut len_bytes = [0; 4];
    len_bytes.copy_from_slice(&content[RANDOM_LEN..HEADER_LEN]);
    let declared = u32::from_be_bytes(len_bytes);
    match usize::try_from(declared) {
        Ok(len) if len <= body.len() => Ok(body.split_at(len)),
        _ => Err(Error::LengthOutOfBounds {
            declared: u64::from(declared),
            available: body.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::KeyIvInit;

    const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn cipher() -> MessageCipher {
        MessageCipher::new(
            AesKey::from_encoding_aes_key(SAMPLE_KEY).expect("sample key"),
            "wxb11529c136998cb6",
        )
    }

    /// Encrypts an arbitrary padded plaintext, to build hostile ciphertexts.
    fn encrypt_raw(plain: &[u8]) -> String {
        let key = AesKey::from_encoding_aes_key(SAMPLE_KEY).expect("sample key");
        let ct = cbc::Encryptor::<Aes256>::new(&key.0.into(), &key.iv().into())
            .encrypt_padded_vec::<NoPadding>(plain);
        STANDARD.encode(ct)
    }

    fn layout(random: [u8; 16], declared_len: u32, msg: &[u8], appid: &[u8]) -> Vec<u8> {
        let mut v = random.to_vec();
        v.extend_from_slice(&declared_len.to_be_bytes());
        v.extend_from_slice(msg);
        v.extend_from_slice(appid);
        v
    }

    fn with_padding(mut plain: Vec<u8>, pad: u8, count: usize) -> Vec<u8> {
        plain.resize(plain.len() + count, pad);
        plain
    }

    #[test]
    fn key_keeps_trailing_bits_of_real_keys() {
        let key = AesKey::from_encoding_aes_key(SAMPLE_KEY).expect("sample key");
        // "abcd" -> 0x69 0xb7 0x1d; the last character's 2 trailing bits are not zero.
        assert_eq!(&key.0[..3], &[0x69, 0xb7, 0x1d]);
    }

    #[test]
    fn key_errors_name_the_problem() {
        assert_eq!(
            AesKey::from_encoding_aes_key(&SAMPLE_KEY[..42]),
            Err(Error::InvalidAesKey("must be exactly 43 characters"))
        );
        assert_eq!(
            AesKey::from_encoding_aes_key(&format!("{SAMPLE_KEY}=")),
            Err(Error::InvalidAesKey("must be exactly 43 characters"))
        );
        let bad = format!("{}-", &SAMPLE_KEY[..42]);
        assert_eq!(
            AesKey::from_encoding_aes_key(&bad),
            Err(Error::InvalidAesKey(
                "must contain only base64 characters (A-Z a-z 0-9 + /)"
            ))
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = AesKey::from_encoding_aes_key(SAMPLE_KEY).expect("sample key");
        assert_eq!(format!("{key:?}"), "AesKey(<redacted>)");
        assert!(!format!("{:?}", cipher()).contains("105"));
    }

    #[test]
    fn round_trips_and_pads_to_32_byte_blocks() {
        let c = cipher();
        for len in [0, 1, 11, 12, 13, 43, 44, 45, 100, 4096] {
            let msg = "x".repeat(len);
            let enc = c.encrypt_with_random(&msg, &[7; 16]).expect("encrypt");
            let raw = STANDARD.decode(&enc).expect("base64");
            assert_eq!(raw.len() % 32, 0, "len {len}");
            assert_eq!(c.decrypt(&enc), Ok(msg));
        }
    }

    #[test]
    fn full_block_of_padding_when_aligned() {
        // random + length + msg + appid is exactly 64 bytes: a whole extra block of 32 pads it.
        let c = cipher();
        let msg = "y".repeat(64 - HEADER_LEN - c.appid().len());
        let enc = c.encrypt_with_random(&msg, &[1; 16]).expect("encrypt");
        assert_eq!(STANDARD.decode(&enc).expect("base64").len(), 96);
        assert_eq!(c.decrypt(&enc), Ok(msg));
    }

    #[test]
    fn rejects_truncated_base64() {
        let enc = cipher()
            .encrypt_with_random("hello", &[0; 16])
            .expect("encrypt");
        let truncated = &enc[..enc.len() - 1];
        assert!(matches!(cipher().decrypt(truncated), Err(Error::Base64(_))));
    }

    #[test]
    fn rejects_ciphertext_not_a_multiple_of_16() {
        let enc = STANDARD.encode([0u8; 33]);
        assert_eq!(cipher().decrypt(&enc), Err(Error::CiphertextLength(33)));
        assert_eq!(cipher().decrypt(""), Err(Error::CiphertextLength(0)));
    }

    #[test]
    fn rejects_pad_zero() {
        let plain = layout([0; 16], 5, b"hello", b"wxb11529c136998cb6");
        let mut plain = with_padding(plain, 9, 64 - 43 - 1);
        plain.push(0);
        assert_eq!(
            cipher().decrypt(&encrypt_raw(&plain)),
            Err(Error::InvalidPadding(0))
        );
    }

    #[test]
    fn rejects_pad_33() {
        let plain = layout([0; 16], 5, b"hello", b"wxb11529c136998cb6");
        let plain = with_padding(plain, 33, 64 - 43);
        assert_eq!(
            cipher().decrypt(&encrypt_raw(&plain)),
            Err(Error::InvalidPadding(33))
        );
    }

    #[test]
    fn rejects_unequal_pad_bytes() {
        let plain = layout([0; 16], 5, b"hello", b"wxb11529c136998cb6");
        let mut plain = with_padding(plain, 21, 21);
        plain[50] = 20;
        assert_eq!(
            cipher().decrypt(&encrypt_raw(&plain)),
            Err(Error::InconsistentPadding(21))
        );
    }

    #[test]
    fn rejects_length_field_past_the_end() {
        let plain = layout([0; 16], 500, b"hello", b"wxb11529c136998cb6");
        let plain = with_padding(plain, 21, 21);
        assert_eq!(
            cipher().decrypt(&encrypt_raw(&plain)),
            Err(Error::LengthOutOfBounds {
                declared: 500,
                available: 23
            })
        );
        let huge = layout([0; 16], u32::MAX, b"hello", b"wxb11529c136998cb6");
        let huge = with_padding(huge, 21, 21);
        assert!(matches!(
            cipher().decrypt(&encrypt_raw(&huge)),
            Err(Error::LengthOutOfBounds { .. })
        ));
    }

    #[test]
    fn rejects_buffer_shorter_than_the_header() {
        let plain = with_padding(vec![0; 10], 22, 22);
        assert_eq!(
            cipher().decrypt(&encrypt_raw(&plain)),
            Err(Error::LengthOutOfBounds {
                declared: 20,
                available: 10
            })
        );
    }

    #[test]
    fn rejects_appid_mismatch() {
        let other = MessageCipher::new(
            AesKey::from_encoding_aes_key(SAMPLE_KEY).expect("sample key"),
            "wx0000000000000000",
        );
        let enc = other
            .encrypt_with_random("hello", &[0; 16])
            .expect("encrypt");
        assert_eq!(
            cipher().decrypt(&enc),
            Err(Error::AppIdMismatch {
                expected: "wxb11529c136998cb6".into(),
                found: "wx0000000000000000".into()
            })
        );
    }

    #[test]
    fn rejects_invalid_utf8_message() {
        let plain = layout([0; 16], 2, &[0xff, 0xfe], b"wxb11529c136998cb6");
        let plain = with_padding(plain, 24, 24);
        assert_eq!(
            cipher().decrypt(&encrypt_raw(&plain)),
            Err(Error::InvalidUtf8("decrypted message"))
        );
    }

    #[test]
    fn envelope_is_signed_and_decryptable() {
        let params = EnvelopeParams {
            random: [3; 16],
            nonce: "1234567890".into(),
            timestamp: 1_700_000_000,
        };
        let sealed = cipher()
            .seal_with("<xml>reply</xml>", "tok", &params)
            .expect("seal");
        let encrypt = sealed
            .split("<Encrypt><![CDATA[")
            .nth(1)
            .and_then(|s| s.split("]]>").next())
            .expect("encrypt element");
        let sig = signature::msg_signature("tok", "1700000000", "1234567890", encrypt);
        assert_eq!(
            sealed,
            format!(
                "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature>\
                 <TimeStamp>1700000000</TimeStamp><Nonce><![CDATA[1234567890]]></Nonce></xml>"
            )
        );
        assert_eq!(cipher().decrypt(encrypt).as_deref(), Ok("<xml>reply</xml>"));
    }

    #[test]
    fn fresh_params_differ_every_time() {
        let mut rng = rand::rng();
        let a = EnvelopeParams::fresh(1, &mut rng);
        let b = EnvelopeParams::fresh(1, &mut rng);
        assert_ne!(a.random, b.random);
        assert_eq!(a.nonce.len(), 10);
        assert!(a.nonce.bytes().all(|c| c.is_ascii_digit()));
    }
}
