//! The `wxhost` command line: a thin shell over the library.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use wxhost::clock::unix_now;
use wxhost::demo::Handler;
use wxhost::plugin::{Runtime, RuntimeLimits};
use wxhost::simulator::{Action, Target};

/// mimalloc: the server allocates many small short-lived objects per push, where glibc's
/// malloc measured at ~30% of CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hosts WeChat Official Account bots with the bot logic in sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the tenants of a config file.
    Serve {
        /// The config file.
        #[arg(long, env = "WXHOST_CONFIG", default_value = "wxhost.toml")]
        config: PathBuf,
        /// Listen here instead of the config's `listen` (port 0 picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Send a push to a tenant exactly as WeChat would, and print the reply.
    Send(SendArgs),
    /// Walk one push through verification, decryption, a plugin, and encryption in each mode.
    Demo {
        /// The text the simulated user sends.
        #[arg(long, default_value = "hello, wxhost")]
        text: String,
        /// A plugin (`.wasm`) to answer with; without one, a native echo answers.
        #[arg(long)]
        plugin: Option<PathBuf>,
    },
    /// Show, set or delete a tenant's WeChat menus (`[tenants.menu]` in the config).
    Menu {
        /// `show` (WeChat's menus, compared with the config), `apply` or `delete`.
        action: wxhost::admin::MenuAction,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The config file.
        #[arg(long, env = "WXHOST_CONFIG", default_value = "wxhost.toml")]
        config: PathBuf,
    },
    /// Reset a tenant's daily WeChat API quotas (`clear_quota`: 10 times a month).
    Quota {
        /// `clear`.
        action: QuotaAction,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The config file.
        #[arg(long, env = "WXHOST_CONFIG", default_value = "wxhost.toml")]
        config: PathBuf,
    },
    /// Create a plugin crate that builds for wasm32-wasip2 out of the box.
    NewPlugin {
        /// The plugin's name (lowercase letter first, then a-z 0-9 - _).
        name: String,
        /// The directory to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The plugin's language: `rust`, `js` (JavaScript, with TypeScript types) or `python`.
        #[arg(long, default_value = "rust")]
        lang: wxhost::scaffold::Lang,
        /// The SDK to depend on: the wxhost-sdk crate, the @wxhost/plugin-sdk package or the
        /// wxhost_sdk Python package
        /// (default: the one in the repository this wxhost was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// What `wxhost quota` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum QuotaAction {
    /// Reset the account's daily API quotas.
    Clear,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).multiple(false)))]
struct SendArgs {
    /// The config file (for the tenant's credentials and mode).
    #[arg(long, env = "WXHOST_CONFIG", default_value = "wxhost.toml")]
    config: PathBuf,
    /// The tenant to send to.
    #[arg(long)]
    tenant: String,
    /// Send a text message.
    #[arg(long, group = "action")]
    text: Option<String>,
    /// Send an event (`subscribe`, `unsubscribe`, `SCAN`, …); see --key.
    #[arg(long, group = "action")]
    event: Option<String>,
    /// The event's EventKey (e.g. `qrscene_42` with --event subscribe).
    #[arg(long, requires = "event")]
    key: Option<String>,
    /// Click a menu button with this key.
    #[arg(long, group = "action")]
    click: Option<String>,
    /// Open a menu link.
    #[arg(long, group = "action")]
    view: Option<String>,
    /// Send a picture at this URL.
    #[arg(long, group = "action")]
    image: Option<String>,
    /// Share a location: LAT,LNG.
    #[arg(long, group = "action", allow_hyphen_values = true)]
    location: Option<String>,
    /// The sender's openid.
    #[arg(long, default_value = "o_simulated_user")]
    from: String,
    /// The server's base URL (default: the config's `listen`).
    #[arg(long)]
    url: Option<String>,
    /// Handle the push in-process instead of posting it to a running server.
    #[arg(long, conflicts_with = "url")]
    local: bool,
}

impl SendArgs {
    fn action(&self) -> anyhow::Result<Action> {
        Ok(if let Some(text) = &self.text {
            Action::Text(text.clone())
        } else if let Some(name) = &self.event {
            Action::Event {
                name: name.clone(),
                key: self.key.clone(),
            }
        } else if let Some(key) = &self.click {
            Action::Click(key.clone())
        } else if let Some(url) = &self.view {
            Action::View(url.clone())
        } else if let Some(url) = &self.image {
            Action::Image(url.clone())
        } else if let Some(location) = &self.location {
            Action::location(location)?
        } else {
            anyhow::bail!(
                "say what to send: --text, --event, --click, --view, --image or --location"
            )
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxhost::telemetry::init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, listen } => {
            let listen = match listen {
                Some(addr) => addr,
                None => wxhost::config::Config::load(&config)?.listen,
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            // Tests and scripts read the bound address (port 0 picks one) from this line.
            println!("wxhost listening on {}", listener.local_addr()?);
            wxhost::server::run(config, listener, wxhost::server::shutdown_signal()).await?;
        }
        Command::Send(args) => {
            let target = if args.local {
                Target::Local
            } else {
                Target::Remote(match &args.url {
                    Some(url) => url.clone(),
                    None => format!(
                        "http://{}",
                        wxhost::config::Config::load(&args.config)?.listen
                    ),
                })
            };
            let report = wxhost::simulator::send(
                &args.config,
                &args.tenant,
                &args.action()?,
                &args.from,
                target,
            )
            .await?;
            print!("{report}");
        }
        Command::Menu {
            action,
            tenant,
            config,
        } => {
            let config = wxhost::config::Config::load(&config)?;
            print!("{}", wxhost::admin::menu(&config, &tenant, action).await?);
        }
        Command::Quota {
            action: QuotaAction::Clear,
            tenant,
            config,
        } => {
            let config = wxhost::config::Config::load(&config)?;
            print!("{}", wxhost::admin::clear_quota(&config, &tenant).await?);
        }
        Command::Demo { text, plugin } => {
            let now = unix_now();
            let transcript = match plugin {
                None => wxhost::demo::run(&text, now, Handler::NativeEcho).await?,
                Some(path) => {
                    let wasm = std::fs::read(&path)
                        .with_context(|| format!("reading plugin {}", path.display()))?;
                    let name = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .context("plugin path has no file name")?;
                    let runtime = Runtime::new(RuntimeLimits::default(), None)?;
                    let plugin = runtime.load(name, &wasm)?;
                    wxhost::demo::run(&text, now, Handler::Plugin(&runtime, &plugin)).await?
                }
            };
            print!("{transcript}");
        }
        Command::NewPlugin {
            name,
            dir,
            lang,
            sdk,
        } => {
            let sdk = sdk.unwrap_or_else(|| lang.default_sdk_path());
            let created = wxhost::scaffold::new_plugin(&name, lang, &dir, &sdk)?;
            let project = created.display();
            println!("created {project}");
            println!(
                "build it: cd {project} && {}   # → {}",
                lang.build_command(),
                lang.wasm_output(&name)
            );
            println!("test it: cd {project} && {}", lang.test_command());
        }
    }
    Ok(())
}
