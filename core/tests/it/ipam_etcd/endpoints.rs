//! Endpoints that cannot work: TLS mistakes fail at once with their cause, not as an
//! unreachable etcd after `retry_for` (issue 17.5).

use std::time::{Duration, Instant};

use underlay::ipam::{EtcdConfig, EtcdStore};
use underlay::ErrorKind;

use super::cluster::Cluster;
use super::{rt, skip};

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
