//! The only place that names the role crates: how each is started.

use std::sync::Arc;

use edged_role::{DisabledRole, Role, RoleContext, RoleError};

/// Starts every role in a fixed order; a disabled role is represented so status lists it.
pub async fn start_all(ctx: &RoleContext) -> Result<Vec<Arc<dyn Role>>, RoleError> {
    let c = &ctx.config;
    let mut roles: Vec<Arc<dyn Role>> = Vec::with_capacity(4);
    roles.push(if c.access_edge.enabled {
        access_edge::start(ctx.clone()).await?
    } else {
        DisabledRole::arc("access_edge")
    });
    roles.push(if c.webconf_edge.enabled {
        webconf_edge::start(ctx.clone()).await?
    } else {
        DisabledRole::arc("webconf_edge")
    });
    roles.push(if c.av_edge.enabled {
        av_edge::start(ctx.clone()).await?
    } else {
        DisabledRole::arc("av_edge")
    });
    roles.push(if c.av_auth.enabled {
        av_auth::start(ctx.clone()).await?
    } else {
        DisabledRole::arc("av_auth")
    });
    Ok(roles)
}
