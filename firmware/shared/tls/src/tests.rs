use std::sync::Arc;

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn setup() -> (tempfile::TempDir, Store, Config) {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    (dir, store, Config::embedded_default())
}

#[test]
fn self_signed_certificate_is_stable_across_loads() {
    let (_d, store, config) = setup();
    let a = TlsMaterial::load(&config, &store).unwrap();
    let b = TlsMaterial::load(&config, &store).unwrap();
    assert_eq!(
        a.cert("default").unwrap().chain_pem,
        b.cert("default").unwrap().chain_pem
    );
    assert!(a.ca_pem().is_some());
}

#[test]
fn changing_sans_reissues() {
    let (_d, store, mut config) = setup();
    let a = TlsMaterial::load(&config, &store).unwrap();
    config
        .certificates
        .get_mut("default")
        .unwrap()
        .sans
        .push("other.localhost".into());
    let b = TlsMaterial::load(&config, &store).unwrap();
    assert_ne!(
        a.cert("default").unwrap().chain_pem,
        b.cert("default").unwrap().chain_pem
    );
    assert_eq!(a.ca_pem(), b.ca_pem(), "the CA stays");
}

#[test]
fn reloading_the_same_certificates_compares_equal_and_a_reissued_one_does_not() {
    let (_d, store, mut config) = setup();
    let a = TlsMaterial::load(&config, &store).unwrap();
    let same = TlsMaterial::load(&config, &store).unwrap();
    assert!(a.same_certificate("default", &same, "default"));
    assert!(a.same_internal_anchors(&same) && a.same_federation_anchors(&same));
    assert!(!a.same_certificate("default", &same, "missing"));
    config
        .certificates
        .get_mut("default")
        .unwrap()
        .sans
        .push("other.localhost".into());
    let reissued = TlsMaterial::load(&config, &store).unwrap();
    assert!(!a.same_certificate("default", &reissued, "default"));
    config.tls.trust_own_certificates = false;
    let untrusted = TlsMaterial::load(&config, &store).unwrap();
    assert!(!a.same_internal_anchors(&untrusted));
    assert!(!a.same_federation_anchors(&untrusted));
}

#[test]
fn mismatched_key_file_is_refused_with_its_key() {
    let (dir, store, config) = setup();
    let a = TlsMaterial::load(&config, &store).unwrap();
    let other = issue_client_certificate(&store, "x", &["x.localhost".into()]).unwrap();
    let cert_path = dir.path().join("c.pem");
    let key_path = dir.path().join("k.pem");
    std::fs::write(&cert_path, &a.cert("default").unwrap().chain_pem).unwrap();
    std::fs::write(&key_path, &other.key_pem).unwrap();
    let err = load_pem(
        "certificates.files",
        &std::fs::read_to_string(&cert_path).unwrap(),
        &other.key_pem,
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("certificates.files: the key does not match"),
        "{err}"
    );
}

#[test]
fn garbage_pem_is_refused() {
    let err = load_pem("certificates.x", "not pem", "not pem")
        .err()
        .unwrap();
    assert!(err.to_string().contains("holds no certificate"), "{err}");
}

