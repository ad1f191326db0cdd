//! [`RedisKv`]: plugin kv, and the host's own keys (access tokens and their fetch locks), in a
//! Redis server that several hosts share.
//!
//! Each namespace (tenant and plugin) is a handful of keys sharing one hash slot (the
//! namespace is their hash tag), so every operation is one round trip: a read is an `HMGET`,
//! a write is one Lua script that also keeps the namespace's quota accounting, atomically with
//! the write on every host:
//!
//! - `P kv:{tenant NUL plugin}:e:KEY`, a hash: `v` the value, `x` its expiry (ms since the Unix
//!   epoch by the writing host's clock, `0` for none). Its Redis TTL is the entry's TTL plus
//!   [`EXPIRY_GRACE`], so Redis forgets it by itself; liveness is judged by `x`.
//! - `P kv:{…}:s`, a hash: live key → bytes charged (key + value), i.e. what the namespace holds;
//! - `P kv:{…}:i`, a sorted set: key → expiry, for the keys with a TTL;
//! - `P kv:{…}:b`: the bytes charged in total.
//!
//! Every script first forgets the namespace's entries whose expiry has passed (from the sorted
//! set, oldest first), so what expires stops counting without any scan. Times come from the
//! host calling, so hosts' clocks must agree (NTP) to within the precision TTLs need.
//!
//! Durability is the server's: a write is acknowledged once Redis has applied it, and survives
//! a crash of Redis as far as its persistence settings say (`appendonly yes` with
//! `appendfsync always` loses nothing acknowledged; see the README). Every command is bounded
//! by the configured timeout; a server that cannot be reached makes operations fail with
//! [`Error::Backend`] (a plugin sees `unavailable`), never wait longer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::{
    Clock, Error, KvFuture, KvStore, KvUsage, Namespace, Quota, QuotaLimit, Result, SyncFuture,
    system_clock,
};

/// How much longer than its TTL Redis keeps an entry: room for the hosts' clocks to differ
/// from the server's.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(60);

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`, `unix://`).
    pub url: String,
    /// Put before every key (e.g. `wxhost:`), so one server can hold several deployments.
    pub prefix: String,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for any command's answer; past it the operation fails.
    pub command_timeout: Duration,
}

/// What the store has seen since it started, for metrics.
#[derive(Debug, Default)]
pub struct RedisStats {
    /// Commands sent (a script counts once).
    pub commands: AtomicU64,
    /// Commands that failed or timed out.
    pub errors: AtomicU64,
    /// Time spent waiting for answers, in microseconds.
    pub micros: AtomicU64,
}

/// A [`KvStore`] in Redis. Cloning shares the connection.
#[derive(Clone)]
pub struct RedisKv {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: Arc<[u8]>,
    connect_timeout: Duration,
    timeout: Duration,
    clock: Clock,
    stats: Arc<RedisStats>,
}

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The accounting every write script shares: `trim()` forgets what expired by `now`;
/// `put(key, value, expiry, ttl_px)` and `remove(key)` write one entry and keep the totals.
/// `KEYS`: sizes, index, bytes. `ARGV[1]`: the entry key prefix, `ARGV[2]`: now (ms).
const ACCOUNTING: &str = r"
local sizes, index, bytes_key = KEYS[1], KEYS[2], KEYS[3]
local entries, now = ARGV[1], tonumber(ARGV[2])
local function held_bytes() return tonumber(redis.call('GET', bytes_key) or '0') end
local function trim()
  while true do
    local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, 256)
    if #gone == 0 then return end
    local freed = 0
    for _, key in ipairs(gone) do
      freed = freed + tonumber(redis.call('HGET', sizes, key) or '0')
      redis.call('HDEL', sizes, key)
      redis.call('ZREM', index, key)
      redis.call('DEL', entries .. key)
    end
    redis.call('DECRBY', bytes_key, freed)
  end
end
local function charged(key) return tonumber(redis.call('HGET', sizes, key) or '-1') end
local function remove(key)
  local old = charged(key)
  redis.call('DEL', entries .. key)
  if old < 0 then return false end
  redis.call('HDEL', sizes, key)
  redis.call('ZREM', index, key)
  redis.call('DECRBY', bytes_key, old)
  return true
