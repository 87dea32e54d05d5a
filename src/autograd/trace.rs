//! Recording a forward pass as a graph of ONNX operators, for export. While a
//! capture is active, each differentiable op that has an ONNX form records the
//! nodes it amounts to; ops built from other ops record themselves once and
//! silence the ops inside them (`quiet`). The recorder holds the Vars it sees,
//! so their identities stay unique for the capture's life.

use std::cell::{Cell, RefCell};

use super::Var;
use crate::tensor::Tensor;

/// An input of a recorded node.
#[derive(Clone)]
pub enum Operand {
    /// A tensor of the forward pass (the image, a parameter, an op's output).
    Var(Var),
    /// A model buffer (batch-norm running statistics).
    Buffer(Tensor),
    /// Constants the op's attributes become (shapes, slice bounds, scales).
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    /// The output of the previous node of the same record.
    Prev,
    /// An optional input left out.
    Absent,
}

/// An attribute of a recorded node.
#[derive(Clone, Debug)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

/// One ONNX node.
#[derive(Clone)]
pub struct Step {
    pub op: &'static str,
    pub inputs: Vec<Operand>,
    pub attrs: Vec<(&'static str, Attr)>,
}

/// The nodes one differentiable op amounts to; the last makes `output`.
pub struct Record {
    pub steps: Vec<Step>,
    pub output: Var,
}

thread_local! {
    static TRACE: RefCell<Option<Vec<Record>>> = const { RefCell::new(None) };
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with recording on; returns its result and the records, in order.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<Record>) {
    TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
    let out = f();
    let records = TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    (out, records)
}

fn active() -> bool {
    QUIET.with(Cell::get) == 0 && TRACE.with(|t| t.borrow().is_some())
}

/// Records `steps` as making `output`.
pub fn record(steps: Vec<Step>, output: &Var) {
    if active() {
        TRACE.with(|t| {
            if let Some(v) = t.borrow_mut().as_mut() {
                v.push(Record {
                    steps,
                    output: output.clone(),
                });
            }
        });
    }
}

/// One node.
pub fn node(op: &'static str, inputs: Vec<Operand>, attrs: Vec<(&'static str, Attr)>) -> Step {
    Step { op, inputs, attrs }
}

struct QuietGuard;

impl Drop for QuietGuard {
    fn drop(&mut self) {
        QUIET.with(|q| q.set(q.get() - 1));
    }
}

/// Runs `f` without recording the ops inside it (an op that records itself).
pub fn quiet<T>(f: impl FnOnce() -> T) -> T {
    QUIET.with(|q| q.set(q.get() + 1));
    let _g = QuietGuard;
    f()
}

/// `y`, recorded as made by the steps `f` builds (built only while capturing).
pub fn traced(y: Var, f: impl FnOnce() -> Vec<Step>) -> Var {
    if active() {
        let steps = f();
        record(steps, &y);
    }
    y
}

/// Shorthand for a Var operand.
pub fn v(x: &Var) -> Operand {
    Operand::Var(x.clone())
}
