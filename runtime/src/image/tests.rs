//! The `husk image` commands on a store filled by imports of test layouts.

use std::fs;

use super::oci::tests::{gzip, layer, options, simple_layout, Layout};
use super::*;
use crate::testutil::TempDir;

#[test]
fn image_names() {
    let name = |s: &str| ImageName::parse(s).map(|n| n.as_str().to_owned());
    assert_eq!(name("busybox"), Ok("busybox:latest".into()));
    assert_eq!(name("busybox:1.36"), Ok("busybox:1.36".into()));
    assert_eq!(
        name("registry:5000/app"),
        Ok("registry:5000/app:latest".into())
    );
    assert_eq!(
        name("registry:5000/app:v1"),
        Ok("registry:5000/app:v1".into())
    );
    assert_eq!(name("app@sha256:abc"), Ok("app@sha256:abc".into()));
    for bad in ["", "-x", "/x", "a b", "a\"b", "é"] {
        assert!(name(bad).is_err(), "{bad:?}");
    }
    assert!(name(&"a".repeat(250)).is_err(), "the tag makes it too long");
    assert_eq!(
        "a b".parse::<ImageName>().unwrap_err(),
        "an image name is 1 to 255 of A-Z a-z 0-9 . _ - / : @, not \"a b\""
    );
}

/// A store holding `web:1.0` (two layers) and `other:1.0`, which shares the
/// first of them and has one of its own.
fn two_images(tmp: &TempDir) -> Store {
    let store = Store::new(tmp.path().join("data"));
    let web = tmp.path().join("web");
    let tars = simple_layout(&web, "amd64");
    import(&store, &web, &options("amd64")).unwrap();
    let other = tmp.path().join("other");
    let layout = Layout::new(&other);
    let own = layer(&[("own", "12345")]);
    let manifest = layout.image(
        "amd64",
        &[gzip(&tars[0]), own.clone()],
        &[tars[0].clone(), own],
    );
    layout.index(&[(manifest, None, Some("1.0"))]);
    let done = import(&store, &other, &options("amd64")).unwrap();
    assert_eq!((done.extracted, done.reused), (1, 1));
    store
}

#[test]
fn rm_forgets_and_prune_frees_only_what_no_image_uses() {
    let tmp = TempDir::new("prune");
    let store = two_images(&tmp);
    assert_eq!(store.layers().unwrap().len(), 3);
    assert_eq!(
        usage(&store).unwrap(),
        Usage {
            images: 2,
            layers: 3,
            stored: 18 + 5 + 5,
            images_total: (18 + 5) + (18 + 5),
            unused: 0,
        }
    );
    let pruned = prune(&store).unwrap();
    assert!(pruned.layers.is_empty() && pruned.blobs == 0, "{pruned}");

    let web = ImageName::parse("web:1.0").unwrap();
    let removed = remove(&store, &web).unwrap();
    assert_eq!(removed.name, web);
    assert_eq!(list(&store).unwrap().len(), 1);
    assert!(matches!(remove(&store, &web), Err(ImageError::NotFound(_))));
    assert_eq!(usage(&store).unwrap().unused, 5);
    let pruned = prune(&store).unwrap();
    assert_eq!(pruned.layers.len(), 1, "only web's own layer goes");
    assert_eq!(pruned.freed(), 5);
    assert_eq!(pruned.blobs, 2, "web's config and manifest");
    assert!(pruned
        .to_string()
        .ends_with("freed 5 B in 1 layers and 2 blobs"));
    let left = list(&store).unwrap();
    for layer in &left[0].layers {
        assert!(store.has_layer(layer));
    }
    assert!(store.blob(&left[0].id, 1 << 20).is_ok());

    remove(&store, &ImageName::parse("other:1.0").unwrap()).unwrap();
    assert_eq!(prune(&store).unwrap().layers.len(), 2);
    assert!(store.layers().unwrap().is_empty());
    assert!(store.blobs().unwrap().is_empty());
}

