//! A/V Edge role: STUN/TURN control plane
