//! The SDK's mirror of the reply model, checked against the host's: the SDK's
//! `Reply::validate` accepts exactly the replies the host can send (its `validate`, then the
//! character check of `encode`) and names the same broken rule in the same words, over
//! generated replies and at the edges of each limit (the text, the articles, each field's cap
//! and the whole reply's), and measures a reply's size as the host does; and a reply's JSON is
//! the same on both sides.

use proptest::collection::vec;
use proptest::prelude::*;
use wxhost::wechat::reply::{
    MAX_ARTICLES, MAX_DESCRIPTION_BYTES, MAX_KF_ACCOUNT_BYTES, MAX_MEDIA_ID_BYTES, MAX_REPLY_BYTES,
    MAX_TEXT_BYTES, MAX_TITLE_BYTES, MAX_URL_BYTES,
};
use wxhost::wechat::{self};
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
    prop_assert_eq!(
        reply.encoded_len(),
        host_reply.encoded_len(),
        "size of {:?}",
        reply
    );
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

/// A field of a reply whose cap is `cap`: short mostly; now and then a few bytes either side of
/// the cap (ASCII, then a tail of characters of any width), or a run of `]]>`, which the
/// encoding splits (12 bytes more each), so the whole reply's size grows past its fields'.
fn capped(cap: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => field(),
        1 => (cap - 4..=cap + 1, vec(any_char(), 0..3)).prop_map(|(n, tail)| {
            let mut text = "a".repeat(n);
            text.extend(tail);
            text
        }),
        1 => (1..=cap / 3 + 1).prop_map(|n| "]]>".repeat(n)),
    ]
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
    (
        capped(MAX_TITLE_BYTES),
        capped(MAX_DESCRIPTION_BYTES),
        capped(MAX_URL_BYTES),
        capped(MAX_URL_BYTES),
    )
        .prop_map(|(title, description, pic_url, url)| Article {
            title,
            description,
            pic_url,
            url,
        })
}

/// Eight articles whose URLs bring the news reply to either side of the whole reply's cap
/// (their other fields add about 1.1 KiB to the URLs' bytes).
fn news_near_the_cap() -> impl Strategy<Value = Reply> {
    vec(
        (field(), MAX_URL_BYTES - 200..=MAX_URL_BYTES - 88),
        MAX_ARTICLES,
    )
    .prop_map(|articles| {
        Reply::news(
            articles
                .into_iter()
                .map(|(title, url)| Article::new(title, "u".repeat(url))),
        )
    })
}

