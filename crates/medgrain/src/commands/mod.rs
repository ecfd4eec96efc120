//! One module per command; each `run` takes its parsed arguments and returns the exit status.

pub(crate) mod batch;
pub(crate) mod build;
pub(crate) mod dedup;
pub(crate) mod deid;
pub(crate) mod demo;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod kb;
pub(crate) mod locate;
pub(crate) mod mock_server;
pub(crate) mod plan;
pub(crate) mod probe;
pub(crate) mod render;
pub(crate) mod reorient;
pub(crate) mod report;
pub(crate) mod review;
pub(crate) mod rois;
pub(crate) mod synth;
pub(crate) mod verify;
