//! Tensors derived from frozen ones, kept while their inputs are unchanged:
//! batch norm's eval-mode statistics from the running ones, a weight padded
//! to a multiple of 4. A frozen model recomputed them at every forward.
//!
//! Inputs are known by their buffers' content stamps (`PooledBuffer::content`),
//! which every recorded write replaces, so a kept result is never handed out
//! for inputs it was not computed from; the result's own stamp is checked
//! too, so a caller writing into a shared result only costs a recompute. A
//! result is kept from the second computation of the same inputs on
//! (activations are seen once), and the number of entries is bounded.

use std::collections::HashMap;
use std::rc::Rc;

use super::PooledBuffer;
use crate::tensor::DType;

/// How many derivations are remembered before the least recently used half
/// is forgotten.
const MAX_ENTRIES: usize = 4096;
/// The bytes of kept results, past which the least recently used are dropped.
const BUDGET: u64 = 64 << 20;

/// What a result is derived from: the derivation's name, each input's
/// (buffer id, content stamp), and everything else it depends on (the
/// inputs' shapes, the derivation's parameters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DerivedKey {
    pub kind: &'static str,
    pub inputs: Vec<(u64, u64)>,
    pub params: Vec<u64>,
}

/// A kept result: its buffer (not a tensor, which would hold the device
/// and keep it alive through its own cache), shape, type and stamp.
#[derive(Clone)]
pub(crate) struct Kept {
    pub buf: Rc<PooledBuffer>,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub content: u64,
}

struct Entry {
    kept: Option<Kept>,
    used: u64,
}

impl Entry {
    fn bytes(&self) -> u64 {
        self.kept.as_ref().map_or(0, |k| k.buf.capacity())
    }
}

/// What `Derived::lookup` tells the caller.
pub(crate) enum Lookup {
    /// The kept result, unchanged.
    Hit(Kept),
    /// Compute it and `keep` the result.
    Keep,
    /// Compute it (first sighting).
    Compute,
}

#[derive(Default)]
pub(crate) struct Derived {
    entries: HashMap<DerivedKey, Entry>,
    tick: u64,
    kept_bytes: u64,
    pub hits: u64,
}

impl Derived {
    pub fn lookup(&mut self, key: &DerivedKey) -> Lookup {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.entries.get_mut(key) {
            e.used = tick;
            return match &e.kept {
                Some(k) if k.buf.content() == k.content => {
                    self.hits += 1;
                    Lookup::Hit(k.clone())
                }
                // Written since it was kept: compute it again and keep that.
                _ => Lookup::Keep,
            };
        }
        if self.entries.len() >= MAX_ENTRIES {
            let mut ticks: Vec<u64> = self.entries.values().map(|e| e.used).collect();
            ticks.sort_unstable();
            let cut = ticks[ticks.len() / 2];
            self.entries.retain(|_, e| e.used > cut);
            self.kept_bytes = self.entries.values().map(Entry::bytes).sum();
        }
        self.entries.insert(
            key.clone(),
            Entry {
                kept: None,
                used: tick,
            },
        );
        Lookup::Compute
    }

    /// Keeps `kept` as the result of `key` (after a `Lookup::Keep`).
    pub fn keep(&mut self, key: &DerivedKey, kept: Kept) {
        let bytes = kept.buf.capacity();
        if bytes > BUDGET {
            return;
        }
        while self.kept_bytes + bytes > BUDGET {
            let Some(e) = self
                .entries
                .values_mut()
                .filter(|e| e.kept.is_some())
                .min_by_key(|e| e.used)
            else {
                break;
            };
            self.kept_bytes -= e.bytes();
            e.kept = None;
        }
        if let Some(e) = self.entries.get_mut(key) {
            self.kept_bytes -= e.bytes();
            e.kept = Some(kept);
            self.kept_bytes += bytes;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.kept_bytes = 0;
    }
}
