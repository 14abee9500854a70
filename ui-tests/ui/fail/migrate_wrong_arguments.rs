use swarm::prelude::*;

#[agent(state_version = 3)]
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
    fn from_v1() -> V2 {
        V2 { full_name: String::new() }
    }

    #[migrate(from = 2)]
    fn from_v2(old: V2, extra: u8) -> V3 {
        let _ = (old, extra);
        V3 { first: String::new(), last: String::new() }
    }

    #[handler]
    pub fn first(&self) -> String {
        self.first.clone()
    }
}

fn main() {}
