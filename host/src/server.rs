//! `wxhost serve`: builds the application from the config file, serves it, watches the config
//! file and the plugins folder, reports on storage, and shuts down gracefully.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, StorageConfig};
use crate::dedup::{Gate, LocalGate, MemoryDedup, MemorySignatureLog, RedisGate, WindowFloor};
use crate::dispatch::Dispatcher;
use crate::http::{AppState, router};
use crate::late_reply::LateReplies;
use crate::plugin::{Registry, Runtime};
use crate::storage::{Backend, FactStore, KvStore, RedbKv, RedisKv, RedisSettings, StorageStats};
use crate::telemetry::{Metrics, StorageReport};
use crate::tenant::{Services, Tenant, Tenants, TenantsHandle};
use crate::wechat_api::ApiClient;

/// How often the plugins folder is scanned (a new plugin serves within a second).
const PLUGIN_SCAN: Duration = Duration::from_millis(250);
/// How often the config file is checked for changes.
const CONFIG_SCAN: Duration = Duration::from_millis(500);
/// How often storage's counters reach the metrics (the store commits on its own).
const STORAGE_REPORT: Duration = Duration::from_secs(1);

/// The running application, without its HTTP listener (used in-process by `wxhost send --local`).
#[derive(Debug)]
pub struct App {
    /// The config as loaded at start.
    pub config: Config,
    /// The HTTP state.
    pub state: AppState,
    /// Plugin kv and the host's shared keys (access tokens): the embedded store or Redis.
    pub kv: Arc<dyn KvStore>,
    /// The embedded store, which also keeps this host's dedup facts (the same as `kv` unless
    /// kv is on Redis).
    pub embedded: Arc<dyn KvStore>,
    /// What tenants are built on (kept for config reloads).
    pub services: Services,
    /// The plugins folder.
    pub registry: Arc<Registry>,
    /// The tenants.
    pub tenants: Arc<TenantsHandle>,
}

impl App {
    /// Builds everything from the config file at `path` and loads the plugins folder once.
    pub async fn build(path: &Path) -> anyhow::Result<App> {
        let config = Config::load(path)?;
        for dir in [&config.data_dir, &config.cache_dir, &config.plugins_dir] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = Arc::new(
            RedbKv::open(&config.data_dir.join("kv.redb")).context("opening plugin storage")?,
        );
        let embedded: Arc<dyn KvStore> = Arc::clone(&store) as Arc<dyn KvStore>;
        let facts: Arc<dyn FactStore> = store;
        let (kv, backend) = match &config.storage {
            StorageConfig::Embedded => (Arc::clone(&embedded), Backend::Embedded),
            StorageConfig::Redis(redis) => {
                let redis = RedisKv::connect(&RedisSettings {
                    url: redis.url.expose().to_owned(),
                    prefix: redis.prefix.clone(),
                    connect_timeout: Duration::from_millis(redis.connect_timeout_ms),
                    command_timeout: Duration::from_millis(redis.command_timeout_ms),
                })
                .context("setting up the redis store")?;
                if let Err(e) = redis.ping().await {
                    tracing::warn!(
                        "redis does not answer yet ({e}); kv calls fail until it does, pushes are still answered"
                    );
                }
                (
                    Arc::new(redis.clone()) as Arc<dyn KvStore>,
                    Backend::Redis(Box::new(redis)),
                )
            }
        };
        let ttl = Duration::from_secs(config.dedup_ttl_secs);
        let dedup =
            MemoryDedup::persistent(ttl, Arc::clone(&facts)).context("loading dedup facts")?;
        let local_signatures = MemorySignatureLog::persistent(Arc::clone(&facts))
            .context("loading signature bindings")?;
        let floor = WindowFloor::new(config.timestamp_skew_secs, ttl, Some(facts))
            .context("reading the replay floor")?;
        if config.timestamp_skew_secs == 0 {
            tracing::warn!(
                "timestamp_skew_secs = 0 turns the replay window off: a captured push replayed after dedup_ttl_secs runs again"
            );
        }
        let runtime = Arc::new(Runtime::new(
            config.runtime.clone(),
            Some(config.cache_dir.clone()),
        )?);
        let registry = Arc::new(Registry::new(runtime, config.plugins_dir.clone()));
        registry.scan().await;
        let metrics = Arc::new(Metrics::default());
        // On Redis, pushes are admitted for every node, the node's own gate the fallback.
        let local_gate = LocalGate::new(local_signatures, dedup.count_evictions_in(&metrics));
        let gate: Arc<dyn Gate> = match &backend {
            Backend::Embedded => Arc::new(local_gate),
            Backend::Redis(redis) => Arc::new(RedisGate::new(
                RedisKv::clone(redis),
                local_gate,
                Arc::clone(&metrics),
                ttl,
            )),
        };
        let services = Services {
            api: Arc::new(ApiClient::new(
                Arc::clone(&kv),
                Arc::clone(&metrics),
                Duration::from_millis(config.api_timeout_ms),
            )?),
            http: crate::http_client::PluginClients::new()?,
            kv: Arc::clone(&kv),
            metrics: Arc::clone(&metrics),
        };
        let tenants = Arc::new(TenantsHandle::new(Tenants::from_config(
            &config, &services,
        )?));
        apply_weights(&config, &registry);
        warn_missing_plugins(&config, &registry);

        let dispatcher = Arc::new(Dispatcher {
            tenants: Arc::clone(&tenants),
            registry: Arc::clone(&registry),
            gate,
            floor: Arc::new(floor),
            metrics: Arc::clone(&metrics),
            durable: Arc::clone(&embedded),
            // Kept late replies live where plugin kv does: shared by every node on Redis.
            late: Arc::new(LateReplies::new(Arc::clone(&kv), Arc::clone(&metrics))),
            passive_budget: Duration::from_millis(config.passive_budget_ms),
            async_budget: Duration::from_millis(config.async_budget_ms),
            tasks: TaskTracker::new(),
        });
        Ok(App {
            config,
            state: AppState {
                dispatcher,
                metrics,
                storage: backend,
            },
            kv,
            embedded,
            services,
            registry,
            tenants,
        })
    }
}

