//! Image references, registries and OCI image layouts.
