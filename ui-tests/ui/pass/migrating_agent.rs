//! An agent at state version 3 with its two #[migrate] steps: one untyped and fallible, one typed.

use swarm::prelude::*;
use swarm::record::Fields;

#[agent(kind = "person", state_version = 3)]
pub struct Person {
    #[key]
    id: String,
    #[persist]
    first: String,
    #[persist]
    last: String,
}

#[derive(serde::Deserialize, serde::Serialize)]
pub struct V2 {
    full_name: String,
}

#[derive(serde::Serialize)]
pub struct V3 {
    first: String,
    last: String,
}

#[agent]
impl Person {
    /// Version 1 called it `name`.
    #[migrate(from = 1)]
    fn from_v1(mut old: Fields) -> Result<Fields, String> {
        let name = old.remove("name").ok_or("no name")?;
        old.insert("full_name".into(), name);
        Ok(old)
    }

    #[swarm::migrate(from = 2)]
    fn from_v2(old: V2) -> V3 {
        let (first, last) = old.full_name.split_once(' ').unwrap_or_default();
        V3 {
            first: first.into(),
            last: last.into(),
        }
    }

    #[handler]
    pub fn first(&self) -> String {
        self.first.clone()
    }
}

fn main() {}
