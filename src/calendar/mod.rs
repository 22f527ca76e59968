pub mod dir;
pub mod mac;
