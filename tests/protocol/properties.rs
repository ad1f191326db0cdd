//! Property tests: encrypt∘decrypt, encode∘parse and push∘open are identities on arbitrary
//! content, and no input makes the parsers panic.

use proptest::collection::vec;
use proptest::prelude::*;
use wxhost::wechat::{AesKey, Article, Message, MessageCipher, Mode, Reply, reply, xml};
use wxhost_tests::{AES_KEY, NOW, account, params, signed_plain_query, text_message};

/// Text made of awkward pieces: `]]>`, `<`, `&`, entities, newlines, emoji, any XML character;
/// sometimes repeated into several kilobytes.
fn awkward_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<char>()
            .prop_filter("XML 1.0 character", |c| xml::is_xml_char(*c))
            .prop_map(String::from),
        1 => prop_oneof![
            Just("]]>"), Just("]]"), Just("<"), Just(">"), Just("&"), Just("&amp;"), Just("\n"),
            Just("\r\n"), Just("\t"), Just("😀"), Just("中文"), Just(" "), Just("<![CDATA[")
        ]
        .prop_map(String::from),
    ];
    prop_oneof![
        8 => vec(piece.clone(), 0..48).prop_map(|p| p.concat()),
        1 => (vec(piece, 1..6), 200..1500usize).prop_map(|(p, n)| p.concat().repeat(n)),
    ]
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    while s.len() > max {
        s.pop();
    }
    s
}

fn short_text() -> impl Strategy<Value = String> {
    awkward_text().prop_map(|s| truncate(s, 600))
}

/// A text within `cap` bytes (a reply field's cap).
fn capped_text(cap: usize) -> impl Strategy<Value = String> {
    awkward_text().prop_map(move |s| truncate(s, cap))
}

fn article() -> impl Strategy<Value = Article> {
    (
        capped_text(reply::MAX_TITLE_BYTES),
        short_text(),
        short_text(),
        short_text(),
    )
        .prop_map(|(title, description, pic_url, url)| Article {
            title,
            description,
            pic_url,
            url,
        })
}

fn reply() -> impl Strategy<Value = Reply> {
    let media = "[A-Za-z0-9_-]{1,64}";
    prop_oneof![
        awkward_text().prop_map(|s| Reply::text(truncate(s, 2048))),
        media.prop_map(|media_id| Reply::Image { media_id }),
        media.prop_map(|media_id| Reply::Voice { media_id }),
        (media, capped_text(reply::MAX_TITLE_BYTES), short_text()).prop_map(
            |(media_id, title, description)| {
                Reply::Video {
                    media_id,
                    title,
                    description,
                }
            }
        ),
        (
            capped_text(reply::MAX_TITLE_BYTES),
            short_text(),
            short_text(),
            short_text(),
            media
        )
            .prop_map(
                |(title, description, music_url, hq_music_url, thumb_media_id)| Reply::Music {
                    title,
                    description,
                    music_url,
                    hq_music_url,
                    thumb_media_id,
                }
            ),
        vec(article(), 1..=8)
            .prop_map(|articles| Reply::News { articles })
            .prop_filter("within the reply cap", |news| news.encoded_len()
                <= reply::MAX_REPLY_BYTES),
        proptest::option::of(capped_text(reply::MAX_KF_ACCOUNT_BYTES))
            .prop_map(|kf_account| Reply::TransferCustomerService { kf_account }),
    ]
}

fn cipher(appid: &str) -> MessageCipher {
    MessageCipher::new(AesKey::from_encoding_aes_key(AES_KEY).expect("key"), appid)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decrypt_inverts_encrypt(
        msg in prop_oneof![any::<String>(), awkward_text()],
        random in any::<[u8; 16]>(),
        appid in "[a-z0-9]{0,40}",
    ) {
        let c = cipher(&appid);
        let encrypted = c.encrypt_with_random(&msg, &random).expect("encrypts");
        prop_assert_eq!(c.decrypt(&encrypted), Ok(msg));
    }

    #[test]
    fn reply_parse_inverts_encode(reply in reply(), create_time in 0i64..4_000_000_000) {
        let xml = reply.encode("o_user", "gh_account", create_time).expect("valid reply encodes");
        let parsed = Reply::parse(&xml).expect("encoded reply parses");
        prop_assert_eq!(parsed.create_time, create_time);
        prop_assert_eq!(parsed.reply, reply);
    }

    #[test]
    fn message_parse_inverts_encode(content in awkward_text()) {
        let message = text_message(&content);
        prop_assert_eq!(Message::parse(&message.to_xml()), Ok(message));
    }

    #[test]
    fn open_inverts_simulated_push_in_every_mode(
        content in awkward_text(),
        mode in prop_oneof![Just(Mode::Plain), Just(Mode::Compatible), Just(Mode::Safe)],
    ) {
        let account = account(mode);
        let message = text_message(&content);
        let (query, body) = account.simulate_push(&message, &params()).expect("push");
        let opened = account.open(&query, body.as_bytes(), NOW);
        // The longest generated texts make pushes past the document limit, refused as such.
        if body.len() > xml::MAX_DOCUMENT_BYTES {
            prop_assert!(
                matches!(opened, Err(wxhost::wechat::Error::BodyTooLarge { .. })),
                "{} bytes: {:?}", body.len(), opened.map(|_| ())
            );
        } else {
            prop_assert_eq!(&*opened.expect("opens").message, &message);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..4096)) {
        let _ = account(Mode::Plain).open(&signed_plain_query(), &body, NOW);
        let text = String::from_utf8_lossy(&body);
        let _ = Message::parse(&text);
        let _ = Reply::parse(&text);
        let _ = cipher("wx").decrypt(&text);
    }

    #[test]
    fn mutated_pushes_never_panic(
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        mode in prop_oneof![Just(Mode::Plain), Just(Mode::Compatible), Just(Mode::Safe)],
    ) {
        let account = account(mode);
        let (query, body) = account
            .simulate_push(&text_message("mutate me"), &params())
            .expect("push");
        let mut body = body.into_bytes();
        for (index, byte) in flips {
            let i = index.index(body.len());
            body[i] = byte;
        }
        let _ = account.open(&query, &body, NOW);
    }
}
