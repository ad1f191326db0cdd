//! An account opening and answering pushes in each mode, as WeChat sends and reads them.

use wxhost::wechat::{Account, CallbackQuery, Error, Mode, Reply, TimestampWindow};
use wxhost_tests::{AES_KEY, APPID, NOW, ORIGINAL_ID, TOKEN, account, params, text_message};

#[test]
fn every_mode_round_trips_a_text_push_and_its_reply() {
    let mut rng = rand::rng();
    for mode in [Mode::Plain, Mode::Compatible, Mode::Safe] {
        let account = account(mode);
        let message = text_message("ping ]]> <&>");
        let (query, body) = account.simulate_push(&message, &params()).expect("push");
        assert_eq!(
            query.msg_signature.is_some(),
            mode != Mode::Plain,
            "{mode:?}"
        );
        assert_eq!(body.contains("<Content>"), mode != Mode::Safe, "{mode:?}");

        let inbound = account.open(&query, body.as_bytes(), NOW).expect("opens");
        assert_eq!(*inbound.message, message, "{mode:?}");
        assert_eq!(inbound.encrypted, mode != Mode::Plain);

        let reply = Reply::text("pong ]]>");
        let answer = account
            .answer(&inbound, Some(&reply), NOW, &mut rng)
            .expect("answers");
        assert_eq!(answer.contains("<Encrypt>"), mode != Mode::Plain);
        let read = account
            .read_answer(&answer, inbound.encrypted)
            .expect("WeChat reads the answer")
            .expect("a reply");
        assert_eq!(read.reply, reply);
        assert_eq!(read.to_user, "o_user");
        assert_eq!(read.from_user, ORIGINAL_ID);
    }
}

#[test]
fn no_reply_is_success_in_plaintext_and_empty_when_encrypted() {
    let mut rng = rand::rng();
    for (mode, expected) in [(Mode::Plain, "success"), (Mode::Safe, "")] {
        let account = account(mode);
        let (query, body) = account
            .simulate_push(&text_message("x"), &params())
            .expect("push");
        let inbound = account.open(&query, body.as_bytes(), NOW).expect("opens");
        assert_eq!(
            account.answer(&inbound, None, NOW, &mut rng).as_deref(),
            Ok(expected)
        );
        assert_eq!(account.read_answer(expected, inbound.encrypted), Ok(None));
    }
}

#[test]
fn encrypted_answers_are_fresh_each_time() {
    let mut rng = rand::rng();
    let account = account(Mode::Safe);
    let (query, body) = account
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    let inbound = account.open(&query, body.as_bytes(), NOW).expect("opens");
    let reply = Reply::text("same");
    let a = account
        .answer(&inbound, Some(&reply), NOW, &mut rng)
        .expect("a");
    let b = account
        .answer(&inbound, Some(&reply), NOW, &mut rng)
        .expect("b");
    assert_ne!(a, b, "random prefix and nonce must differ");
}

#[test]
fn safe_mode_refuses_plaintext_even_with_aes_query_parameters() {
    let plain = account(Mode::Plain);
    let (mut query, body) = plain
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    query.encrypt_type = Some("aes".into());
    query.msg_signature = Some("0".repeat(40));
    assert_eq!(
        account(Mode::Safe).open(&query, body.as_bytes(), NOW),
        Err(Error::PlaintextRefused)
    );
}

#[test]
fn compatible_mode_refuses_pushes_without_encrypt() {
    // WeChat's compatible-mode pushes carry the plaintext fields and `Encrypt`; one stripped of
    // `Encrypt` would otherwise pass with no `msg_signature` check at all.
    let (query, body) = account(Mode::Compatible)
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    let start = body
        .find("<Encrypt>")
        .expect("compatible pushes carry Encrypt");
    let end = body.find("</Encrypt>").expect("closed") + "</Encrypt>".len();
    let stripped = format!("{}{}", &body[..start], &body[end..]);
    assert_eq!(
        account(Mode::Compatible).open(&query, stripped.as_bytes(), NOW),
        Err(Error::PlaintextRefused)
    );
    let (plain_query, plain_body) = account(Mode::Plain)
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    assert_eq!(
        account(Mode::Compatible).open(&plain_query, plain_body.as_bytes(), NOW),
        Err(Error::PlaintextRefused)
    );
}

#[test]
fn plain_signature_is_checked_in_every_mode() {
    for mode in [Mode::Plain, Mode::Compatible, Mode::Safe] {
        let account = account(mode);
        let (mut query, body) = account
            .simulate_push(&text_message("x"), &params())
            .expect("push");
        query.signature = Some("f".repeat(40));
        assert_eq!(
            account.open(&query, body.as_bytes(), NOW),
            Err(Error::SignatureMismatch { which: "signature" }),
            "{mode:?}"
        );
    }
}

