//! The agent against real signed repositories (delta-updater's publisher),
//! served from a directory: install, deltas, switch, probation, rollback,
//! and each attack leaving the running release as it was.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use delta_updater::fetch::DirSource;
use delta_updater::repo::{ReleaseInput, Repo};
use delta_updater::Digest;

use super::*;
use crate::daemon::desired::Source as EntrySource;
use crate::testutil::TempDir;

const NOW: u64 = 1_800_000_000;

/// A publisher's repository and a device's data directory.
struct Fixture {
    _tmp: TempDir,
    work: PathBuf,
    repo: Repo,
    served: PathBuf,
    layout: Layout,
    config: Config,
}

impl Fixture {
    fn new() -> Self {
        let tmp = TempDir::new("update");
        let work = tmp.path().join("work");
        let data = tmp.path().join("data");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(&data).unwrap();
        let repo_dir = tmp.path().join("repo");
        let repo = Repo::new(&repo_dir);
        repo.init(NOW).unwrap();
        let served = repo_dir.join("repo");
        let layout = Layout::new(&data);
        fs::create_dir_all(layout.dir()).unwrap();
        fs::copy(served.join("root.json"), layout.root()).unwrap();
        let config = Config::parse(br#"{"deviceClass": "gw", "hardware": "board"}"#).unwrap();
        Self {
            _tmp: tmp,
            work,
            repo,
            served,
            layout,
            config,
        }
    }

    /// Publishes a release of one image `web` whose layers hold `files`
    /// (one layer per list), run by container `web`.
    fn publish(&self, version: u64, layers: &[&[(&str, Vec<u8>)]]) {
        let mut paths = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, files) in layers.iter().enumerate() {
            let path = self.work.join(format!("r{version}-l{i}.tar"));
            fs::write(&path, tar(files)).unwrap();
            diff_ids.push(Digest::of(&fs::read(&path).unwrap()));
            paths.push(path);
        }
        let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
        let config = format!(
            r#"{{"architecture":"{}","os":"linux","config":{{"Cmd":["/bin/true"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            image::native_arch(),
            ids.join(",")
        );
        let config_digest = Digest::of(config.as_bytes());
        let blob = self
            .served
            .join("blobs/sha256")
            .join(store::hex(&config_digest));
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(&blob, &config).unwrap();
        let desired = format!(
            r#"{{"containers":[{{"name":"web","image":"web"}}],"images":[{{"name":"web","config":{{"digest":"{config_digest}","size":{}}},"layers":[{}]}}]}}"#,
            config.len(),
            ids.join(",")
        );
        let desired_path = self.work.join(format!("desired{version}.json"));
        fs::write(&desired_path, desired).unwrap();
        let published = self
            .repo
            .release(
                &ReleaseInput {
                    class: "gw",
                    arch: std::env::consts::ARCH,
                    hardware: &["board".to_owned()],
                    desired_state: &desired_path,
                    layers: &paths,
                    images: &[],
                    expires_in: 90 * 86_400,
                    history: 3,
                    algorithms: &delta::Algorithm::ALL,
                },
                NOW + version,
            )
            .unwrap();
        assert_eq!(published.version, version);
    }

    fn source(&self) -> DirSource {
        DirSource::new(&self.served)
    }

    fn apply(&self, now: u64) -> Result<Outcome, UpdateError> {
        apply(
            &self.layout,
            &self.config,
            &mut self.source(),
            now,
            false,
            &mut |_| {},
        )
    }

    fn state(&self) -> UpdateState {
        UpdateState::load(&self.layout.state()).unwrap()
    }
}

fn tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Bytes that compress badly, so deltas are worth their while.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn base() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("bin/app", noise(1, 200_000)),
        ("etc/conf", b"v=1\n".to_vec()),
    ]
}

fn installed(outcome: Outcome) -> Installed {
    match outcome {
        Outcome::Switched(installed) => installed,
        other => panic!("nothing installed: {other:?}"),
    }
}

