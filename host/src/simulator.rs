//! `wxhost send`: builds, signs and (per the tenant's mode) encrypts a push exactly as WeChat
//! would, posts it to the running server or handles it in-process (`--local`), checks and
//! decrypts the answer, and prints the reply readably. How plugin authors try plugins without
//! a real account.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::clock::unix_now;
use crate::config::Config;
use crate::secret::Secret;
use crate::server::App;
use crate::wechat::xml::Element;
use crate::wechat::{Account, EnvelopeParams, Message, Mode, Reply, ReplyMessage};

/// What the simulated user does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Sends a text.
    Text(String),
    /// Sends a picture at this URL.
    Image(String),
    /// Shares a location.
    Location {
        /// Latitude.
        latitude: f64,
        /// Longitude.
        longitude: f64,
    },
    /// Triggers an event, with an optional `EventKey`.
    Event {
        /// The event name (`subscribe`, `unsubscribe`, `SCAN`, …).
        name: String,
        /// Its `EventKey`.
        key: Option<String>,
    },
    /// Clicks a menu button with this key.
    Click(String),
    /// Opens a menu link.
    View(String),
}

impl Action {
    /// Parses `LAT,LNG`.
    pub fn location(text: &str) -> anyhow::Result<Action> {
        let (lat, lng) = text
            .split_once(',')
            .context("--location takes LAT,LNG, e.g. 23.13,113.26")?;
        Ok(Action::Location {
            latitude: lat.trim().parse().context("latitude is not a number")?,
            longitude: lng.trim().parse().context("longitude is not a number")?,
        })
    }

    fn describe(&self) -> String {
        match self {
            Action::Text(t) => format!("text {t:?}"),
            Action::Image(url) => format!("image {url}"),
            Action::Location {
                latitude,
                longitude,
            } => format!("location {latitude},{longitude}"),
            Action::Event { name, key } => match key {
                Some(key) => format!("event {name} ({key})"),
                None => format!("event {name}"),
            },
            Action::Click(key) => format!("menu click {key}"),
            Action::View(url) => format!("menu link {url}"),
        }
    }
}

/// A push as WeChat would send it: the message `from` a user to `to` (the account).
pub fn message(
    action: &Action,
    from: &str,
    to: &str,
    now: i64,
    msg_id: u64,
) -> anyhow::Result<Message> {
    let mut fields = vec![
        Element::leaf("ToUserName", to),
        Element::leaf("FromUserName", from),
        Element::leaf("CreateTime", now.to_string()),
    ];
    let is_event = matches!(
        action,
        Action::Event { .. } | Action::Click(_) | Action::View(_)
    );
    let mut push = |name: &str, value: String| fields.push(Element::leaf(name, value));
    match action {
        Action::Text(text) => {
            push("MsgType", "text".into());
            push("Content", text.clone());
        }
        Action::Image(url) => {
            push("MsgType", "image".into());
            push("PicUrl", url.clone());
            push("MediaId", format!("sim_media_{msg_id}"));
        }
        Action::Location {
            latitude,
            longitude,
        } => {
            push("MsgType", "location".into());
            push("Location_X", latitude.to_string());
            push("Location_Y", longitude.to_string());
            push("Scale", "15".into());
            push("Label", "simulated location".into());
        }
        Action::Event { name, key } => {
            push("MsgType", "event".into());
            push("Event", name.clone());
            if let Some(key) = key {
                push("EventKey", key.clone());
            }
        }
        Action::Click(key) => {
            push("MsgType", "event".into());
            push("Event", "CLICK".into());
            push("EventKey", key.clone());
        }
        Action::View(url) => {
            push("MsgType", "event".into());
            push("Event", "VIEW".into());
            push("EventKey", url.clone());
        }
    }
    if !is_event {
        push("MsgId", msg_id.to_string());
    }
    Ok(Message::from_fields(Element {
        name: "xml".into(),
        text: String::new(),
        children: fields,
    })?)
}

/// Where to send.
#[derive(Debug, Clone)]
pub enum Target {
    /// The running server at this base URL (`http://127.0.0.1:8080`).
    Remote(String),
    /// An in-process server built from the same config.
    Local,
}

/// Sends `action` from `from` to `tenant` as configured in `config_path`; returns the report.
pub async fn send(
    config_path: &Path,
    tenant: &str,
    action: &Action,
    from: &str,
    target: Target,
) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let tenant_config = config
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .with_context(|| format!("no tenant {tenant:?} in {}", config_path.display()))?;
    let account = Account::new(
        &tenant_config.appid,
        tenant_config.token.expose(),
        tenant_config.encoding_aes_key.as_ref().map(Secret::expose),
        tenant_config.mode,
    )?;
    let now = unix_now();
    let mut rng = rand::rng();
    let msg_id = 10_000_000_000_000_000 + rand::Rng::next_u64(&mut rng) % 10_000_000_000_000_000;
    let to = tenant_config
        .original_id
        .clone()
        .unwrap_or_else(|| "gh_simulated".into());
    let msg = message(action, from, &to, now, msg_id)?;
    let (query, body) = account.simulate_push(&msg, &EnvelopeParams::fresh(now, &mut rng))?;

    let answer = match target {
        Target::Remote(base) => {
            let url = format!("{}/wx/{tenant}", base.trim_end_matches('/'));
            let response = crate::http_client::builder()
                .build()?
                .post(&url)
                .query(&query)
                .header("content-type", "text/xml")
                .body(body)
                .send()
                .await
                .with_context(|| format!("posting to {url} (is `wxhost serve` running?)"))?;
            let status = response.status();
            let text = response.text().await.context("reading the answer")?;
            if !status.is_success() {
                bail!("the server refused the push: {status}: {}", text.trim());
            }
            text
        }
        Target::Local => {
            let app = App::build(config_path).await?;
            app.state
                .dispatcher
                .handle_push(tenant, &query.to_query_string(), body.as_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("the server refused the push: {e}"))?
                .body
        }
    };
    let encrypted = tenant_config.mode != Mode::Plain;
    let reply = account
        .read_answer(&answer, encrypted)
        .context("the answer is not what WeChat accepts")?;

    let mut out = String::new();
    let mode = format!("{:?}", tenant_config.mode).to_lowercase();
    let _ = writeln!(
        out,
        "→ {} from {from} to {tenant} ({mode} mode)",
        action.describe()
    );
    let _ = write!(out, "{}", describe_reply(reply.as_ref()));
    Ok(out)
}

/// The reply as a human reads it.
pub fn describe_reply(reply: Option<&ReplyMessage>) -> String {
    let Some(reply) = reply else {
        return "← no reply (success)\n".into();
    };
    match &reply.reply {
        Reply::Text { content } => format!("← text: {content}\n"),
        Reply::Image { media_id } => format!("← image: {media_id}\n"),
        Reply::Voice { media_id } => format!("← voice: {media_id}\n"),
        Reply::Video {
            media_id, title, ..
        } => format!("← video: {media_id} {title:?}\n"),
        Reply::Music {
            title, music_url, ..
        } => format!("← music: {title:?} {music_url}\n"),
        Reply::News { articles } => {
            let mut out = format!("← news, {} article(s):\n", articles.len());
            for a in articles {
                let _ = writeln!(out, "   • {} — {}", a.title, a.url);
            }
            out
        }
        Reply::TransferCustomerService { kf_account } => match kf_account {
            Some(agent) => format!("← transfer to customer service agent {agent}\n"),
            None => "← transfer to customer service\n".into(),
        },
    }
}
