//! Tries what a sandboxed plugin must not be able to do (read files, read the environment,
//! open sockets) and floods stdout past the capture cap, then reports what it saw.

use wxhost_sdk::{Message, Outcome, Plugin, Reply};

/// The plugin.
pub struct SandboxProbe;

impl Plugin for SandboxProbe {
    fn handle(_msg: &Message) -> wxhost_sdk::Result<Outcome> {
        for i in 0..2000 {
            println!("chatty line {i} ................................................");
        }
        eprintln!("probe: done printing");
        let files = std::fs::read_dir("/")
            .map(|d| d.count())
            .map_err(|e| e.kind());
        let passwd = std::fs::read("/etc/passwd")
            .map(|b| b.len())
            .map_err(|e| e.kind());
        let env = std::env::vars().count();
        let tcp = std::net::TcpStream::connect("127.0.0.1:1")
            .map(|_| ())
            .map_err(|e| e.kind());
        Ok(Reply::text(format!(
            "files={files:?} passwd={passwd:?} env={env} tcp={tcp:?}"
        ))
        .into())
    }
}

wxhost_sdk::export!(SandboxProbe);
