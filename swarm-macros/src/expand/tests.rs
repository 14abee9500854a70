//! Snapshots of what the macros generate (pretty-printed), so a reviewer reads the expansion and
//! a change to it shows up in review, plus the errors of the models for a few misuses.

use proc_macro2::TokenStream;
use quote::quote;

fn pretty(tokens: TokenStream) -> String {
    let file = syn::parse2::<syn::File>(tokens).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
}

fn chat_room_struct() -> (TokenStream, TokenStream) {
    (
        quote!(kind = "chat-room"),
        quote! {
            /// A chat room that keeps its history across crashes and restarts.
            pub struct ChatRoom {
                #[key] room: String,
                #[persist] history: Vec<Post>,
                members: BTreeSet<String>,
            }
        },
    )
}

fn chat_room_impl() -> TokenStream {
    quote! {
        impl ChatRoom {
            /// Posts a message; returns its index.
            #[handler]
            pub fn post(&mut self, author: String, text: String) -> Result<usize, ChatError> {
                self.history.push(Post { author, text });
                Ok(self.history.len() - 1)
            }
            #[handler]
            pub fn join(&mut self, who: String) {
                self.members.insert(who);
            }
            #[handler]
            pub fn history(&self) -> Vec<Post> {
                self.history.clone()
            }
            #[on_start]
            fn loaded(&mut self) {}
            #[on_stop]
            fn stopping(&mut self) {}
            fn helper(&self) -> usize { 1 }
        }
    }
}

#[test]
fn agent_struct_expansion() {
    let (args, item) = chat_room_struct();
    insta::assert_snapshot!(pretty(super::agent(args, item)));
}

#[test]
fn agent_impl_expansion() {
    insta::assert_snapshot!(pretty(super::agent(TokenStream::new(), chat_room_impl())));
}

