//! The macros of [swarm](https://docs.rs/swarm): `#[agent]` on a struct and on its impl block
//! (with `#[key]`, `#[persist]`, `#[handler]`, `#[on_start]` and `#[on_stop]` inside), and
//! `supervisor!`. Use them through `swarm` (`use swarm::prelude::*;`): the code they generate names
//! only `::swarm::__private` paths, so the user's crate needs no other dependency.
//!
//! Each macro runs in three steps, one module each: parse the user's item into a model
//! (`agent_struct`, `agent_impl`, `supervisor_def`, with attribute parsing in `attr`), validate
//! the model (`valid`: every mistake reported at the user's own token, all of them in one
//! compile, collected by `ctxt`), then generate code from the validated model only (`expand`),
//! or, for a rejected item, a stand-in that keeps the rest of the user's code resolving
//! (`fallback`: one mistake, one error).
//!
//! The examples below are not compiled here: agents exist only inside Lunatic (wasm32-wasip1),
//! and a proc-macro crate's doc tests run natively. `swarm`'s crate docs compile the same
//! `Counter` agent and `Counters` supervisor for wasm32-wasip1 (`cargo test -p swarm --doc
//! --target wasm32-wasip1`), the ui tests (`ui-tests/`) build agents for it, the exact expansions
//! are snapshot-tested (`src/expand/snapshots/`), and a unit test checks that each condensed
//! expansion below names every item of the real one.

