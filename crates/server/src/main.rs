//! The `quorum` server binary; see [`quorum_server::entry`].

fn main() {
    std::process::exit(quorum_server::entry::main());
}
