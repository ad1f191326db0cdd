//! Every row of `PushError::refusal`, walked through the real router in process (no sockets):
//! each kind of refused callback gets its status, its reason and its `outcome` count.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use wxhost::dispatch::PushError;
use wxhost::server::App;
use wxhost::wechat::xml::Element;
use wxhost::wechat::{self, Account, CallbackQuery, EnvelopeParams, Message, Mode};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn config(dir: &std::path::Path) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    format!(
        "plugins_dir = {:?}\ndata_dir = {:?}\ncache_dir = {:?}\n\
         [[tenants]]\nid = \"plain\"\nappid = \"wxplain\"\ntoken = \"tokenplain\"\nmode = \"plain\"\n\
         [[tenants]]\nid = \"safe\"\nappid = \"wxsafe\"\ntoken = \"tokensafe\"\nmode = \"safe\"\n\
         encoding_aes_key = \"{KEY}\"\n",
        path("plugins"),
        path("data"),
        path("cache"),
    )
}

fn text(content: &str) -> Message {
    let now = wxhost::clock::unix_now().to_string();
    let field = |k: &str, v: &str| Element::leaf(k, v);
    Message::from_fields(Element {
        name: "xml".into(),
        text: String::new(),
        children: vec![
            field("ToUserName", "gh_router"),
            field("FromUserName", "user"),
            field("CreateTime", &now),
            field("MsgType", "text"),
            field("Content", content),
            field("MsgId", "1"),
        ],
    })
    .expect("valid message")
}

fn push(account: &Account) -> (CallbackQuery, String) {
    let params = EnvelopeParams::fresh(wxhost::clock::unix_now(), &mut rand::rng());
    account.simulate_push(&text("hi"), &params).expect("push")
}

/// One refused request: where it goes, and what it must get.
struct Case {
    name: &'static str,
    tenant: &'static str,
    query: String,
    body: Vec<u8>,
    status: StatusCode,
    outcome: &'static str,
    reason: &'static str,
}

fn cases() -> Vec<Case> {
    let plain = Account::new("wxplain", "tokenplain", None, Mode::Plain).expect("account");
    let safe = Account::new("wxsafe", "tokensafe", Some(KEY), Mode::Safe).expect("account");
    let (pq, pbody) = push(&plain);
    let (sq, sbody) = push(&safe);
    let mut forged = sq.clone();
    forged.msg_signature = Some("0".repeat(40));
    let mut unsigned = pq.clone();
    unsigned.signature = None;
    let mut not_a_time = pq.clone();
    not_a_time.timestamp = Some("soon".into());
    not_a_time.signature = Some(wechat::signature::signature(
        "tokenplain",
        "soon",
        pq.nonce.as_deref().unwrap_or_default(),
    ));
    let mut stale = pq.clone();
    stale.timestamp = Some("1000".into());
    stale.signature = Some(wechat::signature::signature(
        "tokenplain",
        "1000",
        pq.nonce.as_deref().unwrap_or_default(),
    ));
    let case = |name, tenant, query: String, body: &[u8], status, outcome, reason| Case {
        name,
        tenant,
        query,
        body: body.to_vec(),
        status,
        outcome,
        reason,
    };
    vec![
        case(
            "unknown tenant",
            "nobody",
            pq.to_query_string(),
            pbody.as_bytes(),
            StatusCode::NOT_FOUND,
            "unknown_tenant",
            "unknown tenant",
        ),
        case(
            "forged msg_signature",
            "safe",
            forged.to_query_string(),
            sbody.as_bytes(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "msg_signature mismatch",
        ),
        case(
            "no signature",
            "plain",
            unsigned.to_query_string(),
            pbody.as_bytes(),
            StatusCode::UNAUTHORIZED,
            "bad_request",
            "missing query parameter `signature`",
        ),
        case(
            "timestamp not a number",
            "plain",
            not_a_time.to_query_string(),
            pbody.as_bytes(),
            StatusCode::UNAUTHORIZED,
            "bad_request",
            "timestamp \"soon\" is not a number of seconds",
        ),
        case(
            "timestamp outside the window",
            "plain",
            stale.to_query_string(),
            pbody.as_bytes(),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
            "outside the 300 s window",
        ),
        case(
            "repeated parameter",
            "plain",
            format!("{}&nonce=1", pq.to_query_string()),
            pbody.as_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "query parameter `nonce` appears more than once",
        ),
        case(
            "malformed XML",
            "plain",
            pq.to_query_string(),
            b"<xml><unclosed>",
            StatusCode::BAD_REQUEST,
            "bad_request",
            "",
        ),
        case(
            "plaintext to a safe-mode tenant",
            "safe",
            {
                let mut q = sq.clone();
                q.msg_signature = None;
                q.to_query_string()
            },
            pbody.as_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "plaintext push refused",
        ),
        case(
            "ciphertext to a keyless plain tenant",
            "plain",
            {
                let mut q = sq.clone();
                q.signature = pq.signature.clone();
                q.timestamp = pq.timestamp.clone();
                q.nonce = pq.nonce.clone();
                q.to_query_string()
            },
            sbody.as_bytes(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "encrypted push refused",
        ),
        case(
            "body over the limit",
            "plain",
            pq.to_query_string(),
            &vec![b'x'; wxhost::http::MAX_BODY_BYTES + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
            "",
        ),
    ]
}

#[tokio::test]
async fn every_refusal_gets_its_status_reason_and_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("wxhost.toml"), config(dir.path())).expect("config");
    let app = App::build(&dir.path().join("wxhost.toml"))
        .await
        .expect("app builds");
    let router = wxhost::http::router(app.state.clone());
    for case in cases() {
        let before = app.state.metrics.encode();
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/wx/{}?{}", case.tenant, case.query))
            .body(Body::from(case.body))
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("answered");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let reason = String::from_utf8_lossy(&body);
        assert_eq!(status, case.status, "{}: {reason}", case.name);
        assert!(reason.contains(case.reason), "{}: {reason}", case.name);
        if !case.outcome.is_empty() {
            let label = if case.tenant == "nobody" {
                "unknown"
            } else {
                case.tenant
            };
            let series = format!(
                "wxhost_requests_total{{tenant=\"{label}\",outcome=\"{}\"}}",
                case.outcome
            );
            assert_eq!(
                count(&app.state.metrics.encode(), &series),
                count(&before, &series) + 1,
                "{}: {series}",
                case.name
            );
        }
    }
}

/// The value of `series` in an OpenMetrics text (0 when absent).
fn count(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn only_this_hosts_faults_are_5xx() {
    let host_faults = [
        wechat::Error::NoAesKey,
        wechat::Error::InvalidAesKey("x"),
        wechat::Error::EncryptFailed(1),
        wechat::Error::ReplyTextTooLong(3000),
    ];
    for e in host_faults {
        assert!(!e.is_bad_request(), "{e}");
        let refusal = PushError::Rejected(e).refusal();
        assert_eq!(refusal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(refusal.outcome, "host_error");
    }
    let sender_faults = [
        wechat::Error::CiphertextRefused,
        wechat::Error::PlaintextRefused,
        wechat::Error::Base64("x".into()),
        wechat::Error::InvalidPadding(0),
    ];
    for e in sender_faults {
        assert!(e.is_bad_request(), "{e}");
        assert!(PushError::Rejected(e).refusal().status.is_client_error());
    }
}
