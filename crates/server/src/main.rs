//! The `quorum` server binary; see [`quorum_server::entry`].

/// The allocator the member runs with (see [`quorum_server::Allocator`]).
#[global_allocator]
static ALLOCATOR: quorum_server::Allocator = quorum_server::Allocator;

fn main() {
    std::process::exit(quorum_server::entry::main());
}