end
-- The refusal of a write charging `new_size` for `key` (held now: `old`, -1 if none), or nil.
local function refusal(key, old, new_size, max_keys, max_bytes)
  if old < 0 and redis.call('HLEN', sizes) >= max_keys then
    return {'keys', redis.call('HLEN', sizes), 1}
  end
  local grows = new_size - math.max(old, 0)
  if grows > 0 and held_bytes() + grows > max_bytes then
    return {'bytes', held_bytes(), grows}
  end
  return nil
end
local function put(key, value, expiry, ttl_px)
  local old = math.max(charged(key), 0)
  local new_size = #key + #value
  redis.call('DEL', entries .. key)
  redis.call('HSET', entries .. key, 'v', value, 'x', expiry)
  if ttl_px ~= '0' then redis.call('PEXPIRE', entries .. key, ttl_px) end
  redis.call('HSET', sizes, key, new_size)
  if expiry ~= '0' then redis.call('ZADD', index, expiry, key) else redis.call('ZREM', index, key) end
  redis.call('INCRBY', bytes_key, new_size - old)
end
-- The namespace's own keys live as long as its entries: gone with the last one, kept while one
-- has no TTL, else until the last expiry (plus the grace), so an abandoned namespace leaves
-- nothing behind.
local function settle()
  local held = redis.call('HLEN', sizes)
  if held == 0 then
    redis.call('DEL', sizes, index, bytes_key)
  elseif redis.call('ZCARD', index) < held then
    redis.call('PERSIST', sizes)
    redis.call('PERSIST', index)
    redis.call('PERSIST', bytes_key)
  else
    local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
    local keep = math.max(tonumber(last[2]) - now, 0) + tonumber(ARGV_GRACE)
    for _, key in ipairs({sizes, index, bytes_key}) do redis.call('PEXPIRE', key, keep) end
  end
end
local function live_value(key)
  if charged(key) < 0 then return false end
  return redis.call('HGET', entries .. key, 'v')
end
trim()
";

/// `ARGV[3..]`: key, value, expiry, ttl_px, max_keys, max_bytes.
const SET: &str = r"
local key, value, expiry, ttl_px = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if expiry ~= '0' and tonumber(expiry) <= now then
  remove(key)
  return {'ok'}
