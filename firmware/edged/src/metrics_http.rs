//! The Prometheus text endpoint, on the internal side only.

use std::net::SocketAddr;

use axum::{http::header, routing::get, Router};
use edged_metrics::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds the endpoint now (before privileges are dropped) and serves it until `stop`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub fn serve(listener: TcpListener, registry: Registry, stop: CancellationToken) {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    registry.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
}