#![warn(missing_docs)]

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
/// // Other options, each optional: passivate_after = "5m" (stop when idle, start again on the
/// // next call; needs a #[key]), message_budget = "2s" (stop a handler that runs longer),
/// // max_memory = "64MiB" (stop an agent that grows past it): each restarts from its saved state;
/// // mailbox = 1000 (refuse requests past that many waiting, `Overloaded`);
/// // persistence = "write_through" (the default: saved before the caller is answered, a crash
/// // loses no acknowledged change) or persistence = "write_behind", save_every = "200ms"
/// // (answered first, saved when changed at most 200 ms later, on stop and on passivation: a
/// // crash can lose the acknowledged changes of the last 200 ms; see `swarm::Persistence`).
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
/// **Versions of the persisted state.** When the `#[persist]` fields change shape (a field renamed,
/// retyped, split), raise `state_version` on the struct (1 when not given, and a record written
/// without a version is version 1) and add, in the impl block, one `#[migrate(from = N)]` step per
/// older version: an associated function from the fields of a version-`N` record to those of
/// version `N + 1`, as the user's own serde structs (or `swarm::record::Fields`, JSON members, for
/// an untyped step), returning `Result<_, E>` if it can fail. A record is upgraded step by step
/// when its agent starts and saved in the new form before the agent serves; a record of a newer
/// version than the code is refused (`StartError::NewerRecord`) and left untouched.
///
/// ```ignore
/// #[agent(kind = "profile", state_version = 2)]
/// pub struct Profile {
///     #[key] id: String,
///     #[persist] first: String,        // version 1 had `name: String`
///     #[persist] last: String,
/// }
///
/// #[derive(Deserialize)] struct ProfileV1 { name: String }
/// #[derive(Serialize)] struct ProfileV2 { first: String, last: String }
///
/// #[agent]
/// impl Profile {
///     #[migrate(from = 1)]
///     fn from_v1(old: ProfileV1) -> ProfileV2 {
///         let (first, last) = old.name.split_once(' ').unwrap_or((&old.name, ""));
///         ProfileV2 { first: first.into(), last: last.into() }
///     }
/// }
/// ```
///
/// A step missing from the chain, two steps from one version, a step at or past
/// `state_version`, a step with another signature, and `state_version = 0` are compile errors.
///
/// `#[agent(schema)]` on the impl block (its one option) also publishes, in the node's NATS
/// services API (`$SRV.INFO` endpoint metadata `arguments_schema` and `reply_schema`), a JSON
/// Schema of each handler's arguments and reply for callers in other languages; every argument
/// and return type must then implement `JsonSchema` (`#[derive(swarm::JsonSchema)]`, see
/// `swarm::schema`). Without it a kind publishes no schemas and its types need none.
///
/// This generates `ChatRoomMsg` (the message enum, one variant per handler), `ChatRoomRef` (the
/// typed handle: `room.post(author, text)?`, with the struct's visibility), the Lunatic
/// `AbstractProcess` impl, and `ChatRoom::get_or_start(key)`, `ChatRoom::lookup(key)` and
/// `ChatRoom::launcher()` (or `start()` for an agent without a `#[key]`).
///
/// A smaller agent, and what it expands to:
///
/// ```ignore
/// #[agent(kind = "counter")]
/// pub struct Counter {
///     #[key] name: String,
///     #[persist] total: u64,
/// }
///
/// #[agent]
/// impl Counter {
///     #[handler]
///     pub fn add(&mut self, n: u64) -> u64 {
///         self.total += n;
///         self.total
///     }
/// }
/// ```
///
/// <details><summary>The expansion (condensed: <code>::swarm::__private::</code> written
/// <code>__private::</code>, serde plumbing and doc comments left out; the exact one is
/// snapshot-tested)</summary>
///
/// Inside Lunatic (`#[cfg(target_arch = "wasm32")]` on each item but the struct itself):
///
/// ```ignore
/// // From the struct: the struct as written (markers removed; on every target), the handle, the
/// // state side.
/// pub struct Counter { name: String, total: u64 }
///
/// /// A handle to a running [`Counter`]: one method per `#[handler]`.
/// pub struct CounterRef { __swarm_raw: __private::AgentRef<Counter> }   // the struct's visibility
///
/// #[automatically_derived]
/// impl __private::supervisor::SupervisableKeyed for Counter {          // `visits: Counter("visits")`
///     type ChildKey = String;
/// }
///
/// const _: () = {
///     // The #[persist] fields as a record: written by reference, read field by field
///     // (a field missing from an older record keeps its `Default`).
///     struct __SwarmCounterPersistedRef<'a> { total: &'a u64, .. }
///     struct __SwarmCounterPersisted { #[serde(default)] total: __private::Option<u64> }
///     // Serialize for the first (written out, by reference), Deserialize for the second (derived).
///
///     #[automatically_derived]
///     impl __private::AgentState for Counter {
///         const KIND: &'static str = "counter";
///         const KEYED: bool = true;
///         const PERSISTS: bool = true;
///         // The struct's other options, `None` or the default when not given:
///         const PASSIVATE_AFTER: __private::Option<__private::Duration> = __private::Option::None;
///         const MESSAGE_BUDGET: __private::Option<__private::Duration> = __private::Option::None;
///         const MAX_MEMORY: __private::Option<u64> = __private::Option::None;
///         const MAILBOX: __private::Option<usize> = __private::Option::None;
///         const PERSISTENCE: __private::Persistence = __private::Persistence::WriteThrough;
///         const STATE_VERSION: u32 = 1;
///         const PERSISTED_FIELDS: &'static [&'static str] = &["total"];
///         type Key = String;
///         fn from_key(key: String) -> Self {
///             Self { name: key, total: <u64 as __private::Default>::default() }
///         }
///         fn key(&self) -> &String { &self.name }
///         fn encode_persisted(&self) -> __private::Result<__private::Vec<u8>, __private::String> {
///             __private::record::encode_versioned(&__SwarmCounterPersistedRef { total: &self.total, .. }, Self::STATE_VERSION)
///         }
///         fn restore_persisted(&mut self, record: &[u8]) -> __private::Result<(), __private::record::RecordError> {
///             let fields: __SwarmCounterPersisted = __private::record::decode(record)?;
///             if let __private::Option::Some(value) = fields.total { self.total = value; }
///             __private::Result::Ok(())
///         }
///     }
/// };
///
/// impl Counter {
///     // Through `keyed::<Self>()`, bounded on the impl block's `Agent` impl: without that impl
///     // block, one error (not one per function).
///     pub fn get_or_start(key: impl __private::Into<String>) -> __private::Result<CounterRef, __private::StartError> {
///         (__private::keyed::<Self>().get_or_start)(__private::Into::into(key))
///     }
///     pub fn lookup(key: impl __private::Into<String>) -> __private::Option<CounterRef> {
///         (__private::keyed::<Self>().lookup)(__private::Into::into(key))
///     }
///     pub fn launcher() -> __private::Launcher<Self> { __private::Launcher::default() }
///     // An agent without a #[key] has `start()` instead of get_or_start and lookup, and
///     // implements `Poolable` and `Supervisable` instead of `SupervisableKeyed`.
/// }
///
/// // From the impl block: the block as written, the message enum, the process, the handle's
/// // methods and impls.
/// impl Counter {
///     pub fn add(&mut self, n: u64) -> u64 { self.total += n; self.total }
/// }
///
/// #[derive(__private::serde::Serialize, __private::serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// pub enum CounterMsg {
///     Add { n: u64 },
/// }
///
/// const _: () = {
///     type __SwarmHandle = CounterRef;
///
///     #[automatically_derived]
///     impl __private::AgentBehavior for Counter {
///         type Msg = CounterMsg;
///         type Handle = __SwarmHandle;
///         const HANDLERS: &'static [__private::HandlerInfo] =
///             &[__private::HandlerInfo { name: "add", variant: "Add", request: true }];
///         fn handle(cell: &mut __private::AgentCell<Self>, message: CounterMsg, reply_to: __private::Option<__private::ReplyTo>) {
///             match message {
///                 CounterMsg::Add { n } => {
///                     let answer = cell.agent_mut().add(n);       // `&mut self`: may need a save
///                     cell.finish(true, reply_to, answer);        // save if changed, then reply
///                 }
///             }
///         }
///         // `on_start`/`on_stop` call the #[on_start]/#[on_stop] hooks, `schemas` lists the
///         // handlers' types for #[agent(schema)]: left out when there are none.
///     }
///
///     #[automatically_derived]
///     impl __private::Agent for Counter {}
///
///     #[automatically_derived]
///     impl __private::lunatic::ap::AbstractProcess for Counter {
///         type State = __private::AgentCell<Self>;
///         type Serializer = __private::Wire;
///         type Arg = __private::AgentArg;
///         type Handlers = (__private::lunatic::ap::handlers::Message<__private::Envelope<CounterMsg>>,);
///         type StartupError = __private::StartError;
///         fn init(_: __private::lunatic::ap::Config<Self>, arg: __private::AgentArg)
///             -> __private::Result<__private::AgentCell<Self>, __private::StartError> {
///             __private::init::<Self>(arg)
///         }
///         fn terminate(cell: __private::AgentCell<Self>) { __private::terminate::<Self>(cell) }
///     }
///
///     #[automatically_derived]
///     impl __private::lunatic::ap::MessageHandler<__private::Envelope<CounterMsg>> for Counter {
///         fn handle(state: __private::lunatic::ap::State<Self>, envelope: __private::Envelope<CounterMsg>) {
///             __private::serve::<Self>(state, envelope)
///         }
///     }
///
///     impl __SwarmHandle {
///         /// Calls [`Counter::add`] and waits for its answer (at most the handle's timeout).
///         pub fn add(&self, n: u64) -> __private::Result<u64, __private::CallError> {
///             self.__swarm_raw.request("add", CounterMsg::Add { n })
///         }
///     }
///
///     #[automatically_derived]
///     impl __private::AgentHandle for __SwarmHandle {
///         type Agent = Counter;
///         fn raw(&self) -> &__private::AgentRef<Counter> { &self.__swarm_raw }       // hidden:
///         fn from_raw(raw: __private::AgentRef<Counter>) -> Self { Self { __swarm_raw: raw } } // machinery
///     }
///
///     // Clone, Debug, PartialEq, Serialize and Deserialize for the handle, #[automatically_derived],
///     // as a derive on a newtype would write them.
/// };
/// ```
///
/// In a native build (`#[cfg(not(target_arch = "wasm32"))]`), the typed NATS client instead,
/// inside two macros of swarm that pass it on with swarm's `client` feature and, without it, stand
/// for one error saying how agents are built:
///
/// ```ignore
/// __private::native_agent! {                                          // from the struct
///     /// Calls one [`Counter`] (kind `counter`) through NATS from a native program.
///     pub struct CounterClient { __swarm_agent: __private::client::AgentClient }
///
///     #[automatically_derived]
///     impl __private::client::TypedClient for CounterClient {
///         type Key = String;
///         const KIND: &'static str = "counter";
///         fn from_agent(agent: __private::client::AgentClient) -> Self { Self { __swarm_agent: agent } }
///     }
///     // Clone and Debug, #[automatically_derived].
///
///     impl Counter {
///         /// `Counter::client(&nats).key("visits").add(2).await?`
///         pub fn client(client: &__private::client::Client) -> __private::client::KindClient<CounterClient> {
///             __private::client::KindClient::new(client)
///         }
///     }
/// }
///
/// __private::native_handlers! {                                       // from the impl block
///     impl CounterClient {
///         pub async fn add(&self, n: u64) -> __private::Result<u64, __private::CallError> {
///             self.__swarm_agent.request::<u64>("add", __private::client::AgentClient::args().arg("n", &n)).await
///         }
///     }
/// }
/// ```
/// </details>
///
/// Misuse is a compile error at the user's own token that says how to fix it: a handler taking
/// `self` by value or a reference argument, a `#[persist]` field without a `#[key]`, two handlers
/// with one name, a kind that is not a NATS subject token, and more (`ui-tests/ui/fail/` has one
/// case per mistake).
#[proc_macro_attribute]
pub fn agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::agent(attr.into(), item.into()).into()
}

