pub mod commitment;
pub mod dir;
pub mod legacy;
pub mod mac;
