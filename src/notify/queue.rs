//! The outgoing queue: notifications accepted by the pipeline and not yet
//! delivered (or given up), in lanes of one receiver integration and one
//! group each.
//!
//! A notification enters the queue in the same journal record that logs
//! it in the notification log, and leaves it with a `done` record once the
//! integration accepted it or the retry stage gave up; after a crash the
//! journal gives the queue back and delivery resumes. Within a lane
//! notifications go out in the order they were accepted (a group's
//! "firing" before its "resolved"); lanes are independent, so one group's
//! failing message does not hold up the others. The queue is bounded: when
//! it is full a flush is not accepted (the group tries again at its next
//! flush) instead of growing memory without limit.
//!
//! Sixth stage of the pipeline (send with retry) reads from here; the
//! delivery loop itself lives in `manager`. No I/O here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::model::Timestamp;

use super::NotificationData;
use super::nflog::SendReason;

/// Default bound on queued notifications.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// One accepted notification.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedNotification {
    /// Increasing in acceptance order, never reused.
    pub id: u64,
    /// The receiver's name as configured.
    pub receiver: String,
    /// `telegram[0]`.
    pub integration: String,
    pub group_key: String,
    pub reason: SendReason,
    /// The flush time that produced it.
    pub accepted_at: Timestamp,
    /// No attempt starts after this.
    pub deadline: Timestamp,
    pub data: NotificationData,
}

impl QueuedNotification {
    pub fn lane(&self) -> LaneKey {
        LaneKey {
            receiver: self.receiver.clone(),
            integration: self.integration.clone(),
            group_key: self.group_key.clone(),
        }
    }
}

/// One receiver integration and one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaneKey {
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
}

#[derive(Debug, Default)]
struct Lane {
    ids: VecDeque<u64>,
    /// A delivery task is working on this lane.
    running: bool,
}

/// The queue is at its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the notification queue is full ({capacity} notifications wait for delivery)")]
pub struct QueueFull {
    pub capacity: usize,
}

/// The queue.
#[derive(Debug)]
pub struct Queue {
    capacity: usize,
    entries: HashMap<u64, Arc<QueuedNotification>>,
    lanes: HashMap<LaneKey, Lane>,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Queue {
            capacity,
            entries: HashMap::new(),
            lanes: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    /// Adds a notification at the end of its lane. `Ok(Some(lane))` when no
    /// task works on that lane yet: the caller must start one (the lane is
    /// marked as running). Restored entries may exceed the capacity.
    pub fn push(&mut self, n: Arc<QueuedNotification>) -> Option<LaneKey> {
        let key = n.lane();
        let lane = self.lanes.entry(key.clone()).or_default();
        // Ids grow, so pushing at the back keeps the lane in order; restored
        // entries are pushed in id order too.
        lane.ids.push_back(n.id);
        self.entries.insert(n.id, n);
        if lane.running {
            None
        } else {
            lane.running = true;
            Some(key)
        }
    }

    /// Like [`Queue::push`] but refuses when full.
    pub fn try_push(&mut self, n: Arc<QueuedNotification>) -> Result<Option<LaneKey>, QueueFull> {
        if self.is_full() {
            return Err(QueueFull {
                capacity: self.capacity,
            });
        }
        Ok(self.push(n))
    }

    /// The next notification of `lane`. `None` means the lane is empty: it
    /// is then forgotten and its task must stop (a later push starts a new
    /// one), which the caller does under the same lock, so no push is lost.
    pub fn next(&mut self, lane: &LaneKey) -> Option<Arc<QueuedNotification>> {
        let head = self
            .lanes
            .get(lane)
            .and_then(|l| l.ids.front())
            .and_then(|id| self.entries.get(id))
            .cloned();
        if head.is_none() {
            self.lanes.remove(lane);
        }
        head
    }

    /// Removes a delivered (or abandoned) notification.
    pub fn remove(&mut self, id: u64) -> Option<Arc<QueuedNotification>> {
        let n = self.entries.remove(&id)?;
        if let Some(l) = self.lanes.get_mut(&n.lane()) {
            l.ids.retain(|x| *x != id);
        }
        Some(n)
    }

    /// Every queued notification in acceptance order (for a snapshot).
    pub fn all(&self) -> Vec<Arc<QueuedNotification>> {
        let mut v: Vec<Arc<QueuedNotification>> = self.entries.values().cloned().collect();
        v.sort_by_key(|n| n.id);
        v
    }

    /// How many notifications wait in `lane`.
    pub fn lane_len(&self, lane: &LaneKey) -> usize {
        self.lanes.get(lane).map_or(0, |l| l.ids.len())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn n(id: u64, group: &str) -> Arc<QueuedNotification> {
        Arc::new(QueuedNotification {
            id,
            receiver: "r".into(),
            integration: "log[0]".into(),
            group_key: group.into(),
            reason: SendReason::FirstNotification,
            accepted_at: 0,
            deadline: 1,
            data: NotificationData::new("r", group, Labels::empty(), vec![], "", 0),
        })
    }

    #[test]
    fn lanes_keep_order_and_start_one_task_each() {
        let mut q = Queue::new(3);
        let a = q.try_push(n(1, "a")).unwrap().unwrap();
        assert!(q.try_push(n(2, "a")).unwrap().is_none());
        let b = q.try_push(n(3, "b")).unwrap().unwrap();
        assert_ne!(a, b);
        assert_eq!(q.try_push(n(4, "b")), Err(QueueFull { capacity: 3 }));
        assert_eq!(q.next(&a).unwrap().id, 1);
        q.remove(1);
        assert_eq!(q.next(&a).unwrap().id, 2);
        q.remove(2);
        // Empty: the task stops and the lane is forgotten...
        assert!(q.next(&a).is_none());
        assert_eq!(q.lane_len(&a), 0);
        // ...so the next push asks for a new task.
        assert_eq!(q.try_push(n(5, "a")).unwrap(), Some(a.clone()));
        assert_eq!(q.all().iter().map(|n| n.id).collect::<Vec<_>>(), [3, 5]);
        assert_eq!(q.len(), 2);
        assert!(q.remove(99).is_none());
    }
}
