//! `"store": "etcd"`: the `ipam.etcd` block as the library's `EtcdConfig`. Built only with
//! the crate's feature `etcd` (its gRPC code needs `protoc` to build); without it the store is
//! refused with error 7, saying so.

use std::sync::Arc;

use underlay::ipam::Store;

use crate::config::IpamConf;
use crate::protocol::{code, CniError};

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

/// Connects to the etcd the config names.
#[cfg(feature = "etcd")]
pub(crate) async fn connect(ipam: &IpamConf) -> Result<Arc<dyn Store>, CniError> {
    use std::time::Duration;
    use underlay::ipam::{EtcdConfig, EtcdStore};

    let e = ipam.etcd.as_ref().ok_or_else(|| {
        invalid("ipam: `store` `etcd` needs an `etcd` block, e.g. \"etcd\": {\"endpoints\": [\"http://10.0.0.1:2379\"]}")
    })?;
    if e.endpoints.is_empty() {
        return Err(invalid(
            "ipam.etcd: `endpoints` is empty: give the cluster's client URLs",
        ));
    }
    let mut c = EtcdConfig::new(e.endpoints.iter().cloned());
    if let Some(p) = &e.prefix {
        c = c.prefix(p.as_str());
    }
    if let Some(h) = &e.host {
        c = c.host(h.as_str());
    }
    if let Some(ca) = &e.ca_file {
        c = c.tls(ca);
    }
    match (&e.cert_file, &e.key_file) {
        (Some(cert), Some(key)) => c = c.client_cert(cert, key),
        (None, None) => {}
        _ => {
            return Err(invalid(
                "ipam.etcd: `certFile` and `keyFile` go together: give both or neither",
            ))
        }
    }
    if let Some(d) = &e.tls_domain {
        c = c.tls_domain(d.as_str());
    }
    let password = match (&e.password, &e.password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "ipam.etcd: `password` and `passwordFile` both given: give one",
            ))
        }
        (Some(p), None) => Some(p.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|err| {
                    invalid(format!(
                        "ipam.etcd: cannot read `passwordFile` {}",
                        f.display()
                    ))
                    .details(err.to_string())
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        (None, None) => None,
    };
    match (&e.username, password) {
        (Some(u), Some(p)) => c = c.user(u.as_str(), p),
        (None, None) => {}
        (Some(_), None) => {
            return Err(invalid(
                "ipam.etcd: `username` without `password` or `passwordFile`",
            ))
        }
        (None, Some(_)) => return Err(invalid("ipam.etcd: a password without `username`")),
    }
    if let Some(t) = e.host_lease_seconds {
        c = c.host_lease(Duration::from_secs(t));
    }
    if let Some(n) = e.slice_size {
        c = c.slices(n);
    }
    if let Some(t) = e.request_timeout_seconds {
        c = c.request_timeout(Duration::from_secs(t));
    }
    if let Some(t) = e.retry_seconds {
        c = c.retry_for(Duration::from_secs(t));
    }
    let store = EtcdStore::connect(c).await.map_err(|err| {
        let mut e = crate::plugin::lib_error("connecting to etcd", err);
        // An unreachable etcd is worth a retry; a bad setting is the config's.
        if e.code == code::INTERNAL {
            e.code = code::TRY_AGAIN_LATER;
        }
        e
    })?;
    Ok(Arc::new(store))
}

/// Without the feature: a clear refusal.
#[cfg(not(feature = "etcd"))]
pub(crate) async fn connect(ipam: &IpamConf) -> Result<Arc<dyn Store>, CniError> {
    let _ = ipam;
    Err(invalid(
        "ipam `store` `etcd`: this underlay plugin was built without etcd support: build it with `cargo build -p underlay-cni --features etcd` (needs protoc)",
    ))
}
