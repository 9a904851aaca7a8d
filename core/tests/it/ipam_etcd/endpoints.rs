//! Endpoints that cannot work: beside healthy members, calls fall over to the members (issue
//! 17.4); alone, they fail naming the endpoint; TLS mistakes fail at once with their cause, not
//! as an unreachable etcd after `retry_for` (issue 17.5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use underlay::ipam::{EtcdConfig, EtcdStore, Ipam, Request};
use underlay::ErrorKind;

use super::cluster::Cluster;
use super::{net, owner, rt, serve, skip};

/// An endpoint that accepts connections and never answers; its URL.
fn silent() -> String {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while s.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
        }
    });
    url
}

/// An HTTP/1.1 server listed beside a member, and a silent endpoint beside one: 20 connects
/// and 100 allocations each succeed (the calls fall over to the member). Bad endpoints alone
/// fail, naming them.
#[test]
fn a_bad_endpoint_beside_a_member_is_passed_over() {
    if skip("a_bad_endpoint_beside_a_member_is_passed_over") {
        return;
    }
    let c = Cluster::start(1);
    let http = serve(
        b"",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    );
    let quiet = silent();
    let cfg = |bad: &str| {
        EtcdConfig::new([bad.to_string(), c.endpoint(0)])
            .host("h")
            .request_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_millis(300))
            .retry_for(Duration::from_secs(20))
    };
    rt().block_on(async {
        let s = Arc::new(EtcdStore::connect(cfg(&http)).await.unwrap());
        Ipam::create(s, net("shared", &["10.89.0.0/24"]))
            .await
            .unwrap();
        for (bad, what) in [(&http, "http"), (&quiet, "silent")] {
            let mut last = None;
            for i in 0..20 {
                let s = EtcdStore::connect(cfg(bad)).await;
                let s = s.unwrap_or_else(|e| panic!("{what}: connect {i}: {e}"));
                last = Some(Arc::new(s));
            }
            let ipam = Ipam::open(last.unwrap(), "shared").await.unwrap();
            for i in 0..100 {
                let o = owner(format!("{what}-{i}"));
                let l = ipam.allocate(&o, &Request::any()).await;
                l.unwrap_or_else(|e| panic!("{what}: allocation {i}: {e}"));
                ipam.release(&o).await.unwrap();
            }
        }
        // Alone, a bad endpoint fails, naming it.
        let ssh = serve(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b"");
        let alone = EtcdConfig::new([http.clone(), ssh.clone()])
            .request_timeout(Duration::from_millis(500))
            .connect_timeout(Duration::from_millis(300))
            .retry_for(Duration::from_secs(3));
        let e = EtcdStore::connect(alone).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(
            e.message().contains(&http) && e.message().contains(&ssh),
            "{e}"
        );
    });
}

/// Connects with a long `retry_for`; the error and how long it took.
async fn refused(cfg: EtcdConfig) -> (underlay::Error, Duration) {
    let t = Instant::now();
    let cfg = cfg
        .request_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_millis(500))
        .retry_for(Duration::from_secs(60));
    let e = EtcdStore::connect(cfg).await.unwrap_err();
    (e, t.elapsed())
}

/// https against a plain member, a CA that did not sign the member's certificate, a wrong
/// `tls_domain`: each fails at once (well within `retry_for`), names the endpoint and says what
/// is wrong with TLS. (A member refusing a missing client certificate cancels the request
/// without saying why: that stays a `Timeout`, see `tls_with_client_certificates`.)
#[test]
fn tls_mistakes_fail_at_once_with_their_cause() {
    if skip("tls_mistakes_fail_at_once_with_their_cause") {
        return;
    }
    let tls = Cluster::start_tls();
    let plain = Cluster::start(1);
    let t = tls.tls_dir().unwrap().to_path_buf();
    // Another CA, which signed nothing the members use.
    let other = tls.dir().join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=other-ca",
            "-keyout",
            "key.pem",
            "-out",
            "ca.pem",
        ])
        .current_dir(&other)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl could not make the other CA");
    let with_cert = |cfg: EtcdConfig| cfg.client_cert(t.join("node.pem"), t.join("node-key.pem"));
    let https_plain = plain.endpoint(0).replace("http://", "https://");
    let cases = [
        (
            "https to a plain member",
            with_cert(EtcdConfig::new([https_plain.clone()]).tls(t.join("ca.pem"))),
            https_plain.clone(),
        ),
        (
            "unknown CA",
            with_cert(EtcdConfig::new(tls.endpoints()).tls(other.join("ca.pem"))),
            tls.endpoint(0),
        ),
        (
            "wrong tls_domain",
            with_cert(EtcdConfig::new(tls.endpoints()).tls(t.join("ca.pem")))
                .tls_domain("wrong.example"),
            tls.endpoint(0),
        ),
    ];
    rt().block_on(async {
        for (what, cfg, endpoint) in cases {
            let (e, took) = refused(cfg).await;
            assert_ne!(e.kind(), ErrorKind::Timeout, "{what}: {e}");
            assert!(e.message().contains(&endpoint), "{what}: {e}");
            assert!(e.message().contains("TLS"), "{what}: {e}");
            // Not a pass/fail timing: only that it did not retry for the minute.
            assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
        }
    });
}
