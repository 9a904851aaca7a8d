//! `underlay-docker --socket PATH --state DIR [--etcd URL,...]`: the Docker plugin daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use underlay::ipam::Store;
use underlay_docker::{Plugin, DEFAULT_SOCKET};

const USAGE: &str = "usage: underlay-docker [--socket PATH] [--state DIR] [--etcd URL,...]

Serves Docker's network driver and IPAM driver plugin API (`docker network create -d underlay
--ipam-driver underlay`) on a Unix socket.
  --socket PATH   default /run/docker/plugins/underlay.sock (dockerd finds it there)
  --state DIR     networks, endpoints and (without --etcd) pools; default /var/lib/underlay
  --etcd URLS     keep the pools on etcd, shared by every Docker host using them
  --host NAME     this host's name on its claims (--etcd) and as the holder of the pools'
                  gateways and aux addresses (default: the kernel's host name)
  --scope SCOPE   local (default) or, with --etcd under swarm, global
  --log FILE      append one JSON line per call: path, request, response, micros
  --reclaim-after SECS
                  release, this long after start, the leases of earlier runs that no endpoint
                  holds (an answer lost to a crash); default 60 (dockerd retries 30 s)";

struct Args {
    socket: PathBuf,
    state: PathBuf,
    etcd: Option<Vec<String>>,
    host: Option<String>,
    global: bool,
    log: Option<PathBuf>,
    reclaim_after: std::time::Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        socket: PathBuf::from(DEFAULT_SOCKET),
        state: PathBuf::from(underlay::network::DEFAULT_ROOT),
        etcd: None,
        host: None,
        global: false,
        log: None,
        reclaim_after: std::time::Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--socket" => args.socket = PathBuf::from(value()?),
            "--state" => args.state = PathBuf::from(value()?),
            "--etcd" => {
                args.etcd = Some(
                    value()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            "--host" => args.host = Some(value()?),
            "--log" => args.log = Some(PathBuf::from(value()?)),
            "--reclaim-after" => {
                let v = value()?;
                args.reclaim_after = std::time::Duration::from_secs(
                    v.parse()
                        .map_err(|_| format!("--reclaim-after `{v}`: give whole seconds (60)"))?,
                )
            }
            "--scope" => {
                args.global = match value()?.as_str() {
                    "local" => false,
                    "global" => true,
                    other => return Err(format!("--scope `{other}`: use local or global")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

#[cfg(feature = "etcd")]
async fn etcd_store(urls: Vec<String>, host: Option<String>) -> underlay::Result<Arc<dyn Store>> {
    let mut config = underlay::ipam::EtcdConfig::new(urls);
    if let Some(h) = host {
        config = config.host(h);
    }
    let store = underlay::ipam::EtcdStore::connect(config).await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "etcd"))]
async fn etcd_store(_urls: Vec<String>, _host: Option<String>) -> underlay::Result<Arc<dyn Store>> {
    Err(underlay::Error::invalid(
        "--etcd: this underlay-docker was built without etcd support: build it with `cargo build -p underlay-docker --features etcd` (needs protoc)",
    ))
}

async fn run(args: Args) -> Result<(), String> {
    let host = underlay::Handle::for_netns(&underlay::Netns::current().map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let pools = match args.etcd {
        Some(urls) => Some(
            etcd_store(urls, args.host.clone())
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut plugin = Plugin::open(&host, &args.state, pools)
        .await
        .map_err(|e| format!("opening the state in {}: {e}", args.state.display()))?;
    if let Some(h) = &args.host {
        plugin.set_holder(h.clone());
    }
    if let Some(log) = &args.log {
        plugin.log_calls_to(log).map_err(|e| e.to_string())?;
    }
    let plugin = Arc::new(plugin);
    if args.global {
        plugin.set_global_scope().map_err(|e| e.to_string())?;
    }
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // A socket left by an earlier run (killed) is replaced.
    match std::fs::remove_file(&args.socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!(
                "cannot remove the old socket {}: {e}",
                args.socket.display()
            ))
        }
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(&args.socket)
        .map_err(|e| format!("cannot listen on {}: {e}", args.socket.display()))?;
    // Before serving: every lease no endpoint holds now was made by an earlier run.
    match plugin.find_unanswered().await {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "underlay-docker: {n} leases of an earlier run held by no endpoint: released in {} s unless claimed",
            args.reclaim_after.as_secs()
        ),
        Err(e) => eprintln!("underlay-docker: looking for unanswered leases: {e}"),
    }
    // Beside serving: reconcile only tries endpoint locks (and skips those a call holds), so
    // dockerd's calls need not wait for its look through every namespace.
    let reconciling = plugin.clone();
    let reclaim_after = args.reclaim_after;
    tokio::spawn(async move {
        match reconciling.reconcile().await {
            Ok(r) if r.is_clean() => {}
            Ok(r) => eprintln!("underlay-docker: reconcile: {r:?}"),
            Err(e) => eprintln!("underlay-docker: reconcile: {e}"),
        }
        tokio::time::sleep(reclaim_after).await;
        match reconciling.reclaim_unanswered().await {
            Ok(v) if v.is_empty() => {}
            Ok(v) => {
                for l in v {
                    eprintln!(
                        "underlay-docker: released {:?} of {}: its answer never reached dockerd",
                        l.ips(),
                        l.owner
                    );
                }
            }
            Err(e) => eprintln!("underlay-docker: releasing unanswered leases: {e}"),
        }
    });
    // Beside serving: the DHCP networks' leases renewed at T1 (and released, when a
    // container goes, by DeleteEndpoint or reconcile).
    tokio::spawn(plugin.clone().run_dhcp_renewer());
    eprintln!(
        "underlay-docker: serving {} (state {}, scope {})",
        args.socket.display(),
        args.state.display(),
        plugin.scope()
    );
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    let served = plugin.serve(listener, shutdown).await;
    let _ = std::fs::remove_file(&args.socket);
    served.map_err(|e| format!("serving {}: {e}", args.socket.display()))
}

/// Raises the soft limit of open files to the hard one: reconcile opens a socket per
/// namespace of the host while it looks for moved endpoint links.
fn raise_open_files_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one struct passed, which outlives them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn main() -> ExitCode {
    raise_open_files_limit();
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("underlay-docker: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("underlay-docker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underlay-docker: {e}");
            ExitCode::FAILURE
        }
    }
}
