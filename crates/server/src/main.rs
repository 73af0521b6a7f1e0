//! The `quorum` server binary.

fn main() {
    eprintln!("quorum: the server is not built yet");
    std::process::exit(1);
}
