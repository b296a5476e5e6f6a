//! Access Edge role: SIP edge proxy with federation policy
