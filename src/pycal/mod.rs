//! The Python otsd's calendar directory, read-only: its `journal` ([`journal`]), its LevelDB of
//! proofs and the `GET /timestamp` answers they give ([`db`]), and the import of both into a new
//! otsd calendar ([`importer`], behind `otsctl import-otsd`). The byte-level format is described in
//! `log-format/python-calendar.md`.
pub mod backup;
pub mod chunk;
pub mod db;
pub mod importer;
pub mod journal;
pub mod ldb;
pub mod walk;
