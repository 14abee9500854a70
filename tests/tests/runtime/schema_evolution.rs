//! Schema evolution of persisted state: records written by one version of an agent are upgraded
//! by the next version's `#[migrate]` steps when it starts (a field renamed, retyped, split), saved
//! in the new form before it serves; a record of a newer version is refused and left byte for
//! byte as it is. Three versions of one kind (`profile`) on one store: file, SQLite, memory, and
//! NATS KV when the harness's JetStream server is there.

use serde::{Deserialize, Serialize};
use swarm::prelude::*;
use swarm::record::{self, Fields};
use swarm_tests::nats::{connect, server, unique};
use swarm_tests::scratch_dir;

/// Version 1 (no `state_version`: records without a version are version 1): a full name, and
/// the visit count as text.
#[agent(kind = "profile")]
pub struct ProfileV1 {
    #[key]
    id: String,
    #[persist]
    name: String,
    #[persist]
    visits: String,
}

#[agent]
impl ProfileV1 {
    #[handler]
    pub fn set(&mut self, name: String, visits: String) {
        self.name = name;
        self.visits = visits;
    }

    #[handler]
    pub fn read(&self) -> (String, String) {
        (self.name.clone(), self.visits.clone())
    }
}

/// Version 2: `name` renamed `full_name`, `visits` retyped to a number. Its step is untyped
/// (JSON members in, JSON members out).
#[agent(kind = "profile", state_version = 2)]
pub struct ProfileV2 {
    #[key]
    id: String,
    #[persist]
    full_name: String,
    #[persist]
    visits: u64,
}

#[agent]
impl ProfileV2 {
    #[migrate(from = 1)]
    fn from_v1(mut old: Fields) -> Result<Fields, String> {
        let name = old.remove("name").unwrap_or_default();
        let visits = match old.remove("visits") {
            Some(serde_json::Value::String(text)) => text
                .trim()
                .parse::<u64>()
                .map_err(|err| format!("visits {text:?}: {err}"))?,
            _ => 0,
        };
        old.insert("full_name".into(), name);
        old.insert("visits".into(), visits.into());
        Ok(old)
    }

    #[handler]
    pub fn set(&mut self, full_name: String, visits: u64) {
        self.full_name = full_name;
        self.visits = visits;
    }

    #[handler]
    pub fn read(&self) -> (String, u64) {
        (self.full_name.clone(), self.visits)
    }
}

/// Version 3: `full_name` split into `first` and `last`. Typed steps: each version's fields as
/// a serde struct.
#[agent(kind = "profile", state_version = 3)]
pub struct ProfileV3 {
    #[key]
    id: String,
    #[persist]
    first: String,
    #[persist]
    last: String,
    #[persist]
    visits: u64,
}

#[derive(Deserialize)]
struct FieldsV1 {
    name: String,
    visits: String,
}

#[derive(Serialize, Deserialize)]
struct FieldsV2 {
    full_name: String,
    visits: u64,
}

#[derive(Serialize)]
struct FieldsV3 {
    first: String,
    last: String,
    visits: u64,
}

#[agent]
impl ProfileV3 {
    #[migrate(from = 1)]
    fn from_v1(old: FieldsV1) -> Result<FieldsV2, std::num::ParseIntError> {
        Ok(FieldsV2 {
            full_name: old.name,
            visits: old.visits.trim().parse()?,
        })
    }

    #[migrate(from = 2)]
    fn from_v2(old: FieldsV2) -> FieldsV3 {
        let (first, last) = old
            .full_name
            .split_once(' ')
            .unwrap_or((&old.full_name, ""));
        FieldsV3 {
            first: first.into(),
            last: last.into(),
            visits: old.visits,
        }
    }

    #[handler]
    pub fn visit(&mut self) -> u64 {
        self.visits += 1;
        self.visits
    }

    #[handler]
    pub fn read(&self) -> (String, String, u64) {
        (self.first.clone(), self.last.clone(), self.visits)
    }
}

