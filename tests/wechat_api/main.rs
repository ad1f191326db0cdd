//! The WeChat API client against the fake WeChat server on loopback: token single-flight,
//! refresh on rejection, retry rules, endpoints, media material, secrets kept out of errors,
//! and the fake's own checks of uploads.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wxhost::secret::Secret;
use wxhost::storage::{KvStore, MemoryKv};
use wxhost::telemetry::Metrics;
use wxhost::wechat_api::media::{MediaKind, VideoInfo};
use wxhost::wechat_api::{
    AccountApi, ApiClient, ApiError, ApiRequest, Credentials, CustomMessage, Idempotency, Method,
    TemplateMessage, TokenEndpoint,
};
use wxhost_fake_wechat::FakeWechat;

const APPID: &str = "wx0123456789abcdef";
const SECRET: &str = "s3cr3t-app-secret-value";
const CUSTOM: &str = "cgi-bin/message/custom/send";

struct Setup {
    fake: FakeWechat,
    kv: Arc<dyn KvStore>,
    metrics: Arc<Metrics>,
}

async fn setup() -> Setup {
    Setup {
        fake: FakeWechat::start(APPID, SECRET).await.expect("fake starts"),
        kv: Arc::new(MemoryKv::default()),
        metrics: Arc::new(Metrics::default()),
    }
}

impl Setup {
    fn api_with(
        &self,
        secret: Option<&str>,
        endpoint: TokenEndpoint,
        timeout_ms: u64,
    ) -> AccountApi {
        let client = ApiClient::new(
            Arc::clone(&self.kv),
            Arc::clone(&self.metrics),
            Duration::from_millis(timeout_ms),
        )
        .expect("client builds");
        Arc::new(client).account(Credentials {
            tenant: "t1".into(),
            appid: APPID.into(),
            secret: secret.map(Secret::new),
            base_url: self.fake.base_url(),
            token_endpoint: endpoint,
        })
    }

    fn api(&self) -> AccountApi {
        self.api_with(Some(SECRET), TokenEndpoint::Stable, 2_000)
    }
}

fn hello() -> CustomMessage {
    CustomMessage::Text("hello".into())
}

#[tokio::test]
async fn a_hundred_concurrent_first_calls_fetch_one_token() {
    let s = setup().await;
    s.fake.set_token_delay(Duration::from_millis(100));
    let api = s.api();
    let sends = (0..100).map(|i| {
        let api = api.clone();
        tokio::spawn(async move { api.send_custom(&format!("o{i}"), &hello(), None).await })
    });
    for send in sends.collect::<Vec<_>>() {
        assert_eq!(send.await.expect("joins"), Ok(()));
    }
    assert_eq!(s.fake.token_fetches(), 1);
    assert_eq!(s.fake.sent(CUSTOM).len(), 100);
}

