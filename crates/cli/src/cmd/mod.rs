//! The commands, grouped by the API they use.

pub mod bench;
pub mod kv;
pub mod lease;
pub mod maint;
pub mod member;
pub mod playground;
pub mod snapshot;
pub mod sync;
pub mod watch;
