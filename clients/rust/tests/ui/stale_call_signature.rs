// `post` takes an author and a text; this caller was written for a version that took a text only.
use swarm::client::Client;
use swarm_demo_agents::ChatRoom;

async fn run(client: &Client) {
    let lobby = ChatRoom::client(client).key("lobby");
    let _ = lobby.post("hello".to_owned()).await;
}

fn main() {
    let _ = run;
}
