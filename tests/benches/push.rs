//! Per-push cost in process, without HTTP, in safe mode: the whole wxhost pipeline
//! (`Dispatcher::handle_push`: verify, decrypt, parse, dedup, the `echo` plugin in a warm
//! instance, encode, encrypt), next to the same pipeline with a native echo and no plugin
//! runtime. Every push is freshly signed and encrypted with a unique MsgId (outside the
//! timing).
//!
//! `cargo bench -p wxhost-tests --bench push`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wxhost::clock::unix_now;
use wxhost::dedup::{self, Begin, MemoryDedup};
use wxhost::server::App;
use wxhost::wechat::xml;
use wxhost::wechat::{Account, CallbackQuery, Content, EnvelopeParams, Message, Mode, Reply};

// The allocator the server uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const APPID: &str = "wxb11529c136998cb6";
const TOKEN: &str = "pamtest";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// A signed, encrypted text push with message id `id`.
fn push(account: &Account, id: u64) -> (CallbackQuery, Vec<u8>) {
    let now = unix_now();
    let msg = Message::parse(&format!(
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>\
         <FromUserName><![CDATA[o_user_{}]]></FromUserName><CreateTime>{now}</CreateTime>\
         <MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[你好，请问今天营业到几点？Do you open late today?]]></Content>\
         <MsgId>{id}</MsgId></xml>",
        id % 1000
    ))
    .expect("message parses");
    let (query, body) = account
        .simulate_push(&msg, &EnvelopeParams::fresh(now, &mut rand::rng()))
        .expect("push builds");
    (query, body.into_bytes())
}

fn per_push(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(wxhost_test_plugins::ECHO, plugins.join("echo.wasm")).expect("echo copied");
    let config = dir.path().join("wxhost.toml");
    std::fs::write(
        &config,
        format!(
            "plugins_dir = \"plugins\"\ndata_dir = \"data\"\n\
             [[tenants]]\nid = \"bench\"\nappid = \"{APPID}\"\ntoken = \"{TOKEN}\"\n\
             encoding_aes_key = \"{AES_KEY}\"\nmode = \"safe\"\n\
             [[tenants.plugins]]\nname = \"echo\"\n"
        ),
    )
    .expect("config written");
    let app = tokio.block_on(App::build(&config)).expect("app builds");
    let dispatcher = &app.state.dispatcher;
    let account = Account::new(APPID, TOKEN, Some(AES_KEY), Mode::Safe).expect("account");
    let native_dedup = MemoryDedup::new(std::time::Duration::from_secs(60));
    let next_id = AtomicU64::new(1);
    let fresh = || push(&account, next_id.fetch_add(1, Ordering::Relaxed));

    let mut group = c.benchmark_group("per_push_safe_mode");
    group.bench_function("native_pipeline", |b| {
        b.iter_batched(
            || {
                let (query, body) = fresh();
                (query.to_query_string(), body)
            },
            |(query, body)| {
                let query = CallbackQuery::parse(&query).expect("query parses");
                let inbound = account.open(&query, &body, unix_now()).expect("opens");
                let msg = &inbound.message;
                let answer = match &msg.content {
                    Content::Text { content, .. } => Some(Reply::text(format!("echo: {content}"))),
                    _ => None,
                };
                let key = dedup::key("bench", msg).expect("has a key");
                let Begin::New(pending) = native_dedup.begin(&key) else {
                    panic!("unique MsgIds are new")
                };
                pending.finish(&answer);
                account
                    .answer(&inbound, answer.as_ref(), unix_now(), &mut rand::rng())
                    .expect("answers")
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("wxhost_echo_plugin", |b| {
        b.to_async(&tokio).iter_batched(
            || {
                let (query, body) = fresh();
                (query.to_query_string(), body)
            },
            |(query, body)| async move {
                let answer = dispatcher
                    .handle_push("bench", &query, &body)
                    .await
                    .expect("answered");
                assert!(answer.is_xml, "echo replied");
                answer
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The pipeline's steps on one push, each alone.
    let (query, body) = fresh();
    let query_string = query.to_query_string();
    let inbound = account.open(&query, &body, unix_now()).expect("opens");
    let body_text = std::str::from_utf8(&body).expect("utf-8");
    let inner = inbound.message.to_xml();
    let reply = Reply::text("echo: 你好，请问今天营业到几点？Do you open late today?");
    let mut group = c.benchmark_group("push_steps_safe_mode");
    group.bench_function("parse_query", |b| {
        b.iter(|| CallbackQuery::parse(black_box(&query_string)))
    });
    group.bench_function("parse_envelope_xml", |b| {
        b.iter(|| xml::parse_document(black_box(body_text)))
    });
    group.bench_function("parse_message_xml", |b| {
        b.iter(|| Message::parse(black_box(&inner)))
    });
    group.bench_function("open", |b| {
        b.iter(|| account.open(black_box(&query), black_box(&body), unix_now()))
    });
    group.bench_function("answer", |b| {
        b.iter(|| {
            account.answer(
                &inbound,
                Some(black_box(&reply)),
                unix_now(),
                &mut rand::rng(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, per_push);
criterion_main!(benches);
