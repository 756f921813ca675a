//! Typed client bindings from a game's [`Schema`]: what `hearth codegen`
//! writes. The TypeScript client and the Rust SDK already follow any game
//! generically (`GameReplica`, with values by property name); the bindings
//! only add names and types on top: a class or struct per kind of actor
//! with a typed getter per property the client can see, enums by their
//! variants' names, fixed-point numbers as floats, a typed function per
//! message to the server and a typed union of the messages from it. They
//! never decode anything themselves, and embed the schema they were made
//! from, so a client built from them is refused by a server that runs
//! another version of the game.
//!
//! The output depends on the schema alone (same schema, same bytes), so
//! generated files can be committed and checked for staleness.
//!
//! ```
//! use hearth_replica::schema::{KindSpec, MessageSpec, PropSpec, Schema, ValueType};
//!
//! let runner = KindSpec::new("runner").prop(PropSpec::new("score", ValueType::int(0, 999)));
//! let tag = MessageSpec::to_server("tag").field("target", ValueType::int(0, 9));
//! let schema = Schema::new("tag", vec![runner], vec![tag]).unwrap();
//! let ts = hearth_codegen::typescript(&schema, "@hearth/client");
//! assert!(ts.contains("export class Runner"));
//! let rust = hearth_codegen::rust(&schema);
//! assert!(rust.contains("pub struct Runner<'a>"));
//! ```

mod describe;
mod names;
mod rust;
mod shape;
mod typescript;

use hearth_replica::schema::Schema;

/// TypeScript bindings importing the client library from `import_from`
/// (`@hearth/client`, or a relative path to its `index.js`).
pub fn typescript(schema: &Schema, import_from: &str) -> String {
    typescript::generate(schema, import_from)
}

/// Rust bindings over `hearth_replica::game_replica::GameReplica`: a
/// module file, formatted as `rustfmt` formats it.
pub fn rust(schema: &Schema) -> String {
    rust::generate(schema)
}
