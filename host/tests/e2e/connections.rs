//! HTTP that cannot be tied up: the header, body and idle timers, keep-alive between pushes,
//! shutdown with idle, half-sent and busy connections open, and floods of idle connections
//! under a low file descriptor limit (`prlimit`). Raw sockets on 127.0.0.1, short timers.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wxhost::wechat::{Account, Mode};

use crate::harness::{Server, account, push, tenant, text};

/// The `[http]` table `http` and a plain tenant `plain` answering with echo (and `slow`, whose
/// slow-counter takes 800 ms).
fn config(http: &str) -> String {
    format!(
        "[http]\n{http}\n{}{}[[tenants.plugins]]\nname = \"slow-counter\"\n\
         settings = {{ spin_ms = 800 }}\nlimits = {{ deadline_ms = 3000 }}\n",
        tenant("plain", "wxplain", "tokenplain", None, "plain", &["echo"]),
        tenant("slow", "wxslow", "tokenslow", None, "plain", &[]),
    )
}

fn plain() -> Account {
    account("wxplain", "tokenplain", None, Mode::Plain)
}

/// A push of a text to `tenant` as raw HTTP/1.1 (kept alive).
fn push_request(tenant: &str, account: &Account, msg_id: u64) -> Vec<u8> {
    let (query, body) = push(account, &text("o_conn", "hello", msg_id));
    format!(
        "POST /wx/{tenant}?{} HTTP/1.1\r\nHost: wxhost\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        query.to_query_string(),
        body.len()
    )
    .into_bytes()
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: wxhost\r\n\r\n";
const GET_METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: wxhost\r\n\r\n";

/// The reading half of a raw connection, with what it has read and not yet used.
struct Reader {
    half: OwnedReadHalf,
    buf: Vec<u8>,
}

async fn open(server: &Server) -> (Reader, OwnedWriteHalf) {
    let stream = TcpStream::connect(server.addr).await.expect("connects");
    let (half, write) = stream.into_split();
    (
        Reader {
            half,
            buf: Vec::new(),
        },
        write,
    )
}

impl Reader {
    /// Reads more; false at EOF or on an error (a reset).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.half.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response (status, body), which must come within `within`.
    async fn response(&mut self, within: Duration) -> (u16, String) {
        tokio::time::timeout(within, async {
            loop {
                if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().expect("a length"));
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .expect("a status line");
                    while self.buf.len() < end + 4 + length {
                        assert!(self.fill().await, "closed mid-response");
                    }
                    let body =
                        String::from_utf8_lossy(&self.buf[end + 4..end + 4 + length]).into_owned();
                    self.buf.drain(..end + 4 + length);
                    return (status, body);
                }
                assert!(self.fill().await, "closed before a response");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"))
    }

    /// When the server closed the connection, if it did within `within` (anything it sends
    /// meanwhile is kept).
    async fn closed_within(&mut self, within: Duration) -> Option<Instant> {
        tokio::time::timeout(within, async {
            while self.fill().await {}
            Instant::now()
        })
        .await
        .ok()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of the sample `series` (name and labels) in a metrics text.
fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} not in {metrics}"))
        .trim()
        .parse()
        .expect("a number")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn silent_and_trickling_connections_are_closed_by_the_header_timeout() {
    let server = Server::start(&config("header_read_timeout_ms = 600"));

    // Sends nothing.
    let started = Instant::now();
    let (mut silent, _write) = open(&server).await;
    let closed = silent.closed_within(ms(5_000)).await.expect("closed");
    let after = closed - started;
    assert!(
        after >= ms(550) && after < ms(2_000),
        "closed after {after:?}"
    );

    // Sends a header byte every 100 ms: it would take 5 s, the head has 600 ms.
    let started = Instant::now();
    let (mut trickle, mut write) = open(&server).await;
    write
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: wxhost\r\nX-Slow: ")
        .await
        .expect("writes");
    let mut closed = None;
    for _ in 0..50 {
        if write.write_all(b"a").await.is_err() {
            closed = Some(Instant::now());
            break;
        }
        if let Some(at) = trickle.closed_within(ms(100)).await {
            closed = Some(at);
            break;
        }
    }
    let after = closed.expect("closed while trickling") - started;
    assert!(
        after >= ms(550) && after < ms(2_000),
        "closed after {after:?}"
    );
    assert!(trickle.buf.is_empty(), "answered a head that never ended");

    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, r#"wxhost_http_timeouts_total{kind="header"}"#),
        2.0
    );
}

#[tokio::test]
async fn a_trickled_body_gets_408_in_time() {
    let server = Server::start(&config("body_timeout_ms = 600"));
    let (mut reader, mut write) = open(&server).await;
    let mut request = push_request("plain", &plain(), 1);
    let head_end = find(&request, b"\r\n\r\n").expect("a head") + 4;
    let body = request.split_off(head_end + 4);
    write.write_all(&request).await.expect("head and 4 bytes");
    let started = Instant::now();
    // The rest of the body, a byte every 100 ms (it would take minutes).
    let trickle = tokio::spawn(async move {
        for byte in body {
            tokio::time::sleep(ms(100)).await;
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
        }
    });
    let (status, reason) = reader.response(ms(3_000)).await;
    let after = started.elapsed();
    assert_eq!(status, 408, "{reason}");
    assert!(
        after >= ms(550) && after < ms(2_000),
        "answered after {after:?}"
    );
    assert!(
        reader.closed_within(ms(2_000)).await.is_some(),
        "the connection stays open after its body timed out"
    );
    trickle.abort();

    // The body timer is per request: a push whose body comes at once is answered.
    let reply = server.send("plain", &plain(), &text("o", "again", 2)).await;
    assert!(reply.is_some());
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, r#"wxhost_http_timeouts_total{kind="body"}"#),
        1.0
    );
}

#[tokio::test]
async fn keep_alive_serves_pushes_until_the_idle_timeout() {
    let server = Server::start(&config(
        "header_read_timeout_ms = 500\nidle_timeout_ms = 2000",
    ));
    let account = plain();
    let (mut reader, mut write) = open(&server).await;
    write
        .write_all(&push_request("plain", &account, 1))
        .await
        .expect("writes");
    let (status, answer) = reader.response(ms(3_000)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        account
            .read_answer(&answer, false)
            .expect("valid")
            .is_some()
    );

    // Longer than the header timeout, shorter than the idle one: the connection still serves.
    tokio::time::sleep(ms(1_000)).await;
    write
        .write_all(&push_request("plain", &account, 2))
        .await
        .expect("writes");
    let (status, answer) = reader.response(ms(3_000)).await;
    let idle_from = Instant::now();
    assert_eq!(status, 200, "{answer}");
    assert!(
        account
            .read_answer(&answer, false)
            .expect("valid")
            .is_some()
    );

    let closed = reader
        .closed_within(ms(5_000))
        .await
        .expect("closed when idle");
    let after = closed - idle_from;
    assert!(
        after >= ms(1_800) && after < ms(3_500),
        "closed after {after:?}"
    );
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, r#"wxhost_http_timeouts_total{kind="idle"}"#),
        1.0
    );
    assert_eq!(
        metric(&metrics, r#"wxhost_http_timeouts_total{kind="header"}"#),
        0.0
    );
}

#[tokio::test]
async fn sigterm_closes_idle_and_half_sent_connections_and_exits_within_the_grace() {
    // Timers long enough that only the shutdown can close these connections.
    let mut server = Server::start(&config(
        "header_read_timeout_ms = 30000\nbody_timeout_ms = 30000\nshutdown_grace_ms = 1500",
    ));
    let (mut idle, mut idle_write) = open(&server).await;
    idle_write.write_all(GET_HEALTHZ).await.expect("writes");
    assert_eq!(idle.response(ms(3_000)).await.0, 200);
    let (mut silent, _silent_write) = open(&server).await;
    let (mut half_head, mut half_head_write) = open(&server).await;
    half_head_write
        .write_all(b"POST /wx/plain HTTP/1.1\r\nHost: wxhost\r\nContent-Le")
        .await
        .expect("writes");
    let (mut half_body, mut half_body_write) = open(&server).await;
    let mut request = push_request("plain", &plain(), 1);
    request.truncate(find(&request, b"\r\n\r\n").expect("a head") + 10);
    half_body_write.write_all(&request).await.expect("writes");
    // A push in flight (the slow tenant takes 800 ms) when the signal comes.
    let slow = account("wxslow", "tokenslow", None, Mode::Plain);
    let (mut busy, mut busy_write) = open(&server).await;
    busy_write
        .write_all(&push_request("slow", &slow, 2))
        .await
        .expect("writes");
    tokio::time::sleep(ms(300)).await;

    let signalled = Instant::now();
    server.signal("TERM");
    let (status, answer) = busy.response(ms(3_000)).await;
    assert_eq!(status, 200, "the push in flight is answered: {answer}");
    let reply = slow.read_answer(&answer, false).expect("valid");
    assert!(reply.is_some(), "{answer}");
    assert!(
        busy.closed_within(ms(1_000)).await.is_some(),
        "keep-alive is off once shutting down"
    );
    for (name, reader) in [
        ("idle", &mut idle),
        ("silent", &mut silent),
        ("half-sent head", &mut half_head),
    ] {
        let closed = reader
            .closed_within(ms(1_000))
            .await
            .unwrap_or_else(|| panic!("{name} connection still open"));
        let after = closed - signalled;
        assert!(after < ms(1_000), "{name} closed {after:?} after TERM");
    }
    // A request whose body never ends holds its connection until the grace runs out.
    let closed = half_body
        .closed_within(ms(3_000))
        .await
        .expect("half-sent body closed");
    let after = closed - signalled;
    assert!(
        after >= ms(1_400) && after < ms(2_500),
        "closed after {after:?}"
    );

    let status = server.wait_exit(ms(3_000)).expect("exits within the grace");
    let logs = server.logs_with("stopped").await;
    assert!(status.success(), "exit status {status:?}; logs: {logs}");
    assert!(
        logs.contains("closing the connections still open"),
        "{logs}"
    );
    assert!(logs.contains("stopped"), "{logs}");
}

/// The soft limit of open files of this test process, raised to at least `want` (up to its
/// hard limit) with `prlimit`, to hold a flood of connections.
fn raise_own_fd_limit(want: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let soft: u64 = fields[3].parse().unwrap_or(u64::MAX);
    let hard: u64 = fields[4].parse().unwrap_or(u64::MAX);
    if soft >= want {
        return;
    }
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={}:", want.min(hard)))
        .status()
        .expect("prlimit runs");
    assert!(status.success());
}

/// Opens `n` connections to `server` and keeps them (the server may reset those over its cap,
/// sometimes before the connect has returned); returns them, the connects the server reset, and
/// those that failed otherwise (or were not tried within 15 s), with the first failure.
async fn flood(server: &Server, n: usize) -> (Vec<TcpStream>, usize, usize, String) {
    let mut held = Vec::with_capacity(n);
    let (mut reset, mut failed, mut first) = (0, 0, String::new());
    // A server that stops accepting makes each connect wait for its SYN to be retried.
    let give_up = Instant::now() + ms(15_000);
    for opened in 0..n {
        if Instant::now() > give_up {
            failed += n - opened;
            first = format!("gave up after {opened} connects; {first}");
            break;
        }
        let error = match tokio::time::timeout(ms(3_000), TcpStream::connect(server.addr)).await {
            Ok(Ok(stream)) => {
                held.push(stream);
                continue;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                reset += 1;
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        failed += 1;
        if first.is_empty() {
            first = error;
        }
    }
    (held, reset, failed, first)
}

#[tokio::test]
async fn idle_floods_under_a_low_fd_limit_do_not_stop_pushes() {
    raise_own_fd_limit(4_096);
    let server = Server::start_under(
        &["prlimit", "--nofile=256:256", "--"],
        &config("header_read_timeout_ms = 1500"),
    );
    let logs = server.logs_with("max_connections=").await;
    let cap: usize = logs
        .split("max_connections=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no effective cap logged: {logs}"));
    assert!(cap > 0 && cap < 256, "cap {cap} with 256 file descriptors");

    let account = plain();
    let (mut kept, mut kept_write) = open(&server).await;
    kept_write
        .write_all(&push_request("plain", &account, 1))
        .await
        .expect("writes");
    assert_eq!(kept.response(ms(3_000)).await.0, 200);

    let started = Instant::now();
    let (held, reset, failed, first) = flood(&server, 2_000).await;
    assert!(
        started.elapsed() < ms(5_000),
        "opening took {:?}",
        started.elapsed()
    );
    assert_eq!(
        failed, 0,
        "{failed} connects failed ({reset} reset), first: {first}"
    );

    // While they are open: the connection kept alive from before is answered at once.
    let sent = Instant::now();
    kept_write
        .write_all(&push_request("plain", &account, 2))
        .await
        .expect("writes");
    let (status, answer) = kept.response(ms(2_000)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        sent.elapsed() < ms(1_000),
        "answered after {:?}",
        sent.elapsed()
    );
    // The server works through its backlog: those over the cap are reset, never more open.
    let mut refused = 0.0;
    for _ in 0..20 {
        kept_write.write_all(GET_METRICS).await.expect("writes");
        let (_, metrics) = kept.response(ms(2_000)).await;
        let open_now = metric(&metrics, "wxhost_http_connections");
        assert!(open_now <= cap as f64, "{open_now} open, cap {cap}");
        assert_eq!(metric(&metrics, "wxhost_http_accept_errors_total"), 0.0);
        refused = metric(&metrics, "wxhost_http_connections_refused_total");
        if refused >= 1_500.0 {
            break;
        }
        tokio::time::sleep(ms(100)).await;
    }
    println!(
        "flood of 2000 opened in {:?}, {refused} refused, cap {cap}",
        started.elapsed()
    );
    assert!(refused >= 1_500.0, "{refused} refused");

    // Once the header timeout has closed the idle ones, a new client is served.
    tokio::time::sleep(ms(2_000)).await;
    let reply = tokio::time::timeout(
        ms(5_000),
        server.send("plain", &account, &text("o", "new", 3)),
    )
    .await
    .expect("a new client is answered");
    assert!(reply.is_some());
    drop(held);
}

/// The CPU time the process `pid` has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[tokio::test]
async fn accept_failures_out_of_file_descriptors_pause_and_are_logged_once() {
    raise_own_fd_limit(1_024);
    let server = Server::start(&config("header_read_timeout_ms = 3000"));
    let account = plain();
    let (mut kept, mut kept_write) = open(&server).await;
    kept_write.write_all(GET_HEALTHZ).await.expect("writes");
    assert_eq!(kept.response(ms(3_000)).await.0, 200);

    // Lowered under the running server, so its cap (from the limit at start) is out of reach
    // and accepts fail with EMFILE instead.
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", server.pid()))
        .arg("--nofile=128:128")
        .status()
        .expect("prlimit runs");
    assert!(status.success());
    // More than the 128 descriptors hold: the rest wait in the listen backlog.
    let (held, _, _, _) = flood(&server, 150).await;
    tokio::time::sleep(ms(200)).await;
    let before = cpu_ticks(server.pid());
    tokio::time::sleep(ms(1_500)).await;
    let used = cpu_ticks(server.pid()) - before;
    assert!(
        used < 40,
        "{used} ticks of CPU in 1.5 s out of file descriptors"
    );
    let logs = server.logs();
    assert_eq!(logs.matches("accept failed").count(), 1, "{logs}");

    kept_write.write_all(GET_METRICS).await.expect("writes");
    let (_, metrics) = kept.response(ms(2_000)).await;
    let errors = metric(&metrics, "wxhost_http_accept_errors_total");
    assert!((1.0..=30.0).contains(&errors), "{errors} accept errors");

    // The header timeout frees descriptors: the server accepts again and answers.
    let sent = Instant::now();
    let reply = tokio::time::timeout(
        ms(10_000),
        server.send("plain", &account, &text("o", "back", 1)),
    )
    .await
    .expect("answered once descriptors are free");
    assert!(reply.is_some());
    assert!(sent.elapsed() < ms(8_000));
    let logs = server.logs_with("accepting connections again").await;
    assert!(logs.contains("accepting connections again"), "{logs}");
    drop(held);
}
