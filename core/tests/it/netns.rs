//! Named namespaces deleted from async code: one at a time and in batches.

use underlay::{ErrorKind, Netns};

use crate::common::privileged;

fn ip_netns_list() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-j", "netns", "list"])
        .output()
        .expect("ip netns list");
    if out.stdout.iter().all(|b| b.is_ascii_whitespace()) {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip json");
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

/// `delete_async` and `delete_many` delete what `ip netns list` shows; a batch with a missing
/// name deletes every other one and names the missing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_deleted_async_and_in_batches() {
    if !privileged("namespaces_are_deleted_async_and_in_batches") {
        return;
    }
    let prefix = format!("ult-del-{}-", std::process::id());
    let names: Vec<String> = (0..20).map(|i| format!("{prefix}{i}")).collect();
    for n in &names {
        drop(Netns::create(n).unwrap());
    }
    let mine = || {
        ip_netns_list()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .count()
    };
    assert_eq!(mine(), 20);
    Netns::delete_async(&names[0]).await.unwrap();
    assert!(!ip_netns_list().contains(&names[0]));
    let e = Netns::delete_async(&names[0]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // One missing among many: the others all go, the error names the missing one.
    let e = Netns::delete_many(&names[..10]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&names[0]), "{e}");
    assert_eq!(mine(), 10);
    Netns::delete_many(names[10..].iter()).await.unwrap();
    assert_eq!(mine(), 0);
    // Two missing and a bad name: every failure is reported.
    let e = Netns::delete_many([names[1].as_str(), names[2].as_str(), "a/b"])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Multiple, "{e}");
    assert!(e.to_string().contains("3 errors"), "{e}");
    Netns::delete_many(Vec::<String>::new()).await.unwrap();
}
