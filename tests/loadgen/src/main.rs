//! Load generator for wxhost, and the baselines it is measured against.
//!
//! - `wxhost-loadgen load`: sends valid, signed (and in safe mode encrypted) pushes with unique
//!   MsgIds over keep-alive HTTP/1.1 connections for a fixed time, then prints throughput and
//!   latency percentiles as one JSON line. Pushes are built before the clock starts, so the
//!   client's own crypto does not compete with the server.
//! - `wxhost-loadgen native`: the same pipeline as wxhost (verify, decrypt, parse, dedup,
//!   encode, encrypt) with a native echo instead of plugins.
//! - `wxhost-loadgen hello`: a bare axum hello-world.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::{get, post};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use wxhost::clock::unix_now;
use wxhost::dedup::{self, Begin, MemoryDedup};
use wxhost::wechat::xml::Element;
use wxhost::wechat::{Account, CallbackQuery, Content, EnvelopeParams, Message, Reply};

/// The same allocator as `wxhost`, so every server measured here uses it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const APPID: &str = "wxb11529c136998cb6";
const TOKEN: &str = "pamtest";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Plain,
    Safe,
}

impl Mode {
    fn wechat(self) -> wxhost::wechat::Mode {
        match self {
            Mode::Plain => wxhost::wechat::Mode::Plain,
            Mode::Safe => wxhost::wechat::Mode::Safe,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive load against a server.
    Load {
        /// Base URL of the server, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: String,
        /// The tenant path segment (`/wx/{tenant}`).
        #[arg(long, default_value = "bench")]
        tenant: String,
        /// Message mode of the tenant (the sample appid, token and key are used).
        #[arg(long, value_enum)]
        mode: Mode,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds of measured load (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Pushes prepared; by default 250,000 per second of the run and warm-up, more than
        /// this machine sends to hello-world. The run fails if they run out.
        #[arg(long)]
        pushes: Option<usize>,
        /// A label for the JSON line.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Serve the native pipeline (no plugins).
    Native {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, value_enum)]
        mode: Mode,
    },
    /// Serve a bare hello-world.
    Hello {
        #[arg(long)]
        listen: SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Load {
                url,
                tenant,
                mode,
                connections,
                seconds,
                pushes,
                label,
            } => load(&url, &tenant, mode, connections, seconds, pushes, &label).await,
            Command::Native { listen, mode } => native(listen, mode).await,
            Command::Hello { listen } => hello(listen).await,
        }
    })
}

fn account(mode: Mode) -> anyhow::Result<Account> {
    Ok(Account::new(APPID, TOKEN, Some(AES_KEY), mode.wechat())?)
}

/// A typical text push with message id `id`.
fn message(id: u64, now: i64) -> anyhow::Result<Message> {
    Ok(Message::from_fields(Element {
        name: "xml".into(),
        text: String::new(),
        children: vec![
            Element::leaf("ToUserName", "gh_bench"),
            Element::leaf("FromUserName", format!("o_user_{}", id % 1000)),
            Element::leaf("CreateTime", now.to_string()),
            Element::leaf("MsgType", "text"),
            Element::leaf(
                "Content",
                "你好，请问今天营业到几点？Do you open late today?",
            ),
            Element::leaf("MsgId", id.to_string()),
        ],
    })?)
}

/// One prepared request: path with query, and body.
struct Prepared {
    path_and_query: String,
    body: Bytes,
}

