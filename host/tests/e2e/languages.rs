//! Plugins written in JavaScript (`@wxhost/plugin-sdk`, componentize-js) and in Python
//! (`wxhost_sdk`, componentize-py) in the real binary, under the same contract and limits as Rust
//! ones: echo answers in plain and safe mode, an infinite loop is stopped at its deadline while
//! another tenant answers at once, a memory bomb hits its cap, an exception is the plugin's error
//! with its message, the guess-number game keeps its state in kv across fresh instances, and a
//! plugin reaches an HTTP service through the host and caches in kv. One server a language:
//! each component is 12 MB (JavaScript) or 20 MB (Python) and compiles in seconds.

use std::time::{Duration, Instant};

use wxhost::wechat::{Mode, Reply};
use wxhost_fake_wechat::FakeWechat;

use crate::harness::{KEY_A, Server, account, text};

/// A tenant `id` (plain unless `key` is given) whose chain is `plugin` with `extra` lines.
fn tenant(id: &str, key: Option<&str>, plugin: &str, extra: &str) -> String {
    let mode = match key {
        Some(key) => format!("mode = \"safe\"\nencoding_aes_key = \"{key}\"\n"),
        None => "mode = \"plain\"\n".to_owned(),
    };
    format!(
        "[[tenants]]\nid = \"{id}\"\nappid = \"wx{id}\"\ntoken = \"token{id}\"\n{mode}\
         [[tenants.plugins]]\nname = \"{plugin}\"\n{extra}"
    )
}

fn plain(id: &str) -> wxhost::wechat::Account {
    account(&format!("wx{id}"), &format!("token{id}"), None, Mode::Plain)
}

async fn say(server: &Server, id: &str, from: &str, words: &str, msg_id: u64) -> Option<Reply> {
    server
        .send(id, &plain(id), &text(from, words, msg_id))
        .await
        .map(|r| r.reply)
}

fn reply_text(reply: Option<Reply>) -> String {
    match reply {
        Some(Reply::Text { content }) => content,
        other => panic!("expected a text reply, got {other:?}"),
    }
}

/// A language's plugins and what its runtime says when they fail.
struct Lang {
    /// The plugin names' suffix (`js`, `py`).
    suffix: &'static str,
    /// Its plugins (name, path): echo, guess-number, misbehave, quote-cache.
    plugins: &'static [(&'static str, &'static str)],
    /// The log lines of the memory bomb and of the exception.
    out_of_memory: &'static str,
    raised: &'static str,
}

const JAVASCRIPT: Lang = Lang {
    suffix: "js",
    plugins: &[
        ("echo-js", wxhost_test_plugins::ECHO_JS),
        ("guess-number-js", wxhost_test_plugins::GUESS_NUMBER_JS),
        ("misbehave-js", wxhost_test_plugins::MISBEHAVE_JS),
        ("quote-cache-js", wxhost_test_plugins::QUOTE_CACHE_JS),
    ],
    out_of_memory: "plugin `misbehave-js` returned an error: out of memory",
    raised: r#"plugin `misbehave-js` returned an error: TypeError: cannot handle "hi""#,
};

const PYTHON: Lang = Lang {
    suffix: "py",
    plugins: &[
        ("echo-py", wxhost_test_plugins::ECHO_PY),
        ("guess-number-py", wxhost_test_plugins::GUESS_NUMBER_PY),
        ("misbehave-py", wxhost_test_plugins::MISBEHAVE_PY),
        ("quote-cache-py", wxhost_test_plugins::QUOTE_CACHE_PY),
    ],
    out_of_memory: "plugin `misbehave-py` returned an error: MemoryError",
    raised: "plugin `misbehave-py` returned an error: ValueError: cannot handle 'hi'",
};

/// The tenants of [`the_contract_holds`] for `lang`; `prices` serves the quotes.
fn config(lang: &Lang, prices: &FakeWechat) -> String {
    let plugin = |name: &str| format!("{name}-{}", lang.suffix);
    [
        "passive_budget_ms = 3000\n".to_owned(),
        tenant("plain", None, &plugin("echo"), ""),
        tenant("safe", Some(KEY_A), &plugin("echo"), ""),
        tenant("rust", None, "echo", ""),
        // Fuel to spare: the deadline is what stops it.
        tenant(
            "loop",
            None,
            &plugin("misbehave"),
            "limits = { deadline_ms = 400, fuel = 1000000000000 }\n",
        ),
        tenant("bomb", None, &plugin("misbehave"), ""),
        tenant("raise", None, &plugin("misbehave"), ""),
        // A fresh instance for every call: the game's state can only be in kv.
        tenant(
            "game",
            None,
            &plugin("guess-number"),
            "settings = { max = 1000 }\nlimits = { calls_per_instance = 1 }\n",
        ),
        tenant(
            "quote",
            None,
            &plugin("quote-cache"),
            &format!(
                "capabilities = [\"http\"]\nhttp_hosts = [\"{}\"]\n\
                 http_private_addresses = [\"127.0.0.1\"]\nsettings = {{ service_url = \"{}\" }}\n",
                prices.addr,
                prices.base_url()
            ),
        ),
    ]
    .concat()
}

