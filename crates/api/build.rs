//! Compiles the .proto files under `proto/` with protox (pure Rust, no protoc binary) and
//! generates prost messages plus tonic clients and servers into OUT_DIR, and serde (JSON)
//! implementations of etcd's messages for the gRPC gateway.

use std::path::PathBuf;

use prost::Message;

/// Every file compiled, relative to `proto/`; imports are resolved from there too.
const PROTOS: &[&str] = &[
    "etcd/kv.proto",
    "etcd/auth.proto",
    "etcd/rpc.proto",
    "etcd/v3lock.proto",
    "etcd/v3election.proto",
    "quorum/internal.proto",
    "quorum/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let fds = protox::compile(&files, [&root])?;
    let descriptors = fds.encode_to_vec();
    std::fs::write(out_dir.join("file_descriptor_set.bin"), &descriptors)?;
    // JSON (serde) for etcd's packages, as etcd's gRPC gateway speaks it: proto field names,
    // 64-bit integers as strings, bytes as base64, enums by name, defaults omitted; unknown
    // fields ignored on input (etcd 3.5's gateway discards them).
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".mvccpb",
            ".authpb",
            ".etcdserverpb",
            ".v3lockpb",
            ".v3electionpb",
        ])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Payloads are shared between followers and buffers without copies.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
