//! The `otsctl` commands (being split into one thin file per command over [`crate::audit`] and [`crate::replica`]).