#[test]
fn encrypted_push_needs_a_matching_msg_signature() {
    let account = account(Mode::Safe);
    let (mut query, body) = account
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    let good = query.msg_signature.take();
    assert_eq!(
        account.open(&query, body.as_bytes(), NOW),
        Err(Error::MissingParameter("msg_signature"))
    );
    query.msg_signature = good.map(|s| s.replace(|c: char| c != '0', "0"));
    assert_eq!(
        account.open(&query, body.as_bytes(), NOW),
        Err(Error::SignatureMismatch {
            which: "msg_signature"
        })
    );
}

#[test]
fn missing_query_parameters_are_named() {
    let account = account(Mode::Plain);
    let (query, body) = account
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    for (name, q) in [
        (
            "signature",
            CallbackQuery {
                signature: None,
                ..query.clone()
            },
        ),
        (
            "timestamp",
            CallbackQuery {
                timestamp: None,
                ..query.clone()
            },
        ),
        (
            "nonce",
            CallbackQuery {
                nonce: None,
                ..query.clone()
            },
        ),
    ] {
        assert_eq!(
            account.open(&q, body.as_bytes(), NOW),
            Err(Error::MissingParameter(name))
        );
    }
}

#[test]
fn replayed_push_outside_the_window_is_refused() {
    let account = account(Mode::Safe);
    let (query, body) = account
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    assert!(account.open(&query, body.as_bytes(), NOW + 300).is_ok());
    assert_eq!(
        account.open(&query, body.as_bytes(), NOW + 301),
        Err(Error::StaleTimestamp {
            skew_secs: 301,
            window_secs: 300
        })
    );
    let lenient = account.with_timestamp_window(TimestampWindow::disabled());
    assert!(lenient.open(&query, body.as_bytes(), NOW + 86_400).is_ok());
}

#[test]
fn push_for_another_account_is_refused() {
    let account = account(Mode::Safe).with_original_id("gh_someone_else");
    let (query, body) = account
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    assert_eq!(
        account.open(&query, body.as_bytes(), NOW),
        Err(Error::WrongRecipient {
            expected: "gh_someone_else".into(),
            found: ORIGINAL_ID.into()
        })
    );
}

#[test]
fn outer_and_inner_recipient_must_agree() {
    let account = account(Mode::Safe);
    let (query, body) = account
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    let body = body.replace(ORIGINAL_ID, "gh_forged");
    assert!(matches!(
        account.open(&query, body.as_bytes(), NOW),
        Err(Error::WrongRecipient { .. })
    ));
}

#[test]
fn url_verification_echoes_exactly() {
    let account = account(Mode::Safe);
    let (mut query, _) = account
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    query.echostr = Some("7845963215478 echo".into());
    assert_eq!(account.verify_url(&query, NOW), Ok("7845963215478 echo"));
    query.signature = Some("bad".into());
    assert_eq!(
        account.verify_url(&query, NOW),
        Err(Error::SignatureMismatch { which: "signature" })
    );
}

#[test]
fn accounts_need_a_key_for_encrypted_modes() {
    assert!(Account::new(APPID, TOKEN, None, Mode::Plain).is_ok());
    assert_eq!(
        Account::new(APPID, TOKEN, None, Mode::Safe).err(),
        Some(Error::NoAesKey)
    );
    assert_eq!(
        Account::new(APPID, TOKEN, Some(&AES_KEY[1..]), Mode::Compatible).err(),
        Some(Error::InvalidAesKey("must be exactly 43 characters"))
    );
    let debug = format!(
        "{:?}",
        Account::new(APPID, TOKEN, Some(AES_KEY), Mode::Safe)
    );
    assert!(!debug.contains(TOKEN), "token leaked into Debug: {debug}");
}

#[test]
fn plain_account_without_key_names_the_problem_for_encrypted_pushes() {
    let (query, body) = account(Mode::Safe)
        .simulate_push(&text_message("x"), &params())
        .expect("push");
    let keyless = Account::new(APPID, TOKEN, None, Mode::Plain).expect("account");
    assert_eq!(
        keyless.open(&query, body.as_bytes(), NOW),
        Err(Error::CiphertextRefused)
    );
}

#[test]
fn query_strings_are_what_wechat_sends_with_values_percent_encoded() {
    let query = CallbackQuery {
        signature: Some("ab12".into()),
        timestamp: Some("1700000000".into()),
        nonce: Some("99".into()),
        echostr: Some("a b&c=d/中".into()),
        ..CallbackQuery::default()
    };
    assert_eq!(
        query.to_query_string(),
        "signature=ab12&timestamp=1700000000&nonce=99&echostr=a%20b%26c%3Dd%2F%E4%B8%AD"
    );
}
