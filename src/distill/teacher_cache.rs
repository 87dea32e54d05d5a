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
//! a byte budget; past it, batches go to files in a spill folder up to a disk
//! budget (`TeacherCache::with_disk`: read back once, uploaded again on each
//! hit, the same bits), and past that they are computed as before. A spill
//! file that cannot be written (a full disk) or read back whole is no error:
//! that batch is computed instead, and a failed write stops the spilling.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

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

    /// The tensors in file order: logits, pooled, boxes (if any), features.
    fn tensors(&self) -> Vec<&Tensor> {
        let mut all = vec![&self.logits, &self.pooled];
        all.extend(&self.boxes);
        all.extend(&self.features);
        all
    }

    /// A spill file: the magic, the tensor count and whether boxes are
    /// there, each tensor's rank and dimensions, then every tensor's values
    /// (little-endian f32, in the same order).
    fn encode(&self) -> crate::Result<Vec<u8>> {
        let tensors = self.tensors();
        let mut out = MAGIC.to_vec();
        out.extend((tensors.len() as u32).to_le_bytes());
        out.extend(u32::from(self.boxes.is_some()).to_le_bytes());
        for t in &tensors {
            out.extend((t.shape().len() as u32).to_le_bytes());
            for &d in t.shape() {
                out.extend((d as u64).to_le_bytes());
            }
        }
        for t in &tensors {
            out.extend(t.to_vec()?.iter().flat_map(|v| v.to_le_bytes()));
        }
        Ok(out)
    }

    /// The outputs a spill file holds, uploaded to `gpu`; None where the
    /// file is not one `encode` wrote whole.
    fn decode(gpu: &crate::Gpu, bytes: &[u8]) -> Option<Outputs> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let (count, has_boxes) = (r.u32()? as usize, r.u32()? != 0);
        if count < 2 + usize::from(has_boxes) || count > 64 {
            return None;
        }
        let mut shapes = Vec::with_capacity(count);
        for _ in 0..count {
            let rank = r.u32()? as usize;
            let dims = (0..rank.min(8))
                .map(|_| r.u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<Vec<usize>>>()?;
            (dims.len() == rank).then_some(())?;
            shapes.push(dims);
        }
        let mut tensors = Vec::with_capacity(count);
        for shape in &shapes {
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
            let raw = r.take(n.checked_mul(4)?)?;
            let data: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.push(Tensor::from_slice(gpu, shape, &data).ok()?);
        }
        (r.at == bytes.len()).then_some(())?;
        let mut it = tensors.into_iter();
        let logits = it.next()?;
        let pooled = it.next()?;
        let boxes = if has_boxes { it.next() } else { None };
        Some(Outputs {
            logits,
            boxes,
            features: it.collect(),
            pooled,
        })
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

/// What a spill file starts with (condenser teacher cache, format 1).
const MAGIC: &[u8; 8] = b"CDTC\x01\0\0\0";

/// Bounds-checked little-endian reads from a spill file.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len())?;
        let got = &self.bytes[self.at..end];
        self.at = end;
        Some(got)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

type Key = (String, Vec<SampleSpec>);

/// The spill folder and what it holds.
struct Disk {
    gpu: crate::Gpu,
    dir: PathBuf,
    budget: u64,
    used: u64,
    files: HashMap<Key, PathBuf>,
    /// A write failed (a full disk): spill no more.
    stopped: bool,
}

impl Disk {
    /// Writes `out` to a new spill file if it fits the budget; false where
    /// it does not or the write failed.
    fn spill(&mut self, key: Key, out: &Outputs) -> bool {
        let bytes = out.bytes();
        if self.stopped || self.used + bytes > self.budget {
            return false;
        }
        let path = self.dir.join(format!("{}.bin", self.files.len()));
        // A plain write, not fsutil's synced one: the files live only as long
        // as the comparison, a crash leaves nothing to trust (the folder is
        // emptied at the start), and `decode` refuses a file not written whole.
        let written = std::fs::create_dir_all(&self.dir).is_ok()
            && out
                .encode()
                .is_ok_and(|data| std::fs::write(&path, data).is_ok());
        if written {
            self.used += bytes;
            self.files.insert(key, path);
        } else {
            let _ = std::fs::remove_file(&path);
            self.stopped = true;
        }
        written
    }

    /// The outputs spilled for `key`, if any and if its file reads back whole.
    fn load(&self, key: &Key) -> Option<Outputs> {
        let path = self.files.get(key)?;
        let bytes = std::fs::read(path).ok()?;
        Outputs::decode(&self.gpu, &bytes)
    }

    /// Removes every spill file (and the folder).
    fn clear(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.files.clear();
        self.used = 0;
    }
}

#[derive(Default)]
struct State {
    used: u64,
    batches: HashMap<Key, Outputs>,
    tests: HashMap<String, crate::tasks::Predictions>,
    hits: u64,
    disk_hits: u64,
    misses: u64,
    disk: Option<Disk>,
}

/// Counters, for the log and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Batches served from the cache (device memory or spill files).
    pub hits: u64,
    /// Of those, the ones read from spill files.
    pub disk_hits: u64,
    pub misses: u64,
    /// Bytes and batches held in device memory.
    pub bytes: u64,
    pub entries: usize,
    /// Bytes and batches held in spill files.
    pub disk_bytes: u64,
    pub disk_entries: usize,
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

    /// The cache of `new`, with batches past the memory budget spilled to
    /// files in `dir` (emptied now, and when the cache is dropped) up to
    /// `disk_bytes` (0: none).
    pub fn with_disk(gpu: &crate::Gpu, budget_bytes: u64, dir: PathBuf, disk_bytes: u64) -> Self {
        let cache = TeacherCache::new(budget_bytes);
        if budget_bytes > 0 && disk_bytes > 0 {
            let mut disk = Disk {
                gpu: gpu.clone(),
                dir,
                budget: disk_bytes,
                used: 0,
                files: HashMap::new(),
                stopped: false,
            };
            disk.clear();
            cache.state.borrow_mut().disk = Some(disk);
        }
        cache
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
        let spilled = self.state.borrow().disk.as_ref().and_then(|d| d.load(&key));
        if let Some(o) = spilled {
            let mut st = self.state.borrow_mut();
            st.hits += 1;
            st.disk_hits += 1;
            return Ok(o.to_output());
        }
        let out = compute()?;
        let mut st = self.state.borrow_mut();
        st.misses += 1;
        let cached = Outputs::of(&out);
        let bytes = cached.bytes();
        if st.used + bytes <= self.budget {
            st.used += bytes;
            st.batches.insert(key, cached);
        } else if let Some(disk) = st.disk.as_mut() {
            disk.spill(key, &cached);
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
        if let Some(d) = st.disk.as_mut() {
            d.clear();
        }
    }

    pub fn stats(&self) -> CacheStats {
        let st = self.state.borrow();
        let (disk_bytes, disk_entries) =
            st.disk.as_ref().map_or((0, 0), |d| (d.used, d.files.len()));
        CacheStats {
            hits: st.hits,
            disk_hits: st.disk_hits,
            misses: st.misses,
            bytes: st.used,
            entries: st.batches.len(),
            disk_bytes,
            disk_entries,
        }
    }
}

impl Drop for TeacherCache {
    fn drop(&mut self) {
        if let Some(d) = self.state.get_mut().disk.as_mut() {
            d.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(gpu: &crate::Gpu, boxes: bool) -> Outputs {
        let t = |shape: &[usize], seed| Tensor::rand_uniform(gpu, shape, -3.0, 3.0, seed).unwrap();
        Outputs {
            logits: t(&[4, 10], 1),
            boxes: boxes.then(|| t(&[4, 6, 5], 2)),
            features: vec![t(&[4, 8, 6, 6], 3), t(&[4, 16, 3, 3], 4)],
            pooled: t(&[4, 16], 5),
        }
    }

    fn same(a: &Outputs, b: &Outputs) -> bool {
        let (ta, tb) = (a.tensors(), b.tensors());
        ta.len() == tb.len()
            && a.boxes.is_some() == b.boxes.is_some()
            && ta.iter().zip(&tb).all(|(x, y)| {
                x.shape() == y.shape()
                    && x.to_vec()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>()
                        == y.to_vec()
                            .unwrap()
                            .iter()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>()
            })
    }

    #[test]
    fn a_spill_that_cannot_be_written_stops_spilling_and_the_batch_is_computed() {
        let gpu = crate::Gpu::new().unwrap();
        let dir = std::env::temp_dir().join(format!("condenser-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Where the spill folder should go there is a file of the user's: no
        // folder can be made there (as no file can be written on a full disk).
        let blocker = dir.join("spill");
        std::fs::write(&blocker, b"not ours").unwrap();
        let cache = TeacherCache::with_disk(&gpu, 1, blocker.clone(), 1 << 30);
        let samples = [SampleSpec {
            index: 0,
            dx: 0,
            dy: 0,
            flip: 0,
        }];
        let computed = std::cell::Cell::new(0);
        let compute = || {
            computed.set(computed.get() + 1);
            Ok(outputs(&gpu, false).to_output())
        };
        for _ in 0..2 {
            cache.batch_outputs("ctx", &samples, compute).unwrap();
        }
        assert_eq!(computed.get(), 2, "nothing was kept, so both calls compute");
        let st = cache.stats();
        assert_eq!((st.misses, st.hits, st.disk_entries), (2, 0, 0));
        drop(cache);
        assert_eq!(std::fs::read(&blocker).unwrap(), b"not ours");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spill_files_read_back_bit_for_bit_and_damaged_ones_are_refused() {
        let gpu = crate::Gpu::new().unwrap();
        for boxes in [false, true] {
            let o = outputs(&gpu, boxes);
            let file = o.encode().unwrap();
            let back = Outputs::decode(&gpu, &file).expect("a whole file");
            assert!(same(&o, &back));
            // Truncated anywhere, one byte too many, another magic, or a
            // dimension far past the file: refused, nothing allocated for it.
            for cut in [0, 7, 8, 15, file.len() / 2, file.len() - 1] {
                assert!(
                    Outputs::decode(&gpu, &file[..cut]).is_none(),
                    "cut at {cut}"
                );
            }
            let mut long = file.clone();
            long.push(0);
            assert!(Outputs::decode(&gpu, &long).is_none());
            let mut magic = file.clone();
            magic[0] ^= 1;
            assert!(Outputs::decode(&gpu, &magic).is_none());
            let mut huge = file.clone();
            // The first tensor's first dimension (after magic, count, boxes, rank).
            huge[20..28].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
            assert!(Outputs::decode(&gpu, &huge).is_none());
        }
    }
}
