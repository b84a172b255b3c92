//! The registry index (`index.json`) as the upstream index generator writes it.
