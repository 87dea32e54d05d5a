//! Captured work: every command a closure records (launches with their
//! parameters and arguments, uploads, clears, copies), kept so that it can be
//! recorded again without the code that produced it.
//!
//! A training step does the same work on the same buffers step after step
//! (the pool hands out the lowest free serial of a size class, so a step
//! that repeats gets the same buffers in the same roles). Replaying its
//! commands skips everything above the launch path (shapes, the tape,
//! allocation, kernel lookup), which is most of the host's time per step.
//!
//! A replay is only as right as the claim that nothing the closure did
//! depends on values the replay does not reproduce: host numbers that
//! change between calls (a step count, a learning rate, a batch read from
//! disk) would be frozen at their captured values. So the engine refuses
//! what it can see: a capture that read device values back is not
//! replayable, and users of `Trace` keep one only when two consecutive
//! captures of the same work recorded the same commands, byte for byte
//! (`Trace::same_as`). Kept (`Trace::keep`), a capture reserves its
//! buffers in the pool, so nothing else is handed one while it may be
//! replayed into.

use std::rc::Rc;

use super::dispatch::{Binding, Resource};
use super::registry::Kernel;
use super::{Gpu, PooledBuffer, View};
use crate::error::{Error, Result};

/// One argument of a captured launch (see `dispatch::Resource`).
enum Arg {
    Buffer { buffer: PooledBuffer, bytes: u64 },
    Window { buffer: PooledBuffer, offset: u64 },
    Texture(View),
}

/// One captured command.
enum Cmd {
    Launch {
        kernel: Rc<Kernel>,
        params: Vec<u8>,
        args: Vec<(u32, Arg)>,
        workgroups: u64,
    },
    Upload {
        dst: PooledBuffer,
        data: Vec<u8>,
    },
    Clear {
        dst: PooledBuffer,
        bytes: u64,
    },
    Copy {
        src: PooledBuffer,
        dst: PooledBuffer,
        runs: Vec<(u64, u64, u64)>,
    },
    Texels {
        src: PooledBuffer,
        dst: wgpu::Texture,
        dst_serial: u64,
        texels: u64,
    },
}

/// What a capture has recorded so far (see `Gpu::capture`).
#[derive(Default)]
pub(crate) struct Recording {
    cmds: Vec<Cmd>,
    /// Why the recording cannot be replayed, where something showed it.
    problem: Option<String>,
}

impl Recording {
    fn refuse(&mut self, why: &str) {
        self.problem.get_or_insert_with(|| why.to_string());
    }
}

/// The commands one closure recorded (see the module's doc).
pub struct Trace {
    gpu: Gpu,
    cmds: Vec<Cmd>,
    problem: Option<String>,
}

/// A trace kept for replay: its buffers stay out of the pool's free lists
/// until it is dropped.
pub struct Replay {
    trace: Trace,
    held: Vec<(u64, u64)>,
}

/// What identifies a buffer argument in a comparison of traces.
fn buffer_key(b: &PooledBuffer) -> [u64; 2] {
    [b.serial(), b.capacity()]
}

fn arg_key(slot: u32, a: &Arg) -> [u64; 4] {
    match a {
        Arg::Buffer { buffer, bytes } => [slot as u64, 0, buffer.serial(), *bytes],
        Arg::Window { buffer, offset } => [slot as u64, 1, buffer.serial(), *offset],
        Arg::Texture(v) => [slot as u64, 2, v.serial, 0],
    }
}

