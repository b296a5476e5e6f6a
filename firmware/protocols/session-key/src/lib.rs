//! Web conferencing session keys: minting and verification
