// A handler's argument travels as JSON: natively too, its type must be `Serialize`.
use swarm::prelude::*;

pub struct Secret(u64);

#[agent(kind = "vault")]
pub struct Vault {
    #[key]
    name: String,
}

#[agent]
impl Vault {
    #[handler]
    pub fn store(&mut self, secret: Secret) -> bool {
        let _ = secret;
        true
    }
}

fn main() {}