/// A real mutual-TLS handshake over loopback: the server demands an internal client
/// certificate; a peer with a CA-issued certificate gets through, one without is refused.
#[tokio::test]
async fn mutual_tls_over_loopback() {
    let (_d, store, config) = setup();
    let m = TlsMaterial::load(&config, &store).unwrap();
    let server = m
        .server_config("default", ClientAuth::Internal, &[b"sip"])
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let srv = tokio::spawn(async move {
        let mut results = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            match acceptor.accept(tcp).await {
                Ok(mut tls) => {
                    let mut buf = [0u8; 4];
                    tls.read_exact(&mut buf).await.unwrap();
                    tls.write_all(&buf).await.unwrap();
                    results.push(true);
                }
                Err(_) => results.push(false),
            }
        }
        results
    });
    let peer =
        issue_client_certificate(&store, "director.localhost", &["director.localhost".into()])
            .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    add_pem_anchors(&mut roots, "test", &peer.ca_pem).unwrap();
    let roots = Arc::new(roots);
    let client_with = {
        let cert = load_pem("peer", &peer.chain_pem, &peer.key_pem).unwrap();
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(cert.chain.clone(), cert.key_der.clone_key())
            .unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = client_with.connect(name.clone(), tcp).await.unwrap();
    tls.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tls.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");

    let without = m.client_config(roots, None, &[b"sip"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let outcome = async {
        let mut tls = tokio_rustls::TlsConnector::from(without)
            .connect(name, tcp)
            .await?;
        tls.write_all(b"ping").await?;
        let mut b = [0u8; 4];
        tls.read_exact(&mut b).await?;
        Ok::<_, std::io::Error>(())
    }
    .await;
    assert!(
        outcome.is_err(),
        "a client without certificate must be refused"
    );
    assert_eq!(srv.await.unwrap(), vec![true, false]);
}

#[test]
fn issued_certificate_and_material_debug_hide_the_private_key() {
    let (_d, store, config) = setup();
    let issued = issue_client_certificate(&store, "x", &["x.localhost".into()]).unwrap();
    let key_body = issued
        .key_pem
        .lines()
        .find(|l| !l.starts_with("-----"))
        .unwrap()
        .to_owned();
    let debug = format!("{issued:?} {issued:#?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(!debug.contains(&key_body), "{debug}");
    let material = TlsMaterial::load(&config, &store).unwrap();
    let debug = format!("{material:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}

/// Runs one handshake against `server` with a client certificate issued by the appliance
/// CA for `sans`; true when the server accepted it and echoed over it.
async fn handshake_with(
    store: &Store,
    server: Arc<rustls::ServerConfig>,
    sans: &[&str],
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let srv = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let peer = issue_client_certificate(store, "peer", &sans).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    add_pem_anchors(&mut roots, "test", &peer.ca_pem).unwrap();
    let cert = load_pem("peer", &peer.chain_pem, &peer.key_pem).unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(Arc::new(roots))
        .with_client_auth_cert(cert.chain.clone(), cert.key_der.clone_key())
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = async {
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await?;
        tls.write_all(b"ping").await?;
        let mut b = [0u8; 4];
        tls.read_exact(&mut b).await?;
        Ok::<_, std::io::Error>(())
    }
    .await;
    // The server's reason is the one worth reading (the client only hears an alert).
    srv.await.unwrap()?;
    client.map_err(|e| e.to_string())
}

/// A certificate from the internal anchors is not enough on an internal listener: it must
/// also match the listener's list, by name (never by suffix) or by key.
#[tokio::test]
async fn internal_listeners_admit_only_listed_peers() {
    let (_d, store, config) = setup();
    let m = TlsMaterial::load(&config, &store).unwrap();
    let peers = |list: &[&str]| {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        AllowedPeers::new("test.allowed_peers", edged_config::parse_peers(&list))
    };
    let server = m
        .internal_server_config("default", &peers(&["director.localhost"]), &[])
        .unwrap();
    handshake_with(&store, server.clone(), &["director.localhost"])
        .await
        .expect("a listed name is admitted");
    for stranger in [&["other.localhost"][..], &["evil.director.localhost"]] {
        let err = handshake_with(&store, server.clone(), stranger)
            .await
            .expect_err("an unlisted certificate of the same CA is refused");
        assert!(
            err.contains("matches no entry of test.allowed_peers"),
            "{stranger:?}: {err}"
        );
    }
    // Nobody listed: nobody admitted.
    let closed = m
        .internal_server_config("default", &peers(&[]), &[])
        .unwrap();
    assert!(handshake_with(&store, closed, &["director.localhost"])
        .await
        .is_err());
}

#[test]
fn identities_carry_names_and_the_key_pin() {
    let (_d, store, _config) = setup();
    let issued = issue_client_certificate(
        &store,
        "x",
        &["Pool.Example.Test".into(), "10.0.0.7".into()],
    )
    .unwrap();
    let cert = load_pem("x", &issued.chain_pem, &issued.key_pem).unwrap();
    let id = PeerIdentity::from_der(cert.chain[0].as_ref()).unwrap();
    assert_eq!(id.names, ["pool.example.test", "10.0.0.7"]);
    let pin = edged_config::AllowedPeer::Spki(id.spki_sha256).to_string();
    let by_key = AllowedPeers::new("k", edged_config::parse_peers(&[pin]));
    assert!(by_key.admits(cert.chain[0].as_ref()).is_ok());
    let other = issue_client_certificate(&store, "x", &["pool.example.test".into()]).unwrap();
    let other = load_pem("x", &other.chain_pem, &other.key_pem).unwrap();
    assert!(
        by_key.admits(other.chain[0].as_ref()).is_err(),
        "same name, other key"
    );
    assert_eq!(id.label(), "pool.example.test");
    // A renewed certificate for the same names is the same peer; other names are not.
    let renewed = issue_client_certificate(
        &store,
        "x",
        &["10.0.0.7".into(), "pool.example.test".into()],
    )
    .unwrap();
    let renewed = load_pem("x", &renewed.chain_pem, &renewed.key_pem).unwrap();
    let renewed = PeerIdentity::from_der(renewed.chain[0].as_ref()).unwrap();
    assert!(id.same_peer(&renewed));
    let other = PeerIdentity::from_der(other.chain[0].as_ref()).unwrap();
    assert!(!id.same_peer(&other));
}
