//! Media relay data plane: pinned threads forwarding TURN traffic
