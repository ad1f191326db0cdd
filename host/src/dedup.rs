//! Retry deduplication: WeChat retries a push it got no answer to within 5 s (three attempts in
//! all). A retry of a finished message gets the first answer again; a retry while the first is
//! still running waits for the same answer instead of running the plugins again.
//!
//! Keys: (tenant, MsgId) for messages; (tenant, FromUserName, CreateTime, Event, EventKey)
//! for events. Entries expire after the TTL. [`MemoryDedup`] serves one node; a shared backend
//! implements [`DedupStore`] for several nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    Done(Arc<Answer>),
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
    key: String,
    sender: watch::Sender<Option<Arc<Answer>>>,
    table: Arc<Table>,
    ttl: Duration,
    finished: bool,
}

impl Pending {
    /// Records the answer and wakes every waiting retry.
    pub fn finish(mut self, answer: Answer) -> Arc<Answer> {
        let answer = Arc::new(answer);
        if let Ok(mut slots) = self.table.slots.lock()
            && let Some(slot) = slots.get_mut(&self.key)
        {
            slot.expires_at = Some(Instant::now() + self.ttl);
            slot.answer = Some(Arc::clone(&answer));
        }
        self.sender.send_replace(Some(Arc::clone(&answer)));
        self.finished = true;
        answer
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.finished
            && let Ok(mut slots) = self.table.slots.lock()
        {
            slots.remove(&self.key);
        }
    }
}

#[derive(Debug)]
struct Slot {
    /// Set when finished; until then the entry never expires.
    expires_at: Option<Instant>,
    answer: Option<Arc<Answer>>,
    receiver: watch::Receiver<Option<Arc<Answer>>>,
}

#[derive(Debug, Default)]
struct Table {
    slots: Mutex<HashMap<String, Slot>>,
}

/// The single-node dedup table.
#[derive(Debug)]
pub struct MemoryDedup {
    table: Arc<Table>,
    ttl: Duration,
}

impl MemoryDedup {
    /// A table remembering answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        MemoryDedup {
            table: Arc::new(Table::default()),
            ttl,
        }
    }
}

impl DedupStore for MemoryDedup {
    fn purge(&self) -> usize {
        let now = Instant::now();
        match self.table.slots.lock() {
            Ok(mut slots) => {
                slots.retain(|_, s| s.expires_at.is_none_or(|t| t > now));
                slots.len()
            }
            Err(_) => 0,
        }
    }

    fn begin(&self, key: &str) -> Begin {
        let now = Instant::now();
        let Ok(mut slots) = self.table.slots.lock() else {
            // A poisoned table cannot deduplicate; running the plugins is the safe fallback.
            let (sender, _) = watch::channel(None);
            return Begin::New(Pending {
                key: key.to_owned(),
                sender,
                table: Arc::new(Table::default()),
                ttl: self.ttl,
                finished: false,
            });
        };
        if let Some(slot) = slots.get(key) {
            if slot.expires_at.is_none_or(|t| t > now) {
                return match &slot.answer {
                    Some(answer) => Begin::Done(Arc::clone(answer)),
                    None => Begin::InFlight(slot.receiver.clone()),
                };
            }
            slots.remove(key);
        }
        let (sender, receiver) = watch::channel(None);
        slots.insert(
            key.to_owned(),
            Slot {
                expires_at: None,
                answer: None,
                receiver,
            },
        );
        Begin::New(Pending {
            key: key.to_owned(),
            sender,
            table: Arc::clone(&self.table),
            ttl: self.ttl,
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
        pending.finish(Some(Reply::text("first")));
        assert_eq!(
            waiter.await.expect("join").as_deref(),
            Some(&Some(Reply::text("first")))
        );
        match dedup.begin("k") {
            Begin::Done(answer) => assert_eq!(*answer, Some(Reply::text("first"))),
            other => panic!("expected done, got {other:?}"),
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
    fn answers_expire_after_the_ttl() {
        let dedup = MemoryDedup::new(Duration::from_millis(0));
        let Begin::New(pending) = dedup.begin("k") else {
            panic!("new")
        };
        pending.finish(None);
        std::thread::sleep(Duration::from_millis(2));
        let Begin::New(again) = dedup.begin("k") else {
            panic!("an expired answer makes the message new again")
        };
        assert_eq!(dedup.purge(), 1, "the new entry is in flight, not expired");
        drop(again);
        assert_eq!(dedup.purge(), 0, "an abandoned entry is forgotten");
    }
}
