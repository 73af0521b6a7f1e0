//! A Quorum member.

#![warn(missing_docs)]
