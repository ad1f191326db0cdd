//! Each example plugin, end to end through the runtime.

use std::sync::Arc;

use serde_json::json;
use wxhost::plugin::{Limits, Outcome};
use wxhost::storage::{KvStore, MemoryKv};
use wxhost::wechat::{Article, Reply};
use wxhost_tests::plugins;

use super::{context, default_context, event, load, reply_text, runtime, text};

#[tokio::test]
async fn echo_answers_text_and_passes_on_the_rest() {
    let rt = runtime();
    let echo = load(&rt, "echo", plugins::ECHO);
    let ctx = default_context();
    let report = rt.call(&echo, &ctx, &text("o_user", "你好 ]]> <&>")).await;
    assert_eq!(reply_text(report.result), "echo: 你好 ]]> <&>");
    assert!(report.fuel_used > 0, "fuel is metered");
    let report = rt.call(&echo, &ctx, &event("subscribe", "")).await;
    assert_eq!(report.result.expect("passes"), Outcome::Pass);
}

#[tokio::test]
async fn keyword_reply_follows_its_rules() {
    let rt = runtime();
    let plugin = load(&rt, "keyword-reply", plugins::KEYWORD_REPLY);
    let settings = json!({
        "ignore_case": true,
        "rules": [
            { "exact": "help", "reply": { "text": "send 'price'" } },
            { "regex": "^(price|价格)", "reply": { "news": [{ "title": "Prices", "url": "https://e/p" }] } },
            { "exact": "logo", "reply": { "image": "MEDIA_1" } },
        ]
    });
    let ctx = context(
        "demo",
        settings,
        Arc::new(MemoryKv::default()),
        Limits::default(),
    );
    assert_eq!(
        reply_text(rt.call(&plugin, &ctx, &text("o", "HELP")).await.result),
        "send 'price'"
    );
    assert_eq!(
        rt.call(&plugin, &ctx, &text("o", "价格多少"))
            .await
            .result
            .expect("news"),
        Outcome::Reply(Reply::News {
            articles: vec![Article {
                title: "Prices".into(),
                url: "https://e/p".into(),
                ..Article::default()
            }]
        })
    );
    assert_eq!(
        rt.call(&plugin, &ctx, &text("o", "logo"))
            .await
            .result
            .expect("image"),
        Outcome::Reply(Reply::Image {
            media_id: "MEDIA_1".into()
        })
    );
    assert_eq!(
        rt.call(&plugin, &ctx, &text("o", "nothing"))
            .await
            .result
            .expect("pass"),
        Outcome::Pass
    );
}

#[tokio::test]
async fn keyword_reply_with_a_bad_rule_is_a_guest_error() {
    let rt = runtime();
    let plugin = load(&rt, "keyword-reply", plugins::KEYWORD_REPLY);
    let settings = json!({ "rules": [{ "regex": "(", "reply": { "text": "x" } }] });
    let ctx = context(
        "demo",
        settings,
        Arc::new(MemoryKv::default()),
        Limits::default(),
    );
    let err = rt
        .call(&plugin, &ctx, &text("o", "x"))
        .await
        .result
        .expect_err("bad rule");
    assert_eq!(err.kind(), "guest_error");
    assert!(err.to_string().contains("rule 0: invalid regex"), "{err}");
}

#[tokio::test]
async fn welcome_greets_with_the_scene_and_handles_unsubscribe() {
    let rt = runtime();
    let plugin = load(&rt, "welcome", plugins::WELCOME);
    let ctx = context(
        "demo",
        json!({ "text": "Welcome!", "scene_text": "Welcome, fan of {scene}!" }),
        Arc::new(MemoryKv::default()),
        Limits::default(),
    );
    let plain = event("subscribe", "<EventKey></EventKey>");
    assert_eq!(
        reply_text(rt.call(&plugin, &ctx, &plain).await.result),
        "Welcome!"
    );
    let qr = event(
        "subscribe",
        "<EventKey>qrscene_poster42</EventKey><Ticket>T</Ticket>",
    );
    assert_eq!(
        reply_text(rt.call(&plugin, &ctx, &qr).await.result),
        "Welcome, fan of poster42!"
    );
    let bye = event("unsubscribe", "");
    assert_eq!(
        rt.call(&plugin, &ctx, &bye).await.result.expect("handled"),
        Outcome::Handled
    );
}

#[tokio::test]
async fn guess_number_keeps_its_game_in_kv_across_fresh_instances() {
    let rt = runtime();
    let plugin = load(&rt, "guess-number", plugins::GUESS_NUMBER);
    let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
    let ctx = context(
        "demo",
        json!({ "max": 1000 }),
        Arc::clone(&kv),
        Limits::default(),
    );
    let say = |t: &'static str| text("o_player", t);
    assert!(reply_text(rt.call(&plugin, &ctx, &say("guess")).await.result).contains("1 to 1000"));
    let (mut lo, mut hi) = (1u32, 1000u32);
    for _ in 0..11 {
        let mid = (lo + hi) / 2;
        let answer = reply_text(
            rt.call(&plugin, &ctx, &text("o_player", &mid.to_string()))
                .await
                .result,
        );
        if answer.contains("right") {
            return;
        }
        if answer.contains("low") {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    panic!("bisection over 1..=1000 must finish in 11 guesses");
}

#[tokio::test]
async fn kv_data_is_private_to_each_tenant() {
    let rt = runtime();
    let plugin = load(&rt, "guess-number", plugins::GUESS_NUMBER);
    let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
    let a = context("tenant-a", json!({}), Arc::clone(&kv), Limits::default());
    let b = context("tenant-b", json!({}), Arc::clone(&kv), Limits::default());
    reply_text(
        rt.call(&plugin, &a, &text("o_same_user", "guess"))
            .await
            .result,
    );
    // Same user, same plugin, other tenant: no game there, so a number passes.
    assert_eq!(
        rt.call(&plugin, &b, &text("o_same_user", "50"))
            .await
            .result
            .expect("pass"),
        Outcome::Pass
    );
    assert!(
        reply_text(
            rt.call(&plugin, &a, &text("o_same_user", "50"))
                .await
                .result
        )
        .contains("50")
    );
}

#[tokio::test]
async fn plugins_built_against_earlier_wit_versions_still_load_and_run() {
    let rt = runtime();
    for (name, fixture) in [
        (
            "echo-0-1-0",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/echo-wit-0.1.0.wasm"),
        ),
        (
            "echo-0-1-2",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/echo-wit-0.1.2.wasm"),
        ),
    ] {
        let old = load(&rt, name, fixture);
        let report = rt
            .call(&old, &default_context(), &text("o_user", "still here"))
            .await;
        assert_eq!(reply_text(report.result), "echo: still here", "{name}");
    }
}
