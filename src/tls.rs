//! The TLS set-up of airgap's HTTPS clients (oci-client's and reqwest's, both on rustls).
//!
//! rustls with the `ring` provider, not native-tls: native-tls (OpenSSL) parses the system CA
//! bundle twice for every client it builds, about 30 ms each on these machines, even for a client
//! that only ever speaks plain HTTP, and oci-client builds two reqwest clients per client (its
//! `TryFrom<ClientConfig>` ends with `..Default::default()`). rustls' platform verifier reads the
//! bundle once per client, in about 3 ms. `ring` rather than rustls' default `aws-lc-rs`: the
//! latter is minutes of C build on 2 cores.
//!
//! One behaviour differs from OpenSSL and Go: rustls (webpki) refuses a server certificate that
//! is itself a CA (`basicConstraints CA:TRUE`), which `openssl req -x509` makes by default, even
//! when it is the CA file's own certificate. [`hint`] names that case and its fixes.

/// Makes `ring` the process's rustls provider, once; reqwest and oci-client pick it up. Call it
/// before building a client (cheap after the first call).
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first (by an embedding program): keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// What to do about a TLS failure whose message (an error chain) is `message`, when airgap
/// knows better than the message itself.
pub fn hint(message: &str) -> Option<&'static str> {
    if message.contains("CaUsedAsEndEntity") {
        return Some(
            "the server presents a CA certificate (basicConstraints CA:TRUE) as its own, as \
             `openssl req -x509` makes by default; airgap's TLS (rustls) refuses that even when \
             the CA file holds it. Give the registry a certificate with CA:FALSE (signed by your \
             CA, or self-signed with `-addext basicConstraints=critical,CA:FALSE`), or set \
             tls=\"insecure\" for it",
        );
    }
    if message.contains("UnknownIssuer") {
        return Some(
            "the server's certificate is not signed by a CA this machine trusts: name your CA \
             with ca-file=\"…\" on the registry's node, or set tls=\"insecure\"",
        );
    }
    None
}
