//! The WAL record decoder on arbitrary bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = quorum_storage::decode_all(data, 1 << 20);
});
