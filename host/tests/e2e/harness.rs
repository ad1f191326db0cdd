//! Starts `wxhost serve` with a config and a plugins folder in a temporary directory, and
//! talks to it as WeChat does.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wxhost::wechat::xml::Element;
use wxhost::wechat::{Account, CallbackQuery, EnvelopeParams, Message, Mode, Reply, ReplyMessage};

pub const KEY_A: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const KEY_B: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";

/// Every plugin the tests use, by the name it gets in the plugins folder.
const PLUGINS: &[(&str, &str)] = &[
    ("echo", wxhost_test_plugins::ECHO),
    ("keyword-reply", wxhost_test_plugins::KEYWORD_REPLY),
    ("welcome", wxhost_test_plugins::WELCOME),
    ("guess-number", wxhost_test_plugins::GUESS_NUMBER),
    ("infinite-loop", wxhost_test_plugins::INFINITE_LOOP),
    ("reply-kinds", wxhost_test_plugins::REPLY_KINDS),
    ("slow-counter", wxhost_test_plugins::SLOW_COUNTER),
    ("stock-quote", wxhost_test_plugins::STOCK_QUOTE),
    ("visit-counter", wxhost_test_plugins::VISIT_COUNTER),
    ("capability-probe", wxhost_test_plugins::CAPABILITY_PROBE),
];

/// A running server.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<String>>,
    pub http: reqwest::Client,
    /// A command the binary runs under (such as `prlimit --nofile=256:256 --`), or none.
    prefix: Vec<String>,
}

impl Server {
    /// Starts a server whose config is `tenants` (TOML: `[[tenants]]` tables and any top-level
    /// keys before them); the directories are filled in.
    pub fn start(config: &str) -> Server {
        Server::start_under(&[], config)
    }

    /// Starts a server as [`Server::start`] does, run by the command `prefix` (which must exec
    /// the binary, as `prlimit --nofile=256:256 --` does, so the process is the server).
    pub fn start_under(prefix: &[&str], config: &str) -> Server {
        Server::start_in(prefix, config, PLUGINS.iter().chain(&[]))
    }

    /// Starts a server as [`Server::start`] does, with `more` plugins (name, path) in its
    /// folder too (the JavaScript and Python ones are large: each test names those it needs).
    pub fn start_with(config: &str, more: &[(&str, &str)]) -> Server {
        Server::start_in(&[], config, PLUGINS.iter().chain(more))
    }

