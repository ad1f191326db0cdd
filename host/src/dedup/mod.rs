//! Retry deduplication: WeChat retries a push it got no answer to within 5 s (three attempts in
//! all). A retry of a finished message gets the first answer again; a retry while the first is
//! still running waits for the same answer instead of running the plugins again.
//!
//! Keys: (tenant, MsgId) for messages; (tenant, FromUserName, CreateTime, Event, EventKey)
//! for events. Entries expire after the TTL. [`MemoryDedup`] serves one node; a shared backend
//! implements [`DedupStore`] for several nodes.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::wechat::{Content, Message, Reply};

/// The answer decided for a message: the passive reply, or none (`success`/empty).
pub type Answer = Option<Reply>;

/// The dedup key of `msg` pushed to `tenant`, or `None` when it carries nothing to key on.
pub fn key(tenant: &str, msg: &Message) -> Option<String> {
    match (&msg.content, msg.msg_id) {
        (Content::Event(_), _) => Some(format!(
            "{tenant}\u{0}e\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            msg.from_user,
            msg.create_time,
            msg.event_name().unwrap_or_default(),
            msg.field("EventKey").unwrap_or_default()
        )),
        (_, Some(id)) => Some(format!("{tenant}\u{0}m\u{0}{id}")),
        (_, None) => None,
    }
}

/// What [`DedupStore::begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// First sight: run the plugins, then [`Pending::finish`] with the answer.
    New(Pending),
    /// Another request is running this message: wait for its answer.
    InFlight(watch::Receiver<Option<Arc<Answer>>>),
    /// Already answered: answer the same.
    Done(Answer),
}

/// A store of messages seen recently.
pub trait DedupStore: Send + Sync + std::fmt::Debug + 'static {
    /// Registers `key`, or reports that it is running or done.
    fn begin(&self, key: &str) -> Begin;
    /// Drops expired entries; returns how many remain.
    fn purge(&self) -> usize;
}

/// The right (and duty) to answer a new message; dropping it unanswered forgets the message
/// so a retry runs it again.
#[derive(Debug)]
pub struct Pending {
    key: u128,
    table: Arc<Table>,
    finished: bool,
}

impl Pending {
    /// Records (a copy of) the answer and wakes every waiting retry.
    pub fn finish(mut self, answer: &Answer) {
        self.finished = true;
        let kept = Kept::of(answer);
        let mut shard = self.table.shard(self.key);
        let now = self.table.now();
        let expires_at = now.saturating_add(self.table.ttl_ms);
        let previous = shard.slots.insert(
            self.key,
            Slot::Done {
                answer: kept,
                expires_at,
            },
        );
        shard.expiry.push_back((expires_at, self.key));
        shard.expire(now, PURGE_PER_BEGIN);
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
            let removed = self.table.shard(self.key).slots.remove(&self.key);
            drop(removed);
        }
    }
}

/// A message seen recently.
#[derive(Debug)]
enum Slot {
    /// Running; the sender exists once a retry waits for the answer.
    InFlight(Option<watch::Sender<Option<Arc<Answer>>>>),
    /// Answered; the answer is replayed until `expires_at`.
    Done { answer: Kept, expires_at: Millis },
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
}

/// Expired answers dropped by each `begin`/`finish` on the way, so the table stays bounded
/// without long sweeps under the lock.
const PURGE_PER_BEGIN: usize = 4;
/// Shards of the table, each with its own lock.
const SHARDS: usize = 16;

/// One shard: the messages by key, and the answered ones in the order they expire (the TTL is
/// the same for all, so that is the order they were answered in).
#[derive(Debug, Default)]
struct Shard {
    slots: HashMap<u128, Slot, BuildHasherDefault<KeyHasher>>,
    expiry: VecDeque<(Millis, u128)>,
}

impl Shard {
    /// Drops up to `max` answers expired at `now`.
    fn expire(&mut self, now: Millis, max: usize) {
        for _ in 0..max {
            match self.expiry.front() {
                Some(&(expires_at, key)) if expires_at <= now => {
                    self.expiry.pop_front();
                    // The key may have been answered again since; only its own answer goes.
                    if matches!(self.slots.get(&key), Some(Slot::Done { expires_at: t, .. }) if *t == expires_at)
                    {
                        self.slots.remove(&key);
                    }
                }
                _ => break,
            }
        }
    }
}

#[derive(Debug)]
struct Table {
    shards: [Mutex<Shard>; SHARDS],
    /// Keys are hashed to 128 bits with two independently keyed SipHashes: an entry stores no
    /// string, and nobody can pick keys that collide.
    hashers: [RandomState; 2],
    /// When the table was made: times are kept as milliseconds since then (8 bytes, where an
    /// `Instant` takes 16).
    started: Instant,
    ttl_ms: Millis,
}

/// Milliseconds since the table was made.
type Millis = u64;

impl Table {
    fn now(&self) -> Millis {
        Millis::try_from(self.started.elapsed().as_millis()).unwrap_or(Millis::MAX)
    }

    fn key(&self, key: &str) -> u128 {
        let [high, low] = &self.hashers;
        (u128::from(high.hash_one(key)) << 64) | u128::from(low.hash_one(key))
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
/// its place in the expiry queue) plus the bytes of its text answer.
#[derive(Debug)]
pub struct MemoryDedup {
    table: Arc<Table>,
}

impl MemoryDedup {
    /// A table remembering answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        MemoryDedup {
            table: Arc::new(Table {
                shards: std::array::from_fn(|_| Mutex::default()),
                hashers: [RandomState::new(), RandomState::new()],
                started: Instant::now(),
                ttl_ms: Millis::try_from(ttl.as_millis()).unwrap_or(Millis::MAX),
            }),
        }
    }
}

