//! An exact expected-XML test per reply type, and the reply limits.

use wxhost::wechat::{Article, Error, Reply};

const HEAD: &str = "<xml><ToUserName><![CDATA[o_user]]></ToUserName><FromUserName><![CDATA[gh_acc]]></FromUserName>\
    <CreateTime>1700000000</CreateTime>";

fn check(reply: Reply, expected_rest: &str) {
    let xml = reply
        .encode("o_user", "gh_acc", 1_700_000_000)
        .expect("encodes");
    assert_eq!(xml, format!("{HEAD}{expected_rest}</xml>"));
    let parsed = Reply::parse(&xml).expect("parses back");
    assert_eq!(parsed.reply, reply);
    assert_eq!(
        (parsed.to_user.as_str(), parsed.create_time),
        ("o_user", 1_700_000_000)
    );
}

fn article(n: u32) -> Article {
    Article {
        title: format!("title{n}"),
        description: format!("description{n}"),
        pic_url: format!("http://p/{n}.jpg"),
        url: format!("http://u/{n}"),
    }
}

#[test]
fn text() {
    check(
        Reply::text("你好 ]]> <a href=\"x\">&amp;</a>\n😀"),
        "<MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[你好 ]]]]><![CDATA[> <a href=\"x\">&amp;</a>\n😀]]></Content>",
    );
}

#[test]
fn image() {
    check(
        Reply::Image {
            media_id: "m1".into(),
        },
        "<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[m1]]></MediaId></Image>",
    );
}

#[test]
fn voice() {
    check(
        Reply::Voice {
            media_id: "m2".into(),
        },
        "<MsgType><![CDATA[voice]]></MsgType><Voice><MediaId><![CDATA[m2]]></MediaId></Voice>",
    );
}

#[test]
fn video() {
    check(
        Reply::Video {
            media_id: "m3".into(),
            title: "t".into(),
            description: "d".into(),
        },
        "<MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[m3]]></MediaId>\
         <Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description></Video>",
    );
}

#[test]
fn music() {
    check(
        Reply::Music {
            title: "song".into(),
            description: "desc".into(),
            music_url: "http://m/1.mp3".into(),
            hq_music_url: "http://m/1hq.mp3".into(),
            thumb_media_id: "th".into(),
        },
        "<MsgType><![CDATA[music]]></MsgType><Music><Title><![CDATA[song]]></Title>\
         <Description><![CDATA[desc]]></Description><MusicUrl><![CDATA[http://m/1.mp3]]></MusicUrl>\
         <HQMusicUrl><![CDATA[http://m/1hq.mp3]]></HQMusicUrl><ThumbMediaId><![CDATA[th]]></ThumbMediaId></Music>",
    );
}

#[test]
fn news() {
    check(
        Reply::News {
            articles: vec![article(1), article(2)],
        },
        "<MsgType><![CDATA[news]]></MsgType><ArticleCount>2</ArticleCount><Articles>\
         <item><Title><![CDATA[title1]]></Title><Description><![CDATA[description1]]></Description>\
         <PicUrl><![CDATA[http://p/1.jpg]]></PicUrl><Url><![CDATA[http://u/1]]></Url></item>\
         <item><Title><![CDATA[title2]]></Title><Description><![CDATA[description2]]></Description>\
         <PicUrl><![CDATA[http://p/2.jpg]]></PicUrl><Url><![CDATA[http://u/2]]></Url></item></Articles>",
    );
}

#[test]
fn transfer_to_customer_service_with_and_without_an_agent() {
    check(
        Reply::TransferCustomerService { kf_account: None },
        "<MsgType><![CDATA[transfer_customer_service]]></MsgType>",
    );
    check(
        Reply::TransferCustomerService {
            kf_account: Some("test1@test".into()),
        },
        "<MsgType><![CDATA[transfer_customer_service]]></MsgType>\
         <TransInfo><KfAccount><![CDATA[test1@test]]></KfAccount></TransInfo>",
    );
}

#[test]
fn text_is_capped_at_2048_bytes() {
    let at_limit = "字".repeat(682) + "ab"; // 682 * 3 + 2 = 2048 bytes
    assert!(Reply::text(at_limit).encode("u", "a", 1).is_ok());
    let over = "字".repeat(683);
    assert_eq!(
        Reply::text(over).encode("u", "a", 1),
        Err(Error::ReplyTextTooLong(2049))
    );
}

#[test]
fn news_takes_one_to_eight_articles() {
    let news = |n| Reply::News {
        articles: (0..n).map(article).collect(),
    };
    assert!(news(8).encode("u", "a", 1).is_ok());
    assert_eq!(news(9).encode("u", "a", 1), Err(Error::ArticleCount(9)));
    assert_eq!(news(0).encode("u", "a", 1), Err(Error::ArticleCount(0)));
}