#[test]
fn a_first_release_is_installed_whole_and_switched_to_on_probation() {
    let f = Fixture::new();
    fs::write(f.layout.desired(), br#"{"containers": []}"#).unwrap();
    f.publish(1, &[&base()]);
    let done = installed(f.apply(NOW + 10).unwrap());
    assert_eq!((done.version, done.whole, done.deltas), (1, 1, 0));
    let state = f.state();
    assert_eq!((state.current, state.previous), (1, FACTORY));
    assert_eq!(state.probation_since, Some(NOW + 10));
    assert_eq!(linked(&f.layout), Some(1));
    // The device's own desired state became release 0.
    let factory = fs::read(f.layout.release(FACTORY).join("desired.json")).unwrap();
    assert_eq!(factory, br#"{"containers": []}"#);
    // The daemon reads the release through the symlink, its image pinned.
    let desired = desired::load(&f.layout.desired()).unwrap();
    let EntrySource::Pinned(pinned) = &desired.containers[0].source else {
        panic!("not pinned: {:?}", desired.containers[0].source);
    };
    let store = Store::new(&f.layout.data_dir);
    assert!(pinned.layers.iter().all(|l| store.has_layer(l)));
    assert!(store.blob(&pinned.config, 4096).is_ok());
    let names: Vec<String> = store
        .images()
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(names, ["web:r1"]);
    // Nothing is downloaded twice.
    assert!(matches!(
        f.apply(NOW + 20).unwrap(),
        Outcome::Nothing(Found::UpToDate(1))
    ));
    assert!(fs::read_dir(f.layout.downloads()).unwrap().next().is_none());
}

#[test]
fn a_changed_layer_comes_as_a_delta_and_the_others_are_kept() {
    let f = Fixture::new();
    let extra = vec![("lib/data", noise(7, 100_000))];
    f.publish(1, &[&base(), &extra]);
    installed(f.apply(NOW + 10).unwrap());
    commit(&f.layout, NOW + 11).unwrap();
    let mut changed = base();
    changed[0].1[1000..1100].copy_from_slice(&[0u8; 100]);
    f.publish(2, &[&changed, &extra]);
    let done = installed(f.apply(NOW + 20).unwrap());
    assert_eq!((done.deltas, done.whole, done.kept), (1, 0, 1));
    assert!(
        done.downloaded * 10 < done.full,
        "a delta of {} bytes for a layer of {}",
        done.downloaded,
        done.full
    );
    let state = f.state();
    assert_eq!((state.current, state.previous), (2, 1));
    assert_eq!(linked(&f.layout), Some(2));
    assert!(state
        .history
        .iter()
        .any(|h| h.event == "installed" && h.release == 2));
}

/// A delta applies to the old layer as the device keeps it; if that copy
/// was damaged on the disk, the result is not the signed layer, and the
/// layer comes whole instead of the update failing.
#[test]
fn a_delta_that_does_not_give_the_layer_falls_back_to_the_whole_layer() {
    let f = Fixture::new();
    f.publish(1, &[&base()]);
    installed(f.apply(NOW + 10).unwrap());
    commit(&f.layout, NOW + 11).unwrap();
    let old = Digest::of(&tar(&base()));
    let kept = f.layout.tar(&old);
    let mut damaged = fs::read(&kept).unwrap();
    damaged[700] ^= 0x55;
    fs::write(&kept, &damaged).unwrap();
    let mut changed = base();
    changed[0].1[1000..1100].copy_from_slice(&[0u8; 100]);
    f.publish(2, &[&changed]);
    let done = installed(f.apply(NOW + 20).unwrap());
    assert_eq!((done.deltas, done.whole, done.failed), (0, 1, 1));
    assert!(done.downloaded > done.full, "the delta, then the layer");
    let state = f.state();
    assert_eq!(state.current, 2);
    // What a field engineer reads in `husk update history`.
    let installed = state
        .history
        .iter()
        .find(|h| h.event == "installed" && h.release == 2);
    assert!(
        installed.is_some_and(|h| h
            .detail
            .ends_with("(0 delta, 1 whole, 0 kept; 1 delta failed, fetched whole)")),
        "{:?}",
        state.history
    );
    assert_eq!(
        fs::read(f.layout.tar(&Digest::of(&tar(&changed)))).unwrap(),
        tar(&changed)
    );
}

#[test]
fn an_unhealthy_release_is_rolled_back_and_never_installed_again() {
    let f = Fixture::new();
    f.publish(1, &[&base()]);
    installed(f.apply(NOW + 10).unwrap());
    commit(&f.layout, NOW + 11).unwrap();
    let mut three = base();
    three.push(("etc/broken", b"yes".to_vec()));
    f.publish(2, &[&three]);
    installed(f.apply(NOW + 20).unwrap());
    let state = roll_back(&f.layout, NOW + 30, "container web is unhealthy", false).unwrap();
    assert_eq!(
        (state.current, state.rejected, state.probation_since),
        (1, 2, None)
    );
    assert_eq!(linked(&f.layout), Some(1));
    assert!(state
        .history
        .iter()
        .any(|h| h.event == "rolled back" && h.detail == "container web is unhealthy"));
    // Release 2 is gone from the device, release 1 whole.
    assert!(!f.layout.release(2).exists());
    let store = Store::new(&f.layout.data_dir);
    let names: Vec<String> = store
        .images()
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(names, ["web:r1"]);
    assert!(matches!(
        f.apply(NOW + 40).unwrap(),
        Outcome::Nothing(Found::Rejected(2))
    ));
    assert_eq!(linked(&f.layout), Some(1));
}

#[test]
fn a_tampered_blob_is_refused_and_the_running_release_stays() {
    let f = Fixture::new();
    f.publish(1, &[&base()]);
    installed(f.apply(NOW + 10).unwrap());
    commit(&f.layout, NOW + 11).unwrap();
    let mut changed = base();
    changed.push(("etc/new", b"new".to_vec()));
    f.publish(2, &[&changed]);
    // Every blob of release 2 not in release 1 gets a flipped byte.
    let release1 = fs::read_to_string(f.layout.release(1).join("release.json")).unwrap();
    for entry in fs::read_dir(f.served.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let hex = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !release1.contains(&hex) {
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            fs::write(&path, bytes).unwrap();
        }
    }
    let error = f.apply(NOW + 20).unwrap_err().to_string();
    assert!(error.contains("sha256"), "{error}");
    let state = f.state();
    assert_eq!((state.current, state.seen.release_version), (1, 1));
    assert_eq!(linked(&f.layout), Some(1));
    assert!(!f.layout.release(2).exists());
    assert!(!state.last_check.unwrap().ok);
}

#[test]
fn a_replayed_old_timestamp_and_an_expired_one_are_refused() {
    let f = Fixture::new();
    f.publish(1, &[&base()]);
    let old_timestamp = fs::read(f.served.join("timestamp.json")).unwrap();
    installed(f.apply(NOW + 10).unwrap());
    commit(&f.layout, NOW + 11).unwrap();
    let mut changed = base();
    changed.push(("etc/new", b"new".to_vec()));
    f.publish(2, &[&changed]);
    installed(f.apply(NOW + 20).unwrap());
    commit(&f.layout, NOW + 21).unwrap();
    // An attacker serves the timestamp of release 1 again.
    fs::write(f.served.join("timestamp.json"), old_timestamp).unwrap();
    let error = f.apply(NOW + 30).unwrap_err().to_string();
    assert!(error.contains("is lower than version"), "{error}");
    assert_eq!(linked(&f.layout), Some(2));
    // A day later the (re-signed) timestamp has expired: refused too.
    f.repo.timestamp(NOW + 40, 60).unwrap();
    let error = f.apply(NOW + 40 + 3600).unwrap_err().to_string();
    assert!(error.contains("expired"), "{error}");
    assert_eq!(f.state().current, 2);
}

#[test]
fn a_cut_between_the_switch_and_the_state_is_found_on_probation() {
    let f = Fixture::new();
    f.publish(1, &[&base()]);
    installed(f.apply(NOW + 10).unwrap());
    commit(&f.layout, NOW + 11).unwrap();
    let before = f.state();
    let mut changed = base();
    changed.push(("etc/new", b"new".to_vec()));
    f.publish(2, &[&changed]);
    installed(f.apply(NOW + 20).unwrap());
    // As if the power went after the rename and before state.json.
    before.save(&f.layout.state()).unwrap();
    let state = load_state(&f.layout, NOW + 100).unwrap();
    assert_eq!((state.current, state.previous), (2, 1));
    assert_eq!(state.probation_since, Some(NOW + 100));
}

#[test]
fn a_rollback_by_hand_needs_a_previous_release() {
    let f = Fixture::new();
    assert!(matches!(
        roll_back(&f.layout, NOW, "by hand", true),
        Err(UpdateError::NothingToRollBack)
    ));
    f.publish(1, &[&base()]);
    installed(f.apply(NOW + 10).unwrap());
    let state = roll_back(&f.layout, NOW + 20, "by hand", true).unwrap();
    assert_eq!((state.current, state.rejected), (FACTORY, 0));
    assert_eq!(linked(&f.layout), Some(FACTORY));
}

#[test]
fn a_second_agent_is_refused_while_one_runs() {
    let f = Fixture::new();
    let _held = lock(&f.layout).unwrap();
    assert!(matches!(f.apply(NOW), Err(UpdateError::Busy(_))));
}

fn status(name: &str, state: &str, health: Option<&str>) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: state.into(),
        health: health.map(Into::into),
        ..ContainerStatus::default()
    }
}

