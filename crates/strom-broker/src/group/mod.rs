//! Consumer groups: the classic group state machine, the coordinator runtime
//! that persists groups and offsets in `__consumer_offsets`, and that topic's
//! record formats.

pub mod classic;
pub mod consumer;
pub mod consumer_records;
pub mod coordinator;
pub mod load;
pub mod offsets;
pub mod records;
pub mod txn_offsets;

#[cfg(test)]
pub(crate) mod tests;
