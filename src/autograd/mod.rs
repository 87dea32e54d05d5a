//! Reverse-mode autograd. A `Var` holds a GPU tensor and, when it was made by a
//! differentiable op with gradient recording on, the op's inputs and a closure
//! that maps the output's gradient to the inputs' gradients. `backward` walks the
//! graph from a scalar in reverse topological order and accumulates gradients
//! into the leaves (parameters) and into any Var marked with `retain_grad`.
//!
//! The graph lives exactly as long as its Vars: dropping the loss of a step
//! returns every intermediate buffer to the pool. Inside `no_grad()` ops record
//! nothing (the teacher's forward keeps no graph and no gradient memory).

pub mod functional;
pub mod trace;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record a graph now.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Whether an op on `inputs` records a graph now: recording is on and some
/// input needs a gradient.
pub fn needs_grad<'a>(inputs: impl IntoIterator<Item = &'a Var>) -> bool {
    is_grad_enabled() && inputs.into_iter().any(Var::requires_grad)
}

/// Turns gradient recording off until the guard is dropped.
pub struct NoGradGuard {
    prev: bool,
}

pub fn no_grad() -> NoGradGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { prev }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Maps the gradient of an op's output to the gradients of its inputs (None for
/// inputs that need none).
pub type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>>>;

struct Node {
    parents: Vec<Var>,
    backward: BackwardFn,
    op: &'static str,
}

struct VarInner {
    value: Tensor,
    grad: RefCell<Option<Tensor>>,
    requires_grad: bool,
    retain: Cell<bool>,
    node: Option<Node>,
}

/// A tensor in the autograd graph. Cheap to clone (shared).
#[derive(Clone)]
pub struct Var(Rc<VarInner>);

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Var({:?}, requires_grad={})",
            self.0.value, self.0.requires_grad
        )
    }
}

impl Var {
    /// A leaf: a parameter when `requires_grad`, else a constant input.
    pub fn leaf(value: Tensor, requires_grad: bool) -> Var {
        Var(Rc::new(VarInner {
            value,
            grad: RefCell::new(None),
            requires_grad,
            retain: Cell::new(false),
            node: None,
        }))
    }

    pub fn constant(value: Tensor) -> Var {
        Var::leaf(value, false)
    }

    /// The result of a differentiable op. Records the node only when gradients
    /// are on and some input needs one.
    pub fn from_op(
        value: Tensor,
        op: &'static str,
        parents: Vec<Var>,
        backward: BackwardFn,
    ) -> Var {
        let needs = needs_grad(&parents);
        Var(Rc::new(VarInner {
            value,
            grad: RefCell::new(None),
            requires_grad: needs,
            retain: Cell::new(false),
            node: needs.then_some(Node {
                parents,
                backward,
                op,
            }),
        }))
    }

    pub fn value(&self) -> &Tensor {
        &self.0.value
    }
    pub fn shape(&self) -> &[usize] {
        self.0.value.shape()
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    /// Identity of this Var (clones share it), for tracing.
    pub fn id(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }

    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }
    /// The op that made this Var, or "leaf".
    pub fn op(&self) -> &'static str {
        self.0.node.as_ref().map_or("leaf", |n| n.op)
    }

    /// Keep this intermediate's gradient after `backward` (leaves always keep theirs).
    pub fn retain_grad(&self) {
        self.0.retain.set(true);
    }

    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.borrow().clone()
    }

    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }

    /// Replaces the stored gradient (optimisers' gradient surgery, tests).
    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.borrow_mut() = g;
    }

    fn key(&self) -> *const VarInner {
        Rc::as_ptr(&self.0)
    }

    /// Back-propagates from this scalar (a one-element Var) with gradient 1.
    pub fn backward(&self) -> Result<()> {
        if self.value().numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!(
                    "needs a one-element loss, got shape {:?}; use backward_with",
                    self.shape()
                ),
            ));
        }
        let one = crate::ops::full(self.value().gpu(), self.shape(), 1.0)?;
        self.backward_with(one)
    }

    /// Back-propagates `grad` (the gradient of some scalar with respect to this Var).
    pub fn backward_with(&self, grad: Tensor) -> Result<()> {
        if grad.shape() != self.shape() {
            return Err(Error::shape(
                "backward",
                format!(
                    "gradient {:?} does not match {:?}",
                    grad.shape(),
                    self.shape()
                ),
            ));
        }
        if !self.requires_grad() {
            return Err(Error::Config(
                "backward through a value that needs no gradient (made under no_grad, or from constants only)".into(),
            ));
        }
        // Reverse topological order by an iterative depth-first search.
        let mut order: Vec<Var> = Vec::new();
        let mut seen: HashMap<*const VarInner, ()> = HashMap::new();
        let mut stack: Vec<(Var, bool)> = vec![(self.clone(), false)];
        while let Some((v, expanded)) = stack.pop() {
            if expanded {
                order.push(v);
                continue;
            }
            if seen.insert(v.key(), ()).is_some() {
                continue;
            }
            stack.push((v.clone(), true));
            if let Some(node) = &v.0.node {
                for p in &node.parents {
                    if p.requires_grad() && !seen.contains_key(&p.key()) {
                        stack.push((p.clone(), false));
                    }
                }
            }
        }
        let mut grads: HashMap<*const VarInner, Tensor> = HashMap::new();
        grads.insert(self.key(), grad);
        for v in order.iter().rev() {
            let Some(g) = grads.remove(&v.key()) else {
                continue;
            };
            match &v.0.node {
                None => accumulate(&v.0.grad, g)?,
                Some(node) => {
                    if v.0.retain.get() {
                        accumulate(&v.0.grad, g.clone())?;
                    }
                    let gs = (node.backward)(&g)?;
                    for (p, gi) in node.parents.iter().zip(gs) {
                        let Some(gi) = gi else { continue };
                        if !p.requires_grad() {
                            continue;
                        }
                        if gi.shape() != p.shape() {
                            return Err(Error::Gpu(format!(
                                "internal: {} gave a gradient of shape {:?} for an input of shape {:?}",
                                node.op,
                                gi.shape(),
                                p.shape()
                            )));
                        }
                        match grads.remove(&p.key()) {
                            Some(prev) => grads.insert(p.key(), crate::ops::add(&prev, &gi)?),
                            None => grads.insert(p.key(), gi),
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

fn accumulate(slot: &RefCell<Option<Tensor>>, g: Tensor) -> Result<()> {
    let mut s = slot.borrow_mut();
    *s = Some(match s.take() {
        Some(prev) => crate::ops::add(&prev, &g)?,
        None => g,
    });
    Ok(())
}
