//! `SignalInterrupt::install` beside tokio's own signal streams (which
//! signal-hook-registry serves), in either order: neither silences the
//! other, and `restore` never puts back a disposition under a handler
//! that tokio installed since (the next delivery would then kill the
//! process, its stream still alive). Each case has a signal of its own:
//! the cases run on threads of one process, and a disposition is the
//! process's.
#![cfg(all(unix, feature = "std"))]

use std::time::Duration;

use tokenpipe::SignalInterrupt;
use tokio::signal::unix::{SignalKind, signal};

fn raise(sig: libc::c_int) {
    // SAFETY: a plain integer; each case has handlers in place for it.
    unsafe { libc::raise(sig) };
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn installed_after_tokio_the_interrupt_and_tokios_stream_both_fire() {
    static STOP: SignalInterrupt = SignalInterrupt::new();
    let sig = libc::SIGUSR1;
    runtime().block_on(async {
        let mut stream = signal(SignalKind::from_raw(sig)).expect("tokio's stream");
        let installed = STOP.install(&[sig]).expect("install");
        raise(sig);
        assert!(STOP.is_triggered(), "the interrupt fires");
        let fired = tokio::time::timeout(Duration::from_secs(10), stream.recv()).await;
        assert_eq!(fired, Ok(Some(())), "tokio's stream fires too");
        installed.restore().expect("restore");
    });
}

#[test]
fn restore_after_tokio_installed_leaves_tokios_handler_and_the_process_alive() {
    static STOP: SignalInterrupt = SignalInterrupt::new();
    let sig = libc::SIGUSR2;
    runtime().block_on(async {
        let installed = STOP.install(&[sig]).expect("install");
        let mut stream = signal(SignalKind::from_raw(sig)).expect("tokio's stream");
        installed.restore().expect("restore");
        // SIG_DFL put back here would end this process at the raise.
        raise(sig);
        let fired = tokio::time::timeout(Duration::from_secs(10), stream.recv()).await;
        assert_eq!(fired, Ok(Some(())), "tokio's stream still fires");
        assert!(
            !STOP.is_triggered(),
            "the restored interrupt no longer fires"
        );
    });
}
