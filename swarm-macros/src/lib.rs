//! The macros of [swarm](https://docs.rs/swarm): `#[agent]` on a struct and on its impl block,
//! with `#[key]`, `#[persist]`, `#[handler]`, `#[on_start]` and `#[on_stop]` inside.
//!
//! Each macro runs in three steps, one module each: parse the user's item into a model
//! ([`agent_struct`], [`agent_impl`], with attribute parsing in [`attr`]), validate it (every
//! mistake reported at the user's own token, all of them in one compile, through [`ctxt`]), then
//! generate code from the validated model only ([`expand`]). Generated code names only
//! `::swarm::__private` paths.

mod agent_impl;
mod agent_struct;
mod attr;
mod case;
mod ctxt;
mod expand;
mod fallback;
mod supervisor_def;
mod valid;

use proc_macro::TokenStream;

/// Turns a struct into an agent's state, or its inherent impl block into the agent's handlers.
///
/// On the struct:
///
/// ```ignore
/// #[agent(kind = "chat-room")]          // kind: defaults to the struct name in kebab-case
/// pub struct ChatRoom {
///     #[key] room: String,              // identity of one instance (String or an integer)
///     #[persist] history: Vec<Post>,    // saved after a handler changes it, reloaded on start
///     members: BTreeSet<String>,        // ephemeral: `Default` after every start
/// }
/// ```
///
/// On the impl block:
///
/// ```ignore
/// #[agent]
/// impl ChatRoom {
///     #[handler]                        // a return type: a request, the caller waits
///     pub fn post(&mut self, author: String, text: String) -> Result<usize, ChatError> { .. }
///     #[handler]                        // no return type: a fire-and-forget message
///     pub fn join(&mut self, who: String) { .. }
///     #[on_start]                       // after the persisted state is loaded
///     fn loaded(&mut self) { .. }
///     #[on_stop]                        // on an orderly stop, before the last save
///     fn stopping(&mut self) { .. }
/// }
/// ```
///
/// This generates `ChatRoomMsg` (the message enum, one variant per handler), `ChatRoomRef` (the
/// typed handle: `room.post(author, text)?`), the Lunatic `AbstractProcess` impl, and
/// `ChatRoom::get_or_start(key)`, `ChatRoom::lookup(key)` and `ChatRoom::launcher()`.
#[proc_macro_attribute]
pub fn agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::agent(attr.into(), item.into()).into()
}

/// Marks a method of an `#[agent]` impl block as a handler. Used anywhere else, it is an error:
/// only `#[agent]` on the impl block can turn methods into handlers.
#[proc_macro_attribute]
pub fn handler(_attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::stray_handler(item.into()).into()
}

/// Defines a supervisor: a type whose process starts, watches and restarts its children with
/// Erlang/OTP semantics (strategies, restart policies, restart intensity, ordered start and stop).
///
/// ```ignore
/// supervisor! {
///     /// Restarts a crashed room alone, at most 5 times in 10 s, then gives up and escalates.
///     pub ChatService: one_for_one(max_restarts = 5, within_secs = 10) {
///         lobby: ChatRoom("lobby"),          // a keyed agent
///         helpers: pool(HelperBot, 4),       // 4 agents of a kind without a key, one handle
///         rooms: RoomSupervisor,             // a nested supervisor (or an agent without a key)
///         audit: transient AuditLog("main"), // permanent (default), transient or temporary
///     }
/// }
///
/// let service = ChatService::start()?;
/// service.lobby()?.post("ada".into(), "hi".into())?;
/// ```
///
/// Generates `ChatService` (with `spec()`, `start()`, `start_link()`) and `ChatServiceRef` with
/// one method per child.
#[proc_macro]
pub fn supervisor(input: TokenStream) -> TokenStream {
    expand::supervisor(input.into()).into()
}
