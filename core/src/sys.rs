//! Thin wrappers over the few system calls netlink does not cover.

/// Fills `buf` from the kernel's random source.
pub(crate) fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // getrandom(2) cannot fail for small buffers on Linux >= 3.17; fall back to time.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            for (i, b) in buf[filled..].iter_mut().enumerate() {
                *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
            }
            return;
        }
    }
}

/// This process's pid and start time (clock ticks since boot), which together name it uniquely
/// across pid reuse.
pub(crate) fn process_identity() -> (u32, u64) {
    // Read once per process (a forked child has another pid and reads its own).
    static CACHED: std::sync::Mutex<Option<(u32, u64)>> = std::sync::Mutex::new(None);
    let pid = std::process::id();
    let mut cached = CACHED.lock().unwrap_or_else(|p| p.into_inner());
    match *cached {
        Some((p, start)) if p == pid => (p, start),
        _ => {
            let id = (pid, start_time(pid).unwrap_or(0));
            *cached = Some(id);
            id
        }
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised command name (which may hold spaces).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}
