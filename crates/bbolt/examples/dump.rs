//! Prints the buckets and entries of a bbolt file or etcd snapshot: `cargo run --example dump -- FILE`.

use quorum_bbolt::etcd::{self, KeyValue, Revision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: dump FILE")?;
    let r = etcd::open_snapshot(std::fs::File::open(path)?)?;
    println!("{:?}", r.meta());
    for name in r.bucket_names()? {
        let b = r.bucket(&name)?.ok_or("bucket vanished")?;
        println!(
            "bucket {:?} inline={}",
            String::from_utf8_lossy(&name),
            b.is_inline()
        );
        for e in b.iter() {
            let e = e?;
            if name == etcd::KEY_BUCKET {
                let (rev, tomb) = Revision::parse_key(&e.key)?;
                let kv = KeyValue::decode(&e.value)?;
                println!(
                    "  {rev:?} tombstone={tomb} key={:?} c={} m={} v={} lease={} value_len={}",
                    String::from_utf8_lossy(&kv.key),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    kv.lease,
                    kv.value.len()
                );
            } else {
                println!(
                    "  {:?} = {:02x?}",
                    String::from_utf8_lossy(&e.key),
                    &e.value[..e.value.len().min(40)]
                );
            }
        }
    }
    println!("{:?}", etcd::snapshot_status(&r)?);
    Ok(())
}
