//! What the cluster tests share: a node's config on the project's
//! PostgreSQL and NATS, and a world player's login.

use std::time::Duration;

use hearth_client::world::generated;
use hearth_client::world::WorldClient;
use hearth_client::{connect, Options};
use hearth_cluster::test_servers::{nats_url, postgres_url, unique};
use hearth_server::{Config, Running};

pub use super::arrival;

/// The longest any step of a cluster test waits.
pub const WAIT: Duration = Duration::from_secs(20);
pub const PASSWORD: &str = "correct horse";

/// Node `node` of cluster `cluster`: ports the system picks, a fresh data
/// directory, the shared PostgreSQL and NATS (`scripts/postgres-up`,
/// `scripts/nats-up`).
pub fn node_config(cluster: &str, node: &str) -> Config {
    let dir = std::env::temp_dir().join(unique(&format!("hearth-{cluster}-{node}")));
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir,
        database_url: postgres_url(),
        ..Config::default()
    };
    config.cluster.nats = nats_url();
    config.cluster.name = cluster.to_owned();
    config.cluster.node = node.to_owned();
    config
}

/// Logs `name` (an account with [`PASSWORD`]) in on `server`'s TCP port
/// as a client of the world: once in a line, the client and the zone.
pub async fn join_world(server: &Running, name: &str) -> (WorldClient, String) {
    let mut options = Options::password(name, PASSWORD);
    options
        .options
        .push_str(&format!("?schema={}", generated::VERSION));
    let url = format!("tcp://{}", server.game_tcp);
    let mut world = WorldClient::new(connect(&url, options).await.unwrap());
    let zone = arrival(&mut world).await;
    (world, zone)
}
