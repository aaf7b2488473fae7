//! Across `fork()`: bitcoind's daemon hand-shake and a two-pipe
//! command/reply conversation, with the launcher bug of the original fixed
//! (end of stream or an error is failure, never success).
//!
//! Every test here forks, and a forked child inherits every fd the test
//! process has open, including other tests' write ends, which would delay
//! their end of stream. So the tests in this file take turns (`SERIAL`).
#![cfg(unix)]

mod common;

use std::ffi::c_int;
use std::sync::Mutex;

use common::{Ended, fork_child, kill, wait_for};
use tokenpipe::{Error, TokenPipe, TokenPipeEnd};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the daemon child does after the fork.
#[derive(Clone, Copy, Debug)]
enum Child {
    /// Set-up succeeds; initialisation succeeds: tokens 0 then 1.
    ComesUp,
    /// Set-up succeeds; initialisation fails: tokens 0 then 0.
    FailsInit,
    /// Set-up succeeds; exits before reporting readiness.
    ExitsBeforeReady,
    /// Exits during set-up, before the first token.
    ExitsDuringSetup,
    /// Set-up succeeds, then hangs until the launcher kills it.
    HangsAfterSetup,
}

/// What the launcher concluded, and the exit code it would use.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ready,
    InitFailed,
    DiedDuringSetup,
    DiedBeforeReady,
    Garbled(u8),
    ReadError(Error),
}

impl Verdict {
    fn exit_code(&self) -> c_int {
        // Success only on the ready token: the original's launcher returned
        // success on TS_ERR/TS_EOS too, which this port must not copy.
        if *self == Verdict::Ready { 0 } else { 1 }
    }
}