/// Any reply, valid or not: 0 to 10 articles, empty media ids, fields short or about their
/// caps, replies about the whole cap, forbidden characters anywhere.
fn reply() -> impl Strategy<Value = Reply> {
    let media = || capped(MAX_MEDIA_ID_BYTES);
    prop_oneof![
        text().prop_map(Reply::Text),
        media().prop_map(|media_id| Reply::Image { media_id }),
        media().prop_map(|media_id| Reply::Voice { media_id }),
        (
            media(),
            capped(MAX_TITLE_BYTES),
            capped(MAX_DESCRIPTION_BYTES)
        )
            .prop_map(|(media_id, title, description)| Reply::Video {
                media_id,
                title,
                description,
            }),
        (
            capped(MAX_TITLE_BYTES),
            capped(MAX_DESCRIPTION_BYTES),
            capped(MAX_URL_BYTES),
            capped(MAX_URL_BYTES),
            media()
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
        vec(article(), 0..=MAX_ARTICLES + 2).prop_map(Reply::News),
        news_near_the_cap(),
        proptest::option::of(capped(MAX_KF_ACCOUNT_BYTES))
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
    let mut cases = cases;
    cases.extend(field_cap_cases());
    cases.extend(whole_reply_cases());
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

/// Each field at its cap (accepted) and one byte over (refused, naming the field and its cap),
/// and which rule is reported when several are broken.
fn field_cap_cases() -> Vec<(Reply, Result<(), &'static str>)> {
    let at = |n: usize| "a".repeat(n);
    let article = |title: String, description: String, pic_url: String, url: String| Article {
        title,
        description,
        pic_url,
        url,
    };
    let t = || "t".to_owned();
    let music =
        |title: String, description: String, url: String, hq: String, thumb: String| Reply::Music {
            title,
            description,
            music_url: url,
            hq_music_url: hq,
            thumb_media_id: thumb,
        };
    type Make = Box<dyn Fn(usize) -> Reply>;
    let fields: Vec<(&str, usize, Make)> = vec![
        (
            "title",
            MAX_TITLE_BYTES,
            Box::new(move |n| Reply::news([article(at(n), t(), t(), t())])),
        ),
        (
            "description",
            MAX_DESCRIPTION_BYTES,
            Box::new(move |n| Reply::news([article(t(), at(n), t(), t())])),
        ),
        (
            "pic_url",
            MAX_URL_BYTES,
            Box::new(move |n| Reply::news([article(t(), t(), at(n), t())])),
        ),
        (
            "url",
            MAX_URL_BYTES,
            Box::new(move |n| Reply::news([article(t(), t(), t(), at(n))])),
        ),
        (
            "media_id",
            MAX_MEDIA_ID_BYTES,
            Box::new(move |n| Reply::image(at(n))),
        ),
        (
            "media_id",
            MAX_MEDIA_ID_BYTES,
            Box::new(move |n| Reply::voice(at(n))),
        ),
        (
            "media_id",
            MAX_MEDIA_ID_BYTES,
            Box::new(move |n| Reply::video(at(n), "t", "d")),
        ),
        (
            "title",
            MAX_TITLE_BYTES,
            Box::new(move |n| Reply::video("m", at(n), "d")),
        ),
        (
            "description",
            MAX_DESCRIPTION_BYTES,
            Box::new(move |n| Reply::video("m", "t", at(n))),
        ),
        (
            "title",
            MAX_TITLE_BYTES,
            Box::new(move |n| music(at(n), t(), t(), t(), t())),
        ),
        (
            "description",
            MAX_DESCRIPTION_BYTES,
            Box::new(move |n| music(t(), at(n), t(), t(), t())),
        ),
        (
            "music_url",
            MAX_URL_BYTES,
            Box::new(move |n| music(t(), t(), at(n), t(), t())),
        ),
        (
            "hq_music_url",
            MAX_URL_BYTES,
            Box::new(move |n| music(t(), t(), t(), at(n), t())),
        ),
        (
            "thumb_media_id",
            MAX_MEDIA_ID_BYTES,
            Box::new(move |n| music(t(), t(), t(), t(), at(n))),
        ),
        (
            "kf_account",
            MAX_KF_ACCOUNT_BYTES,
            Box::new(move |n| Reply::transfer_to(at(n))),
        ),
    ];
    let mut cases = Vec::new();
    for (field, limit, make) in fields {
        cases.push((make(limit), Ok(())));
        let words: &'static str = format!(
            "reply field `{field}` of {} bytes exceeds the {limit}-byte limit",
            limit + 1
        )
        .leak();
        cases.push((make(limit + 1), Err(words)));
    }
    cases.extend([
        // Bytes, not characters: 64 four-byte characters are at the title's cap.
        (
            Reply::news([article("😀".repeat(64), t(), t(), t())]),
            Ok(()),
        ),
        (
            Reply::news([article("😀".repeat(64) + "a", t(), t(), t())]),
            Err("`title` of 257 bytes"),
        ),
        (
            Reply::news([article(t(), t(), t(), "a".repeat(2046) + "é")]),
            Ok(()),
        ),
        (
            Reply::news([article(t(), t(), t(), "a".repeat(2047) + "é")]),
            Err("`url` of 2049 bytes"),
        ),
        // Too long and a control character: the length is reported.
        (
            Reply::news([article("\u{1}".repeat(300), t(), t(), t())]),
            Err("`title` of 300 bytes"),
        ),
        // Fields in the order they are written: a control character in the first article's
        // picture before the second article's long title.
        (
            Reply::news([
                article(t(), t(), "\u{1}".into(), t()),
                article(at(300), t(), t(), t()),
            ]),
            Err("`pic_url` contains"),
        ),
        (
            Reply::news([
                article(t(), t(), at(3000), t()),
                article(t(), t(), t(), "\u{0}".into()),
            ]),
            Err("`pic_url` of 3000 bytes"),
        ),
        // The required media id first, then the fields.
        (
            music(at(300), t(), t(), t(), String::new()),
            Err("`thumb_media_id` must not be empty"),
        ),
        (
            music(at(300), t(), t(), t(), at(200)),
            Err("`title` of 300 bytes"),
        ),
        (
            Reply::video(at(200), at(300), ""),
            Err("`media_id` of 200 bytes"),
        ),
        // Too many articles, too long: the count.
        (
            Reply::news((0..9).map(|_| article(at(300), t(), t(), t()))),
            Err("9 articles"),
        ),
    ]);
    cases
}

/// A news reply of 8 articles whose URLs make its encoded size `len`.
fn news_of_size(len: usize) -> Reply {
    let titled = |url: String| Article::new("t", url);
    let base = Reply::news((0..MAX_ARTICLES).map(|_| titled(String::new()))).encoded_len();
    let mut rest = len - base;
    let articles: Vec<Article> = (0..MAX_ARTICLES)
        .map(|_| {
            let take = rest.min(MAX_URL_BYTES);
            rest -= take;
            titled("u".repeat(take))
        })
        .collect();
    assert_eq!(rest, 0, "8 articles reach {len} bytes");
    let news = Reply::news(articles);
    assert_eq!(news.encoded_len(), len);
    news
}

/// The whole reply at its cap (accepted) and over it (refused with its size), as its fields'
/// bytes or its `]]>` splits make it grow; and a field's rule before the whole reply's.
fn whole_reply_cases() -> Vec<(Reply, Result<(), &'static str>)> {
    let mut split = news_of_size(MAX_REPLY_BYTES);
    if let Reply::News(articles) = &mut split {
        // Three bytes of `]]>` encode to 15: 12 bytes more than three bytes of "u".
        articles[0].url.replace_range(..3, "]]>");
    }
    let mut over_and_bad = news_of_size(MAX_REPLY_BYTES + 1);
    if let Reply::News(articles) = &mut over_and_bad {
        articles[7].title = "\u{0}".into();
    }
    vec![
        (news_of_size(MAX_REPLY_BYTES), Ok(())),
        (
            news_of_size(MAX_REPLY_BYTES + 1),
            Err("reply of 16385 bytes encoded exceeds the 16384-byte limit"),
        ),
        (split, Err("reply of 16396 bytes encoded")),
        (over_and_bad, Err("`title` contains")),
        // The longest text, all `]]>`, fits: about 10 KiB encoded.
        (Reply::text("]]>".repeat(682) + "ab"), Ok(())),
        // Music with every field at its cap is under the cap; with `]]>` runs, over it.
        (
            Reply::Music {
                title: "a".repeat(MAX_TITLE_BYTES),
                description: "a".repeat(MAX_DESCRIPTION_BYTES),
                music_url: "a".repeat(MAX_URL_BYTES),
                hq_music_url: "a".repeat(MAX_URL_BYTES),
                thumb_media_id: "a".repeat(MAX_MEDIA_ID_BYTES),
            },
            Ok(()),
        ),
        (
            Reply::Music {
                title: String::new(),
                description: String::new(),
                music_url: "]]>".repeat(682),
                hq_music_url: "]]>".repeat(682),
                thumb_media_id: "th".into(),
            },
            Err("encoded exceeds the 16384-byte limit"),
        ),
    ]
}

#[test]
fn the_sdk_names_the_hosts_limits() {
    assert_eq!(wxhost_sdk::MAX_TEXT_BYTES, MAX_TEXT_BYTES);
    assert_eq!(wxhost_sdk::MAX_ARTICLES, MAX_ARTICLES);
    assert_eq!(wxhost_sdk::MAX_TITLE_BYTES, MAX_TITLE_BYTES);
    assert_eq!(wxhost_sdk::MAX_DESCRIPTION_BYTES, MAX_DESCRIPTION_BYTES);
    assert_eq!(wxhost_sdk::MAX_URL_BYTES, MAX_URL_BYTES);
    assert_eq!(wxhost_sdk::MAX_MEDIA_ID_BYTES, MAX_MEDIA_ID_BYTES);
    assert_eq!(wxhost_sdk::MAX_KF_ACCOUNT_BYTES, MAX_KF_ACCOUNT_BYTES);
    assert_eq!(wxhost_sdk::MAX_REPLY_BYTES, MAX_REPLY_BYTES);
    for field in [
        "content",
        "title",
        "description",
        "pic_url",
        "url",
        "music_url",
        "hq_music_url",
        "media_id",
        "thumb_media_id",
        "kf_account",
    ] {
        assert_eq!(
            wxhost_sdk::field_limit(field),
            wechat::reply::field_limit(field),
            "{field}"
        );
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
