//! Collects every error found in one macro invocation, so that one compile shows every mistake
//! (the way serde_derive's `Ctxt` does), each at the user's own token.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records an error spanning `tokens`.
    pub(crate) fn error_at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.errors
            .push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records an error already built.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// The collected errors as one, if there are any.
    pub(crate) fn check(self) -> Result<(), syn::Error> {
        let mut errors = self.errors.into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            first.combine(error);
        }
        Err(first)
    }
}

/// The item as the user wrote it plus the errors, so that a mistake in one part does not also
/// make every use of the item fail to resolve.
pub(crate) fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote::quote!(#item #errors)
}

/// An item that failed validation: the errors, the item as written (swarm's attributes removed),
/// and, when its shape allows, a stand-in model to generate from. Generating the stand-in keeps
/// the rest of the user's code resolving (`Agent::get_or_start`, the other half of the agent), so
/// one mistake shows one error instead of a cascade from the code that uses the item.
pub(crate) struct Rejected<I, M> {
    pub(crate) error: syn::Error,
    pub(crate) item: I,
    pub(crate) stand_in: Option<M>,
}