/// The daemon child: bitcoind's set-up, then the readiness report.
/// Async-signal-safe calls only (the test process has threads), and
/// failures are exit codes, not panics.
fn daemon_child(pipe: &mut TokenPipe, behaviour: Child) -> c_int {
    let writer = pipe.take_write_end();
    pipe.close(); // the child keeps only the write end
    if let Child::ExitsDuringSetup = behaviour {
        return 3;
    }
    // SAFETY: setsid, chdir, open, dup2 and close are async-signal-safe; the
    // paths are NUL-terminated literals.
    unsafe {
        if libc::setsid() < 0 {
            return 4;
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return 5;
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null < 0 {
            return 6;
        }
        for fd in 0..3 {
            if libc::dup2(null, fd) < 0 {
                return 7;
            }
        }
        if null > 2 {
            libc::close(null);
        }
    }
    if writer.token_write(0).is_err() {
        return 8;
    }
    let report = match behaviour {
        Child::ComesUp => 1,
        Child::FailsInit => 0,
        Child::ExitsBeforeReady => return 10,
        Child::HangsAfterSetup => loop {
            // SAFETY: pause is async-signal-safe; the launcher's SIGKILL
            // ends it.
            unsafe { libc::pause() };
        },
        Child::ExitsDuringSetup => return 3,
    };
    if writer.token_write(report).is_err() {
        return 9;
    }
    0
}

/// The launcher: fork, wait for the set-up token, then the ready token.
/// Returns its verdict and how the child ended.
fn launch(behaviour: Child) -> (Verdict, Ended) {
    let mut pipe = TokenPipe::make().unwrap();
    let pid = fork_child(|| daemon_child(&mut pipe, behaviour));
    let reader = pipe.take_read_end();
    pipe.close(); // the launcher keeps only the read end

    let verdict = match reader.token_read() {
        Ok(0) => {
            if let Child::HangsAfterSetup = behaviour {
                kill(pid, libc::SIGKILL);
            }
            match reader.token_read() {
                Ok(1) => Verdict::Ready,
                Ok(0) => Verdict::InitFailed,
                Ok(other) => Verdict::Garbled(other),
                Err(Error::Eos) => Verdict::DiedBeforeReady,
                Err(e) => Verdict::ReadError(e),
            }
        }
        Ok(other) => Verdict::Garbled(other),
        Err(Error::Eos) => Verdict::DiedDuringSetup,
        Err(e) => Verdict::ReadError(e),
    };
    (verdict, wait_for(pid))
}

#[test]
fn a_daemon_that_comes_up_makes_the_launcher_succeed() {
    let _turn = serial();
    let (verdict, ended) = launch(Child::ComesUp);
    assert_eq!(verdict, Verdict::Ready);
    assert_eq!(verdict.exit_code(), 0);
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn a_daemon_whose_initialisation_fails_makes_the_launcher_fail() {
    let _turn = serial();
    let (verdict, ended) = launch(Child::FailsInit);
    assert_eq!(verdict, Verdict::InitFailed);
    assert_eq!(verdict.exit_code(), 1);
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn a_daemon_that_exits_before_reporting_readiness_is_a_failure_not_success() {
    let _turn = serial();
    let (verdict, ended) = launch(Child::ExitsBeforeReady);
    assert_eq!(verdict, Verdict::DiedBeforeReady);
    assert_eq!(verdict.exit_code(), 1);
    assert_eq!(ended, Ended::Exited(10));
}

#[test]
fn a_daemon_that_exits_during_setup_is_reported_as_such() {
    let _turn = serial();
    let (verdict, ended) = launch(Child::ExitsDuringSetup);
    assert_eq!(verdict, Verdict::DiedDuringSetup);
    assert_eq!(verdict.exit_code(), 1);
    assert_eq!(ended, Ended::Exited(3));
}

#[test]
fn a_daemon_killed_after_setup_gives_end_of_stream_and_a_failure() {
    let _turn = serial();
    let (verdict, ended) = launch(Child::HangsAfterSetup);
    assert_eq!(verdict, Verdict::DiedBeforeReady);
    assert_eq!(verdict.exit_code(), 1);
    assert_eq!(ended, Ended::Killed(libc::SIGKILL));
}

/// The child side of the command/reply protocol, like Bitcoin Core's
/// directory-lock test: answer each command until told to exit.
fn command_server(commands: &mut TokenPipe, replies: &mut TokenPipe) -> c_int {
    let rx = commands.take_read_end();
    commands.close();
    let tx = replies.take_write_end();
    replies.close();
    let mut counter: u8 = 0;
    loop {
        let reply = match rx.token_read() {
            Ok(b'P') => b'p',
            Ok(b'I') => {
                counter = counter.wrapping_add(1);
                counter
            }
            Ok(b'X') => {
                if tx.token_write(b'x').is_err() {
                    return 2;
                }
                return 0;
            }
            Ok(_) => b'?',
            // The parent went away without saying goodbye.
            Err(Error::Eos) => return 3,
            Err(_) => return 4,
        };
        if tx.token_write(reply).is_err() {
            return 5;
        }
    }
}

/// Forks a command server; returns its pid, the command write end and the
/// reply read end (the parent's copies of the other ends are closed).
fn start_command_server() -> (libc::pid_t, TokenPipeEnd, TokenPipeEnd) {
    let mut commands = TokenPipe::make().unwrap();
    let mut replies = TokenPipe::make().unwrap();
    let pid = fork_child(|| command_server(&mut commands, &mut replies));
    let tx = commands.take_write_end();
    commands.close();
    let rx = replies.take_read_end();
    replies.close();
    (pid, tx, rx)
}

#[test]
fn a_child_answers_each_command_over_two_pipes_and_exits_on_request() {
    let _turn = serial();
    let (pid, tx, rx) = start_command_server();

    let ask = |cmd: u8| {
        tx.token_write(cmd).unwrap();
        rx.token_read().unwrap()
    };
    assert_eq!(ask(b'P'), b'p');
    assert_eq!(ask(b'I'), 1);
    assert_eq!(ask(b'I'), 2);
    assert_eq!(ask(b'Z'), b'?');
    assert_eq!(ask(b'I'), 3);
    assert_eq!(ask(b'X'), b'x');
    // The child has exited and closed its reply end.
    assert_eq!(rx.token_read(), Err(Error::Eos));
    assert_eq!(wait_for(pid), Ended::Exited(0));
}

#[test]
fn a_child_sees_end_of_stream_when_the_parent_drops_its_command_end() {
    let _turn = serial();
    let (pid, tx, rx) = start_command_server();

    tx.token_write(b'P').unwrap();
    assert_eq!(rx.token_read(), Ok(b'p'));
    drop(tx);
    assert_eq!(wait_for(pid), Ended::Exited(3));
    assert_eq!(rx.token_read(), Err(Error::Eos));
}

#[test]
fn a_write_with_no_reader_kills_the_writer_at_the_default_sigpipe_disposition() {
    // The original's behaviour, which token_write keeps: SIGPIPE is raised,
    // and at SIG_DFL it ends the process.
    let _turn = serial();
    // Close the only read end before the fork, so no copy of it survives.
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(reader);
    let pid = fork_child(|| {
        // SAFETY: SIG_DFL is a valid disposition; signal is
        // async-signal-safe.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        // Keep writing until the parent's close makes a write fail: a
        // single write can win the race against that close and succeed.
        loop {
            match writer.token_write(1) {
                Ok(()) => continue,
                Err(Error::BrokenPipe) => return 20, // survived: the signal was lost
                Err(_) => return 21,
            }
        }
    });
    assert_eq!(wait_for(pid), Ended::Killed(libc::SIGPIPE));
}
