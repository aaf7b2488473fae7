//! The set-up report, child to launcher: what the child's set-up came to,
//! in one short message before the readiness token.

use super::{DaemonError, SetupStep};
use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};

/// The set-up report, child to launcher. Each message goes out in one
/// `write(2)` of at most [`MESSAGE_MAX`] bytes, far below `PIPE_BUF`, so it
/// arrives whole or not at all. The readiness token that follows is one
/// byte, as in bitcoind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Report {
    /// `[0, pid]`: set-up done; the daemon's pid.
    Done(libc::pid_t),
    /// `[2, step, errno]`: a step failed; the child exits.
    StepFailed(SetupStep, Errno),
    /// `[3, pid]`: the pid file is locked by this pid; the child exits.
    AlreadyRunning(libc::pid_t),
    /// `[4, pid]`: from the intermediate child of a double fork, the
    /// daemon's pid. Always first: the daemon waits for it to be sent
    /// before it goes on, and its own report follows.
    Forked(libc::pid_t),
}

const MESSAGE_MAX: usize = 6;
pub(super) const TAG_DONE: u8 = 0;
pub(super) const TAG_STEP_FAILED: u8 = 2;
const TAG_ALREADY_RUNNING: u8 = 3;
pub(super) const TAG_FORKED: u8 = 4;

impl Report {
    fn encode(self, buf: &mut [u8; MESSAGE_MAX]) -> &[u8] {
        let (tag, first, value) = match self {
            Report::Done(pid) => (TAG_DONE, None, pid),
            Report::StepFailed(step, errno) => (TAG_STEP_FAILED, Some(step as u8), errno.raw()),
            Report::AlreadyRunning(pid) => (TAG_ALREADY_RUNNING, None, pid),
            Report::Forked(pid) => (TAG_FORKED, None, pid),
        };
        buf[0] = tag;
        let mut len = 1;
        if let Some(byte) = first {
            buf[1] = byte;
            len = 2;
        }
        buf[len..len + 4].copy_from_slice(&value.to_ne_bytes());
        &buf[..len + 4]
    }

    /// Sends the report in one write. If the launcher is gone, `SIGPIPE`
    /// ends the child at the default disposition, or the write fails with
    /// `BrokenPipe` and the caller exits: nobody waits for this daemon.
    pub(super) fn send(self, writer: &TokenPipeEnd) -> Result<()> {
        let mut buf = [0u8; MESSAGE_MAX];
        let bytes = self.encode(&mut buf);
        match writer.write_tokens(bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(Error::Os(Errno::EFAULT)), // cannot happen: one write ≤ PIPE_BUF
            Err(e) => Err(e),
        }
    }

    /// Reads one report: the tag, then exactly its payload, so the
    /// readiness token behind it stays in the pipe.
    pub(super) fn receive(reader: &TokenPipeEnd) -> core::result::Result<Report, DaemonError> {
        let tag = reader.token_read()?;
        let payload = match tag {
            TAG_STEP_FAILED => 5,
            TAG_DONE | TAG_ALREADY_RUNNING | TAG_FORKED => 4,
            other => return Err(DaemonError::UnexpectedToken(other)),
        };
        let mut buf = [0u8; MESSAGE_MAX - 1];
        reader.read_exact(&mut buf[..payload])?;
        let value =
            |at: usize| i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        Ok(match tag {
            TAG_DONE => Report::Done(value(0)),
            TAG_ALREADY_RUNNING => Report::AlreadyRunning(value(0)),
            TAG_FORKED => Report::Forked(value(0)),
            _ => match SetupStep::from_u8(buf[0]) {
                Some(step) => Report::StepFailed(step, Errno::from_raw(value(1))),
                None => return Err(DaemonError::UnexpectedToken(TAG_STEP_FAILED)),
            },
        })
    }
}
