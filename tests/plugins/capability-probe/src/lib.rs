//! Tries the granted capabilities on command and answers with what happened, so tests see
//! the error values a plugin gets:
//!   `api TEXT`        sends TEXT as a customer-service message to the sender
//!   `api-to USER TEXT` sends TEXT as a customer-service message to USER
//!   `template ID`     sends template ID to the sender
//!   `raw PATH`        GETs the WeChat API path PATH
//!   `http URL`        GETs URL
//!   `early TEXT`      answers TEXT early, then returns `late TEXT`

use wxhost_sdk::{Message, Outcome, Plugin, Reply, http, wechat};

/// The plugin.
pub struct CapabilityProbe;

impl Plugin for CapabilityProbe {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let Some(text) = msg.text() else {
            return Ok(Outcome::Pass);
        };
        let (command, arg) = text.split_once(' ').unwrap_or((text, ""));
        let answer = match command {
            "api" => match wechat::send_text(arg) {
                Ok(()) => "api ok".to_owned(),
                Err(e) => format!("api error: {e:?}"),
            },
            "api-to" => {
                let (user, text) = arg.split_once(' ').unwrap_or((arg, ""));
                let message = wechat::CustomMessage::Text(text.to_owned());
                match wechat::send_custom(Some(user), &message) {
                    Ok(()) => "api ok".to_owned(),
                    Err(e) => format!("api error: {e:?}"),
                }
            }
            "template" => {
                let message = wechat::TemplateMessage {
                    template_id: arg.to_owned(),
                    data: vec![("thing1".into(), "probe".into(), None)],
                    ..Default::default()
                };
                match wechat::send_template(&message) {
                    Ok(msgid) => format!("template ok {msgid}"),
                    Err(e) => format!("template error: {e:?}"),
                }
            }
            "raw" => match wechat::call(wechat::Method::Get, arg, &[], None) {
                Ok(json) => format!("raw ok {json}"),
                Err(e) => format!("raw error: {e:?}"),
            },
            "http" => match http::get(arg) {
                Ok(answer) => format!("http {} {}", answer.status, answer.text()),
                Err(e) => format!("http error: {e:?}"),
            },
            "early" => {
                wxhost_sdk::reply_early(Reply::text(arg))?;
                format!("late {arg}")
            }
            _ => return Ok(Outcome::Pass),
        };
        Ok(Reply::text(answer).into())
    }
}

wxhost_sdk::export!(CapabilityProbe);
