//! `underlay dhcp-renewer [--state-dir DIR]... [--max-sleep SECS]`: the daemon that keeps the
//! DHCP leases of containers the plugin connected (one process per host, e.g. the systemd unit
//! `cni/systemd/underlay-dhcp-renewer.service`). A CNI plugin lives one call long, so someone
//! else must renew at T1: this loop runs the library's `Networks::renew_due_dhcp` over each
//! state directory (networks made after it started included), then sleeps until the earliest
//! renewal is due (`Networks::next_dhcp_renewal`), at least 1 s and at most `--max-sleep`
//! (default 30 s, so that containers added meanwhile are seen). A lost lease is logged (the
//! library has removed its address). SIGTERM or SIGINT ends it after the tick under way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use underlay::network::Networks;
use underlay::{ErrorKind, Handle};

/// The subcommand's name.
pub(crate) const COMMAND: &str = "dhcp-renewer";

const USAGE: &str = "usage: underlay dhcp-renewer [--state-dir DIR]... [--max-sleep SECS]   (default state dir /var/lib/underlay)";

/// Never sleeps less than this between ticks (a renewal nobody answered stays due).
const MIN_SLEEP: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Options {
    state_dirs: Vec<PathBuf>,
    max_sleep: Duration,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        state_dirs: Vec::new(),
        max_sleep: Duration::from_secs(30),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--state-dir" => o.state_dirs.push(value("--state-dir")?.into()),
            "--max-sleep" => {
                let v = value("--max-sleep")?;
                let secs: u64 =
                    v.parse().ok().filter(|s| *s >= 1).ok_or_else(|| {
                        format!("--max-sleep `{v}`: give whole seconds, 1 or more")
                    })?;
                o.max_sleep = Duration::from_secs(secs);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if o.state_dirs.is_empty() {
        o.state_dirs.push(crate::config::DEFAULT_STATE_DIR.into());
    }
    Ok(o)
}

pub(crate) fn run(args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("underlay dhcp-renewer: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("underlay dhcp-renewer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underlay dhcp-renewer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(opts: Options) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let host = Handle::new().map_err(|e| format!("opening netlink in the host namespace: {e}"))?;
    let mut all = Vec::new();
    for dir in &opts.state_dirs {
        let nets = Networks::open(&host, dir)
            .await
            .map_err(|e| format!("opening state directory {}: {e}", dir.display()))?;
        all.push((dir.clone(), nets));
    }
    eprintln!(
        "underlay dhcp-renewer: renewing the DHCP leases of {} (pid {})",
        opts.state_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        std::process::id()
    );
    let mut last_errors = HashMap::new();
    loop {
        let tick = tick(&all, &mut last_errors);
        tokio::pin!(tick);
        let stop = tokio::select! {
            _ = &mut tick => false,
            _ = term.recv() => { (&mut tick).await; true }
            _ = int.recv() => { (&mut tick).await; true }
        };
        if stop {
            break;
        }
        let sleep = next_sleep(&all, opts.max_sleep).await;
        let stop = tokio::select! {
            _ = tokio::time::sleep(sleep) => false,
            _ = term.recv() => true,
            _ = int.recv() => true,
        };
        if stop {
            break;
        }
    }
    eprintln!("underlay dhcp-renewer: stopped");
    Ok(())
}

/// Renews what is due in every state directory, one log line per endpoint; an endpoint
/// failing again with the same error (a namespace gone without a DEL, due at every tick) is
/// not logged again until it changes.
async fn tick(all: &[(PathBuf, Networks)], last_errors: &mut HashMap<String, String>) {
    for (dir, nets) in all {
        let done = match nets.renew_due_dhcp().await {
            Ok(d) => d,
            Err(e) => {
                eprintln!(
                    "underlay dhcp-renewer: {}: cannot renew: {e}",
                    dir.display()
                );
                continue;
            }
        };
        for r in done {
            let who = format!("network `{}`, `{}`/{}", r.network, r.container_id, r.ifname);
            match r.result {
                Err(e) if last_errors.get(&who) == Some(&e.to_string()) => {}
                Err(e) => {
                    // Expiry and NAK: the library removed the address; anything else (the
                    // namespace gone without a DEL, a state-dir error) left the lease as it was.
                    let what = match e.kind() {
                        ErrorKind::Timeout | ErrorKind::Conflict => "DHCP lease lost",
                        _ => "cannot renew",
                    };
                    eprintln!("underlay dhcp-renewer: {who}: {what}: {e}");
                    last_errors.insert(who, e.to_string());
                }
                Ok(l) => {
                    last_errors.remove(&who);
                    eprintln!(
                        "underlay dhcp-renewer: {who}: lease of {} from {} held{}",
                        l.address,
                        l.server,
                        match l
                            .renew_at()
                            .and_then(|t| t.duration_since(SystemTime::now()).ok())
                        {
                            Some(d) => format!(", next renewal in {} s", d.as_secs()),
                            None => String::new(),
                        }
                    )
                }
            }
        }
    }
}

/// Until the earliest renewal is due, within [`MIN_SLEEP`] and `max`.
async fn next_sleep(all: &[(PathBuf, Networks)], max: Duration) -> Duration {
    let mut next: Option<SystemTime> = None;
    for (dir, nets) in all {
        match nets.next_dhcp_renewal().await {
            Ok(Some(t)) => next = Some(next.map_or(t, |n| n.min(t))),
            Ok(None) => {}
            Err(e) => eprintln!("underlay dhcp-renewer: {}: {e}", dir.display()),
        }
    }
    next.map_or(max, |t| {
        t.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .clamp(MIN_SLEEP, max)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a = |v: &[&str]| parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let o = a(&[]).unwrap();
        assert_eq!(o.state_dirs, [PathBuf::from("/var/lib/underlay")]);
        assert_eq!(o.max_sleep, Duration::from_secs(30));
        let o = a(&["--state-dir", "/a", "--state-dir", "/b", "--max-sleep", "5"]).unwrap();
        assert_eq!(o.state_dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(o.max_sleep, Duration::from_secs(5));
        assert!(a(&["--max-sleep", "0"])
            .unwrap_err()
            .contains("--max-sleep"));
        assert!(a(&["--state-dir"]).unwrap_err().contains("needs a value"));
        assert!(a(&["--bogus"]).unwrap_err().contains("--bogus"));
    }
}
