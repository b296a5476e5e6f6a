//! Web Conferencing Edge role: session-key admission over TLS and QUIC
