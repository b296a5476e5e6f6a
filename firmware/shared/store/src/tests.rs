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

const PASS: &str = "a long enough passphrase";

fn accept_all(_: &str, _: &str, _: &[u8]) -> Result<(), String> {
    Ok(())
}

#[test]
fn export_import_round_trip_replaces_state() {
    let (_d, a) = open();
    a.commit_config("name = \"a\"", AuditRecord::new("t", "c", "d"))
        .unwrap();
    a.write(|tx| tx.put("keys", "k", &[0, 159, 255])).unwrap();
    let text = a.export_toml(Some(PASS)).unwrap();
    let (_d2, b) = open();
    b.write(|tx| tx.put("stale", "x", b"1")).unwrap();
    let g = b
        .import_toml(
            &text,
            Some(PASS),
            |_| Ok(()),
            &accept_all,
            AuditRecord::new("t", "import", "from a"),
        )
        .unwrap();
    assert_eq!(g, 1);
    assert_eq!(b.get("keys", "k").unwrap().unwrap(), vec![0, 159, 255]);
    assert!(b.get("stale", "x").unwrap().is_none());
    assert_eq!(b.config().unwrap().unwrap().toml, "name = \"a\"");
    let refused = b.import_toml(
        &text,
        Some(PASS),
        |_| Err("bad port".into()),
        &accept_all,
        AuditRecord::new("t", "i", "d"),
    );
    assert!(matches!(refused, Err(StoreError::Import(m)) if m.contains("bad port")));
    assert!(b
        .import_toml(
            "garbage = [",
            None,
            |_| Ok(()),
            &accept_all,
            AuditRecord::new("t", "i", "d")
        )
        .is_err());
}

#[test]
fn an_export_leaves_secrets_out_unless_sealed_with_a_passphrase() {
    let (_d, a) = open();
    a.commit_config("name = \"a\"", AuditRecord::new("t", "c", "d"))
        .unwrap();
    let secret = b"relay-ring-secret-0123456789abcdef";
    a.write(|tx| tx.put("relay_keys", "ring", secret)).unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret);
    let plain = a.export_toml(None).unwrap();
    assert!(plain.contains("name"), "{plain}");
    assert!(
        !plain.contains("relay_keys") && !plain.contains(&b64),
        "{plain}"
    );
    let sealed = a.export_toml(Some(PASS)).unwrap();
    assert!(
        !sealed.contains("relay_keys") && !sealed.contains(&b64),
        "{sealed}"
    );
    assert!(matches!(
        a.export_toml(Some("short")),
        Err(StoreError::Import(m)) if m.contains("at least")
    ));

    // Restoring an export without secrets keeps the state; a sealed one needs its passphrase.
    let (_d2, b) = open();
    b.write(|tx| tx.put("relay_keys", "ring", b"b's own ring"))
        .unwrap();
    b.import_toml(
        &plain,
        None,
        |_| Ok(()),
        &accept_all,
        AuditRecord::new("t", "i", "d"),
    )
    .unwrap();
    assert_eq!(
        b.get("relay_keys", "ring").unwrap().unwrap(),
        b"b's own ring"
    );
    for (pass, expected) in [
        (None, "passphrase is needed"),
        (Some("not the passphrase"), "wrong passphrase"),
    ] {
        let err = b
            .import_toml(
                &sealed,
                pass,
                |_| Ok(()),
                &accept_all,
                AuditRecord::new("t", "i", "d"),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
    // A changed configuration no longer opens the sealed state bound to it.
    let mut doc: toml::Table = toml::from_str(&sealed).unwrap();
    doc.insert("config".into(), "name = \"evil\"".into());
    let tampered = toml::to_string(&doc).unwrap();
    assert!(b
        .import_toml(
            &tampered,
            Some(PASS),
            |_| Ok(()),
            &accept_all,
            AuditRecord::new("t", "i", "d")
        )
        .is_err());
    assert_eq!(
        b.get("relay_keys", "ring").unwrap().unwrap(),
        b"b's own ring"
    );
}

#[test]
fn import_refuses_an_unknown_state_key_naming_it_and_writes_nothing() {
    let (_d, a) = open();
    a.commit_config("name = \"a\"", AuditRecord::new("t", "c", "d"))
        .unwrap();
    a.write(|tx| {
        tx.put("relay_keys", "ring", b"{}")?;
        tx.put("planted", "x", b"evil")
    })
    .unwrap();
    let text = a.export_toml(Some(PASS)).unwrap();
    let (_d2, b) = open();
    b.commit_config("name = \"b\"", AuditRecord::new("t", "c", "d"))
        .unwrap();
    b.write(|tx| tx.put("relay_keys", "ring", b"b's")).unwrap();
    let only_rings = |ns: &str, key: &str, _: &[u8]| -> Result<(), String> {
        if (ns, key) == ("relay_keys", "ring") {
            Ok(())
        } else {
            Err("unknown key".into())
        }
    };
    let err = b
        .import_toml(
            &text,
            Some(PASS),
            |_| Ok(()),
            &only_rings,
            AuditRecord::new("t", "i", "d"),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"planted/x\"") && err.contains("unknown key"),
        "{err}"
    );
    assert_eq!(b.get("relay_keys", "ring").unwrap().unwrap(), b"b's");
    assert!(b.get("planted", "x").unwrap().is_none());
    assert_eq!(b.config().unwrap().unwrap().toml, "name = \"b\"");
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
fn a_symlink_at_the_store_path_is_refused_and_its_target_untouched() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, b"").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().join("edged.redb");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"",
        "the target was initialised"
    );
    assert_eq!(mode_of(&target), 0o644, "the target's mode was changed");
}

#[test]
fn a_store_file_with_another_hard_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("someone-elses");
    std::fs::write(&other, b"").unwrap();
    let path = dir.path().join("edged.redb");
    std::fs::hard_link(&other, &path).unwrap();
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("hard link"), "{err}");
    assert_eq!(
        std::fs::read(&other).unwrap(),
        b"",
        "the other file was initialised"
    );
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
