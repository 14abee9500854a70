// `post` answers `Result<usize, ChatError>`; this caller expects another type.
use swarm::client::Client;
use swarm_demo_agents::{ChatError, ChatRoom};

async fn run(client: &Client) -> Result<(), swarm::CallError> {
    let lobby = ChatRoom::client(client).key("lobby");
    let posts: Result<u32, ChatError> = lobby.post("ada".to_owned(), "hi".to_owned()).await?;
    let _ = posts;
    Ok(())
}

fn main() {
    let _ = run;
}
