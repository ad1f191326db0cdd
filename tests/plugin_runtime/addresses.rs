//! Outbound HTTP checks the address it connects to: a name on `http_hosts` that resolves to a
//! loopback address, an IP literal in a private range (in any spelling the client accepts) and
//! a redirect to a private address are refused, and loopback is reached only where its address
//! is granted. `capability-probe` makes the requests (`http URL`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wxhost::http_client::{AddressPolicy, AddressRange, PluginClients};
use wxhost::plugin::{CallContext, HostPattern, HttpGrant, Plugin, Runtime};
use wxhost::telemetry::Metrics;
use wxhost_tests::plugins;

use super::{default_context, load, reply_text, runtime, text};

/// A server on `addr` answering every request with `answer` (status line and headers, CRLF
/// separated, no body), counting the requests.
struct TestServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl TestServer {
    async fn start(bind: &str, answer: String) -> TestServer {
        let listener = TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (answer, counted) = (answer.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        TestServer { addr, hits }
    }

    /// A server answering `200` with `body`.
    async fn ok(bind: &str, body: &str) -> TestServer {
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        TestServer::start(bind, answer).await
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A context granting `http` to `hosts`, reaching the non-public addresses in `private`.
fn granting(hosts: &[String], private: &[&str]) -> CallContext {
    let hosts: Vec<HostPattern> = hosts
        .iter()
        .map(|h| h.parse().expect("host pattern"))
        .collect();
    let private: Vec<AddressRange> = private
        .iter()
        .map(|r| r.parse().expect("address range"))
        .collect();
    let addresses = AddressPolicy::new(private);
    let client = PluginClients::new()
        .expect("clients")
        .client(&addresses)
        .expect("client");
    default_context().with_http(HttpGrant {
        client,
        hosts: hosts.into(),
        addresses,
        metrics: Arc::new(Metrics::default()),
    })
}

async fn probe(rt: &Runtime, plugin: &Plugin, ctx: &CallContext, url: &str) -> String {
    let report = rt
        .call(plugin, ctx, &text("o", &format!("http {url}")))
        .await;
    reply_text(report.result)
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_its_address_is_granted() {
    let server = TestServer::ok("127.0.0.1:0", "secret").await;
    let rt = runtime();
    let probe_plugin = load(&rt, "capability-probe", plugins::CAPABILITY_PROBE);
    let port = server.addr.port();
    let url = format!("http://localhost:{port}/");
    let hosts = [format!("localhost:{port}")];

    let by_name_only = granting(&hosts, &[]);
    assert_eq!(
        probe(&rt, &probe_plugin, &by_name_only, &url).await,
        "http error: Denied"
    );
    // Granting another private range does not grant loopback.
    let other_range = granting(&hosts, &["10.0.0.0/8", "fd00::/8"]);
    assert_eq!(
        probe(&rt, &probe_plugin, &other_range, &url).await,
        "http error: Denied"
    );
    assert_eq!(server.hits(), 0, "no connection reached the server");

    let loopback = granting(&hosts, &["127.0.0.1", "::1"]);
    assert_eq!(
        probe(&rt, &probe_plugin, &loopback, &url).await,
        "http 200 secret"
    );
    assert_eq!(server.hits(), 1);
    // IPv4 loopback only: `localhost`'s ::1 is dropped, its 127.0.0.1 is reached.
    let v4_only = granting(&hosts, &["127.0.0.0/8"]);
    assert_eq!(
        probe(&rt, &probe_plugin, &v4_only, &url).await,
        "http 200 secret"
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn ip_literals_in_private_ranges_are_refused_in_every_spelling() {
    let server = TestServer::ok("127.0.0.1:0", "secret").await;
    let rt = runtime();
    let probe_plugin = load(&rt, "capability-probe", plugins::CAPABILITY_PROBE);
    let port = server.addr.port();
    // Each spelling is on the allow-list, so only the address check stands in the way.
    let spellings = [
        format!("127.0.0.1:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("2130706433:{port}"),
        format!("0x7f.1:{port}"),
        "169.254.169.254:80".to_owned(),
        "10.1.2.3:80".to_owned(),
        "100.100.100.200:80".to_owned(),
        "[fd00:ec2::254]:80".to_owned(),
    ];
    let ctx = granting(&spellings, &[]);
    for host in &spellings {
        let answer = probe(&rt, &probe_plugin, &ctx, &format!("http://{host}/")).await;
        assert_eq!(answer, "http error: Denied", "{host}");
    }
    assert_eq!(server.hits(), 0);

    // Granted, the same spellings of loopback reach the server; metadata stays refused.
    let granted = granting(&spellings, &["127.0.0.1"]);
    for host in &spellings[..4] {
        let answer = probe(&rt, &probe_plugin, &granted, &format!("http://{host}/")).await;
        assert_eq!(answer, "http 200 secret", "{host}");
    }
    assert_eq!(server.hits(), 4);
    let metadata = probe(&rt, &probe_plugin, &granted, "http://169.254.169.254/").await;
    assert_eq!(metadata, "http error: Denied");
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_not_followed() {
    // The target: another loopback address, not granted.
    let target = TestServer::ok("127.0.0.2:0", "internal").await;
    let redirect = TestServer::start(
        "127.0.0.1:0",
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{}/internal\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n",
            target.addr
        ),
    )
    .await;
    let rt = runtime();
    let probe_plugin = load(&rt, "capability-probe", plugins::CAPABILITY_PROBE);
    let ctx = granting(
        &[redirect.addr.to_string(), target.addr.to_string()],
        &["127.0.0.1"],
    );
    let answer = probe(
        &rt,
        &probe_plugin,
        &ctx,
        &format!("http://{}/", redirect.addr),
    )
    .await;
    // The plugin gets the redirect itself; following it is a request of its own, checked.
    assert_eq!(answer, "http 302 ");
    assert_eq!((redirect.hits(), target.hits()), (1, 0));
    let followed = probe(
        &rt,
        &probe_plugin,
        &ctx,
        &format!("http://{}/internal", target.addr),
    )
    .await;
    assert_eq!(followed, "http error: Denied");
    assert_eq!(target.hits(), 0);
}
