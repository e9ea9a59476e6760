pub mod bench;
pub mod diagnose;
pub mod nodes;
pub mod ping;
pub mod route;
pub mod send;
pub mod serve;
pub mod topo;