    fn start_in<'a>(
        prefix: &[&str],
        config: &str,
        plugins_to_copy: impl Iterator<Item = &'a (&'a str, &'a str)>,
    ) -> Server {
        let prefix: Vec<String> = prefix.iter().map(|s| (*s).to_owned()).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        for (name, path) in plugins_to_copy {
            std::fs::copy(path, plugins.join(format!("{name}.wasm"))).expect("copy plugin");
        }
        write_config(dir.path(), config);
        let (child, addr, logs) = launch(dir.path(), &prefix);
        Server {
            child,
            addr,
            dir,
            logs,
            http: wxhost::http_client::builder().build().expect("client"),
            prefix,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, …) to the server and returns at once.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status();
    }

    /// Waits up to `within` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with `signal` (`KILL` for a crash, `TERM` for a clean stop), then starts
    /// it again on the same directory (config, plugins, data).
    pub fn restart(&mut self, signal: &str) {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status();
        let _ = self.child.wait();
        let (child, addr, logs) = launch(self.dir.path(), &self.prefix);
        (self.child, self.addr, self.logs) = (child, addr, logs);
    }

    /// Replaces the config file (the server reloads it).
    pub fn rewrite_config(&self, config: &str) {
        write_config(self.dir.path(), config);
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The server's logs once they hold `needle`, or whatever they hold after 5 s. The lines
    /// are read from the child's stderr as it writes them, so one logged while a request was
    /// answered may come in after the answer.
    pub async fn logs_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if logs.contains(needle) || Instant::now() > deadline {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts a raw push; returns the status and the body.
    pub async fn post(
        &self,
        tenant: &str,
        query: &CallbackQuery,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String) {
        let response = self
            .http
            .post(self.url(&format!("/wx/{tenant}")))
            .query(query)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Sends `msg` to `tenant` as WeChat would for `account`, and reads the answer as WeChat
    /// would; panics unless the status is 200.
    pub async fn send(
        &self,
        tenant: &str,
        account: &Account,
        msg: &Message,
    ) -> Option<ReplyMessage> {
        let (query, body) = push(account, msg);
        let (status, answer) = self.post(tenant, &query, body).await;
        assert_eq!(status, 200, "{answer}");
        account
            .read_answer(&answer, account.mode() != Mode::Plain)
            .unwrap_or_else(|e| panic!("WeChat would not accept {answer:?}: {e}"))
    }

    /// The status and body of `GET /healthz`.
    pub async fn health(&self) -> (u16, String) {
        let response = self
            .http
            .get(self.url("/healthz"))
            .send()
            .await
            .expect("the server answers /healthz");
        let status = response.status().as_u16();
        (status, response.text().await.expect("the /healthz body"))
    }

    /// Returns once the server answers requests: its listener is bound before its plugins
    /// are compiled, and a request made meanwhile waits for them.
    pub async fn serving(&self) {
        let (status, body) = self.health().await;
        assert_eq!(status, 200, "{body}");
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Sends SIGTERM and waits for the process.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        // The shell's builtin `kill`: present wherever `sh` is.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status();
        let status = self.child.wait().expect("waits");
        std::thread::sleep(Duration::from_millis(50));
        (status, self.logs())
    }
}

/// Starts `wxhost serve` on the config in `dir`, run by `prefix` when it is not empty; returns
/// the process, its address and its logs.
fn launch(dir: &Path, prefix: &[String]) -> (Child, SocketAddr, Arc<Mutex<String>>) {
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(env!("CARGO_BIN_EXE_wxhost"));
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_wxhost")),
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("wxhost.toml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wxhost starts");
    let logs = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("stderr");
    let sink = Arc::clone(&logs);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut logs) = sink.lock() {
                logs.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("reads the address line");
    let addr = line
        .trim()
        .strip_prefix("wxhost listening on ")
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {line:?}; logs: {}",
                logs.lock().map(|l| l.clone()).unwrap_or_default()
            )
        })
        .parse()
        .expect("an address");
    (child, addr, logs)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, config: &str) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-plugin-cache");
    let text = format!(
        "plugins_dir = \"plugins\"\ndata_dir = \"data\"\ncache_dir = {cache:?}\n{config}",
        cache = cache.display().to_string()
    );
    let tmp: PathBuf = dir.join("wxhost.toml.tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(tmp, dir.join("wxhost.toml")).expect("rename config");
}

/// The account the tests sign with (matches a `[[tenants]]` entry).
pub fn account(appid: &str, token: &str, key: Option<&str>, mode: Mode) -> Account {
    Account::new(appid, token, key, mode).expect("valid account")
}

/// A push of `msg` as WeChat builds it for `account`, stamped now.
pub fn push(account: &Account, msg: &Message) -> (CallbackQuery, String) {
    let params = EnvelopeParams::fresh(wxhost::clock::unix_now(), &mut rand::rng());
    account.simulate_push(msg, &params).expect("push")
}

/// A text message from `from` with a message id.
/// The text of a text reply (panics on anything else).
pub fn reply_text(answer: Option<ReplyMessage>) -> String {
    match answer.map(|m| m.reply) {
        Some(Reply::Text { content }) => content,
        other => panic!("expected a text reply, got {other:?}"),
    }
}

pub fn text(from: &str, content: &str, msg_id: u64) -> Message {
    message(&[
        ("FromUserName", from),
        ("MsgType", "text"),
        ("Content", content),
        ("MsgId", &msg_id.to_string()),
    ])
}

/// A message with the common head and `fields`.
pub fn message(fields: &[(&str, &str)]) -> Message {
    let now = wxhost::clock::unix_now().to_string();
    let mut children = vec![
        Element::leaf("ToUserName", "gh_e2e"),
        Element::leaf("CreateTime", now),
    ];
    children.extend(fields.iter().map(|(k, v)| Element::leaf(*k, *v)));
    Message::from_fields(Element {
        name: "xml".into(),
        text: String::new(),
        children,
    })
    .expect("valid message")
}

/// A tenant table.
pub fn tenant(
    id: &str,
    appid: &str,
    token: &str,
    key: Option<&str>,
    mode: &str,
    chain: &[&str],
) -> String {
    let mut out = format!(
        "[[tenants]]\nid = \"{id}\"\nappid = \"{appid}\"\ntoken = \"{token}\"\nmode = \"{mode}\"\n"
    );
    if let Some(key) = key {
        out.push_str(&format!("encoding_aes_key = \"{key}\"\n"));
    }
    for plugin in chain {
        out.push_str(&format!("[[tenants.plugins]]\nname = \"{plugin}\"\n"));
    }
    out
}
