use swarm::prelude::*;

#[agent(state_version = 2)]
pub struct Person {
    #[key]
    id: String,
    #[persist]
    first: String,
    #[persist]
    last: String,
}

#[derive(serde::Deserialize, serde::Serialize)]
pub struct V1 {
    name: String,
}

#[derive(serde::Deserialize, serde::Serialize)]
pub struct V2 {
    full_name: String,
}

#[derive(serde::Deserialize, serde::Serialize)]
pub struct V3 {
    first: String,
    last: String,
}

#[agent]
impl Person {
    #[migrate(from = 1)]
    fn from_v1(old: V1) -> V2 {
        V2 { full_name: old.name }
    }
    #[migrate(from = 2)]
    fn from_v2(old: V2) -> V3 {
        let (first, last) = old.full_name.split_once(' ').unwrap_or_default();
        V3 { first: first.into(), last: last.into() }
    }

    #[handler]
    pub fn first(&self) -> String {
        self.first.clone()
    }
}

fn main() {}
