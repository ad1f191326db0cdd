//! Fuzzes everything a push body reaches: the plaintext parse path of a plain account, the
//! encrypted path of a safe account (the input as the `Encrypt` value, correctly signed so it
//! reaches the decryptor), and the message and reply parsers directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxhost::wechat::{Account, CallbackQuery, Message, Mode, Reply, signature};

const TOKEN: &str = "fuzztoken";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn query(encrypt: Option<&str>) -> CallbackQuery {
    CallbackQuery {
        signature: Some(signature::signature(TOKEN, "1700000000", "1")),
        timestamp: Some("1700000000".into()),
        nonce: Some("1".into()),
        msg_signature: encrypt.map(|e| signature::msg_signature(TOKEN, "1700000000", "1", e)),
        ..CallbackQuery::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let account = Account::new("wxfuzz", TOKEN, Some(KEY), Mode::Plain).expect("account");
            let _ = account.open(&query(None), rest, 1_700_000_000);
        }
        1 => {
            let account = Account::new("wxfuzz", TOKEN, Some(KEY), Mode::Safe).expect("account");
            let encrypt = String::from_utf8_lossy(rest);
            let body =
                format!("<xml><ToUserName>gh</ToUserName><Encrypt>{encrypt}</Encrypt></xml>");
            let _ = account.open(&query(Some(&encrypt)), body.as_bytes(), 1_700_000_000);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let _ = Message::parse(&text);
            let _ = Reply::parse(&text);
        }
    }
});
