//! Black-box tests: the app on a random port, real PostgreSQL, real Redis, requests over HTTP.

mod conventions;
mod helpers;
mod jwt;
mod limits;
mod logout;
mod refresh;
mod signup_login;