#[test]
fn prune_keeps_the_layers_of_running_containers() {
    let tmp = TempDir::new("prune-containers");
    let store = two_images(&tmp);
    let web = list(&store).unwrap().remove(1);
    assert_eq!(web.name.as_str(), "web:1.0");
    let dir = store.root().join("containers/c1");
    fs::create_dir_all(&dir).unwrap();
    let layers: String = web.layers.iter().map(|l| format!("{l}\n")).collect();
    fs::write(dir.join("layers"), layers).unwrap();
    remove(&store, &web.name).unwrap();
    let pruned = prune(&store).unwrap();
    assert!(pruned.layers.is_empty(), "{pruned}");
    assert_eq!(pruned.blobs, 2);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(prune(&store).unwrap().layers.len(), 1);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("layers"), "sha256:nope\n").unwrap();
    let error = prune(&store).unwrap_err().to_string();
    assert!(error.contains("containers/c1/layers"), "{error}");
}

#[test]
fn an_image_a_container_runs_is_not_removed_and_its_config_not_pruned() {
    let tmp = TempDir::new("rm-in-use");
    let store = two_images(&tmp);
    let web = list(&store).unwrap().remove(1);
    let dir = store.root().join("containers/c1");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("image"), format!("{}\n", web.id)).unwrap();
    let layers: String = web.layers.iter().map(|l| format!("{l}\n")).collect();
    fs::write(dir.join("layers"), layers).unwrap();
    assert_eq!(
        remove(&store, &web.name).unwrap_err().to_string(),
        "image web:1.0 is in use by container c1 ('husk delete c1' first)"
    );
    assert!(list(&store).unwrap().iter().any(|i| i.name == web.name));
    // A second name of the same image can go: the first still holds it.
    let mut images = store.images().unwrap();
    let mut alias = web.clone();
    alias.name = ImageName::parse("web:alias").unwrap();
    images.push(alias.clone());
    store.save_images(&store.lock().unwrap(), &images).unwrap();
    remove(&store, &alias.name).unwrap();
    // The container keeps its config when no image does: prune leaves it.
    let refs = run::container_refs(&store).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].config, Some(web.id));
    fs::remove_file(dir.join("image")).unwrap();
    remove(&store, &web.name).unwrap();
    fs::write(dir.join("image"), format!("{}\n", web.id)).unwrap();
    let pruned = prune(&store).unwrap();
    assert!(pruned.layers.is_empty(), "{pruned}");
    assert!(store.blobs().unwrap().contains(&web.id));
    assert!(!store.blobs().unwrap().contains(&web.manifest));
}

#[test]
fn ls_fits_80_columns_and_json_lists_every_image() {
    let tmp = TempDir::new("ls");
    let store = two_images(&tmp);
    let mut images = list(&store).unwrap();
    images[0].name =
        ImageName::parse(&format!("registry.example/{}:v1", "long".repeat(20))).unwrap();
    let table = list_table(&images);
    for line in table.lines() {
        assert!(line.len() <= 80, "{line:?}");
    }
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(lines[1].starts_with("registry.example/longlong"), "{table}");
    assert!(
        lines[1].contains("...") && lines[1].contains("2026-11-27"),
        "{table}"
    );
    assert!(lines[2].starts_with("web:1.0 "), "{table}");
    assert!(lines[2].contains(&short_id(&images[1].id)), "{table}");
    let json = list_json(&images);
    assert!(json.starts_with("[{\"name\":\"registry.example/"), "{json}");
    assert_eq!(json.matches("\"arch\":\"amd64\"").count(), 2, "{json}");
    assert!(
        json.contains(&format!("\"id\":\"{}\"", images[1].id)),
        "{json}"
    );
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(human_size(0), "0 B");
    assert_eq!(human_size(1023), "1023 B");
    assert_eq!(human_size(1536), "1.5 KiB");
    assert_eq!(human_size(5 << 30), "5.0 GiB");
    assert_eq!(human_size(1982262), "1.9 MiB");
    assert_eq!(human_size((1 << 20) - 1), "1024.0 KiB");
    assert_eq!(human_size(u64::MAX), "16777216.0 TiB");
}

#[test]
fn a_corrupt_record_file_is_an_error_not_an_empty_store() {
    let tmp = TempDir::new("corrupt-records");
    let store = two_images(&tmp);
    fs::write(
        store.root().join("images.json"),
        b"{\"version\": 1, \"images\": [",
    )
    .unwrap();
    let error = list(&store).unwrap_err();
    assert!(
        error.to_string().contains("images.json: not an image list"),
        "{error}"
    );
    let error = prune(&store).unwrap_err();
    assert!(error.to_string().contains("images.json"), "{error}");
    assert_eq!(store.layers().unwrap().len(), 3, "prune removed nothing");
}
