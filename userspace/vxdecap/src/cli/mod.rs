//! The `vxdecap` command line: its flags ([`args`], every clap definition),
//! the commands they run ([`run`]) and the log it prints ([`log`]).

pub(crate) mod args;
pub(crate) mod log;
pub(crate) mod run;
