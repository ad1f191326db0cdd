//! Call slots shared fairly between tenants. The runtime has `max_concurrent_calls` slots (the
//! instance pool is sized by them). A tenant alone may use all but a headroom kept for others;
//! once several tenants have calls, each may hold at most its weighted share, and a call over
//! it waits in its own tenant's queue, behind that tenant's calls, never in front of another
//! tenant's. A freed slot goes to the waiting tenant that holds the fewest slots for its weight.
//! A queue is bounded, and a call that cannot get a slot by its deadline gives up: the flood of
//! one tenant costs that tenant, not the others, and not unbounded memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

/// Why a call got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// The tenant's queue is full.
    QueueFull,
    /// The deadline passed while the call waited.
    Deadline,
}

/// Slots taken and calls waiting, of one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotUse {
    /// Calls holding a slot.
    pub in_flight: usize,
    /// Calls waiting for one.
    pub queued: usize,
}

#[derive(Debug)]
struct TenantSlots {
    weight: u32,
    in_flight: usize,
    /// Waiting calls, oldest first: each gets its slot through its sender.
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
}

#[derive(Debug)]
struct State {
    free: usize,
    tenants: HashMap<Arc<str>, TenantSlots>,
    /// Weights by tenant (1 unless configured).
    weights: HashMap<Arc<str>, u32>,
    next_waiter: u64,
}

/// The shared slots. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FairSlots {
    state: Arc<Mutex<State>>,
    total: usize,
    headroom: usize,
    max_queued: usize,
}

/// A held slot; dropping it hands the slot on.
#[derive(Debug)]
pub struct Slot {
    slots: FairSlots,
    tenant: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        if let Some(t) = state.tenants.get_mut(&self.tenant) {
            t.in_flight = t.in_flight.saturating_sub(1);
        }
        state.free += 1;
        self.slots.hand_on(&mut state);
    }
}

impl FairSlots {
    /// `total` slots; each tenant may queue `max_queued` calls; a tenant alone leaves an eighth
    /// of the slots (at least one) to whoever comes next.
    pub fn new(total: usize, max_queued: usize) -> Self {
        let total = total.max(1);
        FairSlots::with_headroom(
            total,
            max_queued,
            if total > 1 { (total / 8).max(1) } else { 0 },
        )
    }

    /// `total` slots, of which a tenant alone may use all but `headroom`.
    pub fn with_headroom(total: usize, max_queued: usize, headroom: usize) -> Self {
        let total = total.max(1);
        FairSlots {
            state: Arc::new(Mutex::new(State {
                free: total,
                tenants: HashMap::new(),
                weights: HashMap::new(),
                next_waiter: 0,
            })),
            total,
            headroom: headroom.min(total - 1),
            max_queued,
        }
    }

    /// Sets the weights of the tenants (by id; absent tenants weigh 1).
    pub fn set_weights(&self, weights: impl IntoIterator<Item = (String, u32)>) {
        let mut state = self.lock();
        let state = &mut *state;
        state.weights = weights
            .into_iter()
            .map(|(tenant, weight)| (Arc::from(tenant), weight.max(1)))
            .collect();
        for (tenant, slots) in state.tenants.iter_mut() {
            slots.weight = state.weights.get(tenant).copied().unwrap_or(1);
        }
    }

    /// What `tenant` holds and waits for now.
    pub fn usage(&self, tenant: &str) -> SlotUse {
        self.lock()
            .tenants
            .get(tenant)
            .map_or_else(SlotUse::default, |t| SlotUse {
                in_flight: t.in_flight,
                queued: t.queue.len(),
            })
    }

