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
fn replies_deserialize_from_json_strictly() {
    let reply: Reply =
        serde_json::from_str(r#"{"type":"text","content":"hi"}"#).expect("text reply json");
    assert_eq!(reply, Reply::text("hi"));
    assert!(serde_json::from_str::<Reply>(r#"{"type":"text","content":"hi","x":1}"#).is_err());
    assert!(serde_json::from_str::<Reply>(r#"{"type":"fax"}"#).is_err());
}