#[tokio::test]
async fn one_token_rejection_refreshes_once_and_retries() {
    let s = setup().await;
    let api = s.api();
    api.send_custom("o1", &hello(), None)
        .await
        .expect("first send");
    s.fake.inject(CUSTOM, 40001, 1);
    assert_eq!(api.send_custom("o1", &hello(), None).await, Ok(()));
    assert_eq!(s.fake.token_fetches(), 2, "one refresh");
    assert_eq!(
        s.fake.calls(CUSTOM),
        3,
        "first send, rejected send, retried send"
    );
    assert_eq!(s.fake.sent(CUSTOM).len(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_replaced() {
    let s = setup().await;
    let api = s.api();
    api.send_custom("o1", &hello(), None)
        .await
        .expect("first send");
    let old = api.access_token().await.expect("token");
    s.fake.revoke_tokens();
    assert_eq!(api.send_custom("o1", &hello(), None).await, Ok(()));
    assert_ne!(api.access_token().await.expect("token"), old);
    assert_eq!(s.fake.token_fetches(), 2);
}

#[tokio::test]
async fn two_token_rejections_give_an_error_without_looping() {
    let s = setup().await;
    let api = s.api();
    s.fake.inject(CUSTOM, 40001, 2);
    let result = api.send_custom("o1", &hello(), None).await;
    assert!(
        matches!(result, Err(ApiError::WeChat { code: 40001, .. })),
        "{result:?}"
    );
    assert_eq!(s.fake.calls(CUSTOM), 2);
    assert_eq!(s.fake.token_fetches(), 2);
    assert!(s.fake.sent(CUSTOM).is_empty());
}

#[tokio::test]
async fn sends_are_never_repeated_when_their_outcome_is_unknown() {
    let s = setup().await;
    let api = s.api_with(Some(SECRET), TokenEndpoint::Stable, 300);
    s.fake.inject(CUSTOM, -1, 1);
    let busy = api.send_custom("o1", &hello(), None).await;
    assert!(
        matches!(busy, Err(ApiError::WeChat { code: -1, .. })),
        "{busy:?}"
    );
    assert_eq!(s.fake.calls(CUSTOM), 1);

    s.fake.set_send_delay(Duration::from_millis(600));
    let slow = api.send_custom("o1", &hello(), None).await;
    assert_eq!(slow, Err(ApiError::Timeout));
    assert_eq!(s.fake.calls(CUSTOM), 2, "one attempt only");
}

#[tokio::test]
async fn idempotent_calls_are_repeated_once_when_busy() {
    let s = setup().await;
    let api = s.api();
    s.fake.inject("cgi-bin/stable_token", -1, 1);
    api.access_token()
        .await
        .expect("the token fetch is repeated");
    assert_eq!(s.fake.token_fetches(), 2);

    // Busy twice: one repeat only, then the error.
    let s = setup().await;
    let api = s.api_with(Some(SECRET), TokenEndpoint::Classic, 2_000);
    s.fake.inject("cgi-bin/token", -1, 2);
    let busy = api.access_token().await;
    assert!(
        matches!(busy, Err(ApiError::WeChat { code: -1, .. })),
        "{busy:?}"
    );
    assert_eq!(s.fake.calls("cgi-bin/token"), 2);
}

#[tokio::test]
async fn the_classic_endpoint_and_template_messages() {
    let s = setup().await;
    let api = s.api_with(Some(SECRET), TokenEndpoint::Classic, 2_000);
    let message = TemplateMessage {
        to_user: "o1".into(),
        template_id: "tpl-1".into(),
        url: None,
        miniprogram: None,
        data: [(
            "thing1".to_owned(),
            wxhost::wechat_api::messages::TemplateField {
                value: "v".into(),
                color: None,
            },
        )]
        .into(),
        client_msg_id: Some("order-42".into()),
    };
    let msgid = api.send_template(&message).await.expect("sent");
    assert!(msgid > 1000);
    assert_eq!(s.fake.calls("cgi-bin/token"), 1);
    assert_eq!(s.fake.calls("cgi-bin/stable_token"), 0);
    let sent = s.fake.sent("cgi-bin/message/template/send");
    assert_eq!(sent[0]["client_msg_id"], json!("order-42"));
}

#[tokio::test]
async fn a_stored_token_survives_a_restart() {
    let s = setup().await;
    s.api().access_token().await.expect("token");
    // A new client over the same storage (a restart, another host) fetches nothing.
    let again = s.api();
    again.send_custom("o1", &hello(), None).await.expect("sent");
    assert_eq!(s.fake.token_fetches(), 1);
}

#[tokio::test]
async fn credentials_problems_are_typed_and_never_show_the_secret() {
    let s = setup().await;
    let none = s.api_with(None, TokenEndpoint::Stable, 2_000);
    assert!(matches!(
        none.send_custom("o1", &hello(), None).await,
        Err(ApiError::NoSecret(_))
    ));
    assert_eq!(s.fake.token_fetches(), 0, "no call made");

    let wrong = s.api_with(Some("wrong-secret-123"), TokenEndpoint::Classic, 2_000);
    let error = wrong
        .send_custom("o1", &hello(), None)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, ApiError::WeChat { code: 40125, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong-secret-123"));

    let closed = ApiClient::new(
        Arc::clone(&s.kv),
        Arc::clone(&s.metrics),
        Duration::from_secs(1),
    )
    .map(Arc::new)
    .expect("client")
    .account(Credentials {
        tenant: "t2".into(),
        appid: APPID.into(),
        secret: Some(Secret::new(SECRET)),
        base_url: "http://127.0.0.1:9".into(),
        token_endpoint: TokenEndpoint::Classic,
    });
    let unreachable = closed.access_token().await.expect_err("nothing listens");
    assert!(
        matches!(unreachable, ApiError::Transport(_)),
        "{unreachable:?}"
    );
    assert!(!unreachable.to_string().contains(SECRET), "{unreachable}");
    let metrics = s.metrics.encode();
    assert!(
        !metrics.contains(SECRET) && !metrics.contains("TOKEN-"),
        "{metrics}"
    );
}

#[tokio::test]
async fn generic_calls_refuse_bad_paths_and_a_caller_token() {
    let s = setup().await;
    let api = s.api();
    let request = |path, query: &'static [(String, String)]| ApiRequest {
        method: Method::Get,
        path,
        query,
        body: None,
        idempotency: Idempotency::Idempotent,
    };
    assert!(matches!(
        api.call(request("../x", &[])).await,
        Err(ApiError::Invalid(_))
    ));
    let query: &'static [(String, String)] =
        Box::leak(Box::new([("access_token".to_owned(), "mine".to_owned())]));
    assert!(matches!(
        api.call(request("cgi-bin/x", query)).await,
        Err(ApiError::Invalid(_))
    ));
    // An unknown path: the fake answers 404, a typed status error.
    assert_eq!(
        api.call(request("cgi-bin/nothing", &[])).await,
        Err(ApiError::Status(404))
    );
}

fn png(fill: u8) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(2048, fill);
    png
}

#[tokio::test]
async fn media_uploads_once_downloads_what_was_uploaded_and_survives_a_token_rejection() {
    let s = setup().await;
    let api = s.api();
    let id = api
        .upload_media(MediaKind::Image, &png(1))
        .await
        .expect("uploads");
    assert_eq!(s.fake.media_bytes(&id), Some(png(1)));
    assert_eq!(
        api.upload_media(MediaKind::Image, &png(1)).await,
        Ok(id.clone())
    );
    assert_eq!(s.fake.calls("cgi-bin/media/upload"), 1, "cached by content");
    // Another client on the same store (another host) finds the cached id too.
    let other = s.api_with(Some(SECRET), TokenEndpoint::Stable, 2_000);
    assert_eq!(
        other.upload_media(MediaKind::Image, &png(1)).await,
        Ok(id.clone())
    );
    let file = api.download_media(&id).await.expect("downloads");
    assert_eq!(
        (file.content_type.as_str(), file.bytes),
        ("image/png", png(1))
    );

    // The multipart body is sent again with the new token.
    s.fake.revoke_tokens();
    let second = api
        .upload_media(MediaKind::Image, &png(2))
        .await
        .expect("uploads after a refresh");
    assert_eq!(s.fake.media_bytes(&second), Some(png(2)));
    assert_eq!(s.fake.calls("cgi-bin/media/upload"), 3);

    let material = api
        .upload_material(MediaKind::Image, &png(3), None)
        .await
        .expect("permanent");
    assert!(material.url.is_some());
    assert_eq!(
        api.download_material(&material.media_id)
            .await
            .map(|f| f.bytes),
        Ok(png(3))
    );
    assert!(
        matches!(
            api.download_media(&material.media_id).await,
            Err(ApiError::WeChat { code: 40007, .. })
        ),
        "permanent material is not temporary"
    );
    let mp4 = [&[0, 0, 0, 0x18][..], b"ftypmp42", &[0; 16]].concat();
    assert!(matches!(
        api.upload_material(MediaKind::Video, &mp4, None).await,
        Err(ApiError::Invalid(_))
    ));
    let info = VideoInfo {
        title: "t".into(),
        introduction: "i".into(),
    };
    let video = api
        .upload_material(MediaKind::Video, &mp4, Some(&info))
        .await
        .expect("a described video");
    let about = api.download_material(&video.media_id).await.expect("json");
    assert_eq!(about.content_type, "application/json");
    let about: serde_json::Value = serde_json::from_slice(&about.bytes).expect("json");
    assert_eq!(
        (about["title"].as_str(), about["description"].as_str()),
        (Some("t"), Some("i"))
    );
    let thumb = [&[0xFF, 0xD8, 0xFF][..], &[0; 100]].concat();
    assert!(
        api.upload_media(MediaKind::Thumb, &thumb).await.is_ok(),
        "thumb_media_id read"
    );
}

/// A multipart upload of `bytes` as `filename` to the fake, with a fresh token.
async fn raw_upload(
    s: &Setup,
    kind: &str,
    filename: Option<&str>,
    bytes: &[u8],
) -> serde_json::Value {
    let token = s.api().access_token().await.expect("token");
    let mut body = b"--B\r\n".to_vec();
    match filename {
        Some(name) => body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"media\"; filename=\"{name}\"\r\n\r\n")
                .as_bytes(),
        ),
        None => body.extend_from_slice(b"Content-Disposition: form-data; name=\"other\"\r\n\r\n"),
    }
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n--B--\r\n");
    reqwest::Client::new()
        .post(format!("{}/cgi-bin/media/upload", s.fake.base_url()))
        .query(&[("access_token", &*token), ("type", kind)])
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn the_fake_checks_uploads_as_wechat_does() {
    let s = setup().await;
    let jpeg = [&[0xFF, 0xD8, 0xFF][..], &[0; 64 * 1024]].concat();
    for (kind, filename, bytes, errcode) in [
        ("image", Some("a.png"), &png(0)[..], 0),
        ("image", Some("a.bmp"), &png(0)[..], 40005),
        ("sticker", Some("a.png"), &png(0)[..], 40004),
        ("thumb", Some("t.jpg"), &jpeg[..], 40012),
        ("thumb", Some("t.jpg"), &jpeg[..1000], 0),
        ("voice", None, b"#!AMR\n", 41005),
    ] {
        let answer = raw_upload(&s, kind, filename, bytes).await;
        assert_eq!(
            answer["errcode"].as_i64().unwrap_or(0),
            errcode,
            "{kind} {filename:?}: {answer}"
        );
    }
}
