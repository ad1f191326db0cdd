//! Retry and replay deduplication: WeChat retries a push it got no answer to within 5 s (three
//! attempts in all), and anyone holding a captured push may replay it while its timestamp is
//! inside the window. A retry of a finished message gets the first answer again; a retry while
//! the first is still running waits for the same answer instead of running the plugins again;
//! a replay after the answer is no longer kept is recognised and not run.
//!
//! A push passes the [`Gate`] before it runs: its signed query is bound to its body and its key
//! registered, in one call. An entry belongs to the chain that runs the push, not to the
//! request: its [`Claim`] is held by whoever drives the chain to its end. Answers are kept for the retry TTL, the time in
//! which WeChat retries; with a [`FactStore`] the fact that a key was answered persists for the
//! same time, so a retry after a restart is not run again either (answered without a reply).
//! Replays later in the window are the signature log's: a replay is the same signed query and
//! body, which it remembers for as long as the window accepts them.
//!
//! # Bounds
//!
//! The table holds every push of the last TTL, so its memory is bounded twice
//! ([`DedupLimits`]), each of its 16 shards holding a sixteenth (keys spread evenly: they are a
//! keyed hash):
//!
//! - **Answer bytes** (default 64 MiB): past the bound, the oldest answers are dropped early
//!   and their entries kept, as answered: a retry of one of those gets `success`/empty
//!   ([`Begin::Seen`]) and is never run again. The oldest answers are the ones least likely to
//!   be asked for (WeChat retries within about 15 s), and running a push twice is worse than
//!   answering its late retry without a reply (the user already had the first answer, or
//!   missed it either way).
//! - **Entries** (default 1,000,000, about 100 MB): past the bound, the oldest answered entries
//!   are forgotten early (entries still running never are). At the default and a 60 s TTL that
//!   starts above 16,000 pushes a second; an entry is then forgotten no sooner than 15 s after
//!   its answer (past WeChat's retries) below 66,000 a second. While entries go early,
//!   [`MemoryDedup::retry_ttl`] says for how long answers are kept now (the youngest age
//!   forgotten), so a push whose signed query the signature log knows and which is older than
//!   that is taken for a replay and not run again; a retry that comes with another signed
//!   query after its entry went is run again, the one case where the bound costs the
//!   at-most-once rule.
//!
//! Both count in `wxhost_dedup_evictions{reason}` ([`MemoryDedup::count_evictions_in`]).
//!
//! Keys: (tenant, MsgId) for messages; (tenant, FromUserName, CreateTime, Event, EventKey,
//! MsgID when present) for events. [`MemoryDedup`] serves one node, with
//! [`MemorySignatureLog`] in a [`LocalGate`]; [`RedisGate`] serves several nodes from Redis and
//! passes the same contract tests.
//!
//! `signatures` binds each accepted signed query to its body for the window, so a captured
//! query cannot carry another body.

mod gate;
mod shared;
mod signatures;

pub use gate::{Admission, Admit, AdmitFuture, AnswerFuture, Claim, Gate, LocalGate};
pub use shared::{Lease, RedisGate};
pub use signatures::{Binding, MemorySignatureLog};

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::unix_now;
use crate::storage::{self, Fact, FactStore};
use crate::telemetry::{DedupEvictions, Metrics};
use crate::wechat::{Content, Message, Reply};

/// The answer decided for a message: the passive reply, or none (`success`/empty).
pub type Answer = Option<Reply>;

/// The dedup key of `msg` pushed to `tenant`, or `None` when it carries nothing to key on.
pub fn key(tenant: &str, msg: &Message) -> Option<String> {
    match (&msg.content, msg.msg_id) {
        // Events that carry an id spell it `MsgID` (template and mass send results).
        (Content::Event(_), _) => Some(format!(
            "{tenant}\u{0}e\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            msg.from_user,
            msg.create_time,
            msg.event_name().unwrap_or_default(),
            msg.field("EventKey").unwrap_or_default(),
            msg.field("MsgID")
                .or(msg.field("MsgId"))
                .unwrap_or_default(),
        )),
        (_, Some(id)) => Some(format!("{tenant}\u{0}m\u{0}{id}")),
        (_, None) => None,
    }
}

/// What [`MemoryDedup::begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// First sight: run the plugins, then [`Pending::finish`] with the answer.
    New(Pending),
    /// Another request is running this message: wait for its answer.
    InFlight(watch::Receiver<Option<Arc<Answer>>>),
    /// Already answered, within the retry TTL: answer the same.
    Done(Answer),
    /// Answered within the retry TTL, before this process started (answers are not kept
    /// across restarts) or with its answer dropped early to keep the table within its
    /// [`DedupLimits`]: answer without a reply, run nothing.
    Seen,
}

/// The right (and duty) to answer a new message; dropping it unanswered forgets the message
/// so a retry runs it again (only a chain that panicked does that).
#[derive(Debug)]
pub struct Pending {
    key: u128,
    table: Arc<Table>,
    persisted: bool,
    finished: bool,
}

