//! Quorum's protobuf API: the etcd v3 gRPC API (wire-compatible with etcd v3.5), the payloads
//! of Quorum's replicated log, and the member-to-member transport.
//!
//! The `.proto` sources live in `proto/` (see the crate README); everything here is generated
//! from them at build time (prost messages, tonic clients and servers). `bytes` fields are
//! [`prost::bytes::Bytes`], so that payloads are shared without copies. etcd's messages also
//! implement serde in the JSON form of etcd's gRPC gateway (proto field names, 64-bit integers
//! as strings, bytes in base64).

#![warn(missing_docs)]

/// Generated code: rustdoc comes from the `.proto` comments, lints are not ours to fix.
macro_rules! generated {
    ($(#[$doc:meta])* $name:ident, $package:literal) => {
        $(#[$doc])*
        #[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
        }
    };
    ($(#[$doc:meta])* $name:ident, $package:literal, json) => {
        $(#[$doc])*
        #[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
            include!(concat!(env!("OUT_DIR"), "/", $package, ".serde.rs"));
        }
    };
}

generated!(
    /// etcd's MVCC data model (`mvccpb`): `KeyValue`, `Event`.
    mvccpb,
    "mvccpb",
    json
);
generated!(
    /// etcd's auth records (`authpb`): `User`, `Permission`, `Role`.
    authpb,
    "authpb",
    json
);
generated!(
    /// The etcd v3 API (`etcdserverpb`): services KV, Watch, Lease, Cluster, Maintenance, Auth,
    /// with their messages; `*_client` and `*_server` modules hold the tonic code.
    etcdserverpb,
    "etcdserverpb",
    json
);
generated!(
    /// etcd's lock service (`v3lockpb`).
    v3lockpb,
    "v3lockpb",
    json
);
generated!(
    /// etcd's election service (`v3electionpb`).
    v3electionpb,
    "v3electionpb",
    json
);

/// Quorum's own packages (`quorum.*`), nested as their protobuf package names are so that the
/// generated cross-package paths resolve. Also re-exported at the crate root.
pub mod quorum {
    generated!(
        /// Payloads of the replicated log (`quorum.internal`): `InternalRaftRequest`, membership
        /// records.
        internal,
        "quorum.internal"
    );
    generated!(
        /// The member-to-member transport (`quorum.peer`): Raft messages, batches, snapshot
        /// chunks and the `Peer` service.
        peer,
        "quorum.peer"
    );
}

pub use quorum::{internal, peer};

/// The encoded `google.protobuf.FileDescriptorSet` of every `.proto` file in this crate
/// (imports included), e.g. for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
