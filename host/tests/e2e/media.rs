//! Media material for plugins, against the fake WeChat: a picture made from bytes is uploaded
//! once for identical replies (also by two nodes sharing Redis at once), downloads return the
//! bytes, WeChat's formats and sizes are refused before any upload, the capability must be
//! granted, and an upload that outlasts the passive budget makes the reply a late one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wxhost::wechat::{Mode, Reply, ReplyMessage};
use wxhost_fake_wechat::FakeWechat;
use wxhost_test_redis::RedisServer;

use crate::harness::{Server, account, reply_text, text};

const APPID: &str = "wxmedia";
const SECRET: &str = "app-secret-for-media-01";
const TOKEN: &str = "tokenmedia";
const UPLOAD: &str = "cgi-bin/media/upload";

/// Top-level `head`, then tenant `t` on `fake` with the capability probe granted
/// `capabilities`.
fn config(head: &str, fake: &FakeWechat, capabilities: &str) -> String {
    format!(
        "{head}\n[[tenants]]\nid = \"t\"\nappid = \"{APPID}\"\ntoken = \"{TOKEN}\"\nmode = \"plain\"\n\
         app_secret = \"{SECRET}\"\napi_base_url = \"{}\"\n[[tenants.plugins]]\n\
         name = \"capability-probe\"\ncapabilities = [{capabilities}]\n\
         limits = {{ deadline_ms = 4000 }}\n",
        fake.base_url()
    )
}

async fn ask(server: &Server, text_: &str, msg_id: u64) -> Option<ReplyMessage> {
    let wechat = account(APPID, TOKEN, None, Mode::Plain);
    server
        .send("t", &wechat, &text("o_media", text_, msg_id))
        .await
}

fn image_of(answer: Option<ReplyMessage>) -> String {
    match answer.map(|m| m.reply) {
        Some(Reply::Image { media_id }) => media_id,
        other => panic!("expected an image reply, got {other:?}"),
    }
}

#[tokio::test]
async fn a_picture_from_bytes_is_uploaded_once_and_material_comes_back_as_uploaded() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let server = Server::start(&config("", &fake, "\"media\""));
    let first = image_of(ask(&server, "picture 4", 1).await);
    let again = image_of(ask(&server, "picture 4", 2).await);
    assert_eq!(first, again, "the same bytes answer with the same media id");
    assert_eq!(fake.calls(UPLOAD), 1, "one upload for two replies");
    let uploaded = fake.media_bytes(&first).expect("the fake holds it");
    assert!(uploaded.starts_with(b"\x89PNG\r\n\x1a\n") && uploaded.len() == 8 + 4096);
    let other = image_of(ask(&server, "picture 5", 3).await);
    assert_ne!(other, first);
    assert_eq!(fake.calls(UPLOAD), 2);

    // Downloads return the bytes; a video's download is WeChat's JSON with its URL.
    assert_eq!(
        reply_text(ask(&server, "media image", 4).await),
        "media ok 3080"
    );
    assert_eq!(
        reply_text(ask(&server, "media voice", 5).await),
        "media ok 3078"
    );
    let video = reply_text(ask(&server, "media video", 6).await);
    assert!(
        video.starts_with("media other application/json {\"video_url\":\"http://"),
        "{video}"
    );
    let permanent = reply_text(ask(&server, "permanent-video", 7).await);
    assert!(
        permanent.starts_with("media application/json {")
            && permanent.contains("\"title\":\"probe\"")
            && permanent.contains("\"description\":\"a test video\""),
        "{permanent}"
    );

    // What WeChat would refuse is refused before any upload, with the reason.
    let uploads = fake.calls(UPLOAD);
    assert_eq!(
        reply_text(ask(&server, "media bmp", 8).await),
        "media error: Invalid(\"the image is BMP; temporary image material must be PNG, JPG, \
         GIF\")"
    );
    let too_big = reply_text(ask(&server, "picture 10241", 9).await);
    assert!(
        too_big.contains("the image is 10486792 bytes; WeChat takes at most 10485760"),
        "{too_big}"
    );
    assert_eq!(fake.calls(UPLOAD), uploads, "nothing uploaded");
    let metrics = server.metrics().await;
    for line in [
        format!(r#"wxhost_wechat_api_calls_total{{tenant="t",api="{UPLOAD}",outcome="ok"}} 5"#),
        r#"wxhost_media_uploads_total{tenant="t",outcome="uploaded"} 5"#.to_owned(),
        r#"wxhost_media_uploads_total{tenant="t",outcome="cached"} 1"#.to_owned(),
        r#"wxhost_media_uploads_total{tenant="t",outcome="invalid"} 2"#.to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn without_the_media_grant_uploads_are_denied_and_nothing_is_called() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    let server = Server::start(&config("", &fake, "\"wechat-api\""));
    let answer = reply_text(ask(&server, "picture 1", 1).await);
    assert_eq!(
        answer,
        "media error: Denied(\"the `media` capability is not granted to plugin \
         capability-probe in tenant t\")"
    );
    assert_eq!(fake.calls(UPLOAD), 0);
    assert_eq!(fake.token_fetches(), 0);
}

#[tokio::test]
async fn an_upload_that_outlasts_the_passive_budget_sends_its_picture_as_a_late_reply() {
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    fake.set_media_delay(Duration::from_millis(1500));
    let server = Server::start(&config(
        "passive_budget_ms = 400\nasync_budget_ms = 6000",
        &fake,
        "\"media\"",
    ));
    server.serving().await;
    let started = Instant::now();
    assert!(
        ask(&server, "picture 2", 1).await.is_none(),
        "`success` in time"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    let until = Instant::now() + Duration::from_secs(8);
    let sent = loop {
        let sent = fake.sent("cgi-bin/message/custom/send");
        if !sent.is_empty() || Instant::now() > until {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sent.len(), 1, "{sent:?}; logs: {}", server.logs());
    assert_eq!(sent[0]["touser"], "o_media");
    assert_eq!(sent[0]["msgtype"], "image");
    let media_id = sent[0]["image"]["media_id"].as_str().expect("media id");
    assert!(fake.media_bytes(media_id).is_some(), "the uploaded picture");
    assert_eq!(fake.calls(UPLOAD), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_answering_with_the_same_picture_at_once_upload_it_once() {
    let redis = RedisServer::start();
    let fake = FakeWechat::start(APPID, SECRET).await.expect("fake");
    fake.set_media_delay(Duration::from_millis(300));
    let head = format!(
        "[storage]\nbackend = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    );
    let config = config(&head, &fake, "\"media\"");
    let nodes = Arc::new([Server::start(&config), Server::start(&config)]);
    for node in nodes.iter() {
        node.serving().await;
    }
    let asks: Vec<_> = (0..6u64)
        .map(|n| {
            let nodes = Arc::clone(&nodes);
            tokio::spawn(async move { ask(&nodes[(n % 2) as usize], "picture 6", 100 + n).await })
        })
        .collect();
    let mut ids = Vec::new();
    for asked in asks {
        ids.push(image_of(asked.await.expect("joins")));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one media id: {ids:?}");
    assert_eq!(fake.calls(UPLOAD), 1, "one upload across both nodes");
}
