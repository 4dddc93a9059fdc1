//! The `vxdecap` command line: its flags ([`args`], every clap definition),
//! the commands they run ([`run`]), the log it prints ([`log`]), and the
//! man pages and completions made from the definitions ([`generate`]).

pub(crate) mod args;
pub(crate) mod generate;
pub(crate) mod log;
pub(crate) mod run;
