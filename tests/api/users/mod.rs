//! The `/users` resource over real HTTP, on SQLite and on PostgreSQL: a file
//! per area.

mod admin;
mod docs;
mod listing;
mod me;
mod validation;