/// Gives each tenant its configured share of the call slots.
fn apply_weights(config: &Config, registry: &Registry) {
    registry
        .runtime()
        .slots()
        .set_weights(config.tenants.iter().map(|t| (t.id.clone(), t.weight)));
}

/// Samples each tenant's calls in flight and queued into the metrics every second.
async fn sample_call_slots(
    app_tenants: Arc<TenantsHandle>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        for tenant in app_tenants.load().ids() {
            let usage = registry.runtime().slots().usage(&tenant);
            metrics.tenant_calls(&tenant, usage.in_flight, usage.queued);
        }
    }
}

fn warn_missing_plugins(config: &Config, registry: &Registry) {
    for tenant in &config.tenants {
        for entry in &tenant.plugins {
            if registry.get(&entry.name).is_none() {
                tracing::warn!(
                    tenant = %tenant.id,
                    plugin = %entry.name,
                    dir = %registry.dir().display(),
                    "plugin in the chain is not in the plugins folder (yet); it is skipped until it is"
                );
            }
        }
    }
}

/// Serves the config at `config_path` on `listener` until `shutdown` resolves, then stops
/// accepting, finishes the requests in flight (within `[http] shutdown_grace_ms`) and late
/// replies (within the async budget), and flushes storage.
pub async fn run(
    config_path: PathBuf,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = App::build(&config_path).await?;
    let tenant_ids = app.tenants.load().ids();
    tracing::info!(
        addr = %listener.local_addr()?,
        tenants = ?tenant_ids,
        plugins = ?app.registry.names(),
        "wxhost serving"
    );

    let stop = CancellationToken::new();
    let background = TaskTracker::new();
    background.spawn(sync_menus(app.tenants.load(), |_| true));
    background.spawn(Arc::clone(&app.registry).watch(PLUGIN_SCAN, stop.clone().cancelled_owned()));
    background.spawn(watch_config(
        config_path,
        app.config.clone(),
        Arc::clone(&app.tenants),
        app.services.clone(),
        Arc::clone(&app.registry),
        Arc::clone(&app.state.dispatcher.floor),
        stop.clone(),
    ));
    background.spawn(watch_storage(
        Arc::clone(&app.embedded),
        Arc::clone(&app.state.metrics),
        stop.clone(),
    ));
    if let Backend::Redis(redis) = &app.state.storage {
        background.spawn(watch_redis(
            RedisKv::clone(redis),
            Arc::clone(&app.state.metrics),
            stop.clone(),
        ));
    }
    background.spawn(purge_dedup(Arc::clone(&app.state.dispatcher), stop.clone()));
    background.spawn(sample_call_slots(
        Arc::clone(&app.tenants),
        Arc::clone(&app.registry),
        Arc::clone(&app.state.metrics),
        stop.clone(),
    ));

    crate::http::listener::serve(
        listener,
        router(app.state.clone()),
        &app.config.http,
        app.state.metrics.http(),
        shutdown,
    )
    .await;

    tracing::info!("shutting down: finishing late replies");
    let late = &app.state.dispatcher.tasks;
    late.close();
    let budget = app.state.dispatcher.async_budget;
    if tokio::time::timeout(budget, late.wait()).await.is_err() {
        tracing::warn!("late replies still running at shutdown were dropped");
    }
    stop.cancel();
    background.close();
    background.wait().await;
    let embedded = Arc::clone(&app.embedded);
    let flushed = tokio::task::spawn_blocking(move || embedded.flush())
        .await
        .context("flushing plugin storage")?;
    flushed.context("flushing plugin storage: the last writes are not durable")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Syncs the menus of the `tenants` that `which` picks, one tenant after another.
async fn sync_menus(tenants: Arc<Tenants>, which: impl Fn(&Tenant) -> bool + Send) {
    for id in tenants.ids() {
        if let Some(tenant) = tenants.get(&id)
            && which(&tenant)
        {
            crate::menu::sync_logged(&tenant).await;
        }
    }
}

/// The config file's identity between checks.
fn stamp(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

/// Reloads the tenants when the config file changes; an invalid file is refused with a log
/// line and the previous tenants keep serving.
async fn watch_config(
    path: PathBuf,
    running: Config,
    tenants: Arc<TenantsHandle>,
    services: Services,
    registry: Arc<Registry>,
    floor: Arc<WindowFloor>,
    stop: CancellationToken,
) {
    let mut last = stamp(&path);
    let mut ticker = tokio::time::interval(CONFIG_SCAN);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        let config = match Config::load(&path) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!("config change refused, the previous config keeps serving: {e}");
                continue;
            }
        };
        match Tenants::from_config(&config, &services) {
            Ok(new) => {
                tracing::info!(tenants = ?new.ids(), "config reloaded");
                floor.set_window(config.timestamp_skew_secs);
                apply_weights(&config, &registry);
                let old = tenants.load();
                tenants.store(new);
                // Only the menus the change touched are read back and set.
                tokio::spawn(sync_menus(tenants.load(), move |t: &Tenant| {
                    old.get(&t.id).is_none_or(|before| before.menu != t.menu)
                }));
                warn_missing_plugins(&config, &registry);
            }
            Err(e) => {
                tracing::error!("config change refused, the previous config keeps serving: {e:#}");
                continue;
            }
        }
        let restart_only = [
            ("listen", running.listen != config.listen),
            ("plugins_dir", running.plugins_dir != config.plugins_dir),
            ("data_dir", running.data_dir != config.data_dir),
            ("cache_dir", running.cache_dir != config.cache_dir),
            ("runtime", running.runtime != config.runtime),
            ("http", running.http != config.http),
            (
                "passive_budget_ms",
                running.passive_budget_ms != config.passive_budget_ms,
            ),
            (
                "async_budget_ms",
                running.async_budget_ms != config.async_budget_ms,
            ),
            (
                "dedup_ttl_secs",
                running.dedup_ttl_secs != config.dedup_ttl_secs,
            ),
        ];
        for (key, changed) in restart_only {
            if changed {
                tracing::warn!(
                    key,
                    "this setting changed but takes effect only after a restart"
                );
            }
        }
    }
}