impl Pending {
    /// Queues the fact that this push was answered for the fact store (once), so that a
    /// commit made before the answer leaves covers it; [`Pending::finish`] does it otherwise.
    pub fn persist(&mut self) {
        if !self.persisted {
            self.persisted = true;
            let until = self.table.now().saturating_add(self.table.ttl_ms);
            self.table.persist(self.key, until);
        }
    }

    /// Records (a copy of) the answer and wakes every waiting retry.
    pub fn finish(mut self, answer: &Answer) {
        self.persist();
        self.finished = true;
        let table = &self.table;
        let now = table.now();
        let until = now.saturating_add(table.ttl_ms);
        let kept = Kept::of(answer);
        let has_bytes = kept.bytes() > 0;
        let mut shard = table.shard(self.key);
        let previous = shard.insert(
            self.key,
            Slot::Done {
                answer: kept,
                until,
            },
        );
        shard.expiry.push_back((until, self.key));
        if has_bytes {
            shard.answers.push_back((until, self.key));
        }
        shard.expire(now, PURGE_PER_BEGIN);
        shard.drop_answers_over(table.shard_limits.max_answer_bytes, &table.evictions);
        drop(shard);
        if let Some(Slot::InFlight(Some(waiters))) = previous {
            waiters.send_replace(Some(Arc::new(answer.clone())));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.finished {
            // Waiting retries see their sender go and give up; a later retry runs again.
            let removed = self.table.shard(self.key).remove(self.key);
            drop(removed);
        }
    }
}

/// A message seen recently.
#[derive(Debug)]
enum Slot {
    /// Running; the sender exists once a retry waits for the answer.
    InFlight(Option<watch::Sender<Option<Arc<Answer>>>>),
    /// Answered; the answer is replayed until `until`.
    Done { answer: Kept, until: Millis },
    /// Answered before this process started; recognised until `until`.
    Seen { until: Millis },
}

impl Slot {
    /// Bytes of the answer it keeps.
    fn bytes(&self) -> usize {
        match self {
            Slot::Done { answer, .. } => answer.bytes(),
            Slot::InFlight(_) | Slot::Seen { .. } => 0,
        }
    }
}

/// An answer as the table keeps it for replay: a text reply (nearly every reply) in one
/// allocation of its exact size. The table grows by every message for a TTL, so its entries
/// are kept small.
#[derive(Debug)]
enum Kept {
    Nothing,
    Text(Box<str>),
    Other(Box<Reply>),
}

impl Kept {
    fn of(answer: &Answer) -> Kept {
        match answer {
            None => Kept::Nothing,
            Some(Reply::Text { content }) => Kept::Text(content.as_str().into()),
            Some(reply) => Kept::Other(Box::new(reply.clone())),
        }
    }

    fn answer(&self) -> Answer {
        match self {
            Kept::Nothing => None,
            Kept::Text(content) => Some(Reply::text(&**content)),
            Kept::Other(reply) => Some(Reply::clone(reply)),
        }
    }

    /// The heap bytes it holds (what the answer-bytes bound counts).
    fn bytes(&self) -> usize {
        match self {
            Kept::Nothing => 0,
            Kept::Text(content) => content.len(),
            Kept::Other(reply) => size_of::<Reply>() + reply_heap_bytes(reply),
        }
    }
}

/// The bytes a reply's strings and articles hold (their lengths: what a clone allocates).
fn reply_heap_bytes(reply: &Reply) -> usize {
    match reply {
        Reply::Text { content } => content.len(),
        Reply::Image { media_id } | Reply::Voice { media_id } => media_id.len(),
        Reply::Video {
            media_id,
            title,
            description,
        } => media_id.len() + title.len() + description.len(),
        Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => {
            title.len()
                + description.len()
                + music_url.len()
                + hq_music_url.len()
                + thumb_media_id.len()
        }
        Reply::News { articles } => articles
            .iter()
            .map(|a| {
                size_of_val(a) + a.title.len() + a.description.len() + a.pic_url.len() + a.url.len()
            })
            .sum(),
        Reply::TransferCustomerService { kf_account } => kf_account.as_ref().map_or(0, String::len),
    }
}

/// The bounds of a [`MemoryDedup`] table (see the module's documentation for what happens at
/// each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupLimits {
    /// Entries (pushes remembered, running or answered), about 100 bytes each.
    pub max_entries: usize,
    /// Bytes of the answers kept for retries (a text answer counts its bytes).
    pub max_answer_bytes: usize,
}

impl Default for DedupLimits {
    fn default() -> Self {
        DedupLimits {
            max_entries: 1_000_000,
            max_answer_bytes: 64 * 1024 * 1024,
        }
    }
}

impl DedupLimits {
    /// The bounds of each of the table's shards (at least one entry each).
    fn per_shard(self) -> DedupLimits {
        DedupLimits {
            max_entries: (self.max_entries / SHARDS).max(1),
            max_answer_bytes: self.max_answer_bytes / SHARDS,
        }
    }
}

/// What a [`MemoryDedup`] holds now, and what it gave up early so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// Entries (running, answered, seen).
    pub entries: usize,
    /// Bytes of the answers kept.
    pub answer_bytes: usize,
    /// Answers dropped before their TTL (their entries kept, as seen).
    pub answers_dropped: u64,
    /// Entries forgotten before their TTL.
    pub entries_evicted: u64,
}

