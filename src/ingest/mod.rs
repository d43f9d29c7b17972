//! The push side of the data path: things outside watchpost push into it
//! instead of being scraped. [`heartbeat`] owns the dead man's switches
//! (`POST /api/v1/heartbeat/<name>`).
//!
//! Writers here reach storage only through `Appender`; alerts leave through
//! a callback that `app` wires to the notification pipeline, so this
//! module never imports `rules` or `notify`.

pub mod heartbeat;
