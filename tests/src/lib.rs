//! End-to-end tests of tickforge, one behaviour per file under `tests/tests/`.
//!
//! Behaviours of a single crate are tested in that crate (`protocol/tests`, `server/tests`);
//! this crate holds those that need several: a server, bots and the replay tool together,
//! over real sockets on 127.0.0.1 port 0, real files in temporary directories and real child
//! processes. Its first tests arrive with the network server.