/// Reports plugin storage to the metrics every second (commits, failures, writes pending) and
/// drops expired entries every minute. Commits are the store's own: `RedbKv` makes writes
/// durable when a push syncs and every second, and logs when it cannot.
/// Reports the Redis store's counters to the metrics every second.
async fn watch_redis(redis: RedisKv, metrics: Arc<Metrics>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(STORAGE_REPORT);
    let mut last = (0, 0, 0);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        let stats = redis.redis_stats();
        let now = (
            stats.commands.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
            stats.micros.load(Ordering::Relaxed),
        );
        metrics.redis(
            now.0.saturating_sub(last.0),
            now.1.saturating_sub(last.1),
            now.2.saturating_sub(last.2) as f64 / 1e6,
        );
        last = now;
    }
}

async fn watch_storage(kv: Arc<dyn KvStore>, metrics: Arc<Metrics>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(STORAGE_REPORT);
    let mut last = StorageStats::default();
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        ticks += 1;
        let now = kv.stats();
        metrics.storage(&storage_report(&last, &now));
        last = now;
        if ticks.is_multiple_of(60) {
            let kv = Arc::clone(&kv);
            match tokio::task::spawn_blocking(move || kv.purge_expired()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("plugin storage purge failed: {e}"),
                Err(e) => tracing::error!("plugin storage purge panicked: {e}"),
            }
        }
    }
}

/// What the store did between two snapshots of its counters.
fn storage_report(before: &StorageStats, now: &StorageStats) -> StorageReport {
    let delta = |f: fn(&StorageStats) -> u64| f(now).saturating_sub(f(before));
    StorageReport {
        commits: delta(|s| s.commits),
        committed_writes: delta(|s| s.committed_writes),
        commit_seconds: delta(|s| s.commit_micros) as f64 / 1e6,
        failed_commits: delta(|s| s.failed_commits),
        refused_writes: delta(|s| s.refused_writes),
        purged: delta(|s| s.purged),
        pending: now.pending,
        failing: now.failing.is_some(),
    }
}

/// Forgets answers past their TTL, and facts and signature bindings past their windows, every
/// ten seconds.
async fn purge_dedup(dispatcher: Arc<Dispatcher>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                dispatcher.gate.purge();
            }
            () = stop.cancelled() => return,
        }
    }
}