/// Echo in plain and safe mode, the loop stopped at its deadline while another tenant answers,
/// the bomb at its cap, the exception as the plugin's error, the game's state in kv, a quote
/// over HTTP and then from kv.
async fn the_contract_holds(server: &Server, lang: &Lang) {
    let echo = format!("echo-{}", lang.suffix);
    assert_eq!(
        say(server, "plain", "o_user", "你好 ]]>", 1).await,
        Some(Reply::text("echo: 你好 ]]>")),
        "{echo}: {}",
        server.logs()
    );
    let safe = account("wxsafe", "tokensafe", Some(KEY_A), Mode::Safe);
    let answer = server.send("safe", &safe, &text("o_user", "hi", 2)).await;
    assert_eq!(answer.map(|r| r.reply), Some(Reply::text("echo: hi")));

    // The loop is stopped at its deadline; meanwhile another tenant answers at once.
    let spinning = {
        let (url, http) = (server.url("/wx/loop"), server.http.clone());
        let (query, body) = crate::harness::push(&plain("loop"), &text("o_user", "spin", 3));
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = http.post(url).query(&query).body(body).send().await;
            (answer.map(|a| a.status().as_u16()), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(
        say(server, "rust", "o_user", "still here", 4).await,
        Some(Reply::text("echo: still here"))
    );
    let quick = started.elapsed();
    let (status, spun) = spinning.await.expect("join");
    assert_eq!(status.expect("answered"), 200);
    assert!(
        spun < Duration::from_millis(1_500),
        "the loop was stopped at its 400 ms deadline, answered after {spun:?}"
    );
    assert!(
        quick < spun,
        "the other tenant ({quick:?}) did not wait for the loop ({spun:?})"
    );

    // The memory bomb hits its cap; the exception is the plugin's error, with its message.
    assert_eq!(say(server, "bomb", "o_user", "bomb", 5).await, None);
    assert_eq!(say(server, "raise", "o_user", "hi", 6).await, None);
    let logs = server.logs();
    let deadline = format!(
        "plugin `misbehave-{}` exceeded its 400 ms deadline",
        lang.suffix
    );
    for expected in [deadline.as_str(), lang.out_of_memory, lang.raised] {
        assert!(logs.contains(expected), "{expected} in {logs}");
    }
    // The host is none the worse.
    assert_eq!(
        say(server, "plain", "o_user", "after", 7).await,
        Some(Reply::text("echo: after"))
    );

    // The game, each call in a fresh instance: its state lives in kv.
    assert!(reply_text(say(server, "game", "o_player", "guess", 10).await).contains("1 to 1000"));
    let (mut lo, mut hi, mut found) = (1, 1000, false);
    for n in 0..11 {
        let mid = (lo + hi) / 2;
        let answer = reply_text(say(server, "game", "o_player", &mid.to_string(), 11 + n).await);
        if answer.contains("right") {
            found = true;
            break;
        }
        if answer.contains("low") {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    assert!(found, "found within 11 guesses by bisection");

    // Outbound HTTP through the host, and kv as a cache.
    assert_eq!(
        say(server, "quote", "o_user", "quote WX", 30).await,
        Some(Reply::text("WX: 175")),
        "{}",
        server.logs()
    );
    assert_eq!(
        say(server, "quote", "o_user", "quote wx", 31).await,
        Some(Reply::text("WX: 175 (cached)"))
    );
    let metrics = server.metrics().await;
    let sent = format!(
        r#"wxhost_plugin_http_requests_total{{tenant="quote",plugin="quote-cache-{}",kind="sent"}} 1"#,
        lang.suffix
    );
    assert!(metrics.contains(&sent), "{sent} in {metrics}");
}

/// Runs [`the_contract_holds`] for `lang` on its own server.
async fn check(lang: &Lang) {
    let prices = FakeWechat::start("wxunused", "unused").await.expect("fake");
    let server = Server::start_with(&config(lang, &prices), lang.plugins);
    the_contract_holds(&server, lang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_plugins_keep_the_contract_and_the_limits() {
    check(&JAVASCRIPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugins_keep_the_contract_and_the_limits() {
    check(&PYTHON).await;
}
