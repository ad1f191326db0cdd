//! The SDK's mirror of the reply model, checked against the host's: the SDK's
//! `Reply::validate` accepts exactly the replies the host can send (its `validate`, then the
//! character check of `encode`) and names the same broken rule in the same words, over
//! generated replies and at the edges of each limit; and a reply's JSON is the same on both
//! sides.

use proptest::collection::vec;
use proptest::prelude::*;
use wxhost::wechat::{self, reply::MAX_ARTICLES, reply::MAX_TEXT_BYTES};
use wxhost_sdk::{Article, Reply};
use wxhost_tests::NOW;

/// The host's reply for an SDK reply, field by field (independent of either side's serde).
fn host_reply(reply: &Reply) -> wechat::Reply {
    match reply.clone() {
        Reply::Text(content) => wechat::Reply::Text { content },
        Reply::Image { media_id } => wechat::Reply::Image { media_id },
        Reply::Voice { media_id } => wechat::Reply::Voice { media_id },
        Reply::Video {
            media_id,
            title,
            description,
        } => wechat::Reply::Video {
            media_id,
            title,
            description,
        },
        Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => wechat::Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        },
        Reply::News(articles) => wechat::Reply::News {
            articles: articles
                .into_iter()
                .map(|a| wechat::Article {
                    title: a.title,
                    description: a.description,
                    pic_url: a.pic_url,
                    url: a.url,
                })
                .collect(),
        },
        Reply::TransferCustomerService { kf_account } => {
            wechat::Reply::TransferCustomerService { kf_account }
        }
    }
}

/// Whether the host can send `reply` (and why not), as the SDK's verdict on the same reply.
fn verdicts(reply: &Reply) -> (Result<(), String>, Result<(), String>) {
    let host = host_reply(reply).encode("o_user", "gh_account", NOW);
    (
        host.map(drop).map_err(|e| e.to_string()),
        reply.validate().map_err(|e| e.to_string()),
    )
}

/// Checks that both sides agree on `reply` and that its JSON is the same on both sides.
fn agree(reply: &Reply) -> Result<(), TestCaseError> {
    let (host, sdk) = verdicts(reply);
    prop_assert_eq!(&sdk, &host, "verdicts on {:?}", reply);
    let host_reply = host_reply(reply);
    let json = serde_json::to_value(reply).expect("an SDK reply serialises");
    prop_assert_eq!(
        &json,
        &serde_json::to_value(&host_reply).expect("a host reply serialises")
    );
    let parsed: wechat::Reply = serde_json::from_value(json.clone()).expect("the host reads it");
    prop_assert_eq!(parsed, host_reply);
    let back: Reply = serde_json::from_value(json).expect("the SDK reads it back");
    prop_assert_eq!(&back, reply);
    Ok(())
}

/// Characters around each rule: the ASCII controls (forbidden but for tab, newline and return),
/// DEL and C1 controls (allowed), the ends of the allowed ranges, U+FFFE/U+FFFF (forbidden),
/// and one to four UTF-8 bytes.
const CHARS: &[char] = &[
    'a',
    'Z',
    ' ',
    '<',
    '&',
    ']',
    '>',
    'é',
    '中',
    '😀',
    '\t',
    '\n',
    '\r',
    '\u{0}',
    '\u{1}',
    '\u{8}',
    '\u{b}',
    '\u{c}',
    '\u{1f}',
    '\u{7f}',
    '\u{85}',
    '\u{d7ff}',
    '\u{e000}',
    '\u{fffd}',
    '\u{fffe}',
    '\u{ffff}',
    '\u{10000}',
    '\u{10ffff}',
];

/// Mostly characters XML carries, now and then one it cannot.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        12 => prop::sample::select(&CHARS[..10]),
        3 => prop::sample::select(&CHARS[10..13]),
        1 => prop::sample::select(CHARS),
    ]
}

/// A short field: empty now and then.
fn field() -> impl Strategy<Value = String> {
    vec(any_char(), 0..8).prop_map(String::from_iter)
}

/// A text near the 2048-byte limit (ASCII up to a few bytes short of it, then a tail of
/// characters of any width), or short.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        field(),
        (
            MAX_TEXT_BYTES - 8..=MAX_TEXT_BYTES + 1,
            vec(any_char(), 0..4)
        )
            .prop_map(|(n, tail)| {
                let mut text = "a".repeat(n);
                text.extend(tail);
                text
            }),
    ]
}

fn article() -> impl Strategy<Value = Article> {
    (field(), field(), field(), field()).prop_map(|(title, description, pic_url, url)| Article {
        title,
        description,
        pic_url,
        url,
    })
}

/// Any reply, valid or not: 0 to 10 articles, empty media ids, forbidden characters anywhere.
fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        text().prop_map(Reply::Text),
        field().prop_map(|media_id| Reply::Image { media_id }),
        field().prop_map(|media_id| Reply::Voice { media_id }),
        (field(), field(), field()).prop_map(|(media_id, title, description)| Reply::Video {
            media_id,
            title,
            description,
        }),
        (field(), field(), field(), field(), field()).prop_map(
            |(title, description, music_url, hq_music_url, thumb_media_id)| Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            }
        ),
        vec(article(), 0..=MAX_ARTICLES + 2).prop_map(Reply::News),
        proptest::option::of(field())
            .prop_map(|kf_account| Reply::TransferCustomerService { kf_account }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn the_sdk_and_the_host_agree_on_generated_replies(reply in reply()) {
        agree(&reply)?;
    }
}