#[test]
fn probation_commits_when_all_run_and_rolls_back_on_the_first_bad_sign() {
    let desired = desired::parse(
        br#"{"containers": [{"name": "a", "bundle": "/a"}, {"name": "b", "bundle": "/b"}]}"#,
    )
    .unwrap();
    let grace = Duration::from_secs(60);
    let early = Duration::from_secs(5);
    let up = [
        status("a", "running", None),
        status("b", "running", Some("healthy")),
    ];
    assert_eq!(judge(&desired, &up, early, grace), Verdict::Commit);
    let starting = [
        status("a", "running", None),
        status("b", "running", Some("starting")),
    ];
    assert_eq!(judge(&desired, &starting, early, grace), Verdict::Wait);
    assert_eq!(
        judge(&desired, &starting, grace, grace),
        Verdict::RollBack(
            "container b is running, health starting after the grace period of 60 s".into()
        )
    );
    let sick = [
        status("a", "running", None),
        status("b", "running", Some("unhealthy")),
    ];
    assert_eq!(
        judge(&desired, &sick, early, grace),
        Verdict::RollBack("container b is unhealthy".into())
    );
    let gone = [status("a", "given-up", None)];
    assert_eq!(
        judge(&desired, &gone, early, grace),
        Verdict::RollBack("container a gave up restarting".into())
    );
    assert_eq!(judge(&desired, &gone[..0], early, grace), Verdict::Wait);
}

