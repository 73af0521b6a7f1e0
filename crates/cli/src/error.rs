//! Errors of quorumctl, each worded to tell the user what to do next.

use std::time::Duration;

/// Everything that can make a quorumctl command fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No endpoint could be reached within the dial timeout.
    #[error("cannot connect to {endpoints}: {detail}; is the server running? try --endpoints")]
    Connect {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// Why the last attempt failed.
        detail: String,
    },
    /// An endpoint is not a usable address.
    #[error("invalid endpoint {endpoint:?}: {detail} (expected host:port or http://host:port)")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A call did not complete within --command-timeout.
    #[error(
        "{what} timed out after {timeout:?}: the cluster may have lost its leader; \
         check `quorumctl endpoint status` or raise --command-timeout"
    )]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The server answered with an error.
    #[error("{message}{hint}")]
    Server {
        /// The server's message (etcd's wording, e.g. `etcdserver: no leader`).
        message: String,
        /// What to do about it, if we know (starts with "; ").
        hint: &'static str,
    },
    /// The command line or the input is wrong.
    #[error("{0}")]
    Usage(String),
    /// A local file or process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// A usage error with the given message.
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            what: what.into(),
            source,
        }
    }

    /// Maps a gRPC status onto an error a person can act on.
    pub fn from_status(status: tonic::Status, endpoints: &str) -> Self {
        use tonic::Code;
        let message = status.message().to_string();
        match status.code() {
            Code::Unavailable if !message.starts_with("etcdserver:") => CliError::Connect {
                endpoints: endpoints.to_string(),
                detail: if message.is_empty() {
                    "unavailable".to_string()
                } else {
                    message
                },
            },
            Code::Unimplemented => CliError::Server {
                message: format!("the server does not support this call ({message})"),
                hint: "; is the endpoint an etcd v3 / Quorum client port?",
            },
            _ => {
                let hint = hint_for(&message);
                CliError::Server {
                    message: if message.is_empty() {
                        format!("server error: {:?}", status.code())
                    } else {
                        message
                    },
                    hint,
                }
            }
        }
    }
}

/// Advice for the server errors people meet most.
fn hint_for(message: &str) -> &'static str {
    if message.contains("required revision has been compacted") {
        "; ask for a newer --rev (see the compact revision with `quorumctl endpoint status`)"
    } else if message.contains("future revision") {
        "; the revision does not exist yet: ask for the current one or an older one"
    } else if message.contains("requested lease not found") {
        "; the lease expired or was revoked: grant a new one with `quorumctl lease grant <ttl>`"
    } else if message.contains("no leader") || message.contains("leader changed") {
        "; the cluster is electing a leader or has lost quorum: retry, and check `quorumctl endpoint status`"
    } else if message.contains("request is too large") {
        "; split the request into smaller ones"
    } else if message.contains("too many operations in txn") {
        "; split the transaction"
    } else if message.contains("key is not provided") {
        "; give a non-empty key"
    } else {
        ""
    }
}

/// Result of a quorumctl command.
pub type Result<T> = std::result::Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_says_what_to_do() {
        let e = CliError::from_status(
            tonic::Status::unavailable("tcp connect error"),
            "127.0.0.1:2379",
        );
        let s = e.to_string();
        assert!(s.starts_with("cannot connect to 127.0.0.1:2379"), "{s}");
        assert!(s.contains("try --endpoints"), "{s}");
    }

    #[test]
    fn etcd_errors_keep_their_wording_and_get_a_hint() {
        let e = CliError::from_status(
            tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted"),
            "x",
        );
        let s = e.to_string();
        assert!(s.starts_with("etcdserver: mvcc: required revision has been compacted; ask"));
    }
}
