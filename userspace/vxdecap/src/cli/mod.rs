//! The `vxdecap` command line: its flags ([`args`], every clap definition),
//! the commands they run ([`run`]) and the log it prints ([`log`]).

pub mod args;
pub mod log;
pub mod run;