#[test]
fn the_status_and_history_fit_80_columns() {
    let mut state = UpdateState {
        current: 3,
        previous: 2,
        probation_since: Some(NOW - 30),
        ..UpdateState::default()
    };
    state.record(NOW - 7200, 3, "installed", &"a long detail ".repeat(20));
    state.last_check = Some(state::LastCheck {
        at: NOW - 5,
        ok: false,
        message: "timestamp.json: timestamp metadata: version 1 is lower than version 5".into(),
    });
    let text = status_text(&state, NOW) + &history_text(&state, NOW);
    assert!(text.contains("release:   3, on probation for 30 s"));
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn every_delta_algorithm_fits_the_apply_budget() {
    // Else the agent would fetch every layer whole.
    for algorithm in [
        delta::Algorithm::Bsdiff,
        delta::Algorithm::TarFiles,
        delta::Algorithm::ZstdRef,
        delta::Algorithm::ZstdPatch,
    ] {
        assert!(
            algorithm.memory() <= APPLY_MEMORY_BUDGET,
            "{} needs {} bytes",
            algorithm.name(),
            algorithm.memory()
        );
    }
}

#[test]
fn an_image_naming_a_layer_outside_its_release_is_refused() {
    // Mix-and-match: a signed release whose image would take a layer of
    // another release (already on the device) is not assembled.
    let f = Fixture::new();
    f.publish(1, &[&base()]);
    installed(f.apply(NOW + 10).unwrap());
    commit(&f.layout, NOW + 11).unwrap();
    let other = Digest::of(b"a layer of some other release");
    let path = f.work.join("desired9.json");
    let layer = f.work.join("l.tar");
    fs::write(&layer, tar(&base())).unwrap();
    fs::write(
        &path,
        format!(
            r#"{{"containers":[{{"name":"web","image":"web"}}],"images":[{{"name":"web","config":{{"digest":"{other}","size":10}},"layers":["{other}"]}}]}}"#
        ),
    )
    .unwrap();
    f.repo
        .release(
            &ReleaseInput {
                class: "gw",
                arch: std::env::consts::ARCH,
                hardware: &["board".to_owned()],
                desired_state: &path,
                layers: &[layer],
                images: &[],
                expires_in: 86_400,
                history: 3,
                algorithms: &delta::Algorithm::ALL,
            },
            NOW + 20,
        )
        .unwrap();
    let error = f.apply(NOW + 30).unwrap_err().to_string();
    assert!(error.contains("which the release does not list"), "{error}");
    assert_eq!(linked(&f.layout), Some(1));
    assert_eq!(f.state().seen.release_version, 1);
}

#[test]
fn the_images_settings_and_root_in_etc_are_used() {
    let f = Fixture::new();
    let etc = f.work.join("etc");
    fs::create_dir_all(&etc).unwrap();
    fs::rename(f.layout.root(), etc.join("root.json")).unwrap();
    fs::write(
        etc.join("update.json"),
        r#"{"deviceClass": "gw", "hardware": "board"}"#,
    )
    .unwrap();
    let layout = Layout::with_etc(&f.layout.data_dir, &etc);
    assert_eq!(layout.config(), etc.join("update.json"));
    assert_eq!(layout.trusted_root(), etc.join("root.json"));
    let config = Config::load(&layout.config()).unwrap();
    f.publish(1, &[&base()]);
    installed(
        apply(
            &layout,
            &config,
            &mut f.source(),
            NOW + 10,
            true,
            &mut |_| {},
        )
        .unwrap(),
    );
    // A newer root, once accepted, is the device's own.
    let rotate = delta_updater::repo::KeyChange::Rotate("timestamp".into());
    f.repo.change_keys(&rotate, NOW + 20).unwrap();
    let mut changed = base();
    changed.push(("etc/new", b"new".to_vec()));
    f.publish(2, &[&changed]);
    installed(
        apply(
            &layout,
            &config,
            &mut f.source(),
            NOW + 30,
            true,
            &mut |_| {},
        )
        .unwrap(),
    );
    assert_eq!(layout.trusted_root(), layout.root());
    assert!(fs::read_to_string(layout.root())
        .unwrap()
        .contains("\"version\":"));
}

#[test]
fn apply_tells_its_download_progress() {
    let f = Fixture::new();
    f.publish(1, &[&base()]);
    let mut lines = Vec::new();
    let done = installed(
        apply(
            &f.layout,
            &f.config,
            &mut f.source(),
            NOW + 10,
            false,
            &mut |l| lines.push(l.to_owned()),
        )
        .unwrap(),
    );
    assert_eq!(done.whole, 1);
    let first = lines.first().expect("no progress at all");
    assert!(
        first.starts_with("layer ") && first.ends_with(": whole"),
        "{lines:?}"
    );
    // Then the bytes on disk, to all of the layer's blob.
    let last = lines.last().unwrap();
    let counts = last.strip_prefix(&format!("{first}: ")).unwrap();
    let (of, size) = counts
        .strip_suffix(" bytes (100%)")
        .unwrap()
        .split_once(" of ")
        .unwrap();
    assert_eq!(of, size);
    assert!(size.parse::<u64>().unwrap() > 1000, "{lines:?}");
    assert_eq!(downloaded("x", 1, 3), "x: 1 of 3 bytes (33%)");
    assert_eq!(downloaded("x", 0, 0), "x: 0 of 0 bytes (100%)");
}
