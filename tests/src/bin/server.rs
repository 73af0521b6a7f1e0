//! The member binary the multi-process tests start (identical to `quorum`).

fn main() {
    std::process::exit(quorum_server::entry::main());
}
