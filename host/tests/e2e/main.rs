//! End-to-end tests: the real `wxhost` binary on port 0, real compiled plugins, pushes built
//! exactly as WeChat builds them.

mod harness;

mod capabilities;
mod chain;
mod connections;
mod dedup;
mod exactly_once;
mod http;
mod languages;
mod late_replies;
mod media;
mod menus;
mod nodes;
mod reload;
mod tenants;