/// File, SQLite and memory; the NATS KV store too when the harness runs a JetStream server
/// (`SWARM_NATS_JS_URL`).
/// A version 2 whose step misspells a field: its output is not the agent's fields.
#[agent(kind = "profile", state_version = 2)]
pub struct ProfileTypo {
    #[key]
    id: String,
    #[persist]
    full_name: String,
}

#[derive(Serialize)]
struct TypoV2 {
    ful_name: String,
}

#[agent]
impl ProfileTypo {
    #[migrate(from = 1)]
    fn from_v1(old: FieldsV1) -> TypoV2 {
        TypoV2 { ful_name: old.name }
    }

    #[handler]
    pub fn read(&self) -> String {
        self.full_name.clone()
    }
}

fn stores(name: &str) -> Vec<(StoreConfig, &'static str)> {
    let mut stores = vec![
        (
            StoreConfig::file(scratch_dir(&format!("{name}-file"))),
            "file",
        ),
        (
            StoreConfig::sqlite(scratch_dir(&format!("{name}-sqlite")), "db.sqlite"),
            "sqlite",
        ),
        (StoreConfig::memory(format!("{name}-memory")), "memory"),
    ];
    if let Some(url) = server("JS_URL") {
        swarm::set_node_nats(connect(&url)).unwrap();
        let bucket = format!("evo_{}", unique(name).replace('.', "_"));
        stores.push((StoreConfig::nats_kv(bucket), "nats-kv"));
    }
    stores
}

/// The record's state version and its agent fields (the runtime's members left out).
fn stored(store: &dyn swarm::store::Store, key: &str) -> (u32, serde_json::Value) {
    let bytes = store.get(key).unwrap().expect("a record");
    (
        record::state_version(&bytes).unwrap(),
        serde_json::Value::Object(record::fields(&bytes).unwrap()),
    )
}

#[lunatic::test]
fn older_records_are_upgraded_on_start_and_saved_in_the_new_form() {
    for (config, label) in stores("evolve") {
        let store = config.open().unwrap();

        // Written by version 1: no version in the record.
        let v1 = ProfileV1::launcher()
            .store(config.clone())
            .get_or_start("ada")
            .unwrap();
        v1.set("Ada Lovelace".into(), " 7".into()).unwrap();
        v1.shutdown().unwrap();
        let before = store.get("profile/ada").unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&before).contains("__swarm_version"),
            "{label}: version 1 is written without a version"
        );
        assert_eq!(
            stored(&*store, "profile/ada"),
            (
                1,
                serde_json::json!({"name": "Ada Lovelace", "visits": " 7"})
            )
        );

        // Written by version 2, upgraded from 1 by its untyped step.
        let v2 = ProfileV2::launcher()
            .store(config.clone())
            .get_or_start("ada")
            .unwrap();
        assert_eq!(
            stored(&*store, "profile/ada"),
            (
                2,
                serde_json::json!({"full_name": "Ada Lovelace", "visits": 7})
            ),
            "{label}: saved as version 2 before the first call"
        );
        assert_eq!(v2.read().unwrap(), ("Ada Lovelace".into(), 7));
        v2.shutdown().unwrap();

        // A second version-1 record, for the two-step upgrade.
        let v1 = ProfileV1::launcher()
            .store(config.clone())
            .get_or_start("grace")
            .unwrap();
        v1.set("Grace Hopper".into(), "12".into()).unwrap();
        v1.shutdown().unwrap();

        // Version 3: "ada" goes 2 -> 3, "grace" 1 -> 2 -> 3, both through typed steps.
        for (key, first, last, visits) in [
            ("ada", "Ada", "Lovelace", 7),
            ("grace", "Grace", "Hopper", 12),
        ] {
            let v3 = ProfileV3::launcher()
                .store(config.clone())
                .get_or_start(key)
                .unwrap();
            let storage_key = format!("profile/{key}");
            let expected = serde_json::json!({"first": first, "last": last, "visits": visits});
            assert_eq!(
                stored(&*store, &storage_key),
                (3, expected),
                "{label} {key}: saved as version 3 before the first call"
            );
            assert_eq!(
                v3.read().unwrap(),
                (first.to_string(), last.to_string(), visits)
            );
            assert_eq!(v3.visit().unwrap(), visits + 1);
            v3.shutdown().unwrap();
            // Started again: the record is current, nothing to upgrade, the state is there.
            let again = ProfileV3::launcher()
                .store(config.clone())
                .get_or_start(key)
                .unwrap();
            assert_eq!(again.read().unwrap().2, visits + 1, "{label} {key}");
            again.shutdown().unwrap();
            assert_eq!(stored(&*store, &storage_key).0, 3);
        }
        println!("{label}: versions 1 and 2 upgraded to 3 and saved");
    }
}