#[test]
fn required_media_ids_and_xml_characters_are_checked() {
    assert_eq!(
        Reply::Image {
            media_id: String::new()
        }
        .encode("u", "a", 1),
        Err(Error::EmptyReplyField("media_id"))
    );
    assert_eq!(
        Reply::text("bell\u{7}").encode("u", "a", 1),
        Err(Error::InvalidReplyChar("content"))
    );
    let err = Reply::text("x")
        .encode("u\u{0}", "a", 1)
        .expect_err("bad to_user");
    assert_eq!(err, Error::InvalidReplyChar("to_user"));
    assert_eq!(err.code(), -40011);
}

#[test]
fn validate_refuses_what_encode_cannot_write() {
    // A plugin's reply is validated when it returns: a character XML cannot carry is the
    // plugin's error then, not a reply that fails to encode at the end of the push.
    let article = |url: &str| Article {
        title: "t".into(),
        description: String::new(),
        pic_url: String::new(),
        url: url.into(),
    };
    let cases = [
        (Reply::text("bell\u{7}"), "content"),
        (
            Reply::News {
                articles: vec![article("https://a"), article("https://b\u{1b}")],
            },
            "url",
        ),
        (
            Reply::Video {
                media_id: "m".into(),
                title: "\u{fffe}".into(),
                description: String::new(),
            },
            "title",
        ),
        (
            Reply::TransferCustomerService {
                kf_account: Some("kf\u{0}".into()),
            },
            "kf_account",
        ),
    ];
    for (reply, field) in cases {
        assert_eq!(
            reply.validate(),
            Err(Error::InvalidReplyChar(field)),
            "{reply:?}"
        );
    }
    assert_eq!(Reply::text("tab\tnewline\n").validate(), Ok(()));
}

#[test]
fn each_field_is_capped_and_the_error_names_it_and_its_limit() {
    use wxhost::wechat::reply::{
        MAX_DESCRIPTION_BYTES, MAX_KF_ACCOUNT_BYTES, MAX_MEDIA_ID_BYTES, MAX_TITLE_BYTES,
        MAX_URL_BYTES,
    };
    let at = |n: usize| "a".repeat(n);
    let news = |title: String, description: String, pic_url: String, url: String| Reply::News {
        articles: vec![Article {
            title,
            description,
            pic_url,
            url,
        }],
    };
    let music =
        |title: String, description: String, url: String, hq: String, thumb: String| Reply::Music {
            title,
            description,
            music_url: url,
            hq_music_url: hq,
            thumb_media_id: thumb,
        };
    let video = |media_id: String, title: String, description: String| Reply::Video {
        media_id,
        title,
        description,
    };
    let t = || "t".to_owned();
    type Make = Box<dyn Fn(usize) -> Reply>;
    let cases: Vec<(&str, usize, Make)> = vec![
        (
            "title",
            MAX_TITLE_BYTES,
            Box::new(move |n| news(at(n), t(), t(), t())),
        ),
        (
            "description",
            MAX_DESCRIPTION_BYTES,
            Box::new(move |n| news(t(), at(n), t(), t())),
        ),
        (
            "pic_url",
            MAX_URL_BYTES,
            Box::new(move |n| news(t(), t(), at(n), t())),
        ),
        (
            "url",
            MAX_URL_BYTES,
            Box::new(move |n| news(t(), t(), t(), at(n))),
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
            "media_id",
            MAX_MEDIA_ID_BYTES,
            Box::new(move |n| video(at(n), t(), t())),
        ),
        (
            "title",
            MAX_TITLE_BYTES,
            Box::new(move |n| video(t(), at(n), t())),
        ),
        (
            "description",
            MAX_DESCRIPTION_BYTES,
            Box::new(move |n| video(t(), t(), at(n))),
        ),
        (
            "media_id",
            MAX_MEDIA_ID_BYTES,
            Box::new(move |n| Reply::Image { media_id: at(n) }),
        ),
        (
            "media_id",
            MAX_MEDIA_ID_BYTES,
            Box::new(move |n| Reply::Voice { media_id: at(n) }),
        ),
        (
            "kf_account",
            MAX_KF_ACCOUNT_BYTES,
            Box::new(move |n| Reply::TransferCustomerService {
                kf_account: Some(at(n)),
            }),
        ),
    ];
    for (field, limit, reply) in cases {
        assert_eq!(reply(limit).validate(), Ok(()), "{field} at {limit}");
        assert!(
            reply(limit).encode("u", "a", 1).is_ok(),
            "{field} at {limit}"
        );
        let err = reply(limit + 1)
            .encode("u", "a", 1)
            .expect_err("over the cap");
        assert_eq!(
            err,
            Error::ReplyFieldTooLong {
                field,
                len: limit + 1,
                limit
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "reply field `{field}` of {} bytes exceeds the {limit}-byte limit",
                limit + 1
            )
        );
        assert_eq!(err.code(), -40011);
        assert!(
            !err.is_bad_request(),
            "a reply is the plugin's, not the sender's"
        );
    }
    // A multibyte character is counted in bytes: 64 four-byte characters are at the cap.
    let title = |s: String| news(s, t(), t(), t());
    assert_eq!(title("😀".repeat(64)).validate(), Ok(()));
    assert!(matches!(
        title("😀".repeat(64) + "a").validate(),
        Err(Error::ReplyFieldTooLong { len: 257, .. })
    ));
    // Too long and holding a control character: the length is reported first.
    assert!(matches!(
        title("\u{1}".repeat(300)).validate(),
        Err(Error::ReplyFieldTooLong { len: 300, .. })
    ));
}

