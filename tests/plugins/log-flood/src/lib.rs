//! Floods the host's log: `log N` logs N lines through the `log` import, `print N` prints N
//! lines to stdout; each line tries to forge another (a newline, a carriage return, an ANSI
//! escape). Answers how many it sent. `fail` returns an error, and `panic` panics, with such a
//! line (the host logs both).

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct LogFlood;

impl Plugin for LogFlood {
    fn handle(msg: &Message) -> wxhost_sdk::Result<Outcome> {
        let text = msg.text().unwrap_or_default().trim();
        let (how, count) = text.split_once(' ').unwrap_or((text, "0"));
        let count: u32 = count.parse().unwrap_or(0);
        let forged = "\nERROR forged line\r\u{1b}[31mred";
        match how {
            "fail" => return Err(wxhost_sdk::Error::msg(format!("failing{forged}"))),
            "panic" => panic!("panicking{forged}"),
            _ => {}
        }
        for i in 0..count {
            let line = format!("flood {i}{forged}");
            match how {
                "log" => wxhost_sdk::log::info(&line),
                "print" => println!("{line}"),
                _ => return Ok(Outcome::Pass),
            }
        }
        Ok(Reply::text(format!("sent {count}")).into())
    }
}

wxhost_sdk::export!(LogFlood);