impl DedupStore for MemoryDedup {
    fn purge(&self) -> usize {
        let now = self.table.now();
        let mut remaining = 0;
        for index in 0..SHARDS {
            let mut shard = self.table.lock(index);
            shard.expire(now, usize::MAX);
            remaining += shard.slots.len();
        }
        remaining
    }

    fn begin(&self, key: &str) -> Begin {
        let key = self.table.key(key);
        let now = self.table.now();
        let mut shard = self.table.shard(key);
        shard.expire(now, PURGE_PER_BEGIN);
        match shard.slots.get_mut(&key) {
            Some(Slot::Done { answer, expires_at }) if *expires_at > now => {
                return Begin::Done(answer.answer());
            }
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
            Some(Slot::Done { .. }) | None => {}
        }
        shard.slots.insert(key, Slot::InFlight(None));
        Begin::New(Pending {
            key,
            table: Arc::clone(&self.table),
            finished: false,
        })
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

    fn text(id: u64) -> Message {
        Message::parse(&format!(
            "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>7</CreateTime>\
             <MsgType>text</MsgType><Content>x</Content><MsgId>{id}</MsgId></xml>"
        ))
        .expect("parses")
    }

    #[test]
    fn keys_scope_messages_by_tenant_and_events_by_sender_time_and_key() {
        assert_eq!(key("a", &text(5)), Some("a\u{0}m\u{0}5".into()));
        assert_ne!(key("a", &text(5)), key("b", &text(5)));
        let click = Message::parse(
            "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>7</CreateTime>\
             <MsgType>event</MsgType><Event>CLICK</Event><EventKey>K1</EventKey></xml>",
        )
        .expect("parses");
        assert_eq!(
            key("a", &click),
            Some("a\u{0}e\u{0}o\u{0}7\u{0}CLICK\u{0}K1".into())
        );
    }

    #[tokio::test]
    async fn a_retry_waits_for_the_first_answer_then_gets_it_again() {
        let dedup = MemoryDedup::new(Duration::from_secs(60));
        let Begin::New(pending) = dedup.begin("k") else {
            panic!("first is new")
        };
        let Begin::InFlight(receiver) = dedup.begin("k") else {
            panic!("second waits")
        };
        let waiter = tokio::spawn(wait(receiver));
        pending.finish(&Some(Reply::text("first")));
        assert_eq!(
            waiter.await.expect("join").as_deref(),
            Some(&Some(Reply::text("first")))
        );
        match dedup.begin("k") {
            Begin::Done(answer) => assert_eq!(answer, Some(Reply::text("first"))),
            other => panic!("expected done, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_of_answer_is_replayed_as_given() {
        let dedup = MemoryDedup::new(Duration::from_secs(60));
        let answers = [
            None,
            Some(Reply::text("你好 😀")),
            Some(Reply::Image {
                media_id: "m1".into(),
            }),
            Some(Reply::TransferCustomerService { kf_account: None }),
        ];
        for (n, answer) in answers.iter().enumerate() {
            let Begin::New(pending) = dedup.begin(&n.to_string()) else {
                panic!("new")
            };
            pending.finish(answer);
            match dedup.begin(&n.to_string()) {
                Begin::Done(replayed) => assert_eq!(&replayed, answer),
                other => panic!("expected done, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_abandoned_message_runs_again_and_waiters_are_released() {
        let dedup = MemoryDedup::new(Duration::from_secs(60));
        let Begin::New(pending) = dedup.begin("k") else {
            panic!("new")
        };
        let Begin::InFlight(receiver) = dedup.begin("k") else {
            panic!("in flight")
        };
        drop(pending);
        assert_eq!(wait(receiver).await, None);
        assert!(matches!(dedup.begin("k"), Begin::New(_)));
    }

    #[test]
    fn a_message_answered_again_after_expiry_keeps_its_new_answer() {
        let dedup = MemoryDedup::new(Duration::from_millis(40));
        let Begin::New(first) = dedup.begin("k") else {
            panic!("new")
        };
        first.finish(&Some(Reply::text("first")));
        std::thread::sleep(Duration::from_millis(50));
        let Begin::New(second) = dedup.begin("k") else {
            panic!("expired, so new again")
        };
        second.finish(&Some(Reply::text("second")));
        assert_eq!(
            dedup.purge(),
            1,
            "the first answer's expiry leaves the second"
        );
        match dedup.begin("k") {
            Begin::Done(answer) => assert_eq!(answer, Some(Reply::text("second"))),
            other => panic!("expected done, got {other:?}"),
        }
    }

    #[test]
    fn many_messages_are_told_apart_and_all_expire() {
        let dedup = MemoryDedup::new(Duration::from_millis(30));
        for id in 0..10_000 {
            let Begin::New(pending) = dedup.begin(&format!("t\u{0}m\u{0}{id}")) else {
                panic!("message {id} is new")
            };
            pending.finish(&None);
        }
        assert_eq!(dedup.purge(), 10_000);
        assert!(matches!(dedup.begin("t\u{0}m\u{0}7"), Begin::Done(_)));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(dedup.purge(), 0);
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let dedup = MemoryDedup::new(Duration::from_millis(0));
        let Begin::New(pending) = dedup.begin("k") else {
            panic!("new")
        };
        pending.finish(&None);
        std::thread::sleep(Duration::from_millis(2));
        let Begin::New(again) = dedup.begin("k") else {
            panic!("an expired answer makes the message new again")
        };
        assert_eq!(dedup.purge(), 1, "the new entry is in flight, not expired");
        drop(again);
        assert_eq!(dedup.purge(), 0, "an abandoned entry is forgotten");
    }
}
