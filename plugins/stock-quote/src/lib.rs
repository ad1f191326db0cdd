//! `stock-quote`: answers `quote SYMBOL` with "working on it…" at once, asks a price service (an
//! HTTP service on its allow-list) for the quote, and sends the result to the user as a
//! customer-service message. Passes on everything else.
//!
//! Settings: `service_url` (required; `GET {service_url}/quote?symbol=SYMBOL` answers
//! `{"symbol": …, "price": …}`). Capabilities: `http` (with the service's host in
//! `http_hosts`) and `wechat-api`.

use wxhost_sdk::{Message, Outcome, Plugin, Reply, http, wechat};

/// The quote plugin.
pub struct Quote;

/// The symbol of `quote SYMBOL` (any case), if the text is one.
fn symbol(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    let first = words.next()?;
    let symbol = words.next()?;
    let valid = first.eq_ignore_ascii_case("quote")
        && words.next().is_none()
        && symbol.len() <= 12
        && symbol.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then_some(symbol)
}

impl Plugin for Quote {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let Some(symbol) = msg.text().and_then(symbol) else {
            return Ok(Outcome::Pass);
        };
        let service: String = wxhost_sdk::config::get("service_url")?
            .ok_or_else(|| wxhost_sdk::Error::msg("setting `service_url` is missing"))?;
        wxhost_sdk::reply_early(Reply::text(format!("working on it… (quote {symbol})")))?;

        let url = format!("{}/quote?symbol={symbol}", service.trim_end_matches('/'));
        let text = match http::get(&url) {
            Ok(answer) if answer.status == 200 => match answer.json::<serde_json::Value>() {
                Ok(quote) => format!("{symbol}: {}", quote["price"]),
                Err(_) => format!("{symbol}: the price service answered something unreadable"),
            },
            Ok(answer) => format!(
                "{symbol}: the price service answered HTTP {}",
                answer.status
            ),
            Err(e) => {
                wxhost_sdk::log::warn(&format!("price service: {e}"));
                format!("{symbol}: the price service is unavailable")
            }
        };
        wechat::send_text(text)?;
        Ok(Outcome::Handled)
    }
}

wxhost_sdk::export!(Quote);

#[cfg(test)]
mod tests {
    use super::*;
    use wxhost_sdk::testing::{TestHost, text_message};
    use wxhost_sdk::wechat::CustomMessage;

    #[test]
    fn answers_at_once_then_sends_the_quote() {
        let host = TestHost::new()
            .setting("service_url", "http://prices.example")
            .http_response(
                "http://prices.example/quote?symbol=WX",
                200,
                r#"{"symbol":"WX","price":42}"#,
            );
        let _guard = host.install();
        let out = Quote::handle(&text_message("o_user", "quote WX")).expect("handled");
        assert_eq!(out, Outcome::Handled);
        assert_eq!(
            host.early_replies(),
            vec![Reply::text("working on it… (quote WX)")]
        );
        assert_eq!(
            host.custom_messages(),
            vec![(None, CustomMessage::Text("WX: 42".into()))]
        );
    }

    #[test]
    fn a_denied_service_still_gets_the_user_an_answer() {
        let host = TestHost::new().setting("service_url", "http://elsewhere.example");
        let _guard = host.install();
        Quote::handle(&text_message("o_user", "QUOTE abc")).expect("handled");
        assert_eq!(
            host.custom_messages(),
            vec![(
                None,
                CustomMessage::Text("abc: the price service is unavailable".into())
            )]
        );
    }

    #[test]
    fn other_messages_pass() {
        let _guard = TestHost::new().install();
        for text in ["hello", "quote", "quote a b", "quote a/b"] {
            assert_eq!(
                Quote::handle(&text_message("o", text)),
                Ok(Outcome::Pass),
                "{text}"
            );
        }
    }
}
