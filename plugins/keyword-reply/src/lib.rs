//! `keyword-reply`: answers text messages that match a rule from its settings, with a text,
//! image or news reply. Rules are tried in order; the first match wins; no match passes.
//!
//! ```toml
//! [tenants.plugins.settings]
//! ignore_case = true
//! rules = [
//!   { exact = "help", reply = { text = "Send 'price' or 'logo'." } },
//!   { regex = "^(price|价格)", reply = { news = [{ title = "Prices", url = "https://example.com/p" }] } },
//!   { exact = "logo", reply = { image = "MEDIA_ID" } },
//! ]
//! ```

use regex::RegexBuilder;
use serde::Deserialize;
use wxhost_sdk::{Article, Error, Message, Outcome, Plugin, Reply};

/// The plugin's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Compare and match without regard to case.
    #[serde(default)]
    pub ignore_case: bool,
    /// The rules, tried in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule: an exact keyword or a regex, and the reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Matches when the whole message (trimmed) equals it.
    pub exact: Option<String>,
    /// Matches when the regex finds a match in the message.
    pub regex: Option<String>,
    /// What to answer.
    pub reply: RuleReply,
}

/// A rule's reply.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleReply {
    /// A text reply.
    Text(String),
    /// A picture reply, by media id.
    Image(String),
    /// A news reply.
    News(Vec<Article>),
}

impl Rule {
    fn matches(&self, text: &str, ignore_case: bool, index: usize) -> wxhost_sdk::Result<bool> {
        match (&self.exact, &self.regex) {
            (Some(exact), None) => Ok(if ignore_case {
                text.trim().to_lowercase() == exact.to_lowercase()
            } else {
                text.trim() == exact
            }),
            (None, Some(pattern)) => RegexBuilder::new(pattern)
                .case_insensitive(ignore_case)
                .size_limit(1 << 20)
                .build()
                .map(|re| re.is_match(text))
                .map_err(|e| Error::msg(format!("rule {index}: invalid regex: {e}"))),
            _ => Err(Error::msg(format!(
                "rule {index}: set exactly one of `exact` and `regex`"
            ))),
        }
    }
}

/// The keyword-reply plugin.
pub struct KeywordReply;

impl Plugin for KeywordReply {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let Some(text) = msg.text() else {
            return Ok(Outcome::Pass);
        };
        let settings: Settings = wxhost_sdk::config::get_all()?;
        for (index, rule) in settings.rules.iter().enumerate() {
            if rule.matches(text, settings.ignore_case, index)? {
                let reply = match &rule.reply {
                    RuleReply::Text(t) => Reply::text(t.clone()),
                    RuleReply::Image(media_id) => Reply::image(media_id.clone()),
                    RuleReply::News(articles) => Reply::news(articles.iter().cloned()),
                };
                return Ok(reply.into());
            }
        }
        Ok(Outcome::Pass)
    }
}

wxhost_sdk::export!(KeywordReply);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wxhost_sdk::testing::{TestHost, text_message};

    fn host() -> TestHost {
        TestHost::new().setting("ignore_case", true).setting(
            "rules",
            json!([
                { "exact": "help", "reply": { "text": "try price" } },
                { "regex": "^(price|价格)", "reply": { "news": [{ "title": "Prices", "url": "https://e/p" }] } },
                { "exact": "logo", "reply": { "image": "MEDIA" } },
            ]),
        )
    }

    fn handle(text: &str) -> wxhost_sdk::Result<Outcome> {
        KeywordReply::handle(&text_message("o_user", text))
    }

    #[test]
    fn exact_regex_and_image_rules() {
        let _guard = host().install();
        assert_eq!(handle(" HELP "), Ok(Reply::text("try price").into()));
        assert_eq!(
            handle("价格表"),
            Ok(Reply::news([Article::new("Prices", "https://e/p")]).into())
        );
        assert_eq!(handle("logo"), Ok(Reply::image("MEDIA").into()));
        assert_eq!(handle("helpme"), Ok(Outcome::Pass));
    }

    #[test]
    fn invalid_rules_are_clear_errors() {
        let host =
            TestHost::new().setting("rules", json!([{ "regex": "(", "reply": { "text": "x" } }]));
        let _guard = host.install();
        let err = handle("x").expect_err("invalid regex");
        assert!(err.message().starts_with("rule 0: invalid regex"), "{err}");
        let host = TestHost::new().setting("rules", json!([{ "reply": { "text": "x" } }]));
        let _guard = host.install();
        assert!(handle("x").is_err());
    }
}