/// The native client's items (the expansion wraps them in `native_agent!`/`native_handlers!`,
/// which pretty-printing cannot show as code).
#[test]
fn native_client_expansion() {
    let mut cx = crate::ctxt::Ctxt::default();
    let (args, item) = chat_room_struct();
    let agent = crate::agent_struct::parse(&mut cx, args, syn::parse2(item).unwrap());
    let handlers = crate::agent_impl::parse(
        &mut cx,
        TokenStream::new(),
        syn::parse2(chat_room_impl()).unwrap(),
    )
    .unwrap_or_else(|_| panic!("the impl parses"));
    assert!(cx.check().is_ok());
    let items = [
        super::client::struct_items(&agent),
        super::client::impl_items(&handlers),
    ];
    insta::assert_snapshot!(pretty(quote!(#(#items)*)));
}

#[test]
fn agent_without_key_or_persisted_fields() {
    let expanded = super::agent(
        TokenStream::new(),
        quote!(
            pub struct Echo {
                seen: u64,
            }
        ),
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn persistence_strategy_becomes_the_kinds_const() {
    let (_, item) = chat_room_struct();
    let expanded = pretty(super::agent(
        quote!(persistence = "write_behind", save_every = "250ms"),
        item,
    ));
    let at = expanded.find("const PERSISTENCE").expect("the const");
    let end = at + expanded[at..].find(';').expect("its end") + 1;
    let item: Vec<&str> = expanded[at..end].split_whitespace().collect();
    insta::assert_snapshot!(item.join(" "));
}

fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let expanded = super::agent(args, item).to_string();
    expanded
        .match_indices("compile_error ! {")
        .map(|(at, _)| {
            let rest = &expanded[at..];
            let start = rest.find('"').expect("a message") + 1;
            let end = rest[start..].find("\" }").expect("its end") + start;
            rest[start..end].to_string()
        })
        .collect()
}

#[test]
fn every_mistake_of_one_item_is_reported_together() {
    let found = errors(
        quote!(kind = "chat room", colour = "red"),
        quote! {
            pub struct Broken<T> {
                #[persist] a: Vec<T>,
                #[handler] b: u8,
            }
        },
    );
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("agent kind \\\"chat room\\\": character ' '")),
        "{found:#?}"
    );
    assert!(
        found[0].starts_with("unknown option `colour`"),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("an #[agent] struct cannot be generic")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("#[handler] goes on a method")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("#[persist] needs a #[key] field")),
        "{found:#?}"
    );
}

#[test]
fn kind_option_is_validated() {
    let found = errors(
        quote!(kind = "chat.room"),
        quote!(
            pub struct Room {
                seen: u64,
            }
        ),
    );
    assert_eq!(found, vec![
        "agent kind \\\"chat.room\\\": character '.' is not allowed; kinds use A-Z a-z 0-9 _ - (they are NATS subject tokens and storage key segments)"
    ]);
}

/// Each refused option is reported and the options after it are still read; a check that one
/// option needs another is not made when the other was refused (it would be a second error for
/// one mistake).
#[test]
fn every_option_mistake_is_reported_once() {
    let item = quote!(
        pub struct Tally {
            #[key]
            id: String,
            #[persist]
            n: u64,
        }
    );
    let found = errors(
        quote!(
            kind = tally,
            mailbox = "many",
            colour = red,
            passivate_after = "0s"
        ),
        item.clone(),
    );
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(found[0], "`kind` takes a string: `kind = \\\"tally\\\"`");
    assert!(found[1].starts_with("`mailbox` is how many"), "{found:#?}");
    assert!(
        found[2].starts_with("unknown option `colour`"),
        "{found:#?}"
    );
    assert!(
        found[3].starts_with("`passivate_after` cannot be zero"),
        "{found:#?}"
    );

    let found = errors(
        quote!(save_every = "200ms", persistence = "write_behin"),
        item,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("unknown persistence strategy"),
        "{found:#?}"
    );
}

#[test]
fn handler_signature_mistakes() {
    let found = errors(
        TokenStream::new(),
        quote! {
            impl Room {
                #[handler] fn by_value(self) {}
                #[handler] async fn later(&self) {}
                #[handler] fn generic<T>(&self, t: T) {}
                #[handler] fn borrowed(&self, name: &str) {}
                #[handler] fn no_self(x: u8) {}
                #[handler] fn same(&self) {}
                #[handler] fn same(&mut self) {}
            }
        },
    );
    let expect = [
        "#[handler] methods take `&self` or `&mut self`; this one takes `self` by value",
        "#[handler] methods cannot be `async`",
        "#[handler] methods cannot be generic",
        "#[handler] arguments travel in a message to another process, so they cannot be references. Use `String` instead of `&str`.",
        "#[handler] methods take `&self` or `&mut self`; this is an associated function without `self`",
        "two #[handler]s are named `same`",
    ];
    for expected in expect {
        assert!(
            found.iter().any(|e| e.starts_with(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn supervisor_expansion() {
    let expanded = super::supervisor(quote! {
        /// Restarts a crashed room alone, at most 5 times in 10 s.
        pub ChatService: one_for_one(max_restarts = 5, within_secs = 10) {
            lobby: ChatRoom("lobby"),
            helpers: pool(HelperBot, 4),
            rooms: RoomSupervisor,
            audit: transient AuditLog("main"),
        }
    });
    insta::assert_snapshot!(pretty(expanded));
}

fn supervisor_errors(input: TokenStream) -> Vec<String> {
    let mut cx = crate::ctxt::Ctxt::default();
    let def = crate::supervisor_def::parse(&mut cx, input).expect("it parses");
    crate::valid::supervisor::check(&mut cx, &def);
    match cx.check() {
        Ok(()) => Vec::new(),
        Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn supervisor_mistakes_are_reported_together() {
    let found = supervisor_errors(quote! {
        pub S: one_for_some(max_restarts = 2, within_hours = 1) {
            a: A("x"),
            a: sometimes A("y"),
            p: pool(B, 0),
        }
    });
    assert_eq!(found.len(), 5, "{found:#?}");
    for expected in [
        "unknown strategy `one_for_some`",
        "unknown option `within_hours`",
        "two children are named `a`",
        "unknown restart policy `sometimes`",
        "a pool needs at least one member",
    ] {
        assert!(
            found.iter().any(|e| e.starts_with(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn supervisor_words_become_enums_once() {
    use crate::supervisor_def::{Restart, Strategy};
    let mut cx = crate::ctxt::Ctxt::default();
    let def = crate::supervisor_def::parse(
        &mut cx,
        quote! {
            S: rest_for_one(within_secs = 3) {
                a: A("x"),
                b: temporary B,
                c: transient pool(C, 2),
            }
        },
    )
    .expect("it parses");
    assert!(cx.check().is_ok());
    assert_eq!(def.strategy, Some(Strategy::RestForOne));
    assert_eq!(def.max_restarts, 1, "OTP's default intensity");
    assert_eq!(def.within_secs.0, 3);
    let restarts: Vec<_> = def.children.iter().map(|c| c.restart).collect();
    assert_eq!(
        restarts,
        [
            Some(Restart::Permanent),
            Some(Restart::Temporary),
            Some(Restart::Transient)
        ]
    );
}

#[test]
fn supervisor_option_given_twice_and_zero_period() {
    let found = supervisor_errors(quote! {
        S: one_for_all(within_secs = 0, max_restarts = 1, max_restarts = 2) { a: A }
    });
    assert_eq!(
        found,
        [
            "`max_restarts` is given twice",
            "`within_secs` must be at least 1",
        ]
    );
}

/// A rejected supervisor still defines its type, its handle and one accessor per child name, so
/// a parent supervisor and the code starting the tree resolve: one mistake, one error.
#[test]
fn rejected_supervisor_expands_to_a_stand_in() {
    let expanded = super::supervisor(quote! {
        pub Rooms: one_for_some {
            lobby: Room("lobby"),
            lobby: Room("again"),
        }
    });
    let text = expanded.to_string();
    assert_eq!(text.matches("compile_error").count(), 2, "{text}");
    assert!(text.contains("pub struct Rooms ;"), "{text}");
    assert!(text.contains("pub struct RoomsRef"), "{text}");
    assert_eq!(text.matches("pub fn lobby").count(), 1, "{text}");
    assert!(text.contains("unreachable"), "{text}");
}

/// A struct that is not `pub`: its handle takes the struct's visibility (a `pub` handle of a
/// private agent would be a private type in a public interface).
#[test]
fn private_agent_struct_expansion() {
    let expanded = super::agent(
        TokenStream::new(),
        quote! {
            pub(crate) struct Tally {
                seen: u64,
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// What a rejected supervisor stands in with: the type, the handle, one accessor per child name,
/// and a `spec()` that is never built; then its errors.
#[test]
fn rejected_supervisor_stand_in_expansion() {
    let expanded = super::supervisor(quote! {
        pub Rooms: one_for_eventually {
            lobby: Room("lobby"),
            lobby: Room("annex"),
        }
    });
    insta::assert_snapshot!(pretty(expanded));
}

/// Handlers bound to a subject and to a stream: the `SUBJECTS` table (the subject to subscribe
/// to, the key's token, the argument's name, the stream) and the check, at each subject, that the
/// agent has a `#[key]`.
#[test]
fn subject_bindings_expansion() {
    let expanded = super::agent(
        TokenStream::new(),
        quote! {
            impl Stock {
                #[handler(subject = "shop.orders.{key}.placed")]
                pub fn placed(&mut self, order: Placed) {}
                #[handler(stream = "ORDERS", subject = "shop.*.{key}.>")]
                pub fn any(&mut self, event: Event) {}
                #[handler]
                pub fn count(&self) -> u64 { 0 }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// `#[agent(schema)]`: the `schemas` method listing each handler's wire names and types (a raw
/// identifier is named as serde names it; a fire-and-forget handler has no reply type).
#[test]
fn schema_expansion() {
    let item = syn::parse2(quote! {
        impl ChatRoom {
            #[handler]
            pub fn post(&mut self, author: String, r#type: Option<Kind>) -> Result<usize, ChatError> {
                Ok(0)
            }
            #[handler]
            pub fn join(&mut self, who: String) {}
            #[handler]
            pub fn count(&self) -> u64 { 0 }
        }
    })
    .expect("an impl block");
    let mut cx = crate::ctxt::Ctxt::default();
    let Ok(model) = crate::agent_impl::parse(&mut cx, quote!(schema), item) else {
        panic!("the impl block names its agent");
    };
    assert!(cx.check().is_ok());
    insta::assert_snapshot!(pretty(super::schema::expand(&model)));
}

#[test]
fn an_impl_block_takes_only_the_schema_option() {
    let impl_block = quote!(impl Counter {});
    assert!(errors(quote!(schema), impl_block.clone()).is_empty());
    let refused = errors(quote!(kind = "counter"), impl_block);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("takes only `schema`"), "{refused:?}");
}

/// The docs of `#[agent]` and `supervisor!` (in `lib.rs`) each show a small example and,
/// condensed, the code it expands to. The example is expanded here, and every item of its real
/// expansion (types, trait impls with their functions, constants and types, inherent functions)
/// must be named in the condensed one: the docs cannot fall behind the macros unnoticed.
#[test]
fn the_docs_name_every_item_their_example_expands_to() {
    let lib = include_str!("../lib.rs");
    for (macro_fn, lead) in [
        ("pub fn agent(", "A smaller agent, and what it expands to:"),
        (
            "pub fn supervisor(",
            "A smaller one, and what it expands to:",
        ),
    ] {
        let docs = docs_of(lib, macro_fn);
        let after = &docs[docs.find(lead).expect("the example's lead-in")..];
        // The example, then the blocks of its expansion.
        let blocks = code_blocks(after);
        let (example, condensed) = (&blocks[0], blocks[1..].join("\n"));
        let file: syn::File = syn::parse_str(example).expect("the example parses");
        let mut expanded = TokenStream::new();
        for mut item in file.items {
            let tokens = match &mut item {
                syn::Item::Macro(call) if call.mac.path.is_ident("supervisor") => {
                    super::supervisor(call.mac.tokens.clone())
                }
                syn::Item::Struct(syn::ItemStruct { attrs, .. })
                | syn::Item::Impl(syn::ItemImpl { attrs, .. }) => {
                    let at = attrs
                        .iter()
                        .position(|attr| attr.path().is_ident("agent"))
                        .expect("the example's items are #[agent]s");
                    let args = match &attrs.remove(at).meta {
                        syn::Meta::List(list) => list.tokens.clone(),
                        _ => TokenStream::new(),
                    };
                    super::agent(args, quote!(#item))
                }
                _ => panic!("unexpected item in the example of {macro_fn}"),
            };
            assert!(!tokens.to_string().contains("compile_error"), "{tokens}");
            expanded.extend(tokens);
        }
        let mut names = std::collections::BTreeSet::new();
        item_names(
            syn::parse2::<syn::File>(expanded)
                .expect("the expansion parses")
                .items,
            &mut names,
        );
        let missing: Vec<_> = names
            .iter()
            .filter(|name| !mentions(&condensed, name))
            .collect();
        assert!(
            missing.is_empty(),
            "the condensed expansion in the docs of `{macro_fn}..)` does not name {missing:?}; \
             update it in lib.rs"
        );
    }
}

/// The doc comment (`///` lines, unprefixed) right above the line that starts with `item`.
fn docs_of(source: &str, item: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.starts_with(item))
        .expect("the item");
    let mut docs = Vec::new();
    for line in lines[..at].iter().rev() {
        let line = line.trim_start();
        if let Some(text) = line.strip_prefix("///") {
            docs.push(text.strip_prefix(' ').unwrap_or(text));
        } else if !line.starts_with("#[") {
            break;
        }
    }
    docs.reverse();
    docs.join("\n")
}

/// The fenced code blocks of `markdown`, in order.
fn code_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start().starts_with("```")) {
            (None, true) => current = Some(Vec::new()),
            (Some(block), true) => {
                blocks.push(block.join("\n"));
                current = None;
            }
            (Some(block), false) => block.push(line),
            (None, false) => {}
        }
    }
    blocks
}

/// The names a reader of an expansion looks for: every type, trait implemented, function,
/// constant and associated type, inside `const _` scopes and the native client's macro calls
/// too. Of the std and serde traits implemented as a derive would, only the trait.
fn item_names(items: Vec<syn::Item>, names: &mut std::collections::BTreeSet<String>) {
    use syn::{ImplItem, Item};
    let derived = ["Clone", "Debug", "PartialEq", "Serialize", "Deserialize"];
    for item in items {
        match item {
            Item::Struct(item) => {
                names.insert(item.ident.to_string());
            }
            Item::Enum(item) => {
                names.insert(item.ident.to_string());
                names.extend(item.variants.iter().map(|v| v.ident.to_string()));
            }
            Item::Type(item) => {
                names.insert(item.ident.to_string());
            }
            Item::Impl(item) => {
                let trait_name = item.trait_.as_ref().map(|(_, path, _)| {
                    let last = path.segments.last().expect("a trait path");
                    last.ident.to_string()
                });
                if let Some(name) = &trait_name {
                    names.insert(name.clone());
                    if derived.contains(&name.as_str()) {
                        continue;
                    }
                }
                for member in item.items {
                    match member {
                        ImplItem::Fn(f) => names.insert(f.sig.ident.to_string()),
                        ImplItem::Const(c) => names.insert(c.ident.to_string()),
                        ImplItem::Type(t) => names.insert(t.ident.to_string()),
                        _ => false,
                    };
                }
            }
            Item::Const(item) => {
                if let syn::Expr::Block(block) = *item.expr {
                    let inner = block.block.stmts.into_iter().filter_map(|stmt| match stmt {
                        syn::Stmt::Item(item) => Some(item),
                        _ => None,
                    });
                    item_names(inner.collect(), names);
                }
            }
            Item::Macro(call) => {
                let name = call.mac.path.segments.last().expect("a macro path");
                names.insert(name.ident.to_string());
                let file: syn::File = syn::parse2(call.mac.tokens).expect("items");
                item_names(file.items, names);
            }
            _ => {}
        }
    }
}

/// Whether `text` has `word` as a whole word.
fn mentions(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// A rejected impl block leaves out the handlers it reported for their name (a second `add`, a
/// handler named like the generated `start`): kept, each would be rustc's "duplicate
/// definitions" error after ours. The first `add` and the other methods stay.
#[test]
fn a_rejected_impl_block_leaves_out_the_handlers_whose_name_clashes() {
    let item = quote! {
        impl Worker {
            #[handler]
            pub fn add(&mut self, n: u64) {}
            #[handler]
            pub fn add(&mut self, n: u32) {}
            #[handler]
            pub fn start(&mut self) {}
            fn helper(&self) {}
        }
    };
    assert_eq!(errors(TokenStream::new(), item.clone()).len(), 2);
    let expanded = super::agent(TokenStream::new(), item).to_string();
    assert_eq!(expanded.matches("fn add").count(), 1, "{expanded}");
    assert!(expanded.contains("n : u64"), "{expanded}");
    assert!(!expanded.contains("fn start"), "{expanded}");
    assert!(expanded.contains("fn helper"), "{expanded}");
}

/// A tuple struct is one error, and still stands in as an agent without fields (its handle, its
/// `AgentState` with a `from_key` that is never built), so that its impl block resolves.
#[test]
fn a_tuple_struct_stands_in_as_an_agent_without_fields() {
    let expanded = super::agent(
        TokenStream::new(),
        quote!(
            pub struct Counter(String, u64);
        ),
    );
    let text = expanded.to_string();
    assert_eq!(text.matches("compile_error").count(), 1, "{text}");
    assert!(
        text.contains("pub struct Counter (String , u64) ;"),
        "{text}"
    );
    assert!(text.contains("pub struct CounterRef"), "{text}");
    assert!(text.contains("AgentState for Counter"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
}

/// A struct at state version 2 and its impl block with one typed, one fallible step: the
/// version const, the check that the steps reach it, and the `migrate` dispatch with the
/// per-step checks.
#[test]
fn migration_expansion() {
    let item = quote! {
        pub struct Profile {
            #[key]
            id: String,
            #[persist]
            first: String,
        }
    };
    let expanded = pretty(super::agent(quote!(state_version = 3), item));
    let version = expanded.find("const STATE_VERSION").expect("the const");
    let checked = expanded
        .find("steps_reach")
        .expect("the struct checks the steps");
    let block = quote! {
        impl Profile {
            #[migrate(from = 1)]
            fn from_v1(old: V1) -> V2 {
                V2::from(old)
            }
            #[migrate(from = 2)]
            fn from_v2(old: swarm::record::Fields) -> Result<V3, String> {
                V3::try_from(old)
            }
            #[handler]
            pub fn first(&self) -> String {
                self.first.clone()
            }
        }
    };
    let impl_expanded = pretty(super::agent(TokenStream::new(), block));
    let start = impl_expanded
        .find("const LAST_MIGRATION")
        .expect("the last step");
    let end = impl_expanded
        .find("#[automatically_derived]\n    impl ::swarm::__private::Agent for")
        .expect("the next impl");
    // (The error messages of the checks name `#[migrate(..)]` too, inside strings.)
    assert!(
        !impl_expanded.contains("#[migrate(from = 1)]\n"),
        "the markers are removed"
    );
    insta::assert_snapshot!(format!(
        "{}\n{}\n---\n{}",
        expanded[version..version + expanded[version..].find(';').unwrap() + 1].trim(),
        {
            let from = expanded[..checked]
                .rfind("const _")
                .expect("the check's const");
            &expanded[from..checked + expanded[checked..].find(");").expect("its end") + 2]
        },
        impl_expanded[start..end].trim()
    ));
}
