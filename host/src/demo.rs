//! `wxhost demo`: one push through the whole protocol core in each mode, printed step by step.
//!
//! It plays both sides: WeChat builds and signs (and encrypts) a push, the account opens it,
//! hands it to a plugin (or, without one, a native echo), and WeChat reads the answer back.
//! It shows the protocol, not the server: no tenant config, HTTP, dedup, chain or budgets. To
//! push through all of those use `wxhost send` (against `wxhost serve`, or `--local`).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::plugin::{CallContext, Limits, Outcome, Plugin, Runtime};
use crate::storage::MemoryKv;
use crate::wechat::xml::Element;
use crate::wechat::{self, Account, EnvelopeParams, Mode, Reply};

/// The demo account: the official sample appid, token and EncodingAESKey.
pub const DEMO_APPID: &str = "wxb11529c136998cb6";
/// The demo account's token.
pub const DEMO_TOKEN: &str = "pamtest";
/// The demo account's EncodingAESKey.
pub const DEMO_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
/// The demo account's original id.
pub const DEMO_ORIGINAL_ID: &str = "gh_demo000000";

/// What answers the demo push.
#[derive(Debug)]
pub enum Handler<'a> {
    /// A native `echo: <text>`.
    NativeEcho,
    /// A loaded plugin in a runtime.
    Plugin(&'a Runtime, &'a Plugin),
}

/// Runs the walk-through for `text` in every mode and returns the transcript.
pub async fn run(text: &str, now: i64, handler: Handler<'_>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rng = rand::rng();
    for mode in [Mode::Plain, Mode::Compatible, Mode::Safe] {
        let account = Account::new(DEMO_APPID, DEMO_TOKEN, Some(DEMO_AES_KEY), mode)?
            .with_original_id(DEMO_ORIGINAL_ID);
        let message = wechat::Message::from_fields(Element {
            name: "xml".into(),
            text: String::new(),
            children: vec![
                Element::leaf("ToUserName", DEMO_ORIGINAL_ID),
                Element::leaf("FromUserName", "o_demo_user"),
                Element::leaf("CreateTime", now.to_string()),
                Element::leaf("MsgType", "text"),
                Element::leaf("Content", text),
                Element::leaf("MsgId", "24000000000000001"),
            ],
        })?;
        let (query, body) =
            account.simulate_push(&message, &EnvelopeParams::fresh(now, &mut rng))?;
        let inbound = account.open(&query, body.as_bytes(), now)?;
        let reply = match handler {
            Handler::NativeEcho => match &inbound.message.content {
                wechat::Content::Text { content, .. } => {
                    Some(Reply::text(format!("echo: {content}")))
                }
                _ => None,
            },
            Handler::Plugin(runtime, plugin) => {
                let ctx = CallContext::new(
                    "demo",
                    Default::default(),
                    Arc::new(MemoryKv::default()),
                    Limits::default(),
                );
                let report = runtime.call(plugin, &ctx, &inbound.message).await;
                let _ = writeln!(
                    out,
                    "plugin `{}`: {:?} in {:?}, {} fuel",
                    plugin.name(),
                    report.result,
                    report.elapsed,
                    report.fuel_used
                );
                match report.result? {
                    Outcome::Reply(reply) => Some(reply),
                    Outcome::Handled | Outcome::Pass => None,
                }
            }
        };
        let answer = account.answer(&inbound, reply.as_ref(), now, &mut rng)?;
        let read_back = account.read_answer(&answer, inbound.encrypted)?;
        let _ = writeln!(out, "== {mode:?} mode ==");
        let _ = writeln!(out, "push query:  {}", query.to_query_string());
        let _ = writeln!(out, "push body:   {body}");
        let _ = writeln!(
            out,
            "opened:      encrypted={} from={} {:?}",
            inbound.encrypted, inbound.message.from_user, inbound.message.content
        );
        let _ = writeln!(out, "answer body: {answer}");
        let _ = writeln!(out, "WeChat sees: {read_back:?}\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demo_echoes_in_every_mode() {
        let transcript = run("hello <&> ]]> 你好", 1_700_000_000, Handler::NativeEcho)
            .await
            .expect("demo runs");
        assert_eq!(
            transcript
                .matches("content: \"echo: hello <&> ]]> 你好\"")
                .count(),
            3
        );
        assert_eq!(transcript.matches("encrypted=true").count(), 2);
    }
}
