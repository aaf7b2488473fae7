//! A reference model of a token pipe and a harness that runs the same
//! operations on the real crate and on the model, comparing every result.
//!
//! Shared by the property test (`tests/heavy/model_based.rs`) and the fuzz
//! target `operation_sequence` (`fuzz/`), both of which include this file by
//! path.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;

use tokenpipe::{Error, TokenPipe, TokenPipeEnd};

#[path = "../common/fds.rs"]
mod fds;
pub use fds::open_pipe_count;

/// One step of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Make a new pipe and `assign_from` it into the held pipe.
    Make,
    /// `take_read_end` from the held pipe into the taken read slot.
    TakeRead,
    /// `take_write_end` from the held pipe into the taken write slot.
    TakeWrite,
    /// Write this many tokens on the taken write end.
    Write(u8),
    /// Read this many tokens on the taken read end.
    Read(u8),
    /// `close` the taken read end.
    CloseRead,
    /// `close` the taken write end.
    CloseWrite,
    /// `close` the held pipe.
    ClosePipe,
    /// `split` the held pipe into the two taken slots.
    Split,
    /// Drop the held pipe.
    DropPipe,
    /// Drop the taken read end.
    DropRead,
    /// Drop the taken write end.
    DropWrite,
}

impl Op {
    /// Decodes a byte string into operations: the low nibble of each byte
    /// picks the operation, the high nibble a count (for Write and Read).
    pub fn decode(bytes: &[u8]) -> Vec<Op> {
        bytes
            .iter()
            .map(|&b| {
                let n = (b >> 4) * 3 + 1;
                match b & 0x0f {
                    0 | 12 => Op::Make,
                    1 => Op::TakeRead,
                    2 => Op::TakeWrite,
                    3 | 13 => Op::Write(n),
                    4 | 14 => Op::Read(n),
                    5 => Op::CloseRead,
                    6 => Op::CloseWrite,
                    7 => Op::ClosePipe,
                    8 | 15 => Op::Split,
                    9 => Op::DropPipe,
                    10 => Op::DropRead,
                    _ => Op::DropWrite,
                }
            })
            .collect()
    }
}

/// The model of one pipe: what is in it and how many ends are open.
#[derive(Debug, Default)]
struct PipeModel {
    queue: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

/// Which model pipe each slot's end belongs to (`None`: closed or empty).
#[derive(Debug, Default)]
struct Slots {
    held_read: Option<usize>,
    held_write: Option<usize>,
    taken_read: Option<usize>,
    taken_write: Option<usize>,
}

/// A mismatch between the crate and the model.
#[derive(Debug)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tokens queued in the model never exceed this, so no write can block on
/// a full pipe (pipes hold at least 4096 bytes on every Unix).
const QUEUE_LIMIT: usize = 4000;

/// Records in the model that an end of pipe `end` was closed.
fn close_model(pipes: &mut [PipeModel], end: Option<usize>, reader: bool) {
    if let Some(id) = end {
        if reader {
            pipes[id].readers -= 1;
        } else {
            pipes[id].writers -= 1;
        }
    }
}

/// The real objects and the model, side by side.
pub struct Harness {
    pipe: Option<TokenPipe>,
    taken_read: TokenPipeEnd,
    taken_write: TokenPipeEnd,
    pipes: Vec<PipeModel>,
    slots: Slots,
    next_token: u8,
    /// Compare the process's open pipe count with the model after each step.
    check_fds: bool,
    baseline_fds: usize,
}

impl Harness {
    /// A harness with nothing open. `check_fds` needs `open_pipe_count` to be
    /// exact: no other thread may open or close fds meanwhile.
    pub fn new(check_fds: bool) -> Harness {
        Harness {
            pipe: None,
            taken_read: TokenPipeEnd::new(),
            taken_write: TokenPipeEnd::new(),
            pipes: Vec::new(),
            slots: Slots::default(),
            next_token: 0,
            check_fds,
            baseline_fds: if check_fds { open_pipe_count() } else { 0 },
        }
    }

    fn open_ends(&self) -> usize {
        let s = &self.slots;
        [s.held_read, s.held_write, s.taken_read, s.taken_write]
            .iter()
            .filter(|e| e.is_some())
            .count()
    }

