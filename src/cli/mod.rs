//! Command-line interfaces of `otsd` and `otsctl`: clap definitions only. The binaries parse these,
//! [`crate::config`] turns `otsd`'s into a configuration, and the library does the rest.
//!
//! - [`shared`]: argument groups both binaries take (network, Bitcoin node, sequence range,
//!   finality depth), defined once and flattened, and the parsers of decimal flags.
//! - [`otsd`]: the server's flags, their defaults and ranges.
//! - [`otsctl`]: one argument struct per operator command.
pub mod otsctl;
pub mod otsd;
pub mod shared;

pub use otsctl::{
    AddressArgs, ImportOtsdArgs, InitArgs, InspectArgs, OtsctlArgs, OtsctlCommand, ProveHeadArgs,
    ReadmitArgs, RecoverArgs, ReplayArgs, ShipArgs, VerifyArgs,
};
pub use otsd::OtsdArgs;
pub use shared::{ConfirmationsArgs, NetworkArgs, NodeArgs, SeqRangeArgs};
