//! otsd: an OpenTimestamps calendar server on an append-only event log.
//!
//! # Layout
//!
//! Modules are listed bottom-up: each imports only modules above it in this list, never one below,
//! so the import graph has no cycle and follows the data flow (a digest becomes an event in the
//! log, the log is folded into a projection, the stamper anchors the projection's rounds in
//! Bitcoin, HTTP answers from the projection; the daemon wires these, and the operator tools read
//! the log on their own).
//!
//! - [`sync`]: the lock-poisoning policy (a panic while a lock is held stops the process).
//!   Imports nothing else of ours.
//! - [`failpoint`]: places where a running otsd fails on purpose for the fault matrix (inert
//!   unless `OTSD_FAILPOINTS` is set). Imports nothing else of ours.
//! - [`sha`]: SHA-256 and HMAC of the short fixed-shape messages a replay hashes millions of
//!   times, straight through the compression function. Imports nothing else of ours.
//! - [`ots`]: the OpenTimestamps wire format (operations, attestations, timestamps, Merkle trees).
//!   Imports nothing else of ours.
//! - [`log`]: the segmented, memory-mapped, CRC-checked, HMAC- and hash-chained append-only log. It
//!   stores opaque payloads and knows nothing of events. Format: `log-format/README.md`.
//! - [`telemetry`]: logging, and the neutral [`telemetry::StatusBoard`] a task posts its status on.
//! - [`events`]: the event vocabulary and its [`events::codec`] (how payloads are encoded).
//! - [`calendar`]: the calendar directory (`uri`, `donation_addr`, `hmac-key`, `stamper-key`), the
//!   commitment MAC, and the one commitment layout `time || root || mac`.
//! - [`anchor`]: pure Bitcoin-anchoring facts both the projection and the stamper need: the
//!   stamper's state fold, the proof shapes, the stamping tip and the block Merkle root.
//! - [`projection`]: pure folds over the log (digest -> round -> commitment -> tx -> block) and
//!   their rebuildable checkpoint.
//! - [`bitcoind`]: the one Bitcoin Core RPC client builder (timeouts, redacted URLs) and the one
//!   regtest node launcher (`otsd --dev` and the tests).
//! - [`aggregator`]: turns submitted digests into rounds (group commits), answered after fsync.
//! - [`stamper`]: commits rounds into Bitcoin: a pure decision policy driven by a thin RPC driver.
//! - [`http`]: the warp filters, handlers and the hyper server with timeouts and limits.
//! - [`audit`]: reading a log as an auditor: `verify`, `inspect`, `replay`, `prove-head`.
//! - [`replica`]: copies of the log elsewhere: the mirror format and readers, the published log
//!   (`GET /log/`), the live follower of `otsd --mirror-of`, the primary/mirror roles (`promote`),
//!   `ship`, `recover` (with the log-level merge), `readmit`, and the small HTTP/1.1 client.
//! - [`cli`]: the command lines of both binaries (clap only; argument groups both take, such as
//!   network, node and sequence range, defined once in `cli::shared`).
//! - [`config`]: `otsd`'s arguments turned into a [`config::ServeConfig`]; the [`config::Network`];
//!   every flag's default taken from the module that owns it.
//! - [`daemon`]: the wiring of a running `otsd` (open the log, load the projection, spawn the tasks,
//!   shut down in order), its signals, and `otsd --dev`.
//! - [`pycal`]: the Python otsd's calendar directory, read-only (journal, LevelDB of proofs, the
//!   answers it gives), and its import into a new calendar (`otsctl import-otsd`).
//! - [`ctl`]: one thin file per `otsctl` command: arguments in, a [`ctl::Report`] out.
//!
//! # Where things live
//!
//! | What                                   | File                                            |
//! |----------------------------------------|-------------------------------------------------|
//! | log format (bytes on disk)             | `log-format/README.md`, `src/log/{record,segment,chain}.rs` |
//! | event vocabulary                       | `src/events/mod.rs` (encoding: `src/events/codec.rs`, written through `src/events/wire.rs`; the replay's borrowed view: `src/events/view.rs`) |
//! | commitment layout `time‖root‖mac`      | `src/calendar/commitment.rs` (MAC: `src/calendar/mac.rs`) |
//! | proof shape (commitment -> block)      | `src/anchor/proof.rs`                           |
//! | Bitcoin policy (send, bump, wait)      | `src/stamper/policy.rs` (state fold: `src/anchor/state.rs`) |
//! | Bitcoin Core RPC, regtest node         | `src/bitcoind/{rpc,regtest}.rs`                 |
//! | HTTP answers (status codes, bodies)    | `src/http/handlers.rs` (info page: `src/http/info.rs`) |
//! | `otsd` flags, defaults, limits         | `src/cli/otsd.rs` (shared groups: `src/cli/shared.rs`; into a `ServeConfig`: `src/config.rs`) |
//! | `otsctl` arguments                     | `src/cli/otsctl.rs`                             |
//! | start-up and shutdown of `otsd`        | `src/daemon/mod.rs`                             |
//! | mirror format                          | `src/replica/mirror.rs`                         |
//! | `otsctl init` / `address`              | `src/ctl/init.rs` / `src/ctl/address.rs`        |
//! | `otsctl verify` / `inspect` / `replay` | `src/ctl/{verify,inspect,replay}.rs` over `src/audit/` |
//! | `otsctl prove-head`                    | `src/ctl/prove_head.rs` over `src/audit/prove_head.rs` |
//! | lock-poisoning policy                  | `src/sync.rs`                                   |
//! | fault matrix (crash, power cut, EIO, damage, parsers, otsd under faults, abuse, reorgs, node faults) | `tools/fault-matrix/` (short run: `tests/fault_matrix.rs`; failpoints: `src/failpoint.rs`) |
//! | `otsctl ship` / `recover` / `readmit`  | `src/ctl/{ship,recover,readmit}.rs` over `src/replica/` |
//! | published log `GET /log/`             | `src/http/log_feed.rs` over `src/replica/publish.rs` |
//! | `otsd --mirror-of` (live mirror)       | `src/daemon/mirror.rs` over `src/replica/follow/` |
//! | primary/mirror roles, `otsctl promote` | `src/replica/role.rs`, `src/ctl/promote.rs`     |
//! | `otsctl import-otsd`, Python files     | `src/ctl/import_otsd.rs` over `src/pycal/`; `log-format/python-calendar.md` |
//! | object storage: `--ship-to`, `s3://`   | `src/replica/{bucket,bucket_ship,continuous}.rs`, `src/replica/follow/bucket_source.rs`; `log-format/mirror.md` |
//! | LevelDB table reader (import)          | `src/pycal/ldb.rs` (checked against rusty-leveldb in `src/pycal/db.rs`) |
//! | import's answers and parallel walk     | `src/pycal/walk.rs` (answers), `src/pycal/chunk.rs` (a journal chunk's events), `src/pycal/importer.rs` (threads, log) |
//! | `GET /experimental/backup/<N>`         | `src/http/backup.rs` over `src/pycal/backup.rs` |
//! | Python's info JSON field names         | `src/http/info_python.rs`                       |
//! | node discovery (`bitcoin.conf`, cookie)| `src/bitcoind/discover.rs`                      |
//! | `--debug-file*` rotation               | `src/telemetry/rotate.rs`                       |
//! | digest index (`/status/<digest>`)      | `src/projection/digests.rs`                     |
//! | rebuild: verifying thread and fold     | `src/projection/{ahead,rebuild}.rs` (hashing: `src/sha.rs`) |
//! | proof read path and its bounded caches | `src/projection/{history,proofcache,tiptree}.rs` |

pub mod aggregator;
pub mod anchor;
pub mod audit;
pub mod bitcoind;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod events;
pub mod failpoint;
pub mod http;
pub mod log;
pub mod ots;
pub mod projection;
pub mod pycal;
pub mod replica;
pub mod sha;
pub mod stamper;
pub mod sync;
pub mod telemetry;