/// A news reply of `n` articles whose URLs make its encoded size `len` (above a minimum).
fn news_of_size(n: usize, len: usize) -> Reply {
    let mut articles: Vec<Article> = (0..n)
        .map(|_| Article {
            title: "t".into(),
            ..Article::default()
        })
        .collect();
    let base = Reply::News {
        articles: articles.clone(),
    }
    .encoded_len();
    let mut rest = len - base;
    for article in &mut articles {
        let take = rest.min(wxhost::wechat::reply::MAX_URL_BYTES);
        article.url = "u".repeat(take);
        rest -= take;
    }
    assert_eq!(rest, 0, "{n} articles cannot reach {len} bytes");
    Reply::News { articles }
}

#[test]
fn the_whole_reply_is_capped_and_encoded_len_is_what_encode_writes() {
    use wxhost::wechat::reply::MAX_REPLY_BYTES;
    let head = |to: &str, from: &str| {
        format!("<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName><CreateTime>1</CreateTime>").len()
            + "</xml>".len()
    };
    let at_cap = news_of_size(8, MAX_REPLY_BYTES);
    assert_eq!(at_cap.encoded_len(), MAX_REPLY_BYTES);
    let xml = at_cap.encode("o_user", "gh_acc", 1).expect("at the cap");
    assert_eq!(xml.len(), MAX_REPLY_BYTES + head("o_user", "gh_acc"));
    let over = news_of_size(8, MAX_REPLY_BYTES + 1);
    let err = over
        .encode("o_user", "gh_acc", 1)
        .expect_err("over the cap");
    assert_eq!(
        err,
        Error::ReplyTooLarge {
            len: MAX_REPLY_BYTES + 1,
            limit: MAX_REPLY_BYTES
        }
    );
    assert_eq!(
        err.to_string(),
        "reply of 16385 bytes encoded exceeds the 16384-byte limit"
    );
    assert_eq!(err.code(), -40011);
    assert!(!err.is_bad_request());
    // `]]>` splits a CDATA section (12 bytes more each), and is counted as written: the
    // longest text reply, all `]]>`, still fits.
    let worst_text = Reply::text("]]>".repeat(682) + "ab");
    assert!(worst_text.encoded_len() > 10_000 && worst_text.encoded_len() < MAX_REPLY_BYTES);
    let mut replies = vec![worst_text, at_cap];
    replies.extend([
        Reply::text(""),
        Reply::Music {
            title: "]]]>".into(),
            description: "]]>]]>".into(),
            music_url: "]]".into(),
            hq_music_url: ">".into(),
            thumb_media_id: "th".into(),
        },
        Reply::TransferCustomerService { kf_account: None },
        Reply::TransferCustomerService {
            kf_account: Some("a]]>b".into()),
        },
        Reply::Video {
            media_id: "m".into(),
            title: String::new(),
            description: "中文".into(),
        },
        Reply::News {
            articles: (0..8).map(article).collect(),
        },
    ]);
    for reply in replies {
        let xml = reply.encode("o_user", "gh_acc", 1).expect("encodes");
        assert_eq!(
            xml.len(),
            reply.encoded_len() + head("o_user", "gh_acc"),
            "{reply:?}"
        );
    }
}

#[test]
fn replies_deserialize_from_json_strictly() {
    let reply: Reply =
        serde_json::from_str(r#"{"type":"text","content":"hi"}"#).expect("text reply json");
    assert_eq!(reply, Reply::text("hi"));
    assert!(serde_json::from_str::<Reply>(r#"{"type":"text","content":"hi","x":1}"#).is_err());
    assert!(serde_json::from_str::<Reply>(r#"{"type":"fax"}"#).is_err());
}
