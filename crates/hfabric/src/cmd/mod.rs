pub mod bench;
pub mod nodes;
pub mod ping;
pub mod send;
pub mod serve;
