use super::*;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("edged.redb")).unwrap();
    (dir, store)
}

#[test]
fn fresh_store_is_at_current_schema_and_empty() {
    let (_d, s) = open();
    assert_eq!(s.schema_version().unwrap(), STORE_SCHEMA_VERSION);
    assert!(s.config().unwrap().is_none());
}

#[test]
fn config_commits_count_generations_and_audit() {
    let (_d, s) = open();
    let g1 = s
        .commit_config("a = 1", AuditRecord::new("test", "config", "first"))
        .unwrap();
    let g2 = s
        .commit_config("a = 2", AuditRecord::new("test", "config", "second"))
        .unwrap();
    assert_eq!((g1, g2), (1, 2));
    let c = s.config().unwrap().unwrap();
    assert_eq!(
        c,
        StoredConfig {
            generation: 2,
            toml: "a = 2".into()
        }
    );
    let log = s.audit_log(0, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].detail, "second");
    assert_eq!(s.audit_tail(1).unwrap()[0].seq, 2);
}

#[test]
fn failed_transaction_writes_nothing() {
    let (_d, s) = open();
    let r: Result<(), StoreError> = s.write(|tx| {
        tx.put("keys", "k1", b"secret")?;
        tx.set_config("x = 1")?;
        Err(StoreError::BadKey("abort".into()))
    });
    assert!(r.is_err());
    assert!(s.get("keys", "k1").unwrap().is_none());
    assert!(s.config().unwrap().is_none());
}

#[test]
fn multi_key_commit_and_namespaced_listing() {
    let (_d, s) = open();
    s.write(|tx| {
        tx.put_json("federation", "allow:a.example", &true)?;
        tx.put_json("federation", "allow:b.example", &false)?;
        tx.put_json("keys", "relay-1", &"s3cret")?;
        Ok(())
    })
    .unwrap();
    let fed = s.list("federation").unwrap();
    assert_eq!(fed.len(), 2);
    assert_eq!(fed[0].0, "allow:a.example");
    assert_eq!(
        s.get_json::<String>("keys", "relay-1").unwrap().as_deref(),
        Some("s3cret")
    );
    assert!(s.write(|tx| tx.delete("keys", "relay-1")).unwrap());
    assert!(s.get("keys", "relay-1").unwrap().is_none());
}

#[test]
fn bad_keys_are_refused() {
    let (_d, s) = open();
    assert!(matches!(s.get("a/b", "c"), Err(StoreError::BadKey(_))));
    assert!(matches!(s.get("", "c"), Err(StoreError::BadKey(_))));
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edged.redb");
    {
        let s = Store::open(&path).unwrap();
        s.commit_config("x = 1", AuditRecord::new("t", "c", "d"))
            .unwrap();
        s.put_json("admins", "root", &"hash").unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.config().unwrap().unwrap().toml, "x = 1");
    assert_eq!(
        s.get_json::<String>("admins", "root").unwrap().as_deref(),
        Some("hash")
    );
}

#[test]
fn export_import_round_trip_replaces_state() {
    let (_d, a) = open();
    a.commit_config("name = \"a\"", AuditRecord::new("t", "c", "d"))
        .unwrap();
    a.write(|tx| tx.put("keys", "k", &[0, 159, 255])).unwrap();
    let text = a.export_toml().unwrap();
    let (_d2, b) = open();
    b.write(|tx| tx.put("stale", "x", b"1")).unwrap();
    let g = b
        .import_toml(&text, |_| Ok(()), AuditRecord::new("t", "import", "from a"))
        .unwrap();
    assert_eq!(g, 1);
    assert_eq!(b.get("keys", "k").unwrap().unwrap(), vec![0, 159, 255]);
    assert!(b.get("stale", "x").unwrap().is_none());
    assert_eq!(b.config().unwrap().unwrap().toml, "name = \"a\"");
    let refused = b.import_toml(
        &text,
        |_| Err("bad port".into()),
        AuditRecord::new("t", "i", "d"),
    );
    assert!(matches!(refused, Err(StoreError::Import(m)) if m.contains("bad port")));
    assert!(b
        .import_toml("garbage = [", |_| Ok(()), AuditRecord::new("t", "i", "d"))
        .is_err());
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn new_store_file_is_private_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh").join("edged.redb");
    let store = Store::open(&path).unwrap();
    store.write(|t| t.put("t", "k", b"v")).unwrap();
    assert_eq!(mode_of(&path), 0o600, "store file mode");
    assert_eq!(
        mode_of(path.parent().unwrap()),
        0o700,
        "created directory mode"
    );
}

#[test]
fn existing_world_readable_store_file_is_tightened() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edged.redb");
    {
        let store = Store::open(&path).unwrap();
        store.write(|t| t.put("t", "k", b"v")).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(store.get("t", "k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn the_audit_log_keeps_only_its_newest_entries() {
    let (_d, s) = open();
    s.set_audit_retention(5);
    for i in 1..=12 {
        s.write(|tx| tx.audit(AuditRecord::new("test", "change", format!("n{i}"))))
            .unwrap();
    }
    let log = s.audit_log(0, 100).unwrap();
    let details: Vec<_> = log.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["n8", "n9", "n10", "n11", "n12"]);
    assert_eq!(s.audit_tail(2).unwrap()[1].seq, 12);

    // A lower bound applies at the next append, for every clone of the store.
    s.clone().set_audit_retention(2);
    s.write(|tx| tx.audit(AuditRecord::new("test", "change", "n13")))
        .unwrap();
    let seqs: Vec<_> = s.audit_log(0, 100).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [12, 13]);
}
