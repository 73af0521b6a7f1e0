//! The gRPC method paths (`/package.Service/Method`) are part of the wire contract with etcd
//! clients: check packages, services and methods in the embedded descriptor set.

use prost::Message;
use prost_types::FileDescriptorSet;
use quorum_api::FILE_DESCRIPTOR_SET;

fn methods(fds: &FileDescriptorSet, package: &str, service: &str) -> Vec<String> {
    fds.file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.service.iter())
        .filter(|s| s.name() == service)
        .flat_map(|s| s.method.iter().map(|m| m.name().to_string()))
        .collect()
}

#[test]
fn etcd_services_have_etcd_method_names() {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let expect: &[(&str, &str, &[&str])] = &[
        (
            "etcdserverpb",
            "KV",
            &["Range", "Put", "DeleteRange", "Txn", "Compact"],
        ),
        ("etcdserverpb", "Watch", &["Watch"]),
        (
            "etcdserverpb",
            "Lease",
            &[
                "LeaseGrant",
                "LeaseRevoke",
                "LeaseKeepAlive",
                "LeaseTimeToLive",
                "LeaseLeases",
            ],
        ),
        (
            "etcdserverpb",
            "Cluster",
            &[
                "MemberAdd",
                "MemberRemove",
                "MemberUpdate",
                "MemberList",
                "MemberPromote",
            ],
        ),
        (
            "etcdserverpb",
            "Maintenance",
            &[
                "Alarm",
                "Status",
                "Defragment",
                "Hash",
                "HashKV",
                "Snapshot",
                "MoveLeader",
                "Downgrade",
            ],
        ),
        ("v3lockpb", "Lock", &["Lock", "Unlock"]),
        (
            "v3electionpb",
            "Election",
            &["Campaign", "Proclaim", "Leader", "Observe", "Resign"],
        ),
        (
            "quorum.peer",
            "Peer",
            &["Hello", "Stream", "Snapshot", "Forward", "Join"],
        ),
    ];
    for (package, service, want) in expect {
        assert_eq!(
            &methods(&fds, package, service),
            want,
            "{package}.{service}"
        );
    }
    assert_eq!(methods(&fds, "etcdserverpb", "Auth").len(), 17);
}

#[test]
fn generated_clients_use_etcd_paths() {
    // The path tonic sends is derived from the package; a typo in a package name would only
    // show up against a real etcd, so pin a few through the descriptor's full names.
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let mut paths = Vec::new();
    for f in &fds.file {
        for s in &f.service {
            for m in &s.method {
                paths.push(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
            }
        }
    }
    for p in [
        "/etcdserverpb.KV/Range",
        "/etcdserverpb.Watch/Watch",
        "/etcdserverpb.Lease/LeaseKeepAlive",
        "/etcdserverpb.Maintenance/Snapshot",
        "/v3lockpb.Lock/Lock",
        "/v3electionpb.Election/Observe",
    ] {
        assert!(paths.iter().any(|x| x == p), "missing {p}");
    }
}
