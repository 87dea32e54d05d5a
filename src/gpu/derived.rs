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

use std::rc::Rc;

use super::PooledBuffer;
use super::memo::{Memo, Seen};
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

/// What `Derived::lookup` tells the caller.
pub(crate) enum Lookup {
    /// The kept result, unchanged.
    Hit(Kept),
    /// Compute it and `keep` the result.
    Keep,
    /// Compute it (first sighting).
    Compute,
}

pub(crate) struct Derived {
    memo: Memo<DerivedKey, Kept>,
    pub hits: u64,
}

impl Default for Derived {
    fn default() -> Self {
        Derived {
            memo: Memo::new(BUDGET, MAX_ENTRIES),
            hits: 0,
        }
    }
}

impl Derived {
    pub fn lookup(&mut self, key: &DerivedKey) -> Lookup {
        // The inputs' stamps are in the key; a kept result must be unwritten.
        match self.memo.see(key, 0, |k| k.buf.content() == k.content) {
            Seen::Kept(k) => {
                self.hits += 1;
                Lookup::Hit(k)
            }
            Seen::Second => Lookup::Keep,
            Seen::First => Lookup::Compute,
        }
    }

    /// Keeps `kept` as the result of `key` (after a `Lookup::Keep`).
    pub fn keep(&mut self, key: &DerivedKey, kept: Kept) {
        let bytes = kept.buf.capacity();
        self.memo.keep(key, kept, bytes);
    }

    pub fn clear(&mut self) {
        self.memo.reset(BUDGET);
    }
}
