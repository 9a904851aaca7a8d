//! Every kernel request leaves a `tracing` event; failures keep errno and name the cure.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use underlay::{ErrorKind, Macvlan, MacvlanMode};

use crate::common::{privileged, TestNs};

/// A minimal subscriber that records every event's fields as text, with the thread it came
/// from. Installed once as the global default (scoped subscribers race with other tests over
/// tracing's per-callsite interest cache); each test reads its own thread's events (its
/// runtime is single-threaded).
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(std::thread::ThreadId, String)>>>);

impl Recorder {
    fn global() -> &'static Recorder {
        static REC: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();
        REC.get_or_init(|| {
            let rec = Recorder::default();
            tracing::subscriber::set_global_default(rec.clone())
                .expect("no other global subscriber");
            rec
        })
    }

    /// This thread's events so far.
    fn mine(&self) -> Vec<String> {
        let me = std::thread::current().id();
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t == me)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.0
            .lock()
            .unwrap()
            .push((std::thread::current().id(), f.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn every_request_is_traced() {
    if !privileged("every_request_is_traced") {
        return;
    }
    let t = TestNs::with_veth("tr", "p0", "p1").await;
    let rec = Recorder::global();
    Macvlan::create(&t.handle, "mv0", "p0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap();
    let e = Macvlan::create(&t.handle, "mv0", "p0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let events = rec.mine();
    let create_ok = events
        .iter()
        .find(|e| {
            e.contains("what=\"create\"") && e.contains("macvlan `mv0`") && !e.contains("errno")
        })
        .expect("create traced");
    assert!(create_ok.contains("macvlan `mv0`"), "{create_ok}");
    assert!(
        create_ok.contains(&t.name),
        "names the namespace: {create_ok}"
    );
    assert!(create_ok.contains("elapsed_us="), "{create_ok}");
    let failed = events
        .iter()
        .find(|e| e.contains("errno=17"))
        .expect("failure traced with errno");
    assert!(failed.contains("what=\"create\""), "{failed}");
    // get (parent lookups, readback) is traced too.
    assert!(
        events.iter().any(|e| e.contains("what=\"get\"")),
        "{events:?}"
    );
}

/// An unprivileged process gets PermissionDenied naming CAP_NET_ADMIN. The child is this test
/// binary, run as `nobody` inside a throwaway namespace by `setpriv`.
#[tokio::test]
async fn unprivileged_caller_gets_permission_denied() {
    if std::env::var("UNDERLAY_PERM_CHILD").is_ok() {
        let h = underlay::Handle::new().unwrap();
        let e = underlay::Veth::create(&h, "x0", "x1")
            .execute()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        assert_eq!(e.errno(), Some(libc::EPERM));
        return;
    }
    if !privileged("unprivileged_caller_gets_permission_denied") {
        return;
    }
    let t = TestNs::new("perm").await;
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.name,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "observability::unprivileged_caller_gets_permission_denied",
            "--nocapture",
        ])
        .env("UNDERLAY_PERM_CHILD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(t.ip_link("x0").is_none());
}

/// Dumps under churn: links appear and go on another socket while this one lists; every dump
/// must still hold each stable link exactly once (the kernel flags a changed dump with
/// NLM_F_DUMP_INTR and the handle retries it).
#[tokio::test]
async fn dumps_stay_consistent_under_churn() {
    if !privileged("dumps_stay_consistent_under_churn") {
        return;
    }
    let t = TestNs::with_veth("dump", "p0", "p1").await;
    let h = t.handle.clone();
    for i in 0..300 {
        underlay::Macvlan::create(&h, &format!("s{i}"), "p0", underlay::MacvlanMode::Bridge)
            .group(5)
            .execute()
            .await
            .unwrap();
    }
    let churn_handle = underlay::Handle::for_netns(&t.ns).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let churn = tokio::spawn(async move {
        let mut n = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let name = format!("x{}", n % 50);
            let _ = underlay::Macvlan::create(
                &churn_handle,
                &name,
                "p0",
                underlay::MacvlanMode::Bridge,
            )
            .execute()
            .await;
            let _ = churn_handle.delete_link(name.as_str()).await;
            n += 1;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        n
    });
    let rec = Recorder::global();
    for _ in 0..30 {
        let links = h.links().await.unwrap();
        let mut stable: Vec<&str> = links
            .iter()
            .filter(|l| l.group == 5)
            .map(|l| l.name.as_str())
            .collect();
        let total = stable.len();
        stable.sort();
        stable.dedup();
        assert_eq!(
            (total, stable.len()),
            (300, 300),
            "a dump lost or repeated stable links"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.await.unwrap();
    assert!(churned > 0, "no churn happened");
    let retries = rec
        .mine()
        .iter()
        .filter(|e| e.contains("dump interrupted, retrying"))
        .count();
    assert!(
        retries > 0,
        "no dump was interrupted: the churn did not overlap the dumps ({churned} changes)"
    );
}

/// A parent given by index is not read back: a macvlan made inside a container namespace
/// costs the create and the readback (2 requests; 3 by name). A missing parent index is still
/// named as the parent, and defaults that need the parent (a VLAN's name) still read it.
#[tokio::test]
async fn a_parent_given_by_index_is_not_read_back() {
    if !privileged("a_parent_given_by_index_is_not_read_back") {
        return;
    }
    let t = TestNs::with_veth("pidx", "p0", "p1").await;
    let c = TestNs::new("pidxc").await;
    let rec = Recorder::global();
    let parent = t.handle.link_index("p0").await.unwrap();
    let requests = || {
        rec.mine()
            .iter()
            .filter(|e| e.contains("elapsed_us="))
            .count()
    };
    let before = requests();
    let link = Macvlan::create(&t.handle, "eth0", parent, MacvlanMode::Bridge)
        .target(&c.handle)
        .up()
        .execute()
        .await
        .unwrap();
    assert_eq!(requests() - before, 2, "{:?}", rec.mine());
    assert_eq!(link.parent, Some(parent));
    let ip = c.ip_link("eth0").expect("made in the container");
    assert_eq!(ip["link_index"].as_u64(), Some(u64::from(parent)), "{ip}");

    let before = requests();
    Macvlan::create(&t.handle, "eth1", "p0", MacvlanMode::Bridge)
        .target(&c.handle)
        .execute()
        .await
        .unwrap();
    assert_eq!(requests() - before, 3, "by name: read, create, readback");

    let e = Macvlan::create(&t.handle, "eth2", 999_999, MacvlanMode::Bridge)
        .target(&c.handle)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("parent index 999999"), "{e}");
    assert!(c.ip_link("eth2").is_none());
    let e = Macvlan::create(&t.handle, "eth2", 0, MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // The MTU check still reads the parent: above it is refused before any create.
    let e = Macvlan::create(&t.handle, "eth2", parent, MacvlanMode::Bridge)
        .mtu(9000)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("parent `p0`"), "{e}");
}