fn article_titled(title: &str) -> Article {
    Article::new(title, "https://example.com")
}

#[test]
fn the_sdk_and_the_host_agree_at_each_limit() {
    let news = |n: usize| Reply::news((0..n).map(|i| article_titled(&i.to_string())));
    let video = |media_id: &str, title: &str| Reply::video(media_id, title, "d");
    let music = |title: &str, thumb: &str| Reply::Music {
        title: title.into(),
        description: String::new(),
        music_url: "https://m".into(),
        hq_music_url: String::new(),
        thumb_media_id: thumb.into(),
    };
    let ok = Ok(());
    let cases: Vec<(Reply, Result<(), &str>)> = vec![
        (Reply::text(""), ok),
        (Reply::text("a".repeat(MAX_TEXT_BYTES)), ok),
        (
            Reply::text("a".repeat(MAX_TEXT_BYTES + 1)),
            Err("text reply of 2049 bytes"),
        ),
        (Reply::text("a".repeat(2046) + "é"), ok),
        (Reply::text("a".repeat(2047) + "é"), Err("2049 bytes")),
        (Reply::text("a".repeat(2045) + "中"), ok),
        (Reply::text("a".repeat(2046) + "中"), Err("2049 bytes")),
        (Reply::text("a".repeat(2044) + "😀"), ok),
        (Reply::text("a".repeat(2045) + "😀"), Err("2049 bytes")),
        // Too long and a control character: the length is reported, as the host does.
        (Reply::text("\u{1}".repeat(3000)), Err("3000 bytes")),
        (Reply::text("tab\tnewline\nreturn\r DEL\u{7f} C1\u{85}"), ok),
        (
            Reply::text("nul \u{0}"),
            Err("`content` contains a character"),
        ),
        (Reply::text("unit separator \u{1f}"), Err("`content`")),
        (Reply::text("\u{fffe}"), Err("`content`")),
        (Reply::text("\u{ffff}"), Err("`content`")),
        (Reply::text("\u{fffd}\u{10ffff}"), ok),
        (news(0), Err("0 articles")),
        (news(1), ok),
        (news(MAX_ARTICLES), ok),
        (news(MAX_ARTICLES + 1), Err("9 articles")),
        (
            Reply::news([article_titled("ok"), article_titled("b\u{8}")]),
            Err("`title`"),
        ),
        (
            Reply::news([article_titled("t").description("\u{b}")]),
            Err("`description`"),
        ),
        (
            Reply::news([article_titled("t").pic_url("\u{c}")]),
            Err("`pic_url`"),
        ),
        (Reply::news([Article::new("t", "\u{1b}")]), Err("`url`")),
        (Reply::image(""), Err("`media_id` must not be empty")),
        (Reply::image("m\u{0}"), Err("`media_id` contains")),
        (Reply::voice(""), Err("`media_id` must not be empty")),
        (Reply::voice("m"), ok),
        (video("", "t"), Err("`media_id` must not be empty")),
        (video("", "\u{0}"), Err("`media_id` must not be empty")),
        (video("m", "\u{0}"), Err("`title` contains")),
        (Reply::video("m", "", ""), ok),
        (music("t", ""), Err("`thumb_media_id` must not be empty")),
        (
            music("\u{0}", ""),
            Err("`thumb_media_id` must not be empty"),
        ),
        (music("\u{0}", "th"), Err("`title` contains")),
        (music("", "th\u{2}"), Err("`thumb_media_id` contains")),
        (music("", "th"), ok),
        (Reply::transfer_customer_service(), ok),
        (Reply::transfer_to("agent@account"), ok),
        (Reply::transfer_to(""), ok),
        (
            Reply::transfer_to("agent\u{0}"),
            Err("`kf_account` contains"),
        ),
    ];
    for (reply, expected) in cases {
        let (host, sdk) = verdicts(&reply);
        match expected {
            Ok(()) => assert_eq!(host, Ok(()), "the host accepts {reply:?}"),
            Err(words) => assert!(
                host.as_ref().is_err_and(|e| e.contains(words)),
                "the host refuses {reply:?} with {words:?}: {host:?}"
            ),
        }
        assert_eq!(sdk, host, "the SDK's verdict on {reply:?}");
        if let Err(e) = agree(&reply) {
            panic!("{e}");
        }
    }
}

#[test]
fn a_reply_has_the_same_json_on_both_sides() {
    assert_eq!(
        serde_json::to_string(&Reply::text("hi")).expect("serialises"),
        r#"{"type":"text","content":"hi"}"#
    );
    let json = serde_json::to_string(&Reply::news([article_titled("t")])).expect("serialises");
    assert_eq!(
        json,
        r#"{"type":"news","articles":[{"title":"t","description":"","pic_url":"","url":"https://example.com"}]}"#
    );
    assert_eq!(
        serde_json::to_string(&Reply::transfer_customer_service()).expect("serialises"),
        r#"{"type":"transfer_customer_service","kf_account":null}"#
    );
    // The host's defaults and its refusal of unknown fields hold on the SDK's side too.
    let sparse = r#"{"type":"music","thumb_media_id":"th"}"#;
    let sdk: Reply = serde_json::from_str(sparse).expect("defaults apply");
    let host: wechat::Reply = serde_json::from_str(sparse).expect("defaults apply");
    assert_eq!(host_reply(&sdk), host);
    let unknown = r#"{"type":"image","media_id":"m","caption":"x"}"#;
    assert!(serde_json::from_str::<Reply>(unknown).is_err());
    assert!(serde_json::from_str::<wechat::Reply>(unknown).is_err());
}