/// Expired entries dropped by each `begin`/`finish` on the way, so the table stays bounded
/// without long sweeps under the lock.
const PURGE_PER_BEGIN: usize = 4;
/// Shards of the table, each with its own lock.
const SHARDS: usize = 16;
/// The first byte of a dedup fact's key (facts of other kinds share the store).
const FACT_TAG: u8 = b'd';

/// One shard: the messages by key, and the answered ones in the order they expire (the TTL is
/// the same for all, so that is the order they were answered in; loaded facts come first);
/// the answers that hold bytes in the same order, and how many bytes they hold.
#[derive(Debug, Default)]
struct Shard {
    slots: HashMap<u128, Slot, BuildHasherDefault<KeyHasher>>,
    expiry: VecDeque<(Millis, u128)>,
    answers: VecDeque<(Millis, u128)>,
    answer_bytes: usize,
}

impl Shard {
    /// Sets the slot of `key`, keeping the count of answer bytes; returns the previous one.
    fn insert(&mut self, key: u128, slot: Slot) -> Option<Slot> {
        self.answer_bytes += slot.bytes();
        let previous = self.slots.insert(key, slot);
        self.answer_bytes -= previous.as_ref().map_or(0, Slot::bytes);
        previous
    }

    /// Removes the slot of `key`, keeping the count of answer bytes.
    fn remove(&mut self, key: u128) -> Option<Slot> {
        let removed = self.slots.remove(&key);
        self.answer_bytes -= removed.as_ref().map_or(0, Slot::bytes);
        removed
    }

    /// Whether `key`'s slot is the answered one that expires at `due` (a key answered again
    /// since has another expiry; only its own counts).
    fn answered_until(&self, key: u128, due: Millis) -> bool {
        matches!(
            self.slots.get(&key),
            Some(Slot::Done { until, .. } | Slot::Seen { until }) if *until == due
        )
    }

