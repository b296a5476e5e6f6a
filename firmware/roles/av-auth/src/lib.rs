//! A/V Authentication Service role: relay credentials for internal users