end
local no = refusal(key, charged(key), #key + #value, tonumber(ARGV[7]), tonumber(ARGV[8]))
if no then return no end
put(key, value, expiry, ttl_px)
return {'ok'}
";

/// `ARGV[3..]`: key, delta, max_keys, max_bytes. Parses the counter as Rust's
/// `str::trim().parse::<i64>()` does (ASCII whitespace, a sign, leading zeros) and adds with
/// `HINCRBY`, which is exact and refuses to overflow.
const INCREMENT: &str = r"
local key, delta = ARGV[3], ARGV[4]
local entry = entries .. key
local old = charged(key)
local current = live_value(key)
if not current then current = '0' end
local sign, digits = string.match(current, '^%s*([+-]?)(%d+)%s*$')
if not digits then return {'nan'} end
digits = string.gsub(digits, '^0+', '')
if digits == '' then digits = '0' end
if #digits > 19 then return {'nan'} end
if sign == '+' or digits == '0' then sign = '' end
local restore = redis.call('HGET', entry, 'v')
if old >= 0 and not restore then
  remove(key)
  old = -1
end
if old < 0 then
  redis.call('DEL', entry)
  redis.call('HSET', entry, 'x', '0')
end
redis.call('HSET', entry, 'v', sign .. digits)
local added = redis.pcall('HINCRBY', entry, 'v', delta)
local function undo()
  if old < 0 then redis.call('DEL', entry) else redis.call('HSET', entry, 'v', restore) end
end
if type(added) == 'table' and added.err then
  undo()
  if string.find(added.err, 'overflow') then return {'overflow'} end
  return {'nan'}
end
local value = redis.call('HGET', entry, 'v')
local no = refusal(key, old, #key + #value, tonumber(ARGV[5]), tonumber(ARGV[6]))
if no then
  undo()
  return no
end
redis.call('HSET', sizes, key, #key + #value)
redis.call('INCRBY', bytes_key, #key + #value - math.max(old, 0))
return {'ok', value}
";

/// `ARGV[3]`: key.
const DELETE: &str = r"
if remove(ARGV[3]) then return {'ok', 1} end
return {'ok', 0}
";

/// `ARGV[3..]`: key, has_expected, expected, has_new, value, expiry, ttl_px.
const COMPARE_AND_SWAP: &str = r"
local key = ARGV[3]
local current = live_value(key)
if ARGV[4] == '1' then
  if current ~= ARGV[5] then return {'ok', 0} end
elseif current then
  return {'ok', 0}
end
if ARGV[6] == '1' then
  if ARGV[8] ~= '0' and tonumber(ARGV[8]) <= now then remove(key) else put(key, ARGV[7], ARGV[8], ARGV[9]) end
else
  remove(key)
end
return {'ok', 1}
";

/// No further arguments.
const USAGE: &str = r"
return {'ok', redis.call('HLEN', sizes), held_bytes()}
";

/// The scripts, compiled (hashed) once per process.
struct Scripts {
    set: Script,
    increment: Script,
    delete: Script,
    compare_and_swap: Script,
    usage: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| {
        // Each body runs as a function so that `settle` follows whichever way it returns.
        let grace = EXPIRY_GRACE.as_millis();
        let script = |body: &str| {
            Script::new(&format!(
                "local ARGV_GRACE = '{grace}'\n{ACCOUNTING}local function run()\n{body}\nend\n\
                 local answer = run()\nsettle()\nreturn answer\n"
            ))
        };
        Scripts {
            set: script(SET),
            increment: script(INCREMENT),
            delete: script(DELETE),
            compare_and_swap: script(COMPARE_AND_SWAP),
            usage: script(USAGE),
        }
    })
}

/// An entry's expiry and the TTL Redis keeps it for, as the scripts take them.
fn expiry_args(ttl: Option<Duration>, now_ms: u64) -> (String, String) {
    match ttl {
        None => ("0".into(), "0".into()),
        Some(ttl) => {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            let expiry = now_ms.saturating_add(ms).max(1);
            let keep = ms.saturating_add(EXPIRY_GRACE.as_millis() as u64).max(1);
            (expiry.to_string(), keep.to_string())
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("redis: {e}"))
}

/// A script's answer: `{'ok', …}`, `{'nan'}`, `{'overflow'}` or `{'keys'|'bytes', held, adds}`.
fn parse_answer(value: Value, quota: Quota) -> Result<Vec<Value>> {
    let Value::Array(mut items) = value else {
        return Err(unavailable(format!("unexpected answer {value:?}")));
    };
    let tag = match items.first() {
        Some(Value::BulkString(tag)) => tag.clone(),
        Some(Value::SimpleString(tag)) => tag.clone().into_bytes(),
        other => return Err(unavailable(format!("unexpected answer {other:?}"))),
    };
    let number = |items: &[Value], i: usize| match items.get(i) {
        Some(Value::Int(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
        other => Err(unavailable(format!("unexpected number {other:?}"))),
    };
    match tag.as_slice() {
        b"ok" => {
            items.remove(0);
            Ok(items)
        }
        b"nan" => Err(Error::NotANumber),
        b"overflow" => Err(Error::Overflow),
        b"keys" => Err(Error::QuotaExceeded {
            limit: QuotaLimit::Keys,
            held: number(&items, 1)?,
            adds: number(&items, 2)?,
            max: quota.max_keys,
        }),
        b"bytes" => Err(Error::QuotaExceeded {
            limit: QuotaLimit::Bytes,
            held: number(&items, 1)?,
            adds: number(&items, 2)?,
            max: quota.max_bytes,
        }),
        other => Err(unavailable(format!(
            "unexpected answer {}",
            String::from_utf8_lossy(other)
        ))),
    }
}

fn int_at(items: &[Value], i: usize) -> Result<i64> {
    match items.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        other => Err(unavailable(format!("unexpected number {other:?}"))),
    }
}

impl RedisKv {
    /// A store on the server at `settings.url`. Connects lazily: the host starts while Redis
    /// is down, and its operations fail (within the timeout) until Redis is back.
    pub fn connect(settings: &RedisSettings) -> Result<Self> {
        Self::connect_with(settings, system_clock())
    }

    pub(crate) fn connect_with(settings: &RedisSettings, clock: Clock) -> Result<Self> {
        if settings.prefix.contains(['{', '}']) {
            return Err(Error::Backend(format!(
                "the redis key prefix {:?} may not contain braces (namespaces are hash tags)",
                settings.prefix
            )));
        }
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| Error::Backend(format!("invalid redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(settings.connect_timeout);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| Error::Backend(format!("cannot set up the redis connection: {e}")))?;
        Ok(RedisKv {
            client,
            connection,
            prefix: settings.prefix.as_bytes().into(),
            connect_timeout: settings.connect_timeout,
            timeout: settings.command_timeout,
            clock,
            stats: Arc::default(),
        })
    }

    /// Counters of the commands sent so far.
    pub fn redis_stats(&self) -> &RedisStats {
        &self.stats
    }

    /// Sends `PING`: whether the server answers within the timeout.
    pub async fn ping(&self) -> Result<()> {
        let mut connection = self.connection.clone();
        self.timed(async move { redis::cmd("PING").query_async::<()>(&mut connection).await })
            .await
    }

    /// `prefix ‖ parts…`: a key of the host's own beside the kv namespaces.
    pub fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = self.prefix.to_vec();
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    /// Sends `command` within the timeout, counted in [`RedisKv::redis_stats`].
    pub async fn query<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T> {
        let mut connection = self.connection.clone();
        self.timed(async move { command.query_async::<T>(&mut connection).await })
            .await
    }

    /// Runs `script` on `keys` with `args` within the timeout, counted as one command.
    pub async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<T> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection.clone();
        self.timed(async move { invocation.invoke_async::<T>(&mut connection).await })
            .await
    }

    /// A connection of its own subscribed to `channel` (within the connect timeout): the
    /// messages published on it from now on, until the connection is lost.
    pub async fn subscribe(&self, channel: &[u8]) -> Result<redis::aio::PubSubStream> {
        let subscribed = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        match tokio::time::timeout(self.connect_timeout, subscribed).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(unavailable(format!(
                "no subscription within {} ms",
                self.connect_timeout.as_millis()
            ))),
        }
    }

    /// `P kv:{tenant NUL plugin}:` — the start of every key of `ns`.
    fn base(&self, ns: &Namespace) -> Vec<u8> {
        let mut base = self.prefix.to_vec();
        base.extend_from_slice(b"kv:{");
        base.extend_from_slice(ns.tenant().as_bytes());
        base.push(0);
        base.extend_from_slice(ns.plugin().as_bytes());
        base.extend_from_slice(b"}:");
        base
    }

    fn entry_key(base: &[u8], key: &str) -> Vec<u8> {
        let mut entry = Vec::with_capacity(base.len() + 2 + key.len());
        entry.extend_from_slice(base);
        entry.extend_from_slice(b"e:");
        entry.extend_from_slice(key.as_bytes());
        entry
    }

    /// Runs `command` within the timeout, counting it.
    async fn timed<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        let stats = &self.stats;
        stats.commands.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.micros.fetch_add(micros, Ordering::Relaxed);
        if result.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Runs one of the accounting scripts on `ns` with `args` after the common ones.
    async fn script(
        &self,
        script: &Script,
        ns: &Namespace,
        args: &[&[u8]],
        quota: Quota,
    ) -> Result<Vec<Value>> {
        let base = self.base(ns);
        let key = |suffix: &[u8]| [base.as_slice(), suffix].concat();
        let mut invocation = script.prepare_invoke();
        invocation
            .key(key(b"s"))
            .key(key(b"i"))
            .key(key(b"b"))
            .arg(key(b"e:"))
            .arg((self.clock)().to_string());
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection.clone();
        let answer = self
            .timed(async move { invocation.invoke_async::<Value>(&mut connection).await })
            .await?;
        parse_answer(answer, quota)
    }
}

impl KvStore for RedisKv {
    fn get<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let entry = Self::entry_key(&self.base(ns), key);
            let mut connection = self.connection.clone();
            let (value, expiry) = self
                .timed(async move {
                    redis::cmd("HMGET")
                        .arg(entry)
                        .arg("v")
                        .arg("x")
                        .query_async::<(Option<Vec<u8>>, Option<String>)>(&mut connection)
                        .await
                })
                .await?;
            let expiry: u64 = match expiry.as_deref().map(str::parse) {
                None => return Ok(None),
                Some(Ok(expiry)) => expiry,
                Some(Err(_)) => return Err(unavailable("an entry with an unreadable expiry")),
            };
            Ok(value.filter(|_| expiry == 0 || expiry > (self.clock)()))
        })
    }

    fn set_within<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
        quota: Quota,
    ) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let (expiry, keep) = expiry_args(ttl, (self.clock)());
            let (max_keys, max_bytes) = (quota.max_keys.to_string(), quota.max_bytes.to_string());
            let args: [&[u8]; 6] = [
                key.as_bytes(),
                value,
                expiry.as_bytes(),
                keep.as_bytes(),
                max_keys.as_bytes(),
                max_bytes.as_bytes(),
            ];
            self.script(&scripts().set, ns, &args, quota).await?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> KvFuture<'a, bool> {
        Box::pin(async move {
            let answer = self
                .script(&scripts().delete, ns, &[key.as_bytes()], Quota::UNLIMITED)
                .await?;
            Ok(int_at(&answer, 0)? == 1)
        })
    }

    fn increment_within<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        delta: i64,
        quota: Quota,
    ) -> KvFuture<'a, i64> {
        Box::pin(async move {
            let delta = delta.to_string();
            let (max_keys, max_bytes) = (quota.max_keys.to_string(), quota.max_bytes.to_string());
            let args: [&[u8]; 4] = [
                key.as_bytes(),
                delta.as_bytes(),
                max_keys.as_bytes(),
                max_bytes.as_bytes(),
            ];
            let answer = self.script(&scripts().increment, ns, &args, quota).await?;
            match answer.first() {
                Some(Value::BulkString(value)) => std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| unavailable("an unreadable counter")),
                other => Err(unavailable(format!("unexpected counter {other:?}"))),
            }
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<(&'a [u8], Option<Duration>)>,
    ) -> KvFuture<'a, bool> {
        Box::pin(async move {
            let (expiry, keep) = expiry_args(new.and_then(|(_, ttl)| ttl), (self.clock)());
            let flag = |b: bool| if b { &b"1"[..] } else { &b"0"[..] };
            let args: [&[u8]; 7] = [
                key.as_bytes(),
                flag(expected.is_some()),
                expected.unwrap_or_default(),
                flag(new.is_some()),
                new.map_or(&[][..], |(value, _)| value),
                expiry.as_bytes(),
                keep.as_bytes(),
            ];
            let answer = self
                .script(&scripts().compare_and_swap, ns, &args, Quota::UNLIMITED)
                .await?;
            Ok(int_at(&answer, 0)? == 1)
        })
    }

    fn usage<'a>(&'a self, ns: &'a Namespace) -> KvFuture<'a, KvUsage> {
        Box::pin(async move {
            let answer = self
                .script(&scripts().usage, ns, &[], Quota::UNLIMITED)
                .await?;
            let count = |i| int_at(&answer, i).map(|n| u64::try_from(n).unwrap_or(0));
            Ok(KvUsage {
                keys: count(0)?,
                bytes: count(1)?,
            })
        })
    }

    /// Ready at once: a write returns once Redis has applied it, and what Redis keeps across
    /// its own crash is its persistence settings' business.
    fn sync(&self) -> SyncFuture {
        Box::pin(std::future::ready(Ok(())))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Nothing to do: Redis expires entries by itself and each write forgets its namespace's
    /// expired ones.
    fn purge_expired(&self) -> Result<usize> {
        Ok(0)
    }
}

/// A store on the test server at `url`, keys under `prefix`, with 500 ms timeouts.
#[cfg(test)]
pub(crate) fn test_store(url: &str, prefix: &str, clock: Clock) -> RedisKv {
    let settings = RedisSettings {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
    };
    RedisKv::connect_with(&settings, clock).expect("connect")
}

#[cfg(test)]
mod tests;
