//! The `signature` and `msg_signature` of a push: SHA-1 over the sorted parts, checked in constant time.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::error::{Error, Result};

/// `signature`: hex SHA-1 of the sorted concatenation of token, timestamp and nonce.
///
/// ```
/// # use wxhost::wechat::signature;
/// assert_eq!(
///     signature::signature("test", "1410685589", "test"),
///     "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff",
/// );
/// ```
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    to_hex(&sorted_sha1(&mut [token, timestamp, nonce]))
}

/// `msg_signature`: hex SHA-1 of the sorted concatenation of token, timestamp, nonce and the
/// `Encrypt` value.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    to_hex(&sorted_sha1(&mut [token, timestamp, nonce, encrypt]))
}

/// Checks a push's plain `signature` (sent in every mode, and on URL verification).
pub fn verify_signature(token: &str, timestamp: &str, nonce: &str, given: &str) -> Result<()> {
    check(
        &sorted_sha1(&mut [token, timestamp, nonce]),
        given,
        "signature",
    )
}

/// Checks a push's `msg_signature` over its `Encrypt` value.
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    given: &str,
) -> Result<()> {
    check(
        &sorted_sha1(&mut [token, timestamp, nonce, encrypt]),
        given,
        "msg_signature",
    )
}

/// Lowercase hex of a digest, written into a buffer in one go (`hex::encode` builds its string
/// a char at a time, which shows in a profile of a push).
fn to_hex(digest: &[u8; 20]) -> String {
    let mut hex = [0u8; 40];
    // The buffer has exactly the length needed, so this cannot fail.
    let _ = hex::encode_to_slice(digest, &mut hex);
    String::from_utf8_lossy(&hex).into_owned()
}

fn sorted_sha1(parts: &mut [&str]) -> [u8; 20] {
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts.iter() {
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// Compares the digest with the hex one `given` in constant time; WeChat sends lowercase hex,
/// an uppercase copy is accepted too.
fn check(expected: &[u8; 20], given: &str, which: &'static str) -> Result<()> {
    let mut given_digest = [0u8; 20];
    let decoded = hex::decode_to_slice(given, &mut given_digest).is_ok();
    if decoded && bool::from(expected.ct_eq(&given_digest)) {
        Ok(())
    } else {
        Err(Error::SignatureMismatch { which })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_parts_before_hashing() {
        // The same three strings in any order give the same signature.
        assert_eq!(signature("a", "b", "c"), signature("c", "a", "b"));
        assert_eq!(
            msg_signature("t", "1", "n", "E"),
            hex::encode(sorted_sha1(&mut ["E", "n", "1", "t"]))
        );
    }

    #[test]
    fn accepts_matching_signature_in_either_case() {
        let sig = signature("token", "1700000000", "nonce");
        assert_eq!(
            verify_signature("token", "1700000000", "nonce", &sig),
            Ok(())
        );
        let upper = sig.to_ascii_uppercase();
        assert_eq!(
            verify_signature("token", "1700000000", "nonce", &upper),
            Ok(())
        );
    }

    #[test]
    fn rejects_wrong_truncated_and_empty_signatures() {
        let sig = signature("token", "1700000000", "nonce");
        let longer = format!("{sig}00");
        let not_hex = format!("{}zz", &sig[..38]);
        for given in [
            &sig[..39],
            "",
            "0000000000000000000000000000000000000000",
            &longer,
            &not_hex,
        ] {
            assert_eq!(
                verify_signature("token", "1700000000", "nonce", given),
                Err(Error::SignatureMismatch { which: "signature" })
            );
        }
        assert_eq!(
            verify_signature("other", "1700000000", "nonce", &sig),
            Err(Error::SignatureMismatch { which: "signature" })
        );
    }

    #[test]
    fn msg_signature_covers_the_encrypt_value() {
        let sig = msg_signature("token", "1", "2", "payload");
        assert_eq!(
            verify_msg_signature("token", "1", "2", "payload", &sig),
            Ok(())
        );
        assert_eq!(
            verify_msg_signature("token", "1", "2", "payloaD", &sig),
            Err(Error::SignatureMismatch {
                which: "msg_signature"
            })
        );
    }
}
