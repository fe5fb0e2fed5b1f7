//! Which rank is gone when a collective fails. Gloo reports a closed socket or a timeout,
//! not a rank; so every rank bumps a counter in the store twice a second, and after a
//! failure the ranks whose counters stand still are the lost ones.

use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const BEAT: Duration = Duration::from_millis(500);
/// A rank whose counter did not move in this long is taken for lost.
const SILENCE: Duration = Duration::from_millis(1600);

pub struct Heartbeat {
    keys: Vec<String>,
    rank: usize,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(store: Arc<Store>, prefix: &str, rank: usize, world_size: usize) -> Heartbeat {
        let keys: Vec<String> = (0..world_size)
            .map(|r| format!("{prefix}heartbeat/{r}"))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (world_size > 1).then(|| {
            let (key, stop) = (keys[rank].clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A failing store is diagnosed by the collective that needs it.
                    let _ = store.add(&key, 1);
                    std::thread::sleep(BEAT);
                }
            })
        });
        Heartbeat {
            keys,
            rank,
            stop,
            thread,
        }
    }

    /// The other ranks whose heartbeat stopped; an error when the store itself is gone.
    pub fn lost_ranks(&self, store: &Store) -> Result<Vec<usize>, String> {
        let read = |store: &Store| -> Result<Vec<i64>, String> {
            self.keys.iter().map(|k| store.add(k, 0)).collect()
        };
        let before = read(store)?;
        std::thread::sleep(SILENCE);
        let after = read(store)?;
        Ok((0..self.keys.len())
            .filter(|&r| r != self.rank && before[r] == after[r])
            .collect())
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
