//! `airgap serve`: the devfile registry REST API and a read-only OCI distribution API.