/// Marks an associated function of an `#[agent]` impl block as the step that upgrades stored
/// records of one state version to the next: `#[migrate(from = 1)]` takes the `#[persist]` fields
/// of a version-1 record and returns those of version 2. See `#[agent(state_version = ..)]` on
/// [`macro@agent`].
///
/// ```ignore
/// #[agent(kind = "account", state_version = 2)]
/// pub struct Account {
///     #[key] id: String,
///     #[persist] owner: Owner,          // version 1 had `name: String` here
/// }
///
/// #[derive(Deserialize)] struct AccountV1 { name: String }
/// #[derive(Serialize)]   struct AccountV2 { owner: Owner }
///
/// #[agent]
/// impl Account {
///     #[migrate(from = 1)]
///     fn from_v1(old: AccountV1) -> AccountV2 {
///         AccountV2 { owner: Owner::parse(&old.name) }
///     }
/// }
/// ```
///
/// Outside an `#[agent]` impl block it is an error.
#[proc_macro_attribute]
pub fn migrate(_attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::stray_migrate(item.into()).into()
}

/// Marks a method of an `#[agent]` impl block as a handler: it becomes a message variant and a
/// method of the agent's handle.
///
/// ```ignore
/// #[agent]
/// impl Counter {
///     #[handler]                                     // -> CounterMsg::Add { n }, CounterRef::add(n)
///     pub fn add(&mut self, n: u64) -> u64 { .. }
/// }
/// ```
///
/// A handler of an agent with a `#[key]` can also take the messages published on a NATS subject
/// (`swarm::nats::serve_subjects`), or stored in a JetStream stream (`swarm::nats::serve_streams`:
/// a durable consumer, each message acked once its change is saved and applied once per agent).
/// The `{key}` token of the subject picks the agent, and the payload is the handler's one
/// argument, as JSON:
///
/// ```ignore
/// #[handler(subject = "shop.orders.{key}.placed")]                    // core NATS
/// pub fn placed(&mut self, order: OrderPlaced) { .. }
/// #[handler(stream = "ORDERS", subject = "shop.orders.{key}.cancelled")] // a stream
/// pub fn cancelled(&mut self, order: OrderCancelled) { .. }
/// ```
///
/// An invalid subject (an empty token, `>` before the end, a wildcard inside a token), a `{key}`
/// that is missing, given twice or not a whole token, a stream name with `.`, `*`, `>` or spaces,
/// a stream without a subject, a subject handler without exactly one argument, and one on an agent
/// without a `#[key]` are compile errors at the literal.
///
/// `#[agent]` on the impl block reads and removes these markers; this macro only runs when one is
/// left over, that is outside an `#[agent]` impl block, and expands to the method as written plus
/// an error saying so.
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
/// The strategy is `one_for_one`, `one_for_all` or `rest_for_one`; `max_restarts` and
/// `within_secs` default to OTP's 1 in 5 s. This generates `ChatService` (with `spec()`,
/// `start()`, `start_link()`, and usable as another supervisor's child) and `ChatServiceRef`
/// with one method per child.
///
/// A smaller one, and what it expands to:
///
/// ```ignore
/// supervisor! {
///     pub Counters: one_for_one(max_restarts = 3, within_secs = 10) {
///         visits: Counter("visits"),
///     }
/// }
/// ```
///
/// <details><summary>The expansion (condensed: <code>::swarm::__private::</code> written
/// <code>__private::</code>, and <code>__private::supervisor::</code> written <code>sv::</code>)</summary>
///
/// ```ignore
/// #[derive(__private::Debug, __private::Clone, __private::Copy, __private::PartialEq, __private::Eq)]
/// pub struct Counters;
///
/// impl Counters {
///     pub fn spec() -> sv::SupervisorSpec {
///         sv::SupervisorSpec {
///             name: __private::String::from("Counters"),
///             strategy: sv::Strategy::OneForOne,
///             max_restarts: 3u32,
///             within: __private::Duration::from_secs(10u64),
///             children: __private::Vec::from([
///                 <Counter as sv::SupervisableKeyed>::child_spec("visits", "visits")
///                     .restart(sv::Restart::Permanent),
///             ]),
///         }
///     }
///     pub fn start() -> __private::Result<CountersRef, sv::SupervisorError> {
///         sv::start(Self::spec()).map(CountersRef)
///     }
///     pub fn start_link() -> __private::Result<CountersRef, sv::SupervisorError> {
///         sv::start_link(Self::spec()).map(CountersRef)
///     }
/// }
///
/// #[automatically_derived]
/// impl sv::Supervisable for Counters {                 // so it can be a child itself
///     type Handle = CountersRef;
///     fn child_spec(name: &str) -> sv::ChildSpec { sv::ChildSpec::supervisor(name, Self::spec()) }
///     fn child_handle(parent: &sv::SupervisorRef, name: &str) -> __private::Result<CountersRef, sv::SupervisorError> {
///         parent.supervisor(name).map(CountersRef)
///     }
/// }
///
/// #[derive(__private::Debug, __private::Clone, __private::PartialEq, __private::Eq,
///          __private::serde::Serialize, __private::serde::Deserialize)]
/// pub struct CountersRef(pub sv::SupervisorRef);
///
/// impl CountersRef {
///     /// The agent child `visits` as it runs now (ask again after a restart).
///     pub fn visits(&self) -> __private::Result<CounterRef, sv::SupervisorError> {
///         self.0.agent::<Counter>("visits")
///     }
///     /// The underlying supervisor handle: stats, shutdown, liveness.
///     pub fn supervisor(&self) -> &sv::SupervisorRef { &self.0 }
/// }
/// ```
/// </details>
///
/// A rejected declaration (a misspelt strategy, two children with one name, ..) still expands to
/// the type, its handle and one accessor per child name, with a `spec()` that is never built, so
/// the rest of a supervision tree resolves and one mistake shows one error.
#[proc_macro]
pub fn supervisor(input: TokenStream) -> TokenStream {
    expand::supervisor(input.into()).into()
}
