//! The engine every recipe runs on: typed errors ([`error`]) and the shared file helpers ([`fsio`]). Sources of
//! samples live in [`crate::sources`], recipes in [`crate::recipes`].

pub mod cluster;
pub mod error;
pub mod fsio;
pub mod plan;
pub mod shards;
pub mod verify;
