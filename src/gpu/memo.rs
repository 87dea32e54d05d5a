//! What the packed-operand cache (`textures::Packed`) and the derived-tensor
//! cache (`derived::Derived`) share: results keyed by what they were made
//! from and the content stamp of that (`PooledBuffer::content`), kept from
//! the second sighting of the same contents on (activations are seen once),
//! with the entries bounded in number and the kept values in bytes, least
//! recently used dropped first.

use std::collections::HashMap;
use std::hash::Hash;

struct Entry<V> {
    content: u64,
    kept: Option<(V, u64)>,
    used: u64,
}

/// What `Memo::see` found.
pub(crate) enum Seen<V> {
    /// A kept value for these contents.
    Kept(V),
    /// The second sighting of these contents: make the value and `keep` it.
    Second,
    /// The first: make the value, do not keep it.
    First,
}

pub(crate) struct Memo<K, V> {
    entries: HashMap<K, Entry<V>>,
    tick: u64,
    bytes: u64,
    budget: u64,
    max_entries: usize,
    /// Counts the times kept values were let go (see `drops`).
    drops: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Memo<K, V> {
    pub fn new(budget: u64, max_entries: usize) -> Self {
        Memo {
            entries: HashMap::new(),
            tick: 0,
            bytes: 0,
            budget,
            max_entries,
            drops: 0,
        }
    }

    /// A count that grows whenever kept values may have been let go: a
    /// caller that handed them out (textures bound in kept bind groups)
    /// knows to forget what still refers to them.
    pub fn drops(&self) -> u64 {
        self.drops
    }

    /// Looks `key` up at content stamp `content`; a kept value that `valid`
    /// rejects (written since) counts as none.
    pub fn see(&mut self, key: &K, content: u64, valid: impl Fn(&V) -> bool) -> Seen<V> {
        self.tick += 1;
        let tick = self.tick;
        let Some(e) = self.entries.get_mut(key) else {
            self.forget_older_half();
            let e = Entry {
                content,
                kept: None,
                used: tick,
            };
            self.entries.insert(key.clone(), e);
            return Seen::First;
        };
        e.used = tick;
        let first = e.content != content;
        if let Some((v, b)) = e.kept.take() {
            if !first && valid(&v) {
                e.kept = Some((v.clone(), b));
                return Seen::Kept(v);
            }
            self.bytes -= b;
            self.drops += 1;
        }
        e.content = content;
        if first { Seen::First } else { Seen::Second }
    }

    /// Keeps `value` (of `bytes`) for `key` after a `Seen::Second`; false
    /// where it is larger than the whole budget.
    pub fn keep(&mut self, key: &K, value: V, bytes: u64) -> bool {
        if bytes > self.budget {
            return false;
        }
        while self.bytes + bytes > self.budget {
            let Some(e) = self
                .entries
                .values_mut()
                .filter(|e| e.kept.is_some())
                .min_by_key(|e| e.used)
            else {
                break;
            };
            self.bytes -= e.kept.take().map_or(0, |(_, b)| b);
            self.drops += 1;
        }
        let Some(e) = self.entries.get_mut(key) else {
            return false;
        };
        if let Some((_, b)) = e.kept.replace((value, bytes)) {
            self.bytes -= b;
            self.drops += 1;
        }
        self.bytes += bytes;
        true
    }

    /// Past `max_entries`, forgets the least recently used half.
    fn forget_older_half(&mut self) {
        if self.entries.len() < self.max_entries {
            return;
        }
        let mut ticks: Vec<u64> = self.entries.values().map(|e| e.used).collect();
        ticks.sort_unstable();
        let cut = ticks[ticks.len() / 2];
        self.entries.retain(|_, e| e.used > cut);
        self.drops += 1;
        self.bytes = self
            .entries
            .values()
            .filter_map(|e| e.kept.as_ref())
            .map(|k| k.1)
            .sum();
    }

    /// Forgets everything and sets the byte bound.
    pub fn reset(&mut self, budget: u64) {
        self.entries.clear();
        self.drops += 1;
        self.bytes = 0;
        self.budget = budget;
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of the kept values.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}