#[lunatic::test]
fn a_record_of_a_newer_version_is_refused_and_left_byte_for_byte() {
    for (config, label) in stores("newer") {
        let store = config.open().unwrap();
        let v3 = ProfileV3::launcher()
            .store(config.clone())
            .get_or_start("future")
            .unwrap();
        v3.visit().unwrap();
        v3.shutdown().unwrap();
        let bytes = store.get("profile/future").unwrap().unwrap();
        assert_eq!(record::state_version(&bytes), Ok(3), "{label}");

        let err = ProfileV2::launcher()
            .store(config.clone())
            .get_or_start("future")
            .unwrap_err();
        assert_eq!(
            err,
            StartError::NewerRecord {
                kind: "profile".into(),
                key: "future".into(),
                storage_key: "profile/future".into(),
                found: 3,
                supported: 2,
            },
            "{label}"
        );
        let text = err.to_string();
        for part in [
            "\"profile/future\"",
            "state version 3",
            "state_version 2",
            "left as it is",
        ] {
            assert!(text.contains(part), "{label}: {text}");
        }
        // Version 1 (no `state_version`) refuses it too.
        assert!(matches!(
            ProfileV1::launcher()
                .store(config.clone())
                .get_or_start("future"),
            Err(StartError::NewerRecord {
                found: 3,
                supported: 1,
                ..
            })
        ));
        assert_eq!(
            store.get("profile/future").unwrap(),
            Some(bytes),
            "{label}: the bytes stay"
        );
        println!("{label}: a version 3 record refused by versions 2 and 1, unchanged");
    }
}

#[lunatic::test]
fn a_failing_step_stops_the_start_and_leaves_the_record() {
    for (config, label) in stores("failing") {
        let store = config.open().unwrap();
        let v1 = ProfileV1::launcher()
            .store(config.clone())
            .get_or_start("bad")
            .unwrap();
        v1.set("Nobody".into(), "lots".into()).unwrap();
        v1.shutdown().unwrap();
        let bytes = store.get("profile/bad").unwrap().unwrap();

        let err = ProfileV3::launcher()
            .store(config.clone())
            .get_or_start("bad")
            .unwrap_err();
        match &err {
            StartError::UpgradeFailed {
                storage_key,
                from,
                to,
                reason,
                ..
            } => {
                assert_eq!((storage_key.as_str(), *from, *to), ("profile/bad", 1, 3));
                assert!(reason.contains("#[migrate(from = 1)]"), "{label}: {reason}");
                assert!(reason.contains("invalid digit"), "{label}: {reason}");
            }
            other => panic!("{label}: expected UpgradeFailed, got {other:?}"),
        }
        assert_eq!(
            store.get("profile/bad").unwrap(),
            Some(bytes.clone()),
            "{label}: the bytes stay"
        );

        // A last step whose output is not the agent's fields (a misspelt name) is refused
        // too, rather than dropping the member and leaving the field at its Default.
        let err = ProfileTypo::launcher()
            .store(config.clone())
            .get_or_start("bad")
            .unwrap_err();
        match &err {
            StartError::UpgradeFailed { from, reason, .. } => {
                assert_eq!(*from, 1, "{label}");
                assert!(
                    reason.contains("\"ful_name\", which is not a #[persist] field"),
                    "{label}: {reason}"
                );
            }
            other => panic!("{label}: expected UpgradeFailed, got {other:?}"),
        }
        assert_eq!(
            store.get("profile/bad").unwrap(),
            Some(bytes),
            "{label}: the bytes stay"
        );
    }
}