    /// Runs one operation on both sides and compares.
    pub fn apply(&mut self, op: Op) -> Result<(), Mismatch> {
        match op {
            Op::Make => {
                let mut fresh = TokenPipe::make().map_err(|e| Mismatch(format!("make: {e}")))?;
                match &mut self.pipe {
                    Some(p) => p.assign_from(&mut fresh),
                    None => self.pipe = Some(fresh),
                }
                close_model(&mut self.pipes, self.slots.held_read.take(), true);
                close_model(&mut self.pipes, self.slots.held_write.take(), false);
                self.pipes.push(PipeModel {
                    queue: VecDeque::new(),
                    readers: 1,
                    writers: 1,
                });
                let id = self.pipes.len() - 1;
                self.slots.held_read = Some(id);
                self.slots.held_write = Some(id);
            }
            Op::TakeRead => {
                let mut end = match &mut self.pipe {
                    Some(p) => p.take_read_end(),
                    None => TokenPipeEnd::new(),
                };
                self.taken_read.assign_from(&mut end);
                close_model(&mut self.pipes, self.slots.taken_read.take(), true);
                self.slots.taken_read = self.slots.held_read.take();
            }
            Op::TakeWrite => {
                let mut end = match &mut self.pipe {
                    Some(p) => p.take_write_end(),
                    None => TokenPipeEnd::new(),
                };
                self.taken_write.assign_from(&mut end);
                close_model(&mut self.pipes, self.slots.taken_write.take(), false);
                self.slots.taken_write = self.slots.held_write.take();
            }
            Op::Write(n) => {
                for _ in 0..n {
                    let expected = match self.slots.taken_write {
                        None => Err(Error::Closed),
                        Some(id) if self.pipes[id].readers == 0 => Err(Error::BrokenPipe),
                        Some(id) if self.pipes[id].queue.len() >= QUEUE_LIMIT => break,
                        Some(_) => Ok(()),
                    };
                    let token = self.next_token;
                    let got = self.taken_write.token_write(token);
                    if got != expected {
                        return Err(Mismatch(format!("write: got {got:?}, model {expected:?}")));
                    }
                    if got.is_ok() {
                        let id = self.slots.taken_write.unwrap();
                        self.pipes[id].queue.push_back(token);
                        self.next_token = self.next_token.wrapping_add(1);
                    }
                }
            }
            Op::Read(n) => {
                for _ in 0..n {
                    let expected = match self.slots.taken_read {
                        None => Err(Error::Closed),
                        Some(id) => match self.pipes[id].queue.front() {
                            Some(&t) => Ok(t),
                            None if self.pipes[id].writers == 0 => Err(Error::Eos),
                            // Empty with a writer: a read would block.
                            None => Err(Error::TimedOut),
                        },
                    };
                    let got = if expected == Err(Error::TimedOut) {
                        would_block_check(&self.taken_read)
                    } else {
                        self.taken_read.token_read()
                    };
                    if got != expected {
                        return Err(Mismatch(format!("read: got {got:?}, model {expected:?}")));
                    }
                    if got.is_ok() {
                        let id = self.slots.taken_read.unwrap();
                        self.pipes[id].queue.pop_front();
                    }
                }
            }
            Op::CloseRead | Op::DropRead => {
                if op == Op::CloseRead {
                    self.taken_read.close();
                } else {
                    self.taken_read = TokenPipeEnd::new();
                }
                close_model(&mut self.pipes, self.slots.taken_read.take(), true);
            }
            Op::CloseWrite | Op::DropWrite => {
                if op == Op::CloseWrite {
                    self.taken_write.close();
                } else {
                    self.taken_write = TokenPipeEnd::new();
                }
                close_model(&mut self.pipes, self.slots.taken_write.take(), false);
            }
            Op::ClosePipe | Op::DropPipe => {
                if op == Op::ClosePipe {
                    if let Some(p) = &mut self.pipe {
                        p.close();
                    }
                } else {
                    self.pipe = None;
                }
                close_model(&mut self.pipes, self.slots.held_read.take(), true);
                close_model(&mut self.pipes, self.slots.held_write.take(), false);
            }
            Op::Split => {
                // Splitting needs a pipe; with none held, nothing happens.
                if let Some(p) = self.pipe.take() {
                    let (mut r, mut w) = p.split();
                    self.taken_read.assign_from(&mut r);
                    self.taken_write.assign_from(&mut w);
                    close_model(&mut self.pipes, self.slots.taken_read.take(), true);
                    close_model(&mut self.pipes, self.slots.taken_write.take(), false);
                    self.slots.taken_read = self.slots.held_read.take();
                    self.slots.taken_write = self.slots.held_write.take();
                }
            }
        }
        self.check_state(op)
    }

    fn check_state(&self, op: Op) -> Result<(), Mismatch> {
        if self.taken_read.is_open() != self.slots.taken_read.is_some()
            || self.taken_write.is_open() != self.slots.taken_write.is_some()
        {
            return Err(Mismatch(format!(
                "after {op:?}: open ends differ from the model"
            )));
        }
        if self.check_fds {
            let open = open_pipe_count();
            let want = self.baseline_fds + self.open_ends();
            if open != want {
                return Err(Mismatch(format!(
                    "after {op:?}: {open} pipe fds open, model says {want}"
                )));
            }
        }
        Ok(())
    }

    /// Drops everything and checks no fd is left behind.
    pub fn finish(mut self) -> Result<(), Mismatch> {
        self.pipe = None;
        self.taken_read = TokenPipeEnd::new();
        self.taken_write = TokenPipeEnd::new();
        if self.check_fds {
            let open = open_pipe_count();
            if open != self.baseline_fds {
                return Err(Mismatch(format!(
                    "{open} pipe fds open at the end, {} before",
                    self.baseline_fds
                )));
            }
        }
        Ok(())
    }
}

/// Checks that a read would block, without blocking: a zero-timeout read
/// (poll). Under Miri, which has no poll, trust the model.
fn would_block_check(end: &TokenPipeEnd) -> Result<u8, Error> {
    if cfg!(miri) {
        Err(Error::TimedOut)
    } else {
        end.token_read_timeout(std::time::Duration::ZERO)
    }
}