/// Whether two captured commands do the same thing to the same buffers.
fn same_cmd(a: &Cmd, b: &Cmd) -> bool {
    match (a, b) {
        (
            Cmd::Launch {
                kernel: k1,
                params: p1,
                args: a1,
                workgroups: w1,
            },
            Cmd::Launch {
                kernel: k2,
                params: p2,
                args: a2,
                workgroups: w2,
            },
        ) => {
            k1.serial == k2.serial
                && p1 == p2
                && w1 == w2
                && a1.len() == a2.len()
                && a1
                    .iter()
                    .zip(a2)
                    .all(|((s1, x1), (s2, x2))| arg_key(*s1, x1) == arg_key(*s2, x2))
        }
        (Cmd::Upload { dst: d1, data: x1 }, Cmd::Upload { dst: d2, data: x2 }) => {
            buffer_key(d1) == buffer_key(d2) && x1 == x2
        }
        (Cmd::Clear { dst: d1, bytes: b1 }, Cmd::Clear { dst: d2, bytes: b2 }) => {
            buffer_key(d1) == buffer_key(d2) && b1 == b2
        }
        (
            Cmd::Copy {
                src: s1,
                dst: d1,
                runs: r1,
            },
            Cmd::Copy {
                src: s2,
                dst: d2,
                runs: r2,
            },
        ) => buffer_key(s1) == buffer_key(s2) && buffer_key(d1) == buffer_key(d2) && r1 == r2,
        (
            Cmd::Texels {
                src: s1,
                dst_serial: d1,
                texels: t1,
                ..
            },
            Cmd::Texels {
                src: s2,
                dst_serial: d2,
                texels: t2,
                ..
            },
        ) => buffer_key(s1) == buffer_key(s2) && d1 == d2 && t1 == t2,
        _ => false,
    }
}

impl Trace {
    /// Launches recorded (uploads, clears and copies not counted).
    pub fn launches(&self) -> usize {
        self.cmds
            .iter()
            .filter(|c| matches!(c, Cmd::Launch { .. }))
            .count()
    }

    /// Why this trace may not be replayed, if something showed it.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Whether `other` recorded the same commands on the same buffers with
    /// the same parameters and uploaded bytes.
    pub fn same_as(&self, other: &Trace) -> bool {
        self.cmds.len() == other.cmds.len()
            && self
                .cmds
                .iter()
                .zip(&other.cmds)
                .all(|(a, b)| same_cmd(a, b))
    }

    /// Keeps the trace for replay (fails with the reason where it may not
    /// be replayed) and reserves its buffers in the pool.
    pub fn keep(self) -> Result<Replay> {
        if let Some(p) = &self.problem {
            return Err(Error::Config(format!("this work cannot be replayed: {p}")));
        }
        let mut held: Vec<(u64, u64)> = Vec::new();
        let mut add = |b: &PooledBuffer| held.push((b.serial(), b.capacity()));
        for c in &self.cmds {
            match c {
                Cmd::Launch { args, .. } => {
                    for (_, a) in args {
                        match a {
                            Arg::Buffer { buffer, .. } | Arg::Window { buffer, .. } => add(buffer),
                            Arg::Texture(_) => {}
                        }
                    }
                }
                Cmd::Upload { dst, .. } | Cmd::Clear { dst, .. } => add(dst),
                Cmd::Copy { src, dst, .. } => {
                    add(src);
                    add(dst);
                }
                Cmd::Texels { src, .. } => add(src),
            }
        }
        held.sort_unstable();
        held.dedup();
        self.gpu.inner.pool.reserve(&held);
        Ok(Replay { trace: self, held })
    }
}

impl Replay {
    /// Records the captured commands again, in order, through the launch
    /// path (parameters, kept bind groups, content stamps and profiling as
    /// for any launch).
    pub fn run(&self) -> Result<()> {
        let gpu = &self.trace.gpu;
        if gpu.inner.recording.borrow().is_some() {
            return Err(Error::Config(
                "a replay inside a capture: replay outside `Gpu::capture`".into(),
            ));
        }
        for c in &self.trace.cmds {
            match c {
                Cmd::Launch {
                    kernel,
                    params,
                    args,
                    workgroups,
                } => {
                    let bindings: Vec<Binding> = args.iter().map(|(s, a)| binding(*s, a)).collect();
                    gpu.launch_kernel(kernel, params, &bindings, *workgroups)?;
                }
                Cmd::Upload { dst, data } => gpu.write_buffer(dst, data)?,
                Cmd::Clear { dst, bytes } => gpu.clear_buffer(dst, *bytes)?,
                Cmd::Copy { src, dst, runs } => gpu.copy_runs(src, dst, runs)?,
                Cmd::Texels {
                    src,
                    dst,
                    dst_serial,
                    texels,
                } => gpu.copy_buffer_to_texels(src, dst, *dst_serial, *texels)?,
            }
        }
        Ok(())
    }

