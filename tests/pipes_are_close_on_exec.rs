//! Both ends are close-on-exec from creation, on the `pipe2` path and on the
//! `pipe` + `fcntl` fallback that Apple targets use, and no end reaches an
//! exec'd program.
#![cfg(unix)]

mod common;

use std::process::Command;
use tokenpipe::TokenPipe;

fn assert_cloexec(pipe: TokenPipe) {
    let (r, w) = pipe.split();
    for fd in [r.as_raw_fd(), w.as_raw_fd()] {
        let flags = common::fd_flags(fd).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "fd {fd} is inheritable");
    }
}

#[test]
fn make_sets_close_on_exec_on_both_ends() {
    assert_cloexec(TokenPipe::make().unwrap());
}

#[test]
fn the_fcntl_fallback_sets_close_on_exec_on_both_ends() {
    assert_cloexec(TokenPipe::make_with_fcntl().unwrap());
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn linux_creates_pipes_atomically_close_on_exec() {
    assert!(std::hint::black_box(TokenPipe::ATOMIC_CLOEXEC));
}

#[cfg(target_vendor = "apple")]
#[test]
fn apple_targets_take_the_fcntl_path() {
    assert!(!std::hint::black_box(TokenPipe::ATOMIC_CLOEXEC));
}

/// Which of `fds` an exec'd shell can see.
fn visible_in_exec_child(fds: &[i32]) -> Vec<i32> {
    let script = "for fd in \"$@\"; do if [ -e /dev/fd/$fd ]; then echo $fd; fi; done";
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(fds.iter().map(|fd| fd.to_string()))
        .output()
        .expect("run /bin/sh");
    assert!(out.status.success(), "sh failed: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn assert_not_inherited(pipe: TokenPipe) {
    let (r, w) = pipe.split();
    let fds = [r.as_raw_fd(), w.as_raw_fd()];
    assert_eq!(visible_in_exec_child(&fds), Vec::<i32>::new());
}

#[test]
fn no_end_of_a_made_pipe_reaches_an_exec_child() {
    assert_not_inherited(TokenPipe::make().unwrap());
}

#[test]
fn no_end_of_a_fallback_pipe_reaches_an_exec_child() {
    assert_not_inherited(TokenPipe::make_with_fcntl().unwrap());
}

#[test]
fn the_exec_check_does_see_an_inheritable_fd() {
    // The control: clear close-on-exec on a write end and the child must see
    // it, or the two tests above prove nothing.
    let (_r, w) = TokenPipe::make().unwrap().split();
    let fd = w.as_raw_fd();
    // SAFETY: F_SETFD on an fd we own, touching no memory.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    assert_eq!(visible_in_exec_child(&[fd]), vec![fd]);
}
