//! Hearth's services: accounts and tokens, storage, the web API and pages,
//! metrics, and the game server that ties them to the gates.

mod account_admin;
pub mod account_sessions;
pub mod accounts;
mod api_error;
pub mod cluster_node;
pub mod config;
pub mod game;
pub mod game_backpressure;
pub mod game_host;
mod gate_sends;
pub mod hash_pool;
mod json_body;
pub mod listener;
pub mod metrics;
mod private_files;
pub mod rate_limit;
pub mod recordings;
pub mod secrets;
pub mod server;
mod server_flags;
pub mod storage;
pub mod web;
mod web_admin;
mod web_state;
pub mod world;

pub use config::Config;
pub use server::{
    start, start_game, start_game_with_page, start_with, Running, ServeError, StartError,
};
pub use server_flags::ServerFlags;
pub use web::GamePage;
