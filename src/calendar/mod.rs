pub mod mac;