    /// A slot for a call of `tenant`, waiting in the tenant's queue until `deadline` at most.
    pub async fn acquire(&self, tenant: &str, deadline: Instant) -> Result<Slot, NoSlot> {
        let (id, receiver) = {
            let mut state = self.lock();
            let state = &mut *state;
            let tenant: Arc<str> = match state.tenants.get_key_value(tenant) {
                Some((key, _)) => Arc::clone(key),
                None => Arc::from(tenant),
            };
            let weight = state.weights.get(&tenant).copied().unwrap_or(1);
            let slots = state
                .tenants
                .entry(Arc::clone(&tenant))
                .or_insert_with(|| TenantSlots {
                    weight,
                    in_flight: 0,
                    queue: VecDeque::new(),
                });
            let queued = !slots.queue.is_empty();
            if !queued && state.free > 0 && slots.in_flight < self.cap(state, &tenant) {
                state.free -= 1;
                if let Some(slots) = state.tenants.get_mut(&tenant) {
                    slots.in_flight += 1;
                }
                return Ok(Slot {
                    slots: self.clone(),
                    tenant,
                });
            }
            let Some(slots) = state.tenants.get_mut(&tenant) else {
                return Err(NoSlot::QueueFull);
            };
            if slots.queue.len() >= self.max_queued {
                return Err(NoSlot::QueueFull);
            }
            let (sender, receiver) = oneshot::channel();
            let id = state.next_waiter;
            state.next_waiter += 1;
            slots.queue.push_back((id, sender));
            (id, (tenant, receiver))
        };
        let (tenant, receiver) = receiver;
        let waited = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), receiver);
        match waited.await {
            Ok(Ok(())) => Ok(Slot {
                slots: self.clone(),
                tenant,
            }),
            _ => {
                let mut state = self.lock();
                let slots = state.tenants.get_mut(&tenant);
                let still_queued = slots.is_some_and(|slots| {
                    let before = slots.queue.len();
                    slots.queue.retain(|(waiter, _)| *waiter != id);
                    slots.queue.len() < before
                });
                if still_queued {
                    // With this call gone the tenant may have no calls left, which raises the
                    // others' shares.
                    self.hand_on(&mut state);
                } else {
                    // The slot was handed over just as the wait ended: it goes on to the next.
                    drop(state);
                    drop(Slot {
                        slots: self.clone(),
                        tenant,
                    });
                }
                Err(NoSlot::Deadline)
            }
        }
    }

    /// The most slots `tenant` may hold now: all but the headroom when it is the only tenant
    /// with calls, else its weighted share among the tenants with calls (at least one).
    fn cap(&self, state: &State, tenant: &str) -> usize {
        let mut active_weight = 0u64;
        let mut others = false;
        for (id, t) in &state.tenants {
            if t.in_flight > 0 || !t.queue.is_empty() || &**id == tenant {
                active_weight += u64::from(t.weight);
                others |= &**id != tenant;
            }
        }
        if !others {
            return self.total - self.headroom;
        }
        let weight = state.tenants.get(tenant).map_or(1, |t| t.weight);
        let share = (self.total as u64 * u64::from(weight)) / active_weight.max(1);
        usize::try_from(share).unwrap_or(usize::MAX).max(1)
    }

    /// Gives free slots to waiting calls: each time to the waiting tenant under its cap that
    /// holds the fewest slots for its weight. Tenants with nothing left are forgotten.
    fn hand_on(&self, state: &mut State) {
        while state.free > 0 {
            let next = state
                .tenants
                .iter()
                .filter(|(_, t)| !t.queue.is_empty())
                .filter(|(id, t)| t.in_flight < self.cap(state, id))
                .min_by(|(_, a), (_, b)| {
                    let load =
                        |t: &TenantSlots| (t.in_flight as u64) * 1_000_000 / u64::from(t.weight);
                    load(a).cmp(&load(b))
                })
                .map(|(id, _)| Arc::clone(id));
            let Some(tenant) = next else {
                break;
            };
            let Some(slots) = state.tenants.get_mut(&tenant) else {
                break;
            };
            let Some((_, sender)) = slots.queue.pop_front() else {
                break;
            };
            // A waiter that gave up has dropped its receiver: the slot goes to the next.
            if sender.send(()).is_ok() {
                slots.in_flight += 1;
                state.free -= 1;
            }
        }
        state
            .tenants
            .retain(|_, t| t.in_flight > 0 || !t.queue.is_empty());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing is left half-updated under the lock by a panic that matters here.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_tenant_alone_leaves_headroom_and_another_gets_a_slot_at_once() {
        let slots = FairSlots::new(16, 100);
        let mut a = Vec::new();
        for _ in 0..14 {
            a.push(slots.acquire("a", soon(1000)).await.expect("a slot"));
        }
        assert_eq!(
            slots.acquire("a", soon(20)).await.err(),
            Some(NoSlot::Deadline),
            "a alone may hold 16 - 2 slots"
        );
        let b = slots
            .acquire("b", soon(1))
            .await
            .expect("b gets the headroom at once");
        assert_eq!(slots.usage("b").in_flight, 1);
        drop(b);
        drop(a);
        assert_eq!(slots.usage("a"), SlotUse::default());
    }

    #[tokio::test]
    async fn freed_slots_go_to_the_tenant_under_its_share_first() {
        let slots = FairSlots::new(4, 100);
        let mut a = Vec::new();
        for _ in 0..3 {
            a.push(slots.acquire("a", soon(1000)).await.expect("a slot"));
        }
        // b takes the last slot; a's next call waits behind a's own, as does b's second.
        let b1 = slots.acquire("b", soon(1000)).await.expect("b slot");
        let a_waits = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("a", soon(2000)).await.map(drop) }
        });
        let b_waits = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("b", soon(2000)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.usage("a").queued, 1);
        assert_eq!(slots.usage("b").queued, 1);
        // One of a's slots frees: a holds 2 of its share of 2, b holds 1, so b goes first.
        drop(a.pop());
        let b2 = b_waits.await.expect("join").expect("b's second call");
        assert_eq!(slots.usage("b").in_flight, 2);
        assert!(!a_waits.is_finished(), "a waits behind its own calls");
        drop((b1, b2));
        a_waits
            .await
            .expect("join")
            .expect("a's call runs once b's are done");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_waiter_gives_up_at_its_deadline() {
        let slots = FairSlots::new(2, 1);
        let _held = slots.acquire("a", soon(1000)).await.expect("slot");
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("a", soon(50)).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            slots.acquire("a", soon(1000)).await.err(),
            Some(NoSlot::QueueFull)
        );
        assert_eq!(waiter.await.expect("join"), Err(NoSlot::Deadline));
        assert_eq!(
            slots.usage("a"),
            SlotUse {
                in_flight: 1,
                queued: 0
            }
        );
    }

    #[tokio::test]
    async fn weights_divide_the_slots() {
        let slots = FairSlots::new(8, 100);
        slots.set_weights([("heavy".to_owned(), 3)]);
        let _light = slots.acquire("light", soon(1000)).await.expect("slot");
        let mut heavy = Vec::new();
        while let Ok(slot) = slots.acquire("heavy", soon(5)).await {
            heavy.push(slot);
        }
        assert_eq!(heavy.len(), 6, "3/4 of 8 slots while light has calls");
    }
}
