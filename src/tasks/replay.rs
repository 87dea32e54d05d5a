//! Training steps replayed from a capture (`gpu::capture`): the part of a
//! step that records the same commands on the same buffers step after step
//! (forward, losses, backward) is captured, kept once two consecutive steps
//! recorded the same work, and then replayed without the host code that
//! recorded it. What changes every step on the host (the learning rate, the
//! optimiser's step count, divergence marks, logging) stays outside.
//!
//! A replay is the captured step only while everything it assumed holds:
//! the caller's key (its input tensors, its settings), and for every module
//! it names, each parameter's buffer and gradient and each statistics
//! buffer. Anything else makes the next step record afresh. Counters the
//! modules keep on the host (`num_batches_tracked`) are moved by what the
//! captured step moved them.

use std::cell::Cell;

use crate::error::Result;
use crate::gpu::{Gpu, Replay, Trace};
use crate::nn::{Entry, Module};

/// Consecutive steps recorded before giving up on finding two that did the
/// same work.
const TRIES: usize = 4;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
    static REPLAYED: Cell<u64> = const { Cell::new(0) };
}

/// Turns replaying off (and on) for the trainer on this thread (tests
/// compare the two; the results are the same to the bit).
#[doc(hidden)]
pub fn set_enabled(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// Whether the trainer replays steps on this thread.
pub fn enabled() -> bool {
    ENABLED.with(|e| e.get())
}

/// Steps replayed on this thread so far (every `StepReplay`).
pub fn replayed_steps() -> u64 {
    REPLAYED.with(|r| r.get())
}

/// One kind of step, captured and replayed (see the module's doc). `T` is
/// what the step returns (its losses): the same tensors at every replay.
pub struct StepReplay<T> {
    state: State<T>,
    replays: usize,
}

enum State<T> {
    Learning {
        previous: Option<Trace>,
        tries: usize,
    },
    Replaying(Box<Kept<T>>),
    Off(String),
}

struct Kept<T> {
    replay: Replay,
    out: T,
    identity: Vec<u64>,
    counter_steps: Vec<i64>,
}

/// What a step assumes of its parts: the caller's key, then each module's
/// parameters (buffer and gradient) and statistics buffers.
#[derive(Clone, Copy)]
pub struct StepParts<'a> {
    /// The caller's own: its input tensors' buffers, its settings.
    pub key: &'a [u64],
    pub modules: &'a [&'a dyn Module],
}

fn identity(parts: StepParts) -> Vec<u64> {
    let mut id = parts.key.to_vec();
    for m in parts.modules {
        m.visit("", &mut |_, e| match e {
            Entry::Param(p) => {
                id.push(p.value().buffer().id());
                id.push(p.grad().map_or(0, |g| g.buffer().id()));
            }
            Entry::Buffer(t) => id.push(t.buffer().id()),
            Entry::Counter(_) => {}
        });
    }
    id
}

fn counters(modules: &[&dyn Module]) -> Vec<i64> {
    let mut v = Vec::new();
    for m in modules {
        m.visit("", &mut |_, e| {
            if let Entry::Counter(c) = e {
                v.push(c.get());
            }
        });
    }
    v
}

fn bump_counters(modules: &[&dyn Module], steps: &[i64]) {
    let mut i = 0;
    for m in modules {
        m.visit("", &mut |_, e| {
            if let Entry::Counter(c) = e {
                c.set(c.get() + steps.get(i).copied().unwrap_or(0));
                i += 1;
            }
        });
    }
}

impl<T: Clone> Default for StepReplay<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> StepReplay<T> {
    pub fn new() -> Self {
        StepReplay {
            state: State::Learning {
                previous: None,
                tries: 0,
            },
            replays: 0,
        }
    }

    /// Steps replayed so far.
    pub fn replays(&self) -> usize {
        self.replays
    }

    /// Launches each replay records, once a step is kept.
    pub fn launches(&self) -> Option<usize> {
        match &self.state {
            State::Replaying(k) => Some(k.replay.trace().launches()),
            _ => None,
        }
    }

    /// Why steps are no longer captured, if they are not.
    pub fn off(&self) -> Option<&str> {
        match &self.state {
            State::Off(why) => Some(why),
            _ => None,
        }
    }

    /// One step: a replay where the kept capture's assumptions hold
    /// (`parts`: compared before a replay, taken after a capture, so the
    /// gradients are the step's own), else `f` run and captured.
    pub fn step(
        &mut self,
        gpu: &Gpu,
        parts: StepParts,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let modules = parts.modules;
        if let State::Replaying(k) = &self.state {
            if k.identity == identity(parts) {
                k.replay.run()?;
                bump_counters(modules, &k.counter_steps);
                self.replays += 1;
                REPLAYED.with(|r| r.set(r.get() + 1));
                return Ok(k.out.clone());
            }
            // Something the capture assumed changed: free its buffers
            // before recording, so that the pool is as an eager step finds it.
            self.state = State::Learning {
                previous: None,
                tries: 0,
            };
        }
        if matches!(self.state, State::Off(_)) {
            return f();
        }
        let before = counters(modules);
        let (out, trace) = gpu.capture(f)?;
        let counter_steps = counters(modules)
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        self.learn(trace, &out, identity(parts), counter_steps)?;
        Ok(out)
    }

    /// Keeps `trace` where the previous step recorded the same work.
    fn learn(
        &mut self,
        trace: Trace,
        out: &T,
        identity: Vec<u64>,
        counter_steps: Vec<i64>,
    ) -> Result<()> {
        let State::Learning { previous, tries } = &mut self.state else {
            return Ok(());
        };
        if let Some(why) = trace.problem() {
            self.state = State::Off(why.to_string());
            return Ok(());
        }
        if previous.as_ref().is_some_and(|p| p.same_as(&trace)) {
            self.state = State::Replaying(Box::new(Kept {
                replay: trace.keep()?,
                out: out.clone(),
                identity,
                counter_steps,
            }));
            return Ok(());
        }
        *tries += 1;
        if *tries >= TRIES {
            self.state = State::Off(format!("{TRIES} consecutive steps recorded different work"));
        } else {
            *previous = Some(trace);
        }
        Ok(())
    }
}
