//! The recipes: [`triplets`] (MedTrinity-25M: image + ROIs + five-part description) with its per-sample stages
//! ([`triplet_stages`]), and [`grounded_reports`] (RadGenome-Chest CT: grounded report sentences, VQA, structured
//! findings). Which one a config runs is [`crate::config::Recipe`].

pub mod grounded_reports;
pub mod triplet_stages;
pub mod triplets;
