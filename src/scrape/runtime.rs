//! The threads scrape loops run on: one single-threaded tokio runtime per
//! core, each owning the loops (and their connections) handed to it.
//!
//! Why not the main work-stealing runtime: a scrape is a burst of a few
//! hundred microseconds every few seconds, so its workers are mostly
//! parked, and every wake-up of one (a timer, a readable socket) also woke
//! a sibling to look for work to steal, which found none and parked again.
//! That futex round trip per event was about a tenth of the CPU spent per
//! sample. A loop never needs to move: it is spread over the shards once,
//! round robin, and keeps its thread, its timer and its keep-alive
//! connection there.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// A set of single-threaded runtimes for scrape loops.
pub struct LoopRuntimes {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping a sender lets its thread return, which drops its runtime
    /// and any task still on it.
    stops: Mutex<Vec<oneshot::Sender<()>>>,
}

impl LoopRuntimes {
    /// Starts `n` runtime threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // Names the runtime's blocking pool (DNS lookups); the
                // thread that drives the loops is named below.
                .thread_name(format!("scrape-{i}-blocking"))
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("scrape-{i}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            stops.push(stop);
        }
        Ok(LoopRuntimes {
            handles,
            next: AtomicUsize::new(0),
            stops: Mutex::new(stops),
        })
    }

    /// One runtime per available core.
    pub fn per_core() -> std::io::Result<Self> {
        Self::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Spawns `fut` on the next runtime in turn, tracked by `tracker`.
    pub fn spawn<F>(&self, tracker: &TaskTracker, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(tracker.track_future(fut))
    }
}

impl Drop for LoopRuntimes {
    fn drop(&mut self) {
        self.stops.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loops_spread_over_the_runtimes_and_are_tracked() {
        let rts = LoopRuntimes::start(2).unwrap();
        let tracker = TaskTracker::new();
        let mut joins = Vec::new();
        for _ in 0..4 {
            joins.push(rts.spawn(&tracker, async {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                std::thread::current().name().map(str::to_string)
            }));
        }
        assert_eq!(tracker.len(), 4);
        let mut names = Vec::new();
        for j in joins {
            names.push(j.await.unwrap().unwrap());
        }
        assert_eq!(names, ["scrape-0", "scrape-1", "scrape-0", "scrape-1"]);
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn dropping_the_set_ends_its_tasks() {
        let rts = LoopRuntimes::start(1).unwrap();
        let tracker = TaskTracker::new();
        let j = rts.spawn(&tracker, std::future::pending::<()>());
        drop(rts);
        assert!(j.await.unwrap_err().is_cancelled());
        tracker.close();
        tracker.wait().await;
    }
}
