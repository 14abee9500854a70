//! The validation step: each macro's model, as parsed, checked for what parses but makes no
//! agent or supervisor. Every problem goes to the [`Ctxt`](crate::ctxt::Ctxt) at the user's own
//! token, so one compile reports all of them; only a model with none is expanded (the others
//! get a [`fallback`](crate::fallback)).

pub(crate) mod agent_impl;
pub(crate) mod agent_struct;
pub(crate) mod subject;
pub(crate) mod supervisor;