    /// The kept trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.trace.gpu.inner.pool.release(&self.held);
    }
}

fn binding<'a>(slot: u32, a: &'a Arg) -> Binding<'a> {
    let resource = match a {
        Arg::Buffer { buffer, bytes } => Resource::Buffer {
            buffer,
            bytes: *bytes,
        },
        Arg::Window { buffer, offset } => Resource::Window {
            buffer,
            offset: *offset,
        },
        Arg::Texture(v) => Resource::Texture(v),
    };
    Binding {
        resource,
        slot: Some(slot),
    }
}

impl Gpu {
    /// Runs `f` (its work is recorded and runs as usual) and returns its value
    /// with the trace of the commands it recorded. Captures do not nest.
    pub fn capture<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Trace)> {
        {
            let mut rec = self.inner.recording.borrow_mut();
            if rec.is_some() {
                return Err(Error::Config(
                    "captures do not nest: end the first before starting another".into(),
                ));
            }
            *rec = Some(Recording::default());
        }
        let value = f();
        let rec = self.inner.recording.borrow_mut().take().unwrap_or_default();
        let value = value?;
        Ok((
            value,
            Trace {
                gpu: self.clone(),
                cmds: rec.cmds,
                problem: rec.problem,
            },
        ))
    }

    /// Adds a command to the capture in progress, if any.
    fn record(&self, cmd: impl FnOnce() -> Cmd) {
        if let Some(r) = self.inner.recording.borrow_mut().as_mut() {
            r.cmds.push(cmd());
        }
    }

    pub(super) fn record_launch(
        &self,
        kernel: &Rc<Kernel>,
        params: &[u8],
        args: &[Binding],
        workgroups: u64,
    ) {
        self.record(|| Cmd::Launch {
            kernel: kernel.clone(),
            params: params.to_vec(),
            args: super::dispatch::slots(args)
                .map(|(slot, a)| {
                    let arg = match a.resource {
                        Resource::Buffer { buffer, bytes } => Arg::Buffer {
                            buffer: buffer.alias(),
                            bytes,
                        },
                        Resource::Window { buffer, offset } => Arg::Window {
                            buffer: buffer.alias(),
                            offset,
                        },
                        Resource::Texture(v) => Arg::Texture(v.clone()),
                    };
                    (slot, arg)
                })
                .collect(),
            workgroups,
        });
    }

    pub(super) fn record_upload(&self, dst: &PooledBuffer, data: &[u8]) {
        self.record(|| Cmd::Upload {
            dst: dst.alias(),
            data: data.to_vec(),
        });
    }

    pub(super) fn record_clear(&self, dst: &PooledBuffer, bytes: u64) {
        self.record(|| Cmd::Clear {
            dst: dst.alias(),
            bytes,
        });
    }

    pub(super) fn record_copy(
        &self,
        src: &PooledBuffer,
        dst: &PooledBuffer,
        runs: &[(u64, u64, u64)],
    ) {
        self.record(|| Cmd::Copy {
            src: src.alias(),
            dst: dst.alias(),
            runs: runs.to_vec(),
        });
    }

    pub(super) fn record_texels(
        &self,
        src: &PooledBuffer,
        dst: &wgpu::Texture,
        dst_serial: u64,
        texels: u64,
    ) {
        self.record(|| Cmd::Texels {
            src: src.alias(),
            dst: dst.clone(),
            dst_serial,
            texels,
        });
    }

    /// Marks the capture in progress, if any, as not replayable.
    pub(super) fn refuse_replay(&self, why: &str) {
        if let Some(r) = self.inner.recording.borrow_mut().as_mut() {
            r.refuse(why);
        }
    }
}
