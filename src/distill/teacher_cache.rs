//! Teacher outputs shared by the runs of a comparison.
//!
//! The runs of `compare` that share a seed see the same batches: the loader's
//! order, crops and flips depend on the seed alone, and the teacher is frozen
//! and runs in eval mode. So its outputs for a batch are the same in every run,
//! and computing them once per (seed, step) saves one teacher forward per step
//! in every later run. The cached tensors are the very tensors the first run
//! computed, so results are bit-identical to computing them again.
//!
//! A batch is identified by what makes its images: the teacher file (by hash),
//! the data set, the input normalisation, the crop padding and the batch's
//! samples (image index, crop offsets, flip). The cache holds GPU tensors up to
//! a byte budget; past it, batches are computed as before.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::autograd::Var;
use crate::data::loader::SampleSpec;
use crate::nn::ModelOutput;
use crate::tensor::Tensor;

struct Outputs {
    logits: Tensor,
    boxes: Option<Tensor>,
    features: Vec<Tensor>,
    pooled: Tensor,
}

impl Outputs {
    fn of(out: &ModelOutput) -> Outputs {
        Outputs {
            logits: out.logits.value().clone(),
            boxes: out.boxes.as_ref().map(|b| b.value().clone()),
            features: out.features.iter().map(|f| f.value().clone()).collect(),
            pooled: out.pooled.value().clone(),
        }
    }

    fn bytes(&self) -> u64 {
        let mut b = self.logits.bytes() + self.pooled.bytes();
        b += self.boxes.as_ref().map_or(0, |t| t.bytes());
        b + self.features.iter().map(|t| t.bytes()).sum::<u64>()
    }

    fn to_output(&self) -> ModelOutput {
        ModelOutput {
            logits: Var::constant(self.logits.clone()),
            boxes: self.boxes.as_ref().map(|b| Var::constant(b.clone())),
            features: self
                .features
                .iter()
                .map(|f| Var::constant(f.clone()))
                .collect(),
            pooled: Var::constant(self.pooled.clone()),
        }
    }
}

#[derive(Default)]
struct State {
    used: u64,
    batches: HashMap<(String, Vec<SampleSpec>), Outputs>,
    tests: HashMap<String, crate::tasks::Predictions>,
    hits: u64,
    misses: u64,
}

/// Counters, for the log and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub entries: usize,
}

pub struct TeacherCache {
    budget: u64,
    state: RefCell<State>,
}

impl TeacherCache {
    /// A cache holding at most `budget_bytes` of teacher outputs (0: none, and
    /// no test predictions either: every run computes its own).
    pub fn new(budget_bytes: u64) -> TeacherCache {
        TeacherCache {
            budget: budget_bytes,
            state: RefCell::new(State::default()),
        }
    }

    /// The teacher's outputs for the batch `samples` of the set and teacher
    /// named by `context`: cached ones, or `compute`'s (kept if they fit).
    pub fn batch_outputs(
        &self,
        context: &str,
        samples: &[SampleSpec],
        compute: impl FnOnce() -> crate::Result<ModelOutput>,
    ) -> crate::Result<ModelOutput> {
        if self.budget == 0 {
            return compute();
        }
        let key = (context.to_string(), samples.to_vec());
        let hit = self
            .state
            .borrow()
            .batches
            .get(&key)
            .map(Outputs::to_output);
        if let Some(out) = hit {
            self.state.borrow_mut().hits += 1;
            return Ok(out);
        }
        let out = compute()?;
        let mut st = self.state.borrow_mut();
        st.misses += 1;
        let cached = Outputs::of(&out);
        let bytes = cached.bytes();
        if st.used + bytes <= self.budget {
            st.used += bytes;
            st.batches.insert(key, cached);
        }
        Ok(out)
    }

    /// The teacher's predictions on the test set named by `context`.
    pub fn test_predictions(
        &self,
        context: &str,
        compute: impl FnOnce() -> crate::Result<crate::tasks::Predictions>,
    ) -> crate::Result<crate::tasks::Predictions> {
        if self.budget == 0 {
            return compute();
        }
        let hit = self.state.borrow().tests.get(context).cloned();
        if let Some(p) = hit {
            return Ok(p);
        }
        let p = compute()?;
        self.state
            .borrow_mut()
            .tests
            .insert(context.to_string(), p.clone());
        Ok(p)
    }

    /// Drops the cached batches (a comparison moving on to another seed, whose
    /// batches differ), keeping the test predictions.
    pub fn clear_batches(&self) {
        let mut st = self.state.borrow_mut();
        st.batches.clear();
        st.used = 0;
    }

    pub fn stats(&self) -> CacheStats {
        let st = self.state.borrow();
        CacheStats {
            hits: st.hits,
            misses: st.misses,
            bytes: st.used,
            entries: st.batches.len(),
        }
    }
}
