#![allow(unreachable_pub)]

//! End-to-end tests: a real Caucus server on a free port, driven over real WebSocket
//! connections by the typed client in `caucus_tests`.

mod support;

mod accounts;
mod auth;
mod bad_input;
mod cluster;
mod conformance;
mod crash;
mod disk;
mod durability;
mod edge;
mod facilitation;
mod flow;
mod fuzz_corpus;
mod liveness;
mod loading;
mod model;
mod practice;
mod privacy;
mod process;
mod records;
mod shared_store;
mod timer;
mod web_client;
mod window;
