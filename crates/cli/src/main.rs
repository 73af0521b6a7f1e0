//! `quorumctl`.

fn main() {
    eprintln!("quorumctl: not built yet");
    std::process::exit(1);
}
