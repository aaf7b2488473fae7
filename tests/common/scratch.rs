//! What the launch cases on Linux share: a scratch directory that kills
//! the processes a case recorded in it, whether a pid is alive or gone by
//! `/proc`, and the examples next to the test binary.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Whether `pid` is alive: running or sleeping, not gone and not a zombie.
pub fn alive(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
    }
}

/// Whether `pid` is gone altogether: no process, no zombie.
pub fn gone(pid: libc::pid_t) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// A scratch directory, removed when dropped, pass or fail; and the
/// processes a case wrote to `*.pid` files in it, killed when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static CASES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CASES.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tokenpipe-scratch-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What a script wrote to `name` (one line, trimmed), waiting up to
    /// 10 s for it.
    pub fn text(&self, name: &str) -> String {
        let path = self.path(name);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && text.ends_with('\n')
            {
                return text.trim().to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nothing written to {path:?} in 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The pid a script wrote to `name`, waiting up to 10 s for it.
    pub fn pid(&self, name: &str) -> libc::pid_t {
        let text = self.text(name);
        text.parse()
            .unwrap_or_else(|_| panic!("no pid in {name}: {text:?}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Every pid a case wrote to a `.pid` file here is one of its
        // processes: none is left.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".pid")
                    && let Ok(text) = std::fs::read_to_string(entry.path())
                    && let Ok(pid) = text.trim().parse::<libc::pid_t>()
                    && pid > 1
                {
                    // SAFETY: kill takes plain integers; the pid was one of
                    // this case's processes moments ago.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The example `name` next to this test binary (`TOKENPIPE_LAUNCH_EXAMPLE`
/// names another `launch`), as the words that start it: under the emulator
/// where there is one.
pub fn example_words(name: &str) -> Vec<std::ffi::OsString> {
    let exe = match std::env::var_os("TOKENPIPE_LAUNCH_EXAMPLE") {
        Some(path) if name == "launch" => PathBuf::from(path),
        _ => {
            let me = std::env::current_exe().unwrap();
            // target/<profile>/deps/this-test -> target/<profile>/examples/NAME
            me.parent()
                .and_then(Path::parent)
                .unwrap()
                .join("examples")
                .join(name)
        }
    };
    assert!(exe.exists(), "the {name} example is not built at {exe:?}");
    super::runner_words(exe.as_os_str())
}
