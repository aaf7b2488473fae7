//! Counting the process's open pipes, for the leak checks. Shared by
//! `tests/common` and `tests/model` (and through it the fuzz target).

/// How many of this process's open fds are pipes (or FIFOs).
///
/// Pipes are what the crate makes, so a leak shows up here. Other files
/// are left out on purpose: under an emulator (qemu-user runs the cross
/// matrix) the fd table also holds the emulator's own files, which it
/// opens and closes as it likes, and one of those once looked like a leak.
pub fn open_pipe_count() -> usize {
    let dir = if std::path::Path::new("/proc/self/fd").exists() {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    std::fs::read_dir(dir)
        .expect("list open fds")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&fd| is_pipe(fd))
        .count()
}

fn is_pipe(fd: i32) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`; a number that is no
    // longer open (read_dir's own handle, closed since) gives EBADF.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so it filled `st` in.
    let mode = unsafe { st.assume_init() }.st_mode;
    // st_mode is wider than mode_t on 32-bit Android; the type bits fit.
    mode as libc::mode_t & libc::S_IFMT == libc::S_IFIFO
}
