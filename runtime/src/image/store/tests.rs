//! The store's files: records round-trip, blobs are checked when read,
//! leftovers of an interrupted extraction go at the next lock.

use std::fs;

use super::*;
use crate::image::extract::tests::Tar;
use crate::testutil::TempDir;

fn record(name: &str, layers: usize) -> ImageRecord {
    ImageRecord {
        name: ImageName::parse(name).unwrap(),
        id: Digest::of(name.as_bytes()),
        manifest: Digest::of(b"manifest"),
        arch: "arm".into(),
        os: "linux".into(),
        created: "2026-01-02T03:04:05.123456789Z".into(),
        size: 12345,
        layers: (0..layers).map(|i| Digest::of(&[i as u8])).collect(),
    }
}

fn options() -> Options {
    Options {
        chown: false,
        ..Options::default()
    }
}

#[test]
fn records_round_trip() {
    let tmp = TempDir::new("records");
    let store = Store::new(tmp.path());
    let lock = store.lock().unwrap();
    assert!(store.images().unwrap().is_empty());
    let records = vec![record("a", 0), record("b:2", 3), record("c", MAX_LAYERS)];
    store.save_images(&lock, &records).unwrap();
    assert_eq!(store.images().unwrap(), records);
    let too_many = vec![record("x", 1); MAX_IMAGES + 1];
    assert!(matches!(
        store.save_images(&lock, &too_many),
        Err(StoreError::Full)
    ));
    assert_eq!(
        store.images().unwrap(),
        records,
        "a refused save changes nothing"
    );
}

#[test]
fn records_are_bounded_and_checked() {
    let tmp = TempDir::new("records-bad");
    let store = Store::new(tmp.path());
    let lock = store.lock().unwrap();
    store.save_images(&lock, &[record("a", 1)]).unwrap();
    let path = tmp.path().join("images.json");
    let good = fs::read_to_string(&path).unwrap();
    for (bad, expected) in [
        (
            good.replace("\"version\":1", "\"version\":2"),
            "layout version 2",
        ),
        (
            good.replace("a:latest", "-a"),
            "images[0].name: an image name starts",
        ),
        (
            good.replacen("sha256:", "md5:", 1),
            "images[0].id: digest must start",
        ),
        (
            good.replace(
                "\"arch\":\"arm\"",
                &format!("\"arch\":\"{}\"", "x".repeat(40)),
            ),
            "images[0].arch is longer than 32 bytes",
        ),
    ] {
        fs::write(&path, &bad).unwrap();
        let error = store.images().unwrap_err().to_string();
        assert!(
            error.contains(expected),
            "{error} should contain {expected}"
        );
    }
    fs::write(&path, vec![b' '; MAX_IMAGES_BYTES + 1]).unwrap();
    assert!(store
        .images()
        .unwrap_err()
        .to_string()
        .contains("larger than"));
}

#[test]
fn blobs_are_checked_when_read() {
    let tmp = TempDir::new("blobs");
    let store = Store::new(tmp.path());
    let lock = store.lock().unwrap();
    let digest = Digest::of(b"config");
    store.put_blob(&lock, &digest, b"config").unwrap();
    assert_eq!(store.blob(&digest, 100).unwrap(), b"config");
    assert!(store.put_blob(&lock, &digest, b"other").is_err());
    fs::write(
        tmp.path().join("blobs/sha256").join(hex(&digest)),
        b"changed",
    )
    .unwrap();
    let error = store.blob(&digest, 100).unwrap_err();
    assert!(
        matches!(error, StoreError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(matches!(
        store.blob(&Digest::of(b"x"), 100),
        Err(StoreError::Missing { .. })
    ));
    assert_eq!(store.blobs().unwrap(), vec![digest]);
}

#[test]
fn a_layer_appears_whole_or_not_at_all() {
    let tmp = TempDir::new("layers");
    let store = Store::new(tmp.path());
    let lock = store.lock().unwrap();
    let mut tar = Tar::default();
    tar.file("a", b"abc", 0o644).dir("d/", 0o755);
    let good = tar.finish();
    let diff_id = Digest::of(&good);
    let info = store
        .add_layer(&lock, &good[..], "good", Some(&diff_id), None, &options())
        .unwrap();
    assert_eq!(
        info,
        LayerInfo {
            diff_id,
            size: 3,
            entries: 2,
            setid_cleared: 0,
            xattrs_dropped: 0,
        }
    );
    assert_eq!(store.layer(&diff_id).unwrap(), info);
    assert_eq!(
        fs::read(store.layer_root(&diff_id).join("a")).unwrap(),
        b"abc"
    );
    // Again: kept once.
    store
        .add_layer(&lock, &good[..], "good", None, None, &options())
        .unwrap();
    assert_eq!(store.layers().unwrap(), vec![diff_id]);

    let mut tar = Tar::default();
    tar.file("x", b"x", 0o644)
        .symlink("s", "/")
        .file("s/etc/evil", b"x", 0o644);
    let bad = tar.finish();
    assert!(store
        .add_layer(&lock, &bad[..], "bad", None, None, &options())
        .is_err());
    let wrong = Digest::of(b"wrong");
    let error = store
        .add_layer(&lock, &good[..], "good", Some(&wrong), None, &options())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("layer good (uncompressed) has digest {diff_id}, not {wrong}")
    );
    let error = store
        .add_layer(&lock, &good[..], "good", None, Some(&wrong), &options())
        .unwrap_err();
    assert!(
        error.to_string().starts_with("layer blob good has digest"),
        "{error}"
    );
    assert_eq!(store.layers().unwrap(), vec![diff_id]);
    assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);

    store.remove_layer(&lock, &diff_id).unwrap();
    assert!(store.layers().unwrap().is_empty());
    assert!(matches!(
        store.layer(&diff_id),
        Err(StoreError::Missing { .. })
    ));
}

#[test]
fn leftovers_of_an_interrupted_extraction_go_at_the_next_lock() {
    let tmp = TempDir::new("leftovers");
    let store = Store::new(tmp.path());
    drop(store.lock().unwrap());
    let stale = tmp.path().join("tmp/0123456789abcdef/root/etc");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("half"), b"x").unwrap();
    let _lock = store.lock().unwrap();
    assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
}
