pub mod commitment;
pub mod dir;
pub mod mac;