fn prepare(tenant: &str, mode: Mode, count: usize) -> anyhow::Result<Vec<Prepared>> {
    let account = account(mode)?;
    let now = unix_now();
    let mut rng = rand::rng();
    let base = 30_000_000_000_000_000 + (rand::Rng::next_u64(&mut rng) % 1_000_000_000) * 1_000_000;
    (0..count)
        .map(|i| {
            let msg = message(base + i as u64, now)?;
            // Every push of a run shares one timestamp: a distinct nonce each keeps their signed
            // queries apart, as WeChat's differ (a repeated one with another body is refused).
            let mut params = EnvelopeParams::fresh(now, &mut rng);
            params.nonce = format!("{i:010}");
            let (query, body) = account.simulate_push(&msg, &params)?;
            Ok(Prepared {
                path_and_query: format!("/wx/{tenant}?{}", query.to_query_string()),
                body: Bytes::from(body),
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments, reason = "a CLI entry point")]
async fn load(
    url: &str,
    tenant: &str,
    mode: Mode,
    connections: usize,
    seconds: u64,
    pushes: Option<usize>,
    label: &str,
) -> anyhow::Result<()> {
    let pushes = pushes.unwrap_or(250_000 * (seconds as usize + 1));
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let preparing = Instant::now();
    let prepared = Arc::new(prepare(tenant, mode, pushes)?);
    #[allow(clippy::print_stderr, reason = "progress for the run script")]
    {
        eprintln!(
            "prepared {pushes} pushes in {:.1} s; sending",
            preparing.elapsed().as_secs_f64()
        );
    }
    let next = Arc::new(AtomicUsize::new(0));
    let warmup = Duration::from_secs(1);
    let started = Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + Duration::from_secs(seconds);

    let mut workers = Vec::new();
    for _ in 0..connections {
        let (prepared, next, authority) = (prepared.clone(), next.clone(), authority.clone());
        workers.push(tokio::spawn(async move {
            worker(&authority, &prepared, &next, measure_from, stop_at).await
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut measured, mut errors) = (0u64, 0u64);
    for w in workers {
        let (h, n, e) = w.await??;
        histogram.add(h)?;
        measured += n;
        errors += e;
    }
    let left = prepared.len().saturating_sub(next.load(Ordering::Relaxed));
    if left == 0 {
        anyhow::bail!(
            "{label}: the {} prepared pushes ran out before the run ended; pass a larger --pushes",
            prepared.len()
        );
    }
    let elapsed = Instant::now()
        .min(stop_at)
        .saturating_duration_since(measure_from);
    let rps = measured as f64 / elapsed.as_secs_f64();
    let us = |q: f64| histogram.value_at_quantile(q);
    println!(
        "{}",
        serde_json::json!({
            "label": label,
            "mode": format!("{mode:?}").to_lowercase(),
            "connections": connections,
            "seconds": elapsed.as_secs_f64(),
            "requests": measured,
            "errors": errors,
            "rps": rps.round(),
            "p50_us": us(0.50),
            "p99_us": us(0.99),
            "p999_us": us(0.999),
            "max_us": histogram.max(),
            "pushes_left": left,
        })
    );
    Ok(())
}

async fn worker(
    authority: &str,
    prepared: &[Prepared],
    next: &AtomicUsize,
    measure_from: Instant,
    stop_at: Instant,
) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let stream = TcpStream::connect(authority).await.context("connect")?;
    stream.set_nodelay(true)?;
    let io = TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let (mut measured, mut errors) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= stop_at {
            break;
        }
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(p) = prepared.get(index) else { break };
        let request = hyper::Request::post(p.path_and_query.as_str())
            .header("host", authority)
            .header("content-type", "text/xml")
            .body(Full::new(p.body.clone()))?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let ok = response.status() == 200;
        let _ = response.into_body().collect().await?;
        let took = sent.elapsed();
        if sent >= measure_from {
            measured += 1;
            errors += u64::from(!ok);
            histogram.record(took.as_micros().max(1) as u64)?;
        }
    }
    Ok((histogram, measured, errors))
}

#[derive(Clone)]
struct NativeState {
    account: Arc<Account>,
    dedup: Arc<MemoryDedup>,
}

/// The wxhost pipeline with a native echo: verify, decrypt, parse, dedup, encode, encrypt.
async fn native(listen: SocketAddr, mode: Mode) -> anyhow::Result<()> {
    let state = NativeState {
        account: Arc::new(account(mode)?),
        dedup: Arc::new(MemoryDedup::new(Duration::from_secs(60))),
    };
    let app = Router::new()
        .route("/wx/{tenant}", post(native_push))
        .with_state(state);
    serve(listen, app).await
}

async fn native_push(
    State(state): State<NativeState>,
    uri: Uri,
    body: Bytes,
) -> (axum::http::StatusCode, String) {
    let Ok(query) = CallbackQuery::parse(uri.query().unwrap_or_default()) else {
        return (axum::http::StatusCode::BAD_REQUEST, String::new());
    };
    let Ok(inbound) = state.account.open(&query, &body, unix_now()) else {
        return (axum::http::StatusCode::BAD_REQUEST, String::new());
    };
    let msg = &inbound.message;
    let answer = |msg: &Message| match &msg.content {
        Content::Text { content, .. } => Some(Reply::text(format!("echo: {content}"))),
        _ => None,
    };
    let reply = match dedup::key("bench", msg).map(|k| state.dedup.begin(&k)) {
        Some(Begin::New(pending)) => {
            let reply = answer(msg);
            pending.finish(&reply);
            reply
        }
        Some(Begin::Done(reply)) => reply,
        Some(Begin::Seen) => None,
        Some(Begin::InFlight(rx)) => dedup::wait(rx).await.and_then(|a| (*a).clone()),
        None => answer(msg),
    };
    match state
        .account
        .answer(&inbound, reply.as_ref(), unix_now(), &mut rand::rng())
    {
        Ok(body) => (axum::http::StatusCode::OK, body),
        Err(_) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    }
}

async fn hello(listen: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/wx/{tenant}", post(|| async { "Hello, World!" }))
        .route("/", get(|| async { "Hello, World!" }));
    serve(listen, app).await
}

async fn serve(listen: SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