    /// Drops up to `max` entries expired at `now`.
    fn expire(&mut self, now: Millis, max: usize) {
        for _ in 0..max {
            match self.expiry.front() {
                Some(&(due, key)) if due <= now => {
                    self.expiry.pop_front();
                    if self.answered_until(key, due) {
                        self.remove(key);
                    }
                }
                _ => break,
            }
        }
        for _ in 0..max {
            match self.answers.front() {
                Some(&(due, _)) if due <= now => {
                    self.answers.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Drops the oldest answers until those kept hold at most `max_bytes`; their entries stay,
    /// as seen (a retry is answered without a reply and not run).
    fn drop_answers_over(&mut self, max_bytes: usize, evictions: &Evictions) {
        while self.answer_bytes > max_bytes {
            let Some((due, key)) = self.answers.pop_front() else {
                break;
            };
            if let Some(slot) = self.slots.get_mut(&key)
                && matches!(slot, Slot::Done { until, .. } if *until == due)
            {
                let seen = Slot::Seen { until: due };
                let answered = std::mem::replace(slot, seen);
                self.answer_bytes -= answered.bytes();
                evictions.answer_dropped();
            }
        }
    }

    /// Forgets the oldest answered entries until at most `max_entries` remain (entries still
    /// running are never forgotten), recording the age of each in `evictions`.
    fn evict_entries_over(&mut self, max_entries: usize, table: &Table, now: Millis) {
        let mut evicted_due = None;
        while self.slots.len() > max_entries {
            let Some((due, key)) = self.expiry.pop_front() else {
                break;
            };
            if self.answered_until(key, due) {
                self.remove(key);
                // Answered at `due - ttl`.
                let age = now.saturating_add(table.ttl_ms).saturating_sub(due);
                table.evictions.entry_evicted(now, age, table.ttl_ms);
                evicted_due = Some(due);
            }
        }
        // The answers answered before the last one forgotten are gone too (both queues are in
        // the order of expiry), so their places go now rather than at their expiry.
        if let Some(evicted_due) = evicted_due {
            while self
                .answers
                .front()
                .is_some_and(|&(due, _)| due < evicted_due)
            {
                self.answers.pop_front();
            }
        }
    }
}

/// What a table gave up early: the counts, the metrics when there are some, and the youngest
/// age at which an entry was forgotten lately (which shortens the retry TTL).
#[derive(Debug)]
struct Evictions {
    answers: AtomicU64,
    entries: AtomicU64,
    metrics: OnceLock<DedupEvictions>,
    /// When an entry was last forgotten (table time; `Millis::MAX`: never).
    last_at: AtomicU64,
    /// The youngest age of the entries forgotten since evictions began, in milliseconds.
    youngest: AtomicU64,
}

impl Default for Evictions {
    fn default() -> Self {
        Evictions {
            answers: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            metrics: OnceLock::new(),
            last_at: AtomicU64::new(Millis::MAX),
            youngest: AtomicU64::new(Millis::MAX),
        }
    }
}

impl Evictions {
    fn answer_dropped(&self) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = self.metrics.get() {
            metrics.answer_dropped();
        }
    }

    /// An entry `age` old was forgotten at `now`. A run of evictions keeps the youngest age
    /// seen; one that starts after a TTL without any starts over.
    fn entry_evicted(&self, now: Millis, age: Millis, ttl: Millis) {
        self.entries.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = self.metrics.get() {
            metrics.entry_evicted();
        }
        let last = self.last_at.swap(now, Ordering::Relaxed);
        if last == Millis::MAX || now.saturating_sub(last) >= ttl {
            self.youngest.store(age, Ordering::Relaxed);
        } else {
            self.youngest.fetch_min(age, Ordering::Relaxed);
        }
    }

    /// How long answers are kept now: `ttl`, or the youngest age forgotten while entries have
    /// been forgotten within the last `ttl` (a retry of one of those comes within `ttl`).
    fn kept_for(&self, now: Millis, ttl: Millis) -> Millis {
        let last = self.last_at.load(Ordering::Relaxed);
        if last == Millis::MAX || now.saturating_sub(last) >= ttl {
            ttl
        } else {
            ttl.min(self.youngest.load(Ordering::Relaxed))
        }
    }
}

#[derive(Debug)]
struct Table {
    shards: [Mutex<Shard>; SHARDS],
    /// Keys are hashed to 128 bits with SipHash keyed by a secret (kept with the facts when
    /// they persist): an entry stores no string, and nobody can pick keys that collide.
    hash_key: [u8; 16],
    /// Times are milliseconds since the table was made.
    time: TimeBase,
    ttl_ms: Millis,
    facts: Option<Arc<dyn FactStore>>,
    /// The bounds of each shard.
    shard_limits: DedupLimits,
    evictions: Evictions,
}

/// Milliseconds since a table was made (8 bytes, where an `Instant` takes 16).
type Millis = u64;

/// When a table was made, on the monotonic clock and on the wall clock (which the fact store
/// keeps times in).
#[derive(Debug)]
struct TimeBase {
    started: Instant,
    started_unix_ms: i64,
}

impl TimeBase {
    fn new() -> Self {
        TimeBase {
            started: Instant::now(),
            started_unix_ms: unix_now().saturating_mul(1000),
        }
    }

    fn now(&self) -> Millis {
        millis(self.started.elapsed())
    }

    /// `at` in seconds since the Unix epoch, rounded up (a fact is never forgotten early).
    fn unix_secs(&self, at: Millis) -> i64 {
        self.started_unix_ms
            .saturating_add(i64::try_from(at).unwrap_or(i64::MAX))
            .saturating_add(999)
            / 1000
    }

    /// Seconds since the Unix epoch as table time (0 for what is already past).
    fn at_unix_secs(&self, secs: i64) -> Millis {
        let ms = secs
            .saturating_mul(1000)
            .saturating_sub(self.started_unix_ms);
        Millis::try_from(ms.max(0)).unwrap_or(0)
    }
}

/// A keyed 128-bit hash of `data` whose first byte is `tag`, so that keys of different kinds
/// never meet in the fact store.
fn tagged_hash(key: &[u8; 16], tag: u8, data: &[u8]) -> u128 {
    let mut bytes = siphasher::sip128::SipHasher13::new_with_key(key)
        .hash(data)
        .as_bytes();
    bytes[0] = tag;
    u128::from_be_bytes(bytes)
}

/// The first 16 bytes of the fact store's secret: the key of every table hash.
fn hash_key(facts: &dyn FactStore) -> storage::Result<[u8; 16]> {
    let secret = facts.secret()?;
    let mut key = [0; 16];
    key.copy_from_slice(&secret[..16]);
    Ok(key)
}

impl Table {
    fn new(
        ttl: Duration,
        limits: DedupLimits,
        hash_key: [u8; 16],
        facts: Option<Arc<dyn FactStore>>,
    ) -> Self {
        Table {
            shards: std::array::from_fn(|_| Mutex::default()),
            hash_key,
            time: TimeBase::new(),
            ttl_ms: millis(ttl),
            facts,
            shard_limits: limits.per_shard(),
            evictions: Evictions::default(),
        }
    }

    fn now(&self) -> Millis {
        self.time.now()
    }

    fn key(&self, key: &str) -> u128 {
        tagged_hash(&self.hash_key, FACT_TAG, key.as_bytes())
    }

    /// The locked shard holding `key`, chosen by its top bits: the shard's map hashes by the
    /// low bits, which must not be the same for every key in a shard.
    fn shard(&self, key: u128) -> MutexGuard<'_, Shard> {
        self.lock((key >> 64) as usize % SHARDS)
    }

    /// Locks shard `index`.
    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard lock leaves nothing half-written that matters here.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the fact that `key` was answered, to be remembered until `until`.
    fn persist(&self, key: u128, until: Millis) {
        let Some(facts) = &self.facts else {
            return;
        };
        let fact = Fact {
            key: key.to_be_bytes(),
            value: [0; 16],
            until: self.time.unix_secs(until),
        };
        if let Err(e) = facts.put(&[fact]) {
            tracing::error!(
                "cannot persist a dedup fact: {e}; a retry of this push after a restart would run it again"
            );
        }
    }

    /// Loads the persisted facts still inside the retry TTL as seen entries.
    fn load(&self, facts: &dyn FactStore) -> storage::Result<usize> {
        let now_unix = unix_now();
        let mut loaded = 0;
        for fact in facts.live(now_unix)? {
            if fact.key[0] != FACT_TAG {
                continue;
            }
            let key = u128::from_be_bytes(fact.key);
            let until = self.time.at_unix_secs(fact.until);
            let mut shard = self.shard(key);
            shard.insert(key, Slot::Seen { until });
            shard.expiry.push_back((until, key));
            loaded += 1;
        }
        let now = self.now();
        for index in 0..SHARDS {
            let mut shard = self.lock(index);
            shard
                .expiry
                .make_contiguous()
                .sort_unstable_by_key(|&(due, _)| due);
            // More facts than the table holds (a smaller bound since): the oldest go.
            shard.evict_entries_over(self.shard_limits.max_entries, self, now);
        }
        Ok(loaded)
    }
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Hashes a key that is already a uniform 128-bit hash: takes its low half.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

/// The single-node dedup table: sharded, about 100 bytes per remembered message (its slot and
/// its place in the expiry queues) plus the bytes of its answer while it is kept, within
/// [`DedupLimits`].
#[derive(Debug)]
pub struct MemoryDedup {
    table: Arc<Table>,
}

impl MemoryDedup {
    /// A table keeping answers for `ttl` within the default [`DedupLimits`], in memory only
    /// (a restart forgets it).
    pub fn new(ttl: Duration) -> Self {
        MemoryDedup::with_limits(ttl, DedupLimits::default())
    }

    /// A table keeping answers for `ttl` within `limits`, in memory only.
    pub fn with_limits(ttl: Duration, limits: DedupLimits) -> Self {
        MemoryDedup {
            table: Arc::new(Table::new(ttl, limits, rand::random(), None)),
        }
    }

    /// A table keeping answers for `ttl` within the default [`DedupLimits`], whose facts
    /// persist in `facts`: those still inside the TTL are loaded now (as seen), and every
    /// answered push adds one.
    pub fn persistent(ttl: Duration, facts: Arc<dyn FactStore>) -> storage::Result<Self> {
        MemoryDedup::persistent_with_limits(ttl, DedupLimits::default(), facts)
    }

    /// [`MemoryDedup::persistent`] within `limits`.
    pub fn persistent_with_limits(
        ttl: Duration,
        limits: DedupLimits,
        facts: Arc<dyn FactStore>,
    ) -> storage::Result<Self> {
        let table = Table::new(ttl, limits, hash_key(&*facts)?, Some(Arc::clone(&facts)));
        let loaded = table.load(&*facts)?;
        tracing::info!(loaded, "dedup facts loaded");
        Ok(MemoryDedup {
            table: Arc::new(table),
        })
    }

    /// Counts what the table gives up early in `metrics` (`wxhost_dedup_evictions{reason}`),
    /// from now on (a table counts in one registry only: later calls change nothing).
    pub fn count_evictions_in(self, metrics: &Metrics) -> Self {
        let _ = self.table.evictions.metrics.set(metrics.dedup_evictions());
        self
    }

    /// What the table holds now and what it gave up early so far.
    pub fn stats(&self) -> DedupStats {
        let mut stats = DedupStats {
            answers_dropped: self.table.evictions.answers.load(Ordering::Relaxed),
            entries_evicted: self.table.evictions.entries.load(Ordering::Relaxed),
            ..DedupStats::default()
        };
        for index in 0..SHARDS {
            let shard = self.table.lock(index);
            stats.entries += shard.slots.len();
            stats.answer_bytes += shard.answer_bytes;
        }
        stats
    }
}

impl MemoryDedup {
    /// How long answers are kept for retries now: the TTL, or less while entries are
    /// forgotten early to stay within a bound (a push bound to its signed query longer ago
    /// than this is a replay, see [`Binding::is_replay`]).
    pub fn retry_ttl(&self) -> Duration {
        let table = &self.table;
        Duration::from_millis(table.evictions.kept_for(table.now(), table.ttl_ms))
    }

    /// Drops expired entries; returns how many remain.
    pub fn purge(&self) -> usize {
        let now = self.table.now();
        let mut remaining = 0;
        for index in 0..SHARDS {
            let mut shard = self.table.lock(index);
            shard.expire(now, usize::MAX);
            remaining += shard.slots.len();
        }
        remaining
    }

    /// Registers `key`, or reports that it is running, answered, or seen.
    pub fn begin(&self, key: &str) -> Begin {
        let key = self.table.key(key);
        let now = self.table.now();
        let mut shard = self.table.shard(key);
        shard.expire(now, PURGE_PER_BEGIN);
        match shard.slots.get_mut(&key) {
            Some(Slot::Done { answer, until }) if *until > now => {
                return Begin::Done(answer.answer());
            }
            Some(Slot::Seen { until }) if *until > now => return Begin::Seen,
            Some(Slot::InFlight(waiters)) => {
                let receiver = match waiters {
                    Some(sender) => sender.subscribe(),
                    None => {
                        let (sender, receiver) = watch::channel(None);
                        *waiters = Some(sender);
                        receiver
                    }
                };
                return Begin::InFlight(receiver);
            }
            Some(Slot::Done { .. } | Slot::Seen { .. }) | None => {}
        }
        let expired = shard.insert(key, Slot::InFlight(None));
        shard.evict_entries_over(self.table.shard_limits.max_entries, &self.table, now);
        drop(shard);
        drop(expired);
        Begin::New(Pending {
            key,
            table: Arc::clone(&self.table),
            persisted: false,
            finished: false,
        })
    }
}

/// The oldest push timestamp that may be accepted without a gap in what the signature log
/// remembers.
///
/// A push's signed query is kept until its window ends under the window of the time (or for
/// the retry TTL, if the window is off). When the window widens, by a reload or a restart with a
/// wider one, pushes older than the old window may already be forgotten although the new window
/// accepts them: until the new window has moved past that point, pushes stamped before it are
/// refused as stale. With a [`FactStore`] the window and the floor persist across restarts.
#[derive(Debug)]
pub struct WindowFloor {
    window_secs: AtomicU64,
    ttl_secs: u64,
    floor: AtomicI64,
    facts: Option<Arc<dyn FactStore>>,
}

/// Names of the marks the floor keeps in the fact store.
const WINDOW_MARK: &str = "dedup.window_secs";
const FLOOR_MARK: &str = "dedup.floor";

impl WindowFloor {
    /// The floor for a table keeping answers for `ttl` under a window of `window_secs` (0:
    /// disabled), remembering the previous run's window and floor in `facts` when given.
    pub fn new(
        window_secs: u64,
        ttl: Duration,
        facts: Option<Arc<dyn FactStore>>,
    ) -> storage::Result<Self> {
        let floor = WindowFloor {
            window_secs: AtomicU64::new(window_secs),
            ttl_secs: ttl.as_secs(),
            floor: AtomicI64::new(i64::MIN),
            facts,
        };
        if let Some(facts) = &floor.facts {
            if let Some(kept) = facts.mark(FLOOR_MARK)? {
                floor.floor.store(kept, Ordering::Relaxed);
            }
            let previous = facts.mark(WINDOW_MARK)?;
            if let Some(previous) = previous.and_then(|p| u64::try_from(p).ok()) {
                floor.widen(previous, window_secs, unix_now());
            }
            facts.set_mark(WINDOW_MARK, i64::try_from(window_secs).unwrap_or(i64::MAX))?;
        }
        Ok(floor)
    }

    /// Applies a reloaded window.
    pub fn set_window(&self, window_secs: u64) {
        let previous = self.window_secs.swap(window_secs, Ordering::Relaxed);
        self.widen(previous, window_secs, unix_now());
        if let Some(facts) = &self.facts
            && let Err(e) =
                facts.set_mark(WINDOW_MARK, i64::try_from(window_secs).unwrap_or(i64::MAX))
        {
            tracing::error!("cannot persist the replay window: {e}");
        }
    }

    /// Whether a push stamped `timestamp` may be accepted (the window itself is checked too).
    pub fn admits(&self, timestamp: i64) -> bool {
        timestamp >= self.floor.load(Ordering::Relaxed)
    }

    /// Raises the floor when the window goes from `previous` to the wider `current` at `now`.
    fn widen(&self, previous: u64, current: u64, now: i64) {
        // From disabled (0), facts were kept for the retry TTL only.
        let widened = current > 0 && (previous == 0 || current > previous);
        if !widened {
            return;
        }
        let kept_secs = previous.max(self.ttl_secs);
        let floor = now.saturating_sub_unsigned(kept_secs);
        if floor > self.floor.fetch_max(floor, Ordering::Relaxed) {
            tracing::warn!(
                previous_secs = previous,
                window_secs = current,
                "the replay window widened: pushes stamped more than {kept_secs} s before now stay refused until the new window has passed that point"
            );
            if let Some(facts) = &self.facts
                && let Err(e) = facts.set_mark(FLOOR_MARK, floor)
            {
                tracing::error!("cannot persist the replay floor: {e}");
            }
        }
    }
}

/// Waits for the answer of a message in flight; `None` if its runner gave up without one.
pub async fn wait(mut receiver: watch::Receiver<Option<Arc<Answer>>>) -> Option<Arc<Answer>> {
    match receiver.wait_for(Option::is_some).await {
        Ok(answer) => answer.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryKv;

    fn text(id: u64) -> Message {
        Message::parse(&format!(
            "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>7</CreateTime>\
             <MsgType>text</MsgType><Content>x</Content><MsgId>{id}</MsgId></xml>"
        ))
        .expect("parses")
    }

    #[test]
    fn keys_scope_messages_by_tenant_and_events_by_sender_time_key_and_msg_id() {
        assert_eq!(key("a", &text(5)), Some("a\u{0}m\u{0}5".into()));
        assert_ne!(key("a", &text(5)), key("b", &text(5)));
        let event = |extra: &str| {
            Message::parse(&format!(
                "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>7</CreateTime>\
                 <MsgType>event</MsgType><Event>CLICK</Event><EventKey>K1</EventKey>{extra}</xml>"
            ))
            .expect("parses")
        };
        assert_eq!(
            key("a", &event("")),
            Some("a\u{0}e\u{0}o\u{0}7\u{0}CLICK\u{0}K1\u{0}".into())
        );
        assert_eq!(
            key("a", &event("<MsgID>42</MsgID>")),
            Some("a\u{0}e\u{0}o\u{0}7\u{0}CLICK\u{0}K1\u{0}42".into())
        );
    }

    #[test]
    fn a_restarted_table_knows_the_keys_answered_within_the_ttl() {
        let facts: Arc<dyn FactStore> = Arc::new(MemoryKv::default());
        let first =
            MemoryDedup::persistent(Duration::from_secs(60), Arc::clone(&facts)).expect("store");
        let Begin::New(pending) = first.begin("t\u{0}m\u{0}1") else {
            panic!("new")
        };
        pending.finish(&Some(Reply::text("first")));
        let Begin::New(abandoned) = first.begin("t\u{0}m\u{0}2") else {
            panic!("new")
        };
        drop(abandoned);
        drop(first);

        let restarted = MemoryDedup::persistent(Duration::from_secs(60), facts).expect("store");
        assert!(
            matches!(restarted.begin("t\u{0}m\u{0}1"), Begin::Seen),
            "an answered push is not run again after a restart"
        );
        assert!(matches!(restarted.begin("t\u{0}m\u{0}2"), Begin::New(_)));
        assert_eq!(
            restarted.purge(),
            1,
            "the seen one (the new one was dropped unanswered)"
        );
    }

    #[test]
    fn loaded_facts_expire_with_the_ttl() {
        let facts: Arc<dyn FactStore> = Arc::new(MemoryKv::default());
        let first =
            MemoryDedup::persistent(Duration::from_millis(1), Arc::clone(&facts)).expect("store");
        let Begin::New(pending) = first.begin("k") else {
            panic!("new")
        };
        pending.finish(&None);
        drop(first);
        // Facts keep whole seconds: the fact lives until the next second at most.
        std::thread::sleep(Duration::from_millis(1100));
        let restarted = MemoryDedup::persistent(Duration::from_secs(60), facts).expect("store");
        assert!(matches!(restarted.begin("k"), Begin::New(_)));
    }

    /// Answers `n` keys (`k0`, `k1`, …) in order, each with `answer(i)`.
    fn answer_all(store: &MemoryDedup, n: usize, answer: impl Fn(usize) -> Answer) {
        for i in 0..n {
            let Begin::New(pending) = store.begin(&format!("k{i}")) else {
                panic!("k{i} is new")
            };
            pending.finish(&answer(i));
        }
    }

    #[test]
    fn past_the_byte_bound_the_oldest_answers_go_and_their_retries_are_not_run() {
        let limits = DedupLimits {
            max_answer_bytes: 16 * 1000,
            ..DedupLimits::default()
        };
        let metrics = Metrics::default();
        let store =
            MemoryDedup::with_limits(Duration::from_secs(60), limits).count_evictions_in(&metrics);
        answer_all(&store, 1000, |i| Some(Reply::text(format!("{i:0>100}"))));
        let stats = store.stats();
        assert!(stats.answer_bytes <= 16_000, "{stats:?}");
        assert!(
            stats.answer_bytes > 16_000 - 16 * 100,
            "each shard nearly full: {stats:?}"
        );
        assert_eq!(stats.entries, 1000, "every entry stays");
        assert_eq!(
            stats.answers_dropped,
            1000 - stats.answer_bytes as u64 / 100
        );
        let (mut done, mut seen) = (0, 0);
        for i in 0..1000 {
            match store.begin(&format!("k{i}")) {
                Begin::Done(answer) => {
                    assert_eq!(answer, Some(Reply::text(format!("{i:0>100}"))));
                    done += 1;
                }
                Begin::Seen => seen += 1,
                other => panic!("k{i} is run again: {other:?}"),
            }
        }
        assert_eq!(
            (done, seen),
            (1000 - stats.answers_dropped, stats.answers_dropped)
        );
        assert!(matches!(store.begin("k0"), Begin::Seen), "the oldest went");
        assert!(
            matches!(store.begin("k999"), Begin::Done(Some(_))),
            "the newest stays"
        );
        assert!(metrics.encode().contains(&format!(
            r#"wxhost_dedup_evictions_total{{reason="answer_bytes"}} {}"#,
            stats.answers_dropped
        )));
        assert_eq!(
            store.retry_ttl(),
            Duration::from_secs(60),
            "no entry went early"
        );
        // Answers of every kind count their bytes; no answer, none.
        let store = MemoryDedup::with_limits(Duration::from_secs(60), limits);
        let music = Reply::Music {
            title: "t".repeat(200),
            description: String::new(),
            music_url: "u".repeat(800),
            hq_music_url: String::new(),
            thumb_media_id: "th".into(),
        };
        answer_all(&store, 100, |i| (i % 2 == 0).then(|| music.clone()));
        let stats = store.stats();
        assert!(
            stats.answer_bytes <= 16_000 && stats.answers_dropped > 0,
            "{stats:?}"
        );
        assert!(matches!(store.begin("k1"), Begin::Done(None)));
        assert_eq!(store.purge(), 100, "purge keeps what has not expired");
    }

    #[test]
    fn past_the_entry_bound_the_oldest_answered_entries_go_and_the_retry_ttl_shortens() {
        let limits = DedupLimits {
            max_entries: 16 * 10,
            ..DedupLimits::default()
        };
        let metrics = Metrics::default();
        let store =
            MemoryDedup::with_limits(Duration::from_secs(60), limits).count_evictions_in(&metrics);
        answer_all(&store, 1000, |i| Some(Reply::text(i.to_string())));
        let stats = store.stats();
        assert_eq!(
            (stats.entries, stats.entries_evicted),
            (160, 840),
            "{stats:?}"
        );
        assert!(stats.answer_bytes <= 160 * 3);
        assert!(
            matches!(store.begin("k999"), Begin::Done(Some(_))),
            "the newest stays"
        );
        assert!(
            store.retry_ttl() < Duration::from_secs(1),
            "answers are kept for less than the TTL now: {:?}",
            store.retry_ttl()
        );
        assert!(
            metrics
                .encode()
                .contains(r#"wxhost_dedup_evictions_total{reason="entries"} 840"#)
        );
        // The oldest was forgotten: registering it again makes room by forgetting another.
        let Begin::New(again) = store.begin("k0") else {
            panic!("k0 went early")
        };
        assert_eq!(store.stats().entries, 160);
        drop(again);

        // Entries still running are never forgotten, bound or not.
        let store = MemoryDedup::with_limits(Duration::from_secs(60), limits);
        let running: Vec<Pending> = (0..400)
            .map(|i| match store.begin(&format!("r{i}")) {
                Begin::New(pending) => pending,
                other => panic!("new: {other:?}"),
            })
            .collect();
        assert_eq!(store.stats().entries, 400);
        for i in 0..400 {
            assert!(matches!(store.begin(&format!("r{i}")), Begin::InFlight(_)));
        }
        for pending in running {
            pending.finish(&None);
        }
        // Each shard makes room as a new key arrives in it.
        answer_all(&store, 1000, |_| None);
        assert_eq!(store.stats().entries, 160, "answered, they can go");
    }

    #[test]
    fn the_retry_ttl_shortens_while_entries_go_early_and_recovers_a_ttl_later() {
        let evictions = Evictions::default();
        let ttl = 60_000;
        assert_eq!(evictions.kept_for(0, ttl), ttl);
        evictions.entry_evicted(1_000, 20_000, ttl);
        evictions.entry_evicted(2_000, 5_000, ttl);
        evictions.entry_evicted(3_000, 30_000, ttl);
        assert_eq!(
            evictions.kept_for(3_000, ttl),
            5_000,
            "the youngest age forgotten"
        );
        assert_eq!(evictions.kept_for(62_999, ttl), 5_000);
        assert_eq!(
            evictions.kept_for(63_000, ttl),
            ttl,
            "a TTL after the last eviction"
        );
        evictions.entry_evicted(70_000, 40_000, ttl);
        assert_eq!(
            evictions.kept_for(70_000, ttl),
            40_000,
            "a new run starts over"
        );
        assert_eq!(evictions.entries.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn more_facts_than_the_bound_load_as_many_as_it_holds_newest_first() {
        let facts: Arc<dyn FactStore> = Arc::new(MemoryKv::default());
        let first =
            MemoryDedup::persistent(Duration::from_secs(60), Arc::clone(&facts)).expect("store");
        answer_all(&first, 400, |_| None);
        drop(first);
        let limits = DedupLimits {
            max_entries: 16,
            ..DedupLimits::default()
        };
        let restarted = MemoryDedup::persistent_with_limits(Duration::from_secs(60), limits, facts)
            .expect("store");
        let stats = restarted.stats();
        assert_eq!(
            (stats.entries, stats.entries_evicted),
            (16, 384),
            "{stats:?}"
        );
    }

    #[test]
    fn a_wider_window_leaves_a_floor_until_it_has_passed_the_old_one() {
        let facts: Arc<dyn FactStore> = Arc::new(MemoryKv::default());
        let ttl = Duration::from_secs(60);
        let now = unix_now();
        let floor = WindowFloor::new(300, ttl, Some(Arc::clone(&facts))).expect("floor");
        assert!(floor.admits(now - 299), "no floor without a widening");
        floor.set_window(100);
        assert!(floor.admits(now - 299), "narrowing leaves no gap");
        floor.set_window(600);
        assert!(
            !floor.admits(now - 200),
            "older than the 100 s window was forgotten"
        );
        assert!(floor.admits(now - 90));
        drop(floor);
        let restarted = WindowFloor::new(600, ttl, Some(Arc::clone(&facts))).expect("floor");
        assert!(!restarted.admits(now - 200), "the floor persists");
        let from_off = WindowFloor::new(0, ttl, Some(Arc::clone(&facts))).expect("floor");
        drop(from_off);
        let on_again = WindowFloor::new(300, ttl, Some(facts)).expect("floor");
        assert!(
            !on_again.admits(now - 61),
            "with the window off only the retry TTL was remembered"
        );
        assert!(on_again.admits(now - 50));
    }
}
